"""EM on dask arrays (bayesgmm.em._dask) against the in-memory engine, on a real cluster.

A module-scoped ``LocalCluster`` of two worker processes (one thread each) runs
every fit here: the chunks' statistics are computed in those processes by the
compiled kernel and summed by Dask; nothing in the engine is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import jax
import numpy as np
import pytest

import bayesgmm as bg
from bayesgmm.em import _dask

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

RTOL = 1e-10


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def data():
    """Three separated clusters in D = 3, and positive weights."""
    rng = np.random.default_rng(7)
    means = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 1.0]])
    z = rng.integers(0, 3, size=2100)
    X = means[z] + rng.normal(size=(2100, 3)) @ np.diag([1.0, 0.5, 1.5]) + 100.0
    w = rng.uniform(0.5, 2.0, size=2100)
    return X, w


def _start(X, K=3):
    """A deliberately rough start: two in-memory EM iterations from the default init."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        return bg.fit_em(X, K, max_iter=2, seed=3).params


def _assert_same_fit(got: bg.EMResult, want: bg.EMResult, rtol=RTOL):
    assert got.n_iter == want.n_iter
    assert got.converged == want.converged
    np.testing.assert_allclose(got.log_likelihood, want.log_likelihood, rtol=rtol)
    np.testing.assert_allclose(got.history, want.history, rtol=rtol)
    if want.log_posterior is not None:
        np.testing.assert_allclose(got.log_posterior, want.log_posterior, rtol=rtol)
    np.testing.assert_allclose(got.icl, want.icl, rtol=rtol)
    for name in ("weights", "means", "covariances"):
        a, b = np.asarray(getattr(got.params, name)), np.asarray(getattr(want.params, name))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max(), err_msg=name)
    assert got.n_samples == pytest.approx(want.n_samples, rel=1e-14)


CHUNKINGS = [2100, 700, (1000, 250, 850)]


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=["one", "equal", "uneven"])
def test_em_on_dask_equals_in_memory_from_the_same_start(client, data, chunks):
    X, _ = data
    init = _start(X)
    want = bg.fit_em(X, 3, init=init)
    got = bg.fit_em(da.from_array(X, chunks=(chunks, 3)), 3, init=init)
    _assert_same_fit(got, want)


def test_map_em_with_dask_sample_weight_equals_in_memory(client, data):
    X, w = data
    prior = bg.Prior.default(X, 3)
    init = _start(X)
    want = bg.fit_em(X, 3, covariance_type="diag", prior=prior, sample_weight=w, init=init)
    Xd = da.from_array(X, chunks=(700, 3))
    got = bg.fit_em(
        Xd,
        3,
        covariance_type="diag",
        prior=prior,
        sample_weight=da.from_array(w, chunks=500),  # other chunks than X: rechunked
        init=init,
    )
    _assert_same_fit(got, want)
    # a NumPy sample_weight next to a dask X is cut into X's chunks
    again = bg.fit_em(Xd, 3, covariance_type="diag", prior=prior, sample_weight=w, init=init)
    _assert_same_fit(again, want)


def test_restarts_share_each_pass_and_each_equals_in_memory(client, data):
    X, _ = data
    Xd = da.from_array(X, chunks=(700, 3))
    before = _dask.passes_done
    got = bg.fit_em(Xd, 3, n_init=3, seed=0)
    passes = _dask.passes_done - before
    # summary, initialisation, then one pass per iteration of the longest restart
    # (the others ride along) and the final evaluation
    n_iters = []
    # The restarts' starts, computed as the fit computes them, refitted in memory.
    with jax.enable_x64(True):  # as inside fit_em
        key = jax.random.key(0)
        rows = _dask.DaskRows(Xd, None, np.float64)
        summary = rows.summary(3, jax.random.fold_in(key, _dask.SAMPLE_SALT))
        stats = _dask.column_stats(summary, np.float64)
        s = _dask.setup(rows, summary, stats, 3, prior=None, reg_covar=1e-6, block_size=None)
        starts = _dask.initial_params(rows, s, summary, key, 3, 3, "kmeans++", "full")
    for r, start in enumerate(starts):
        want = bg.fit_em(X, 3, init=s.std.params_out(start))
        n_iters.append(want.n_iter)
        np.testing.assert_allclose(got.restart_objectives[r], want.log_likelihood, rtol=RTOL)
        if r == got.best_restart:
            _assert_same_fit(got, want)
    assert passes == 2 + max(n_iters) + 1


