"""EM with its E-step split over host threads (bayesgmm.em._threaded) against the one program.

Large in-memory fits run their E-step on every usable core; the tests force
that path on small data (``MIN_WORK = 0``, two usable cores whatever the
machine has) and compare it with the one compiled program on the same data.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import bayesgmm as bg
from bayesgmm.em import _threaded


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 2.0]])
    X = np.concatenate([rng.normal(size=(700, 3)) * (1 + i) + c for i, c in enumerate(centres)])
    w = rng.uniform(0.2, 3.0, size=len(X))
    return X, w


@pytest.fixture
def threaded(monkeypatch):
    """Force the threaded path; record the threads that ran an E-step part."""
    monkeypatch.setattr(_threaded, "MIN_WORK", 0)
    monkeypatch.setattr(_threaded, "usable_cores", lambda: 2)
    seen = set()
    bind = _threaded._programs.bind

    def spied_bind(*args, **kwargs):
        run = bind(*args, **kwargs)

        def spy(*args, **kwargs):
            seen.add(threading.current_thread().name)
            return run(*args, **kwargs)

        return spy

    monkeypatch.setattr(_threaded._programs, "bind", spied_bind)
    return seen


def _fit(X, w, **kwargs):
    # block_size: no padding of K and D (the threaded path is for unpadded fits)
    return bg.fit_em(X, 3, sample_weight=w, block_size=128, seed=3, **kwargs)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("map_em", [False, True], ids=["ml", "map"])
def test_threaded_fit_agrees_with_the_one_program(data, covariance_type, map_em, monkeypatch):
    X, w = data
    prior = bg.Prior.default(X, 3) if map_em else None
    kwargs = dict(covariance_type=covariance_type, prior=prior, n_init=2)
    one = _fit(X, w, **kwargs)
    monkeypatch.setattr(_threaded, "MIN_WORK", 0)
    monkeypatch.setattr(_threaded, "usable_cores", lambda: 2)
    assert _threaded.threads_for(len(X), 3, 3, 17) == 2
    two = _fit(X, w, **kwargs)
    assert two.n_iter == one.n_iter and two.converged == one.converged
    assert two.best_restart == one.best_restart
    np.testing.assert_allclose(two.log_likelihood, one.log_likelihood, rtol=1e-12)
    np.testing.assert_allclose(two.history, one.history, rtol=1e-12)
    np.testing.assert_allclose(two.restart_objectives, one.restart_objectives, rtol=1e-12)
    np.testing.assert_allclose(two.icl, one.icl, rtol=1e-12)
    for name in ("weights", "means", "covariances"):
        a, b = getattr(one.params, name), getattr(two.params, name)
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    if map_em:
        np.testing.assert_allclose(two.log_posterior, one.log_posterior, rtol=1e-12)
        assert np.all(np.diff(two.history_log_posterior) > -1e-9 * abs(two.log_posterior))
    else:
        assert np.all(np.diff(two.history) > -1e-9 * abs(two.log_likelihood))


def test_the_e_step_runs_on_two_threads(data, threaded):
    X, w = data
    _fit(X, w, max_iter=5)
    assert any(name.startswith("bayesgmm-e-step") for name in threaded), threaded
    assert threading.current_thread().name in threaded


def test_threaded_fit_from_given_parameters_float32_and_stops_at_max_iter(data, threaded):
    X, w = data
    start = _fit(X, w, max_iter=2).params
    with pytest.warns(bg.ConvergenceWarning):
        fit = bg.fit_em(
            X.astype(np.float32), 3, sample_weight=w, init=start, max_iter=4, block_size=128
        )
    assert fit.n_iter == 4 and not fit.converged
    assert fit.params.means.dtype == np.float32 and len(fit.history) == 5
    assert np.all(np.isfinite(fit.history))


def test_threaded_fit_leaves_the_inputs_alone(data, threaded):
    X, w = data
    X0, w0 = X.copy(), w.copy()
    _fit(X, w, max_iter=3)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(w, w0)


def test_small_fits_and_several_devices_stay_in_one_program(monkeypatch):
    monkeypatch.setattr(_threaded, "usable_cores", lambda: 8)
    assert _threaded.threads_for(1_000, 3, 2, 4) == 1  # too little work per iteration
    assert _threaded.threads_for(10**6, 8, 10, 4_902) == 8
    assert _threaded.threads_for(10**6, 8, 10, 3) == 3  # no more threads than blocks
    monkeypatch.setattr(_threaded, "usable_cores", lambda: 1)
    assert _threaded.threads_for(10**6, 8, 10, 4_902) == 1
