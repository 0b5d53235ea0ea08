"""GaussianMixture as a drop-in for scikit-learn's: its own test module, and each feature.

``test_sklearn_test_module_passes`` runs scikit-learn's installed
``sklearn/mixture/tests/test_gaussian_mixture.py`` with ``GaussianMixture``
replaced by ours (``tests/sklearn_compat/sklearn_gmm_plugin.py``, which lists
the excluded tests of scikit-learn's private helpers). The other tests check the
same features on their own, with the library's extra messages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

import bayesgmm as bg
from bayesgmm import GaussianMixture

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = ROOT / "tests" / "sklearn_compat"
SKLEARN_MODULE = "sklearn.mixture.tests.test_gaussian_mixture"


def _two_blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.normal(size=(n // 2, 2)), rng.normal(size=(n // 2, 2)) + np.array([6.0, 0.0])]
    )


@pytest.fixture(scope="module")
def X():
    return _two_blobs()


# ------------------------------------------- scikit-learn's own test module ---
@pytest.mark.slow
def test_sklearn_test_module_passes(tmp_path):
    excluded = _plugin().EXCLUDED
    report = tmp_path / "report.xml"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(PLUGIN_DIR))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "sklearn_gmm_plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--junitxml={report}",
        "--pyargs",
        SKLEARN_MODULE,
    ]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, f"{summary}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"

    _check_report(report, excluded, summary)


def _check_report(report, excluded, summary=""):
    """The JUnit report of scikit-learn's module: nothing failed, exclusions skipped."""
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        kind = next((child.tag for child in case), "passed")
        outcomes[case.get("name")] = (kind, "".join(c.get("message", "") for c in case))
    assert not [n for n, (kind, _) in outcomes.items() if kind in ("failure", "error")]
    # Every excluded test was collected and skipped (by the plugin, or first by
    # scikit-learn's own configuration for its float32 and array-API variants).
    for name in excluded:
        runs = [kind for n, (kind, _) in outcomes.items() if re.fullmatch(rf"{name}(\[.*\])?", n)]
        assert runs and set(runs) == {"skipped"}, name
    assert sum("bayesgmm:" in msg for _, msg in outcomes.values()) >= 7
    # Everything else ran against our estimator, apart from scikit-learn's own
    # skips (float32 and array-API variants that its configuration turns off).
    passed = [n for n, (kind, _) in outcomes.items() if kind == "passed"]
    assert len(passed) >= 42, summary
    for name in ("test_warm_start[0]", "test_max_iter_zero", "test_check_precisions"):
        assert name in passed


def _plugin():
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        import sklearn_gmm_plugin
    finally:
        sys.path.remove(str(PLUGIN_DIR))
    return sklearn_gmm_plugin


def test_plugin_excludes_few_tests_each_with_a_reason():
    import sklearn.mixture.tests.test_gaussian_mixture as module

    plugin = _plugin()
    assert plugin.TARGET == module.__name__
    for name, reason in plugin.EXCLUDED.items():
        assert callable(getattr(module, name)), name  # a stale name would hide nothing
        assert "scikit-learn's private" in reason or "scikit-learn's own limitation" in reason
    assert len(plugin.EXCLUDED) == 8


# ------------------------------------------------------------ init_params ---
def test_k_means_plus_plus_spelling(X):
    ours = GaussianMixture(2, init_params="kmeans++", random_state=3).fit(X)
    theirs = GaussianMixture(2, init_params="k-means++", random_state=3).fit(X)
    assert theirs.get_params()["init_params"] == "k-means++"  # kept as given
    assert_array_equal(ours.means_, theirs.means_)
    with pytest.raises(ValueError, match="init_params must be one of"):
        GaussianMixture(2, init_params="k-means").fit(X)


# ------------------------------------------------------------ max_iter=0 ---
@pytest.mark.parametrize("init_params", ["kmeans++", "random"])
def test_max_iter_zero_returns_the_start_em_uses(X, init_params):
    with warnings.catch_warnings():
        warnings.simplefilter("error", bg.ConvergenceWarning)  # no warning for max_iter=0
        start = GaussianMixture(2, max_iter=0, init_params=init_params, random_state=5).fit(X)
    assert start.n_iter_ == 0 and not start.converged_
    assert start.lower_bounds_ == []
    assert start.lower_bound_ == pytest.approx(start.score(X), rel=1e-12)
    # EM from the returned parameters is EM from init_params with the same seed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        direct = GaussianMixture(2, max_iter=3, init_params=init_params, random_state=5).fit(X)
        from_start = bg.fit_em(X, 2, init=start.params_, max_iter=3, tol=direct.tol)
    assert_allclose(direct.means_, np.asarray(from_start.params.means), rtol=1e-9)
    assert_allclose(direct.covariances_, np.asarray(from_start.params.covariances), rtol=1e-9)


