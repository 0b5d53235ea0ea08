"""Reliability of the numerics (issue #19, items 4, 5, 6, 10, 11, 14 and 15).

Data stay tiny: every test is about a corner of the arithmetic, not about size.
"""

import math
import warnings

import jax
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


# -------------------------------------------- 6. degenerate components ---
def _one_gaussian(n, d, seed=6):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_component_with_fewer_points_than_dimensions_is_named():
    """N=20 rows of one Gaussian in D=8: K=2 splits off a component held up by reg_covar."""
    X = _one_gaussian(20, 8)
    with pytest.warns(bg.DataWarning, match=r"degenerate component\(s\) \[\d\]") as caught:
        fit = bg.fit_em(X, 2)
    (k,) = fit.degenerate_components
    message = next(str(w.message) for w in caught if "degenerate" in str(w.message))
    assert f"component {k}:" in message and "reg_covar" in message
    n_k = float(fit.params.weights[k]) * 20
    assert n_k < 9  # fewer effective points than D + 1
    # the warning points at the user's line (this file), not at bayesgmm
    assert {w.filename for w in caught if "degenerate" in str(w.message)} == {__file__}
    assert "degenerate components" in fit.summary()


def test_more_dimensions_than_rows_flags_k1():
    with pytest.warns(bg.DataWarning, match=r"component 0: 5 effective points"):
        fit = bg.fit_em(_one_gaussian(5, 8), 1)
    assert fit.degenerate_components == (0,)


def test_collapsed_component_in_one_dimension_is_flagged():
    """A component on one repeated value has variance reg_covar whatever the count."""
    X = np.concatenate([np.linspace(-1, 1, 30), np.full(10, 5.0)])
    with pytest.warns(bg.DataWarning, match="set by reg_covar"):
        fit = bg.fit_em(X, 2, init=GMMParams([0.75, 0.25], [[0.0], [5.0]], [[[0.3]], [[0.1]]]))
    assert fit.degenerate_components == (int(np.argmax(fit.params.means[:, 0])),)


