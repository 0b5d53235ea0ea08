"""Simulation-based calibration of the NumPyro model (bayesgmm.sbc).

The fast tests check the pieces SBC rests on: the independent NumPy/SciPy
prior sampler against ``Prior.log_prob`` and against the prior's moments, the
ordering functional, the chi-square and Holm computations. The slow tests run
SBC for every covariance structure (small data, one compiled NUTS program per
structure) and check that SBC rejects a sampler given the wrong prior.
"""

import jax
import numpy as np
import pytest
import scipy.stats as st

import bayesgmm as bg
from bayesgmm._core.priors import log_prior
from bayesgmm.calibration import _prior_sampling, _sbc

TYPES = ["full", "tied", "diag", "spherical"]
PSI = np.array([[1.0, 0.3, 0.1], [0.3, 0.8, -0.2], [0.1, -0.2, 1.5]])


def make_prior(K, D, *, dof_extra=4.0, kappa=0.2, alpha=3.0, scale_factor=1.0):
    return bg.Prior(
        weight_concentration=np.full(K, alpha),
        mean=np.linspace(-0.5, 0.5, D),
        mean_precision=kappa,
        dof=D + dof_extra,
        scale=scale_factor * PSI[:D, :D],
    )


# ------------------------------------------------ the independent sampler ---
@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("D", [1, 3])
def test_reference_density_is_prior_log_prob(covariance_type, D):
    """SciPy's density of the reference sampler equals the library's log prior, exactly."""
    prior = make_prior(3, D)
    draws = bg.calibration.sample_prior(prior, covariance_type, 6, rng=np.random.default_rng(D))
    assert draws.batch_shape == (6,)
    want = [bg.calibration.reference_log_prior(draws[i], prior, covariance_type) for i in range(6)]

    def library(prior):
        with jax.enable_x64(True):
            return np.asarray(jax.vmap(lambda p: log_prior(prior, p, covariance_type))(draws))

    np.testing.assert_allclose(library(prior), want, rtol=1e-10, atol=1e-10)
    assert float(prior.log_prob(draws[0], covariance_type)) == pytest.approx(want[0], rel=1e-10)
    # another prior gives other values: the comparison is not vacuous
    assert np.all(np.abs(library(make_prior(3, D, scale_factor=2.0)) - want) > 1e-3)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_reference_sampler_moments(covariance_type):
    """Sample moments of the draws match the documented prior (z-scores below 5)."""
    K, D, M = 2, 2, 20_000
    prior = make_prior(K, D, dof_extra=8.0, kappa=0.5)
    draws = bg.calibration.sample_prior(
        prior, covariance_type, M, rng=np.random.default_rng(7)
    ).to_numpy()
    alpha, m0 = np.asarray(prior.weight_concentration), np.asarray(prior.mean)
    nu, psi, kappa = float(prior.dof), np.asarray(prior.scale), float(prior.mean_precision)
    expected_cov = {
        "full": psi / (nu - D - 1),
        "tied": psi / (nu - D - 1),
        "diag": np.diag(np.diag(psi) / (nu - 2)),
        "spherical": np.eye(D) * np.trace(psi) / (nu * D - 2),
    }[covariance_type]

    def z_score(samples, expected):
        return np.abs(samples.mean(0) - expected) / (samples.std(0) / np.sqrt(len(samples)))

    assert z_score(draws["weights"], alpha / alpha.sum()).max() < 5
    assert z_score(draws["means"], m0).max() < 5
    # Var(mu_kd) = E[Sigma_k,dd] / kappa
    var_mean = ((draws["means"] - m0) ** 2).reshape(M, -1)
    assert z_score(var_mean, np.tile(np.diag(expected_cov) / kappa, K)).max() < 5
    cov = draws["covariances"].reshape(M, -1)
    want = np.tile(expected_cov.ravel(), K)
    zero = want == 0.0  # off-diagonal entries of diag and spherical: exactly zero
    np.testing.assert_array_equal(cov[:, zero], 0.0)
    assert z_score(cov[:, ~zero], want[~zero]).max() < 5
    if covariance_type == "spherical":
        np.testing.assert_array_equal(
            draws["covariances"][..., 0, 0], draws["covariances"][..., 1, 1]
        )
    if covariance_type == "tied":
        np.testing.assert_array_equal(draws["covariances"][:, 0], draws["covariances"][:, 1])