def test_max_iter_zero_with_means_init(X):
    means = np.array([[0.5, 0.0], [5.0, 0.5]])
    gm = GaussianMixture(2, max_iter=0, means_init=means).fit(X)
    assert_array_equal(gm.means_, means)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 0"):
        GaussianMixture(2, max_iter=-1).fit(X)


# ------------------------------------------------------------ warm_start ---
def test_warm_start_continues_em(X):
    kwargs = {"n_components": 2, "random_state": 2, "tol": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        cold = GaussianMixture(max_iter=4, **kwargs).fit(X)
        warm = GaussianMixture(max_iter=2, warm_start=True, **kwargs)
        warm.fit(X).fit(X)
    assert_allclose(warm.means_, cold.means_, rtol=1e-10)
    assert_allclose(warm.covariances_, cold.covariances_, rtol=1e-10)
    assert warm.lower_bound_ == pytest.approx(cold.lower_bound_, rel=1e-12)
    assert_allclose(warm.lower_bounds_, cold.lower_bounds_[2:], rtol=1e-12)  # its own only
    assert len(warm.lower_bounds_) == warm.n_iter_ == 2


def test_warm_start_carries_the_convergence_test(X):
    tol = 1e-4  # random responsibilities: EM needs many iterations to get there
    gm = GaussianMixture(
        2, warm_start=True, max_iter=1, tol=tol, init_params="random", random_state=0
    )
    changes = []  # how much each fit's one iteration changed the mean log-likelihood
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        for _ in range(200):
            gm.fit(X)
            if gm.converged_:
                break
            start = gm.result_.history[0] / gm.result_.n_samples
            changes.append(abs(gm.lower_bounds_[-1] - start))
    assert gm.converged_ and gm.n_iter_ == 1
    # Converged in the fit right after the first one whose iteration changed it by < tol.
    assert len(changes) >= 3 and changes[-1] < tol
    assert all(c >= tol for c in changes[:-1])


def test_warm_start_refuses_another_shape(X):
    gm = GaussianMixture(2, warm_start=True, random_state=0).fit(X)
    gm.set_params(n_components=3)
    with pytest.raises(ValueError, match="warm_start=True continues from the previous fit"):
        gm.fit(X)


# ------------------------------------------------------- n_init and bounds ---
def test_more_restarts_never_end_lower():
    # scikit-learn's test_init: the vectorised first restart used to end ~1e-11 lower.
    for seed in range(15):
        rng = np.random.RandomState(seed)
        Xs = rng.rand(50, 2) * [1.0, 3.0]
        kwargs = {"n_components": 2, "max_iter": 1, "random_state": seed}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            one = GaussianMixture(n_init=1, **kwargs).fit(Xs)
            ten = GaussianMixture(n_init=10, **kwargs).fit(Xs)
        assert ten.lower_bound_ >= one.lower_bound_, seed
        assert ten.score(Xs) >= one.score(Xs), seed


def test_lower_bounds(X):
    gm = GaussianMixture(2, random_state=0, tol=1e-8).fit(X)
    assert len(gm.lower_bounds_) == gm.n_iter_ > 1
    assert gm.lower_bounds_[-1] == pytest.approx(gm.lower_bound_, rel=1e-12)
    assert np.all(np.diff(gm.lower_bounds_) > -1e-9)


# ---------------------------------------------------------------- verbose ---
def test_verbose(X, capsys):
    gm = GaussianMixture(2, random_state=0, tol=1e-10, verbose=1, verbose_interval=2)
    gm.fit(X)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Initialization 0"
    assert out[-1] == "Initialization converged."
    assert sum(line.startswith("  Iteration") for line in out) == gm.n_iter_ // 2
    gm.set_params(verbose=2, n_init=2).fit(X)
    out = capsys.readouterr().out
    assert "(the best of 2, run together)" in out
    assert re.search(r"Iteration 2\t lower bound -?\d+\.\d{5}\t ll change", out)
    assert "time lapse" in out and "final lower bound of each restart" in out
    with pytest.raises(ValueError, match="verbose_interval must be an integer >= 1"):
        gm.set_params(verbose_interval=0).fit(X)


# --------------------------------------------------------------- messages ---
def test_messages_use_sklearn_wording_then_ours(X):
    def fails(match, **kwargs):
        with pytest.raises(ValueError, match=match):
            GaussianMixture(2, **kwargs).fit(X)

    fails(
        r"'weights' should have the shape of \(2,\).*weights_init must have shape",
        weights_init=[1.0],
    )
    fails(
        r"should be in the range \[0, 1\].*the smallest weight is -0.5 and the largest 1.5",
        weights_init=[-0.5, 1.5],
    )
    fails(r"sum\(weights\) = 0.50000: weights_init must be non-negative", weights_init=[0.25] * 2)
    fails(r"'means' should have the shape of \(2, 2\).*means_init", means_init=np.zeros((3, 2)))
    fails(
        r"'diag precision' should have the shape of \(2, 2\).*scikit-learn's shape",
        covariance_type="diag",
        precisions_init=np.ones(2),
    )
    fails(
        "'spherical precision' should be positive: precisions_init must be positive definite",
        covariance_type="spherical",
        precisions_init=np.array([1.0, -1.0]),
    )
    fails(
        "'tied precision' should be symmetric, positive-definite: precisions_init must be symm",
        covariance_type="tied",
        precisions_init=np.array([[1.0, 0.5], [0.0, 1.0]]),
    )


def test_convergence_warning_wording(X):
    with pytest.warns(SklearnConvergenceWarning) as record:
        GaussianMixture(2, max_iter=1, random_state=0).fit(X)
    assert len(record) == 1 and record[0].category is bg.ConvergenceWarning
    message = str(record[0].message)
    assert message.startswith("Best performing initialization did not converge.")
    assert "bayesgmm: EM stopped after 1 iterations (max_iter=1)" in message


def test_breakdown_error_wording():
    Xd = np.vstack([np.ones((5, 5)), np.zeros((5, 5))])  # scikit-learn's degenerate data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="ill-defined empirical covariance") as info:
            GaussianMixture(10, reg_covar=0, random_state=0).fit(Xd)
    assert "bayesgmm: EM broke down in every restart" in str(info.value)


def test_sample_size(X):
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="Invalid value for 'n_samples': 0"):
        gm.sample(0)
    for n in (1, 3, 5, 70):
        Xs, ys = gm.sample(n)
        assert Xs.shape == (n, 2) and ys.shape == (n,)
    assert_array_equal(gm.sample(5)[0], gm.sample(5)[0])