def test_proper_fits_are_not_flagged(faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("error", bg.DataWarning)
        ml = bg.fit_em(faithful, 2)
        fit = bg.fit_em(faithful, 2, prior=bg.Prior.default(faithful, 2))
        wide = bg.fit_em(_one_gaussian(300, 8), 1)
    assert ml.degenerate_components == fit.degenerate_components == ()
    assert wide.degenerate_components == ()


def test_degenerate_warning_from_the_estimator_points_at_the_caller():
    X = _one_gaussian(5, 8)
    with pytest.warns(bg.DataWarning, match="degenerate") as caught:
        gm = bg.GaussianMixture(1, random_state=0).fit(X)
    assert gm.result_.degenerate_components == (0,)
    assert {w.filename for w in caught if "degenerate" in str(w.message)} == {__file__}


def test_compare_models_table_has_degenerate_column():
    from bayesgmm.selection._compare_models import compare_models
    from bayesgmm.selection._specs import ModelSpec

    X = _one_gaussian(20, 8)
    spec = ModelSpec.from_dict({"name": "g", "covariance_type": "full", "n_components": [1, 2]})
    with pytest.warns(bg.DataWarning, match="degenerate"):
        table = compare_models(X, [spec], nuts=False).table.set_index("model")
    assert table["degenerate"].dtype == bool
    assert not table.loc["g-K1", "degenerate"] and table.loc["g-K2", "degenerate"]


# ------------------------------------------------- 10. seeds and types ---
SMALL = np.linspace(-1.0, 1.0, 12).reshape(-1, 1)
BAD_SEEDS = [
    (np.random.default_rng(0), TypeError, r"seed must be an int in \[0, 2\*\*63\).*Generator"),
    (2**64, ValueError, r"seed must be an int in \[0, 2\*\*63\).*18446744073709551616"),
    (2**63, ValueError, r"\[0, 2\*\*63\)"),
    (-1, ValueError, r"\[0, 2\*\*63\).*got -1"),
    (1.5, TypeError, r"seed must be an int.*got 1\.5 of type float"),
    (2.0, TypeError, r"got 2\.0 of type float\. Pass seed=2"),
    (True, TypeError, "of type bool"),
    ("0", TypeError, "of type str"),
]


@pytest.mark.parametrize("seed, error, match", BAD_SEEDS, ids=lambda v: repr(v)[:20])
def test_check_seed_says_what_was_expected(seed, error, match):
    from bayesgmm._core._validation import check_seed

    with pytest.raises(error, match=match):
        check_seed(seed)


def test_check_seed_accepts_the_range():
    from bayesgmm._core._validation import check_seed

    assert check_seed(None) is None
    assert check_seed(0) == 0 and check_seed(np.int64(7)) == 7
    assert check_seed(2**63 - 1) == 2**63 - 1 and check_seed(np.uint64(2**63 - 1)) == 2**63 - 1


@pytest.mark.parametrize("seed, error, match", BAD_SEEDS[:5], ids=lambda v: repr(v)[:20])
def test_fit_em_rejects_bad_seeds_clearly(seed, error, match):
    with pytest.raises(error, match=match):
        bg.fit_em(SMALL, 1, seed=seed)


def test_large_seeds_are_distinct_and_reproducible():
    a = bg.fit_em(SMALL, 2, seed=2**63 - 1, init="random")
    b = bg.fit_em(SMALL, 2, seed=2**63 - 1, init="random")
    np.testing.assert_array_equal(a.params.means, b.params.means)
    assert a.restart_objectives.tolist() == b.restart_objectives.tolist()


@pytest.mark.parametrize("seed, error, match", BAD_SEEDS[:5], ids=lambda v: repr(v)[:20])
def test_sample_posterior_rejects_bad_seeds_clearly(seed, error, match):
    from bayesgmm.bayes._sample import sample_posterior

    with pytest.raises(error, match=match):
        sample_posterior(SMALL, 1, seed=seed, num_chains=1, num_samples=100, progress_bar=False)


@pytest.mark.parametrize(
    "random_state, error, match",
    [
        (
            np.random.default_rng(0),
            TypeError,
            r"random_state must be an int.*Generator.*RandomState",
        ),
        (2**64, ValueError, r"random_state must be an int in \[0, 2\*\*63\)"),
        (1.5, TypeError, r"random_state must be an int.*got 1\.5"),
    ],
    ids=["generator", "2**64", "1.5"],
)
def test_estimator_rejects_bad_random_state_clearly(random_state, error, match):
    with pytest.raises(error, match=match):
        bg.GaussianMixture(1, random_state=random_state).fit(SMALL)


def test_estimator_still_takes_a_random_state_object():
    a = bg.GaussianMixture(2, random_state=np.random.RandomState(3)).fit(SMALL)
    b = bg.GaussianMixture(2, random_state=np.random.RandomState(3)).fit(SMALL)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_ppc_and_arviz_reject_bad_seeds_clearly():
    from bayesgmm.bayes._posterior import Posterior
    from bayesgmm.diagnostics._arviz_io import to_inference_data
    from bayesgmm.diagnostics._ppc import ppc_replicates

    draws = GMMParams(
        weights=np.ones((1, 4, 1)),
        means=np.zeros((1, 4, 1, 1)),
        covariances=np.ones((1, 4, 1, 1, 1)),
    )
    post = Posterior(
        params=draws,
        X=SMALL,
        sample_weight=np.ones(len(SMALL)),
        prior=bg.Prior.default(SMALL, 1),
        covariance_type="full",
        reference=None,
        reference_kind=None,
        sample_stats={},
    )
    with pytest.raises(TypeError, match=r"seed must be an int.*Generator"):
        ppc_replicates(None, post, seed=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*63\)"):
        to_inference_data(post, posterior_predictive=True, seed=2**64)


@pytest.mark.parametrize("bad", [["full"], ("full",), 1, None], ids=str)
def test_covariance_type_must_be_a_string(bad):
    from bayesgmm.bayes._sample import sample_posterior

    match = r"covariance_type must be a string, one of \['diag', 'full', 'spherical', 'tied'\]"
    with pytest.raises(TypeError, match=match):
        bg.covariance.get(bad)
    with pytest.raises(TypeError, match=match):
        bg.fit_em(SMALL, 1, covariance_type=bad)
    with pytest.raises(TypeError, match=match):
        sample_posterior(SMALL, 1, covariance_type=bad, progress_bar=False)
    with pytest.raises(TypeError, match=match):
        bg.GaussianMixture(1, covariance_type=bad).fit(SMALL)


# ------------------------------------------- 11. Prior.default diagnoses ---
def _prior_error(X):
    with pytest.raises(ValueError) as info:
        bg.Prior.default(X, 2)
    return str(info.value)


def test_prior_default_names_columns_on_different_scales(faithful):
    """Condition number ~1e15 from column scales: not singular; say standardise."""
    message = _prior_error(faithful * [1e-6, 1.0])
    assert "ill-conditioned" in message and "not singular" in message
    assert "different scales" in message and "column 0" in message
    assert "Standardise" in message and "explicit scale" in message
    assert "distinct rows" not in message and "constant" not in message
    X = faithful * [1e-6, 1.0]
    bg.Prior.default((X - X.mean(axis=0)) / X.std(axis=0), 2)  # the advice works


def test_prior_default_names_the_outlier():
    X = np.random.default_rng(11).normal(size=(50, 2))
    X[7] = [1e7, 1e7]
    message = _prior_error(X)
    assert "outlier" in message and "row 7" in message and "not singular" not in message
    assert "constant" not in message and "distinct rows" not in message
    bg.Prior.default(np.delete(X, 7, axis=0), 2)


def test_prior_default_tells_truly_singular_data_apart(faithful):
    constant = _prior_error(np.column_stack([faithful[:, 0], np.full(len(faithful), 3.0)]))
    assert "column(s) [1] of X are constant" in constant and "is singular" in constant
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 3))
    X[:, 2] = X[:, 0] - 2.0 * X[:, 1]
    dependent = _prior_error(X)
    assert "columns [0, 1, 2] of X are linearly dependent" in dependent
    assert "numerical rank 2 < D = 3" in dependent
    few = _prior_error(np.repeat(rng.normal(size=(3, 5)), 4, axis=0))
    assert "only 3 distinct row(s)" in few and "for 5 features" in few


