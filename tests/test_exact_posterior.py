"""NUTS against a closed-form posterior: one component under the conjugate prior.

With K = 1 the weight is 1 and the prior of each structure is conjugate:
Normal-Inverse-Wishart for ``full`` (and ``tied``, the same model when K = 1),
a product of Normal-Inverse-Gamma over coordinates for ``diag``, and one
Normal-Inverse-Gamma with a shared variance for ``spherical``. The closed form
is checked against independent computations (the MAP-EM estimate is its mode;
SciPy's Inverse-Wishart moments; a numerical integral over the unnormalised
posterior in one dimension), then NUTS means and standard deviations must match
it within 4 Monte Carlo standard errors (ArviZ, ESS-based), and must not match
the posterior under a prior with 3 more degrees of freedom.
"""

import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from scipy import integrate

import bayesgmm as bg
from bayesgmm._core.priors import log_prior

PSI = np.array([[1.0, 0.4], [0.4, 0.7]])


def make_prior(D=2, *, dof=None):
    return bg.Prior(
        weight_concentration=np.ones(1),
        mean=np.linspace(0.5, -0.5, D) if D > 1 else np.array([0.3]),
        mean_precision=2.0,
        dof=D + 3.0 if dof is None else dof,
        scale=PSI[:D, :D],
    )


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    cov = np.array([[1.5, -0.6], [-0.6, 0.8]])
    return rng.multivariate_normal([1.0, -2.0], cov, size=20)


# ------------------------------------------------------------ closed form ---
def niw_update(X, prior):
    """Posterior ``(m_n, kappa_n, nu_n, Psi_n)`` of the Normal-Inverse-Wishart prior."""
    n, _ = X.shape
    m0, kappa = np.asarray(prior.mean), float(prior.mean_precision)
    nu, psi = float(prior.dof), np.asarray(prior.scale)
    xbar = X.mean(axis=0)
    scatter = (X - xbar).T @ (X - xbar)
    kappa_n = kappa + n
    m_n = (kappa * m0 + n * xbar) / kappa_n
    d = xbar - m0
    psi_n = psi + scatter + kappa * n / kappa_n * np.outer(d, d)
    return m_n, kappa_n, nu + n, psi_n


def exact_posterior(X, prior, covariance_type):
    """Exact posterior mean and variance of the mean vector and of the covariance entries.

    Returns ``mode``, ``mean_mean``, ``mean_var`` (D,), ``cov_mean``, ``cov_var`` (D, D);
    the covariance moments of ``diag``/``spherical`` are those of the variances
    (zero off the diagonal).
    """
    n, D = X.shape
    m_n, kappa_n, nu_n, psi_n = niw_update(X, prior)
    if covariance_type in ("full", "tied"):
        # Sigma ~ IW(nu_n, Psi_n), mu | Sigma ~ N(m_n, Sigma / kappa_n)
        a = nu_n - D
        cov_mean = psi_n / (a - 1)
        diag = np.diag(psi_n)
        cov_var = ((a + 1) * psi_n**2 + (a - 1) * np.outer(diag, diag)) / (
            a * (a - 1) ** 2 * (a - 3)
        )
        mode = psi_n / (nu_n + D + 2)  # joint mode of (mu, Sigma)
        mean_var = np.diag(cov_mean) / kappa_n
    else:
        # Inverse-Gamma(a_n, b_n) variances, per coordinate (diag) or shared (spherical);
        # the Normal-Inverse-Gamma update of Psi_n's diagonal (or its trace).
        nu0 = float(prior.dof)
        if covariance_type == "diag":
            a_n = np.full(D, 0.5 * (nu0 + n))
            b_n = 0.5 * np.diag(psi_n)
            mode_s = 2 * b_n / (2 * a_n + 3)
        else:
            a_n = np.full(D, 0.5 * (nu0 * D + n * D))
            b_n = np.full(D, 0.5 * np.trace(psi_n))
            mode_s = 2 * b_n / (2 * a_n + 2 + D)
        s_mean = b_n / (a_n - 1)
        s_var = b_n**2 / ((a_n - 1) ** 2 * (a_n - 2))
        cov_mean, cov_var, mode = np.diag(s_mean), np.diag(s_var), np.diag(mode_s)
        mean_var = s_mean / kappa_n
    return {
        "mode_mean": m_n,
        "mode_cov": mode,
        "mean_mean": m_n,
        "mean_var": mean_var,
        "cov_mean": cov_mean,
        "cov_var": cov_var,
    }


# -------------------------------------------- the closed form, checked ---
@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_closed_form_mode_is_the_map_em_estimate(data, covariance_type):
    prior = make_prior()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)  # tol=0: run all 20 steps
        em = bg.fit_em(data, 1, prior=prior, covariance_type=covariance_type, tol=0.0, max_iter=20)
    exact = exact_posterior(data, prior, covariance_type)
    np.testing.assert_allclose(em.params.means[0], exact["mode_mean"], rtol=1e-10)
    np.testing.assert_allclose(em.params.covariances[0], exact["mode_cov"], rtol=1e-10, atol=1e-14)