def test_sample_data_follows_the_mixture():
    rng = np.random.default_rng(3)
    params = {
        "weights": np.array([[0.3, 0.7]]),
        "means": np.array([[[-10.0], [10.0]]]),
        "covariances": np.array([[[[1.0]], [[4.0]]]]),
    }
    X = _prior_sampling._sample_data(rng, params, 20_000)[0, :, 0]
    left, right = X[X < 0], X[X > 0]
    assert len(left) / len(X) == pytest.approx(0.3, abs=0.015)
    assert left.mean() == pytest.approx(-10.0, abs=0.05)
    assert right.std() == pytest.approx(2.0, abs=0.05)


# ---------------------------------------------- ordering, ranks and tests ---
def test_order_components_is_a_function_of_the_parameters():
    rng = np.random.default_rng(0)
    w = rng.dirichlet([1, 1, 1], size=5)
    means = rng.normal(size=(5, 3, 2))
    cov = np.broadcast_to(np.eye(2), (5, 3, 2, 2)) * rng.uniform(1, 2, (5, 3, 1, 1))
    ordered = bg.calibration.order_components(w, means, cov)
    assert np.all(np.diff(ordered["means"][..., 0], axis=-1) > 0)
    perm = np.array([2, 0, 1])
    again = bg.calibration.order_components(w[:, perm], means[:, perm], cov[:, perm])
    for name in ordered:
        np.testing.assert_array_equal(again[name], ordered[name])
    # component k keeps its own weight and covariance
    k = np.argmin(means[0, :, 0])
    assert ordered["weights"][0, 0] == w[0, k]
    np.testing.assert_array_equal(ordered["covariances"][0, 0], cov[0, k])


@pytest.mark.parametrize(
    ("covariance_type", "n_free"), [("full", 6), ("tied", 3), ("diag", 4), ("spherical", 2)]
)
def test_free_covariance_entries(covariance_type, n_free):
    entries = _sbc._free_covariance_entries(bg.covariance.get(covariance_type), 2, 2)
    assert len(entries) == n_free
    assert all(i >= j for _, i, j in entries)
    if covariance_type in ("diag", "spherical"):
        assert all(i == j for _, i, j in entries)


def test_chi_square_and_holm():
    rng = np.random.default_rng(1)
    uniform = rng.integers(0, 51, size=2000)
    piled = np.concatenate([uniform[:1800], np.zeros(200, int)])
    assert bg.calibration.chi_square_uniform(uniform, 50, 10)[1] > 0.001
    assert bg.calibration.chi_square_uniform(piled, 50, 10)[1] < 1e-10
    # the statistic against scipy.stats.chisquare with unequal expected counts
    counts = np.array([np.isin(uniform, b).sum() for b in np.array_split(np.arange(51), 10)])
    expected = 2000 * np.array([len(b) for b in np.array_split(np.arange(51), 10)]) / 51
    want = st.chisquare(counts, expected)
    got = bg.calibration.chi_square_uniform(uniform, 50, 10)
    assert got == pytest.approx((want.statistic, want.pvalue), rel=1e-10)
    # Holm: sorted p times (m, m-1, ...), running maximum, capped at 1
    np.testing.assert_allclose(
        bg.calibration.holm([0.01, 0.04, 0.03, 0.5]), [0.04, 0.09, 0.09, 0.5], rtol=1e-12
    )


# -------------------------------------------------------------------- SBC ---
SBC_SETTINGS = dict(n_obs=25, num_warmup=100, num_samples=100, thin=2, n_bins=10)


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", TYPES)
def test_sbc_ranks_are_uniform(covariance_type):
    """K=2, D=2, 100 replications of 50 thinned draws: no group of ranks rejects."""
    prior = make_prior(2, 2)
    res = bg.calibration.simulation_based_calibration(
        2, 2, covariance_type, prior=prior, n_replications=100, seed=1, **SBC_SETTINGS
    )
    assert res.n_draws == 50 and res.n_replications == 100
    assert set(res.groups) == {"weights", "means", "covariances", "invariant"}
    assert all(0 <= r.min() and r.max() <= 50 for r in res.ranks.values())
    assert res.min_p_value > 0.001, res.summary()


@pytest.mark.slow
def test_sbc_rejects_a_sampler_with_the_wrong_prior():
    """Data from the prior, NUTS under a prior with 4x the scale matrix: SBC must reject."""
    prior = make_prior(2, 2)
    wrong = make_prior(2, 2, scale_factor=4.0)
    res = bg.calibration.simulation_based_calibration(
        2, 2, "full", prior=prior, fit_prior=wrong, n_replications=25, seed=2, **SBC_SETTINGS
    )
    assert res.group_p_values["covariances"] < 0.001, res.summary()
    assert res.min_p_value < 0.001
