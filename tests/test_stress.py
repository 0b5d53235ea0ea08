"""Hangs of EM on wide data (issue 19, item 9).

``bayesgmm em wide.npy -k 2 --map`` (300 x 200 data) hung now and then on a
loaded two-core machine, every thread waiting, the main one in ``_select_best``.
Two causes, both in the LAPACK kernels of the compiled EM program:

- jaxlib 0.10 splits a batch of matrices over XLA's thread pool and blocks the
  pool thread that called it until the chunks are done; two such kernels at
  once on a pool of two threads leave none to run the chunks (a deadlock).
  EM now hands LAPACK one matrix at a time and runs its restarts with
  ``lax.map`` instead of ``vmap`` (``bayesgmm._core._linalg``, ``em._core``).
- SciPy's OpenBLAS, called from XLA's threads with its own threads enabled,
  ended in a call whose work its server thread never picked up; EM now limits
  BLAS to one thread per call while it runs (``bayesgmm._core._threads``).

The first two tests check the program's structure and the BLAS limit, exactly;
the last runs the reported command many times in a child process pinned to two
cores, under a timeout, so that a hang fails the test instead of stalling the
run (before the fix it hung there after 34 of its 40 runs).
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

import bayesgmm as bg
from bayesgmm.em import _core
from bayesgmm.em._fit import check_em_settings

REPO = Path(__file__).resolve().parents[1]


def _lowered_em_program(D, K=2, n_init=3):
    X = np.random.default_rng(0).normal(size=(40, D))
    with jax.enable_x64(True):
        s = check_em_settings(X, K, prior=bg.Prior.default(X, K), n_init=n_init)
        lowered = _core.fit_restarts_jit.lower(
            jax.random.split(jax.random.key(0), n_init),
            X.reshape(1, *X.shape),
            np.ones((1, len(X))),
            None,
            n_components=K,
            method=s["init"],
            structure=s["structure"],
            prior=s["prior"],
            reg_covar=np.asarray(s["reg_covar"]),
            tol=np.asarray(s["tol"]),
            max_iter=np.asarray(s["max_iter"], np.int32),
            history_len=_core.history_class(s["max_iter"]),
        )
    return lowered.as_text()


def test_em_program_hands_lapack_one_matrix_at_a_time():
    from bayesgmm._core._linalg import SMALL_D

    text = _lowered_em_program(SMALL_D + 1)
    calls = re.findall(r"@(lapack_\w+)\(.*?num_batch_dims = \"(\d+)\"", text)
    assert {name for name, _ in calls} >= {"lapack_dpotrf_ffi", "lapack_dtrsm_ffi"}
    batched = sorted({name for name, dims in calls if dims != "0"})
    assert not batched, f"LAPACK kernels given a batch of matrices: {batched}"


def test_em_program_on_few_features_calls_no_lapack():
    """Up to SMALL_D features the factorisations are batched elementwise code."""
    from bayesgmm._core._linalg import SMALL_D

    for D in (1, SMALL_D):
        text = _lowered_em_program(D)
        assert "lapack" not in text
        assert "stablehlo.cholesky" not in text and "triangular_solve" not in text


def test_single_threaded_blas_limits_and_restores():
    import scipy.linalg.cython_lapack  # noqa: F401  (the OpenBLAS jaxlib calls)
    import threadpoolctl

    from bayesgmm._core._threads import single_threaded_blas

    def blas_threads():
        info = threadpoolctl.threadpool_info()
        return {i["filepath"]: i["num_threads"] for i in info if i["user_api"] == "blas"}

    before = blas_threads()
    assert before
    with single_threaded_blas():
        with single_threaded_blas():  # nested holders share the limit
            assert set(blas_threads().values()) == {1}
        assert set(blas_threads().values()) == {1}
    assert blas_threads() == before


_CHILD = textwrap.dedent(
    """
    import os, sys
    # Two cores, as on the machine where it hung: XLA's thread pool and
    # OpenBLAS size themselves from the affinity when they start.
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    import contextlib, io
    from bayesgmm.cli import main

    path, runs = sys.argv[1], int(sys.argv[2])
    for i in range(runs):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = main(["em", path, "-k", "2", "--map", "--seed", str(i)])
        assert code == 0 and "MAP-EM fit" in out.getvalue(), out.getvalue()
        print("run", i, flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity")
def test_wide_map_em_does_not_hang(tmp_path):
    path = tmp_path / "wide.npy"
    np.save(path, np.random.default_rng(0).normal(size=(300, 200)))
    runs = 12  # one compilation (~10 s), then ~0.3 s a run; before the fix 3 CLI runs in 8
    # hung, so twelve runs would all pass a hang that rate with probability (5/8)^12 < 0.4%
    try:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(runs)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        done = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else err.stdout or ""
        pytest.fail(
            f"bayesgmm em --map on 300 x 200 data hung: {done.count('run ')} of {runs} runs "
            "finished in 180 s"
        )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("run ") == runs