# ------------------------------------------------------ 14. no warmup ---
def test_sample_posterior_refuses_num_warmup_0_without_step_size():
    from bayesgmm.bayes._sample import sample_posterior

    with pytest.raises(
        ValueError, match=r"num_warmup=0 leaves NUTS without adaptation.*step_size"
    ):
        sample_posterior(SMALL, 1, num_warmup=0, num_chains=1, progress_bar=False)
    with pytest.raises(ValueError, match=r"step_size must be finite and > 0"):
        sample_posterior(SMALL, 1, num_warmup=0, step_size=-0.1, progress_bar=False)


def test_sample_posterior_without_warmup_uses_the_given_step_size():
    from bayesgmm.bayes._sample import sample_posterior

    X = np.random.default_rng(14).normal(size=(40, 1))
    post = sample_posterior(
        X, 1, num_warmup=0, step_size=0.05, num_chains=1, num_samples=100, progress_bar=False
    )
    np.testing.assert_allclose(post.sample_stats["step_size"], 0.05)
    means = np.asarray(post.params.means)[0, :, 0, 0]
    assert np.unique(means).size > 50  # the chain moves
    assert post.sample_stats["accept_prob"].mean() > 0.5


# ------------------------------------------------ 15. numerical corners ---
def test_params_with_no_features_are_refused():
    with pytest.raises(ValueError, match=r"at least one feature.*D = 0"):
        GMMParams(weights=[1.0], means=np.zeros((1, 0)), covariances=np.zeros((1, 0, 0)))


@pytest.mark.parametrize("variance", [1e-310, 5e-324, 2e-308], ids=str)
def test_subnormal_covariance_is_refused(variance):
    with pytest.raises(ValueError, match=r"smallest normal float64 number.*flushes to zero"):
        GMMParams(weights=[1.0], means=[[0.0]], covariances=[[[variance]]])
    with pytest.raises(ValueError, match=r"covariances\[1\]"):
        GMMParams(
            weights=[0.5, 0.5],
            means=[[0.0, 0.0], [1.0, 1.0]],
            covariances=[np.eye(2), np.diag([1.0, variance])],
        )