# ------------------------------------------------ scikit-learn's private hooks ---
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_set_parameters_and_initialize(X, covariance_type):
    fitted = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    copy = GaussianMixture(2, covariance_type=covariance_type)
    copy._set_parameters(fitted._get_parameters())
    assert_allclose(copy.precisions_, fitted.precisions_, rtol=1e-10)
    assert_allclose(copy.predict_proba(X), fitted.predict_proba(X), rtol=1e-10)

    resp = fitted.predict_proba(X)
    hooked = GaussianMixture(covariance_type=covariance_type, precisions_init=fitted.precisions_)
    hooked._initialize(X, resp)  # K from resp's columns, as in scikit-learn
    assert_allclose(hooked.precisions_cholesky_, fitted.precisions_cholesky_, rtol=1e-8)
    # The weights and means are one M-step from resp: those of the fit, nearly.
    assert_allclose(hooked.means_, fitted.means_, atol=1e-2)


def test_set_parameters_accepts_what_sklearn_does(X):
    gm = GaussianMixture(2)
    fitted = GaussianMixture(2, random_state=0).fit(X)
    weights, means, covariances, chol = fitted._get_parameters()
    gm._set_parameters((weights * 100, means, covariances, chol))  # counts, not weights
    assert_allclose(gm.precisions_, fitted.precisions_, rtol=1e-10)
    with pytest.raises(ValueError, match="not a valid mixture"):
        gm.predict(X)


# --------------------------------------------------- input and precision ---
def test_inputs_never_mutated_and_float64(X):
    data = np.round(X * 10).astype(np.int64)
    inits = {
        "weights_init": np.array([0.4, 0.6]),
        "means_init": np.array([[0.0, 0.0], [60.0, 0.0]]),
        "precisions_init": np.array([np.eye(2), np.eye(2)]) / 100.0,
    }
    saved = {k: v.copy() for k, v in inits.items()}
    data_saved = data.copy()
    gm = GaussianMixture(2, **inits, warm_start=True).fit(data)
    gm.fit(data)
    for k, v in inits.items():
        assert_array_equal(v, saved[k])
    assert_array_equal(data, data_saved)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, name).dtype == np.float64, name
    start = GaussianMixture(2, max_iter=0, random_state=0).fit(data)
    assert start.means_.dtype == np.float64
