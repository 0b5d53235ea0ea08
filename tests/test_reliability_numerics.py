"""Reliability of the numerics (issue #19, items 4, 5, 6, 10, 11, 14 and 15).

Data stay tiny: every test is about a corner of the arithmetic, not about size.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesgmm as bg
from bayesgmm import GMMParams


# ------------------------------------------------------ 4. weight scale ---
@pytest.fixture(scope="module")
def faithful_fit(faithful):
    rng = np.random.default_rng(4)
    w = rng.uniform(0.5, 2.0, faithful.shape[0])
    return w, bg.fit_em(faithful, 2, sample_weight=w)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(log10_scale=st.floats(-300.0, 300.0))
def test_common_weight_scale_leaves_ml_fit_unchanged(faithful, faithful_fit, log10_scale):
    """fit_em(X, K, sample_weight=s * w) is the fit for w, totals times s (1e-300..1e300)."""
    w, ref = faithful_fit
    s = 10.0**log10_scale
    fit = bg.fit_em(faithful, 2, sample_weight=w * s)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            getattr(fit.params, name), getattr(ref.params, name), rtol=1e-7, err_msg=name
        )
    assert fit.converged and fit.n_iter == ref.n_iter
    # Reported totals are the user's weighted values: s times the unit-scale ones.
    assert fit.n_samples == pytest.approx(s * ref.n_samples, rel=1e-12)
    assert fit.log_likelihood == pytest.approx(s * ref.log_likelihood, rel=1e-9)
    assert fit.history[-1] == fit.log_likelihood
    np.testing.assert_allclose(fit.history, s * ref.history, rtol=1e-9)
    bic = -2.0 * fit.log_likelihood + fit.n_parameters * math.log(fit.n_samples)
    assert fit.bic == pytest.approx(bic, rel=1e-12)
    assert fit.icl - fit.bic == pytest.approx(s * (ref.icl - ref.bic), rel=1e-6)


def test_tiny_uniform_weights_match_unweighted_fit(faithful):
    """The issue's case: weights of 1e-15 and 1e-20 gave means off by 0.45 and 16.4."""
    ref = bg.fit_em(faithful, 2)
    for s in (1e-15, 1e-20):
        fit = bg.fit_em(faithful, 2, sample_weight=np.full(faithful.shape[0], s))
        np.testing.assert_allclose(fit.params.means, ref.params.means, rtol=1e-9)
        np.testing.assert_allclose(fit.params.weights, ref.params.weights, rtol=1e-9)
        assert fit.log_likelihood == pytest.approx(s * ref.log_likelihood, rel=1e-9)


def test_weight_scale_still_matters_under_a_prior(faithful):
    """MAP-EM: the weights' total is how much data there is next to the prior."""
    prior = bg.Prior.default(faithful, 2)
    n = faithful.shape[0]
    one = bg.fit_em(faithful, 2, prior=prior)
    tiny = bg.fit_em(faithful, 2, prior=prior, sample_weight=np.full(n, 1e-3))
    assert not np.allclose(tiny.params.means, one.params.means, rtol=1e-3)


# ------------------------------------------------- 5. out-of-range draws ---
@pytest.fixture(scope="module")
def draws():
    """Batched parameters shaped like a posterior: 2 chains of 50 draws, K=2, D=1."""
    rng = np.random.default_rng(5)
    return GMMParams(
        weights=np.full((2, 50, 2), 0.5),
        means=rng.normal(size=(2, 50, 2, 1)),
        covariances=np.ones((2, 50, 2, 1, 1)),
    )


@pytest.mark.parametrize(
    "index",
    [(0, 100), (0, 50), (5,), (2, 0), (0, -51), (-3,), (0, np.array([1, 50])), (0, [49, 50])],
    ids=str,
)
def test_out_of_range_draw_raises_index_error(draws, index):
    with pytest.raises(IndexError, match="out of bounds"):
        draws[index]


def test_in_range_draws_index_like_numpy(draws):
    means = np.asarray(draws.means)
    np.testing.assert_array_equal(draws[0, -50].means, means[0, 0])
    np.testing.assert_array_equal(draws[1, 49].means, means[1, 49])
    np.testing.assert_array_equal(draws[-1].means, means[1])
    np.testing.assert_array_equal(draws[:, 10:20].means, means[:, 10:20])
    np.testing.assert_array_equal(draws[0, np.array([3, 7])].means, means[0, [3, 7]])


def test_single_chain_index_beyond_it_raises():
    one_chain = GMMParams(
        weights=np.full((1, 3, 1), 1.0),
        means=np.zeros((1, 3, 1, 1)),
        covariances=np.ones((1, 3, 1, 1, 1)),
    )
    with pytest.raises(IndexError, match="batch shape \\(1, 3\\)"):
        one_chain[5]