def test_small_normal_covariance_gives_a_correct_density():
    p = GMMParams(weights=[1.0], means=[[0.0]], covariances=[[[1e-300]]])
    expected = -0.5 * (math.log(2 * math.pi) + math.log(1e-300))
    np.testing.assert_allclose(p.log_prob(np.array([[0.0]])), [expected], rtol=1e-14)


def test_float32_params_refuse_float32_subnormals():
    with pytest.raises(ValueError, match="smallest normal float32"):
        GMMParams(
            weights=np.ones(1, np.float32),
            means=np.zeros((1, 1), np.float32),
            covariances=np.full((1, 1, 1), 1e-40, np.float32),
        )


@pytest.fixture(scope="module")
def faithful_params(faithful):
    return bg.fit_em(faithful, 2).params


def test_responsibilities_far_away_are_the_limit_not_nan(faithful_params):
    p = faithful_params
    far = np.array([[1e200, 1e200], [-1e200, 3e199], [1e160, 0.0]])
    assert np.all(np.asarray(p.log_prob(far)) == -np.inf)
    resp = np.asarray(p.responsibilities(far))
    assert np.isfinite(resp).all()
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    # the limit: all weight on the component nearest in Mahalanobis terms
    prec = np.linalg.inv(np.asarray(p.covariances))
    for row, x in zip(resp, far, strict=True):
        u = x / np.abs(x).max()
        nearest = int(np.argmin(np.einsum("d,kde,e->k", u, prec, u)))
        np.testing.assert_array_equal(row, np.eye(2)[nearest])


def test_responsibilities_unchanged_for_ordinary_points(faithful, faithful_params):
    from bayesgmm._core.density import log_prob_components

    p = faithful_params
    X = np.vstack([faithful[:20], [[10.0, 300.0], [-50.0, 40.0]]])
    joint = np.asarray(log_prob_components(p, X))
    expected = np.exp(joint - np.asarray(p.log_prob(X))[:, None])
    np.testing.assert_allclose(p.responsibilities(X), expected, rtol=1e-10, atol=1e-300)


def test_responsibilities_say_why_when_the_distance_overflows(faithful_params):
    with pytest.raises(ValueError, match=r"1 row\(s\) of X, first row 1.*overflow"):
        faithful_params.responsibilities(np.array([[2.0, 70.0], [1e308, 1e308]]))


def test_float32_breakdown_points_at_float64(faithful):
    X = faithful.copy()
    X[0, 0] = 1e8  # one outlier: float32 cannot hold the other rows' spread
    with pytest.warns(bg.DataWarning):  # float64 fits, the outlier alone in a component
        bg.fit_em(X, 2)
    with pytest.raises(ValueError, match=r"EM broke down.*The data are float32.*float64"):
        bg.fit_em(X.astype(np.float32), 2)
    # float64 data that break down are not told to switch to float64
    Y = np.vstack([faithful, [[1e8, 1e8]]])
    with pytest.raises(ValueError, match="EM broke down") as info:
        bg.fit_em(Y, 2)
    assert "float32" not in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_empty_component_keeps_a_finite_constant_in_either_precision(dtype):
    """The E-step's constant of a weight-0 component is finite: -1e300 overflowed float32.

    (to -inf, with a RuntimeWarning while the float32 EM program was traced).
    """
    from bayesgmm._core._quadratic import coefficients

    means = np.zeros((2, 2), dtype)
    prec = np.broadcast_to(np.eye(2, dtype=dtype), (2, 2, 2))
    log_w = np.array([0.0, -np.inf], dtype)
    with warnings.catch_warnings(), jax.enable_x64(True):  # as bayesgmm's programs run
        warnings.simplefilter("error", RuntimeWarning)
        coef = np.asarray(coefficients(means, prec, np.zeros(2, dtype), log_w))
    assert coef.dtype == dtype and np.all(np.isfinite(coef))
    assert coef[1, 0] < -1e37 and np.exp(coef[1, 0] - coef[0, 0]) == 0.0