def test_vb_on_dask_equals_in_memory_default_prior_from_the_summary_pass(client, data):
    X, w = data
    init = _start(X)
    want = bg.fit_vb(X, 3, init=init, sample_weight=w)  # Prior.default(X, 3, weighted)
    got = bg.fit_vb(da.from_array(X, chunks=(700, 3)), 3, init=init, sample_weight=w)
    assert got.n_iter == want.n_iter and got.converged == want.converged
    np.testing.assert_allclose(got.elbo, want.elbo, rtol=RTOL)
    np.testing.assert_allclose(got.history, want.history, rtol=RTOL)
    for name in ("weight_concentration", "mean_precision", "means", "dof", "scale"):
        a, b = getattr(got, name), getattr(want, name)
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * np.abs(b).max(), err_msg=name)
    np.testing.assert_allclose(got.prior.scale, want.prior.scale, rtol=1e-12)


def test_responsibilities_of_a_dask_array_are_lazy(client, data):
    X, _ = data
    params = _start(X)
    Xd = da.from_array(X, chunks=(700, 3))
    resp = params.responsibilities(Xd)
    assert isinstance(resp, da.Array) and resp.chunks == ((700, 700, 700), (3,))
    np.testing.assert_allclose(resp.compute(), params.responsibilities(X), rtol=1e-12)
    log_p = params.log_prob(Xd)
    assert log_p.chunks == ((700, 700, 700),)
    np.testing.assert_allclose(log_p.compute(), params.log_prob(X), rtol=1e-12)


def test_nan_is_reported_with_the_chunks_row_range(client, data):
    X, w = data
    bad = X.copy()
    bad[1500, 1] = np.nan
    bad[1600, 0] = np.nan
    with pytest.raises(ValueError, match=r"2 row\(s\) of the chunk of rows 1400 to 2099 "
                                         r"\(chunk 2\), first at row 1500"):  # fmt: skip
        bg.fit_em(da.from_array(bad, chunks=(700, 3)), 3)
    w_bad = w.copy()
    w_bad[800] = -1.0
    with pytest.raises(ValueError, match=r"rows 700 to 1399 \(chunk 1\).*first at row 800"):
        bg.fit_em(da.from_array(X, chunks=(700, 3)), 3, sample_weight=da.from_array(w_bad, 700))


def test_worker_killed_mid_fit_gives_the_same_answer(client, data):
    """SIGKILL one worker process while the fit runs: Dask recomputes its chunks."""
    X, _ = data
    init = _start(X)
    Xd = da.from_array(X, chunks=(150, 3))  # 14 chunks: every pass keeps both workers busy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        want = bg.fit_em(Xd, 3, init=init, tol=0.0, max_iter=40)
    pids = client.run(os.getpid)
    killed = {}

    def kill_after_a_few_passes(start):
        while _dask.passes_done < start + 5:
            time.sleep(0.005)
        _, pid = sorted(pids.items())[0]
        killed["at"] = _dask.passes_done
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_a_few_passes, args=(_dask.passes_done,))
    killer.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        got = bg.fit_em(Xd, 3, init=init, tol=0.0, max_iter=40)
    killer.join()
    assert killed["at"] < _dask.passes_done  # the kill came before the fit's last pass
    client.wait_for_workers(2, timeout=120)
    assert set(client.run(os.getpid).values()) != set(pids.values())  # a new process
    _assert_same_fit(got, want, rtol=0.0)  # the same bits: every chunk is deterministic


def test_cli_reads_a_npy_file_in_chunks(client, data, tmp_path, capsys):
    from bayesgmm.cli import main

    X, _ = data
    path = tmp_path / "X.npy"
    np.save(path, X)
    Xd = _dask.from_npy(path, 500)
    assert Xd.chunks == ((500, 500, 500, 500, 100), (3,))
    want = bg.fit_em(Xd, 3, n_init=2, seed=1)
    assert main(["em", str(path), "-k", "3", "--n-init", "2", "--seed", "1",
                 "--chunk-rows", "500"]) == 0  # fmt: skip
    assert f"log-likelihood: {want.log_likelihood:.4f}" in capsys.readouterr().out
    assert main(["em", str(tmp_path / "X.csv"), "-k", "3", "--chunk-rows", "500"]) == 2
    assert "--chunk-rows reads a .npy file" in capsys.readouterr().err


def test_missing_dask_says_what_to_install(monkeypatch, data):
    Xd = da.from_array(data[0], chunks=(700, 3))
    monkeypatch.setitem(sys.modules, "dask.array", None)  # as if dask were not installed
    with pytest.raises(ImportError, match=r"pip install 'bayesgmm\[dask\]'"):
        bg.fit_em(Xd, 3)


def test_import_bayesgmm_does_not_import_dask():
    code = "import sys, bayesgmm as bg; bg.fit_em; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