def test_closed_form_inverse_wishart_moments_match_scipy(data):
    prior = make_prior()
    _, _, nu_n, psi_n = niw_update(data, prior)
    exact = exact_posterior(data, prior, "full")
    iw = st.invwishart(df=nu_n, scale=psi_n)
    np.testing.assert_allclose(exact["cov_mean"], iw.mean(), rtol=1e-12)
    np.testing.assert_allclose(exact["cov_var"], iw.var(), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_closed_form_matches_numerical_integration_in_1d(data, covariance_type):
    """Moments of the unnormalised posterior prior x likelihood, integrated numerically.

    In one dimension every structure is the same Normal-Inverse-Gamma model;
    the integrand uses only the library's log prior and SciPy's normal density.
    """
    X = data[:, :1]
    prior = make_prior(1)
    exact = exact_posterior(X, prior, covariance_type)
    s_hat, m_hat = exact["mode_cov"][0, 0], exact["mode_mean"][0]

    def one(mu, s):
        params = bg.GMMParams._unchecked(jnp.ones(1), mu.reshape(1, 1), s.reshape(1, 1, 1))
        return log_prior(prior, params, covariance_type)

    def log_post(mu, s):
        with jax.enable_x64(True):
            lp = jax.jit(jax.vmap(one))(jnp.asarray(mu.ravel()), jnp.asarray(s.ravel()))
        lik = st.norm(mu[..., None], np.sqrt(s)[..., None]).logpdf(X[:, 0]).sum(-1)
        return np.asarray(lp).reshape(mu.shape) + lik

    grid_s = np.geomspace(s_hat / 6, s_hat * 16, 241)
    grid_m = m_hat + np.linspace(-1, 1, 201) * 10 * np.sqrt(s_hat / X.shape[0])
    mm, ss = np.meshgrid(grid_m, grid_s)  # (s, mu) grid
    log_dens = log_post(mm, ss)
    dens = np.exp(log_dens - log_post(np.array([m_hat]), np.array([s_hat]))[0])
    assert dens.max() <= 1.0 + 1e-12  # the closed-form mode is the maximum
    assert dens[[0, -1]].max() < 1e-8 and dens[:, [0, -1]].max() < 1e-8  # support covered

    def moment(f):
        inner = integrate.simpson(dens * f(grid_m[None, :], grid_s[:, None]), x=grid_m, axis=1)
        return integrate.simpson(inner, x=grid_s)

    z = moment(lambda m, s: 1.0)
    mean_mu, mean_s = moment(lambda m, s: m) / z, moment(lambda m, s: s) / z
    var_mu = moment(lambda m, s: (m - mean_mu) ** 2) / z
    var_s = moment(lambda m, s: (s - mean_s) ** 2) / z
    assert mean_mu == pytest.approx(exact["mean_mean"][0], rel=1e-6)
    assert var_mu == pytest.approx(exact["mean_var"][0], rel=1e-4)
    assert mean_s == pytest.approx(exact["cov_mean"][0, 0], rel=1e-4)
    assert var_s == pytest.approx(exact["cov_var"][0, 0], rel=1e-3)


# ------------------------------------------------------------------- NUTS ---
def within_mcse(draws, mean, sd, n_se=4.0):
    """Per quantity: |mean error| / MCSE(mean) and |sd error| / MCSE(sd), both < n_se."""
    draws = np.asarray(draws)  # (chain, draw, n_quantities)
    est_mean = draws.mean(axis=(0, 1))
    est_sd = draws.std(axis=(0, 1), ddof=1)
    ds = az.convert_to_dataset(draws)
    se_mean = az.mcse(ds, method="mean")["x"].values
    se_sd = az.mcse(ds, method="sd")["x"].values
    return np.abs(est_mean - mean) / se_mean, np.abs(est_sd - sd) / se_sd


def free_entries(covariance_type, D):
    if covariance_type in ("diag", "spherical"):
        return [(d, d) for d in range(D)]
    return [(i, j) for i in range(D) for j in range(i + 1)]


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_nuts_matches_the_exact_posterior(data, covariance_type):
    prior = make_prior()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divergence or step-size warning expected
        post = bg.sample_posterior(
            data,
            1,
            prior=prior,
            covariance_type=covariance_type,
            num_chains=2,
            num_warmup=300,
            num_samples=1000,
            seed=3,
            progress_bar=False,
        )
    means = np.asarray(post.params.means)[:, :, 0]  # (C, S, D)
    cov = np.asarray(post.params.covariances)[:, :, 0]  # (C, S, D, D)
    entries = free_entries(covariance_type, 2)
    cov_draws = np.stack([cov[..., i, j] for i, j in entries], axis=-1)
    assert az.ess(az.convert_to_dataset(means))["x"].values.min() > 400

    def errors(exact):
        mean_err = within_mcse(means, exact["mean_mean"], np.sqrt(exact["mean_var"]))
        cov_err = within_mcse(
            cov_draws,
            np.array([exact["cov_mean"][e] for e in entries]),
            np.sqrt([exact["cov_var"][e] for e in entries]),
        )
        return np.concatenate([*mean_err, *cov_err])

    right = errors(exact_posterior(data, prior, covariance_type))
    assert right.max() < 4.0, right
    # The same draws against the posterior of a prior with dof + 3 are many
    # standard errors off. A missing Jacobian |Sigma|^(-(D+1)/2) of the full
    # covariance (D = 2) is exactly such a shift, so the tolerance is tight
    # enough to catch the errors this test is for.
    wrong = errors(exact_posterior(data, make_prior(dof=2 + 3.0 + 3.0), covariance_type))
    assert wrong.max() > 6.0, wrong
