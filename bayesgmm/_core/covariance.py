"""The registry of covariance structures.

Covariances are always *stored* as full ``(K, D, D)`` matrices; a structure
says how the model *estimates and parameterises* them. Each entry knows

- its M-step: the covariance that maximises the expected complete-data log
  likelihood (``prior=None``) or log posterior (a :class:`~bayesgmm.Prior`),
  given the scatter matrices of the E-step;
- its number of free covariance parameters (for BIC/AIC);
- its log prior density, the part of the shared conjugate prior that belongs
  to the covariances and means (used by MAP-EM and the NumPyro model alike);
- how to project a full covariance onto the family, and how scikit-learn
  shapes its covariances.

Adding a structure is adding one :class:`CovarianceStructure` with
:func:`register`.

Priors per structure (``m0, kappa, nu, Psi`` from :class:`~bayesgmm.Prior`):

=========  ============================================================
full       ``Sigma_k ~ IW(nu, Psi)``, ``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa)``
tied       ``Sigma ~ IW(nu, Psi)`` shared, ``mu_k | Sigma ~ N(m0, Sigma / kappa)``
diag       each coordinate an independent 1-D version of the above:
           ``s_kd ~ InvGamma(nu / 2, Psi_dd / 2)``, ``mu_kd | s_kd ~ N(m0_d, s_kd / kappa)``
spherical  ``s_k ~ InvGamma(nu D / 2, tr(Psi) / 2)``, ``mu_k | s_k ~ N(m0, s_k I / kappa)``
=========  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, multigammaln

from bayesgmm._core import _conjugate, _linalg

__all__ = ["COVARIANCE_TYPES", "CovarianceStructure", "get", "register"]


@dataclass(frozen=True)
class CovarianceStructure:
    """One covariance structure of the registry.

    Attributes
    ----------
    name : str
    n_parameters : callable (K, D) -> int
        Free covariance parameters.
    m_step : callable (scatter, counts, prior) -> covariances
        ``scatter`` (K, D, D) are the weighted scatter matrices about the
        updated means (for MAP, augmented by the prior's pseudo-observation);
        ``counts`` (K,) the weighted component counts; ``prior`` a ``Prior`` or
        None. Returns full covariances (K, D, D) before ``reg_covar``.
    log_prior : callable (means, covariances, prior) -> scalar
        Log prior density of the component means and covariances.
    project : callable (covariances) -> covariances
        The member of the family closest in its own terms (diagonal part,
        average over components, ...).
    to_sklearn : callable (covariances) -> array
        scikit-learn's compact shape for ``covariances_``.
    from_sklearn : callable (array, K, D) -> covariances
        Inverse of ``to_sklearn``.
    numpyro_sample : callable (prior, K) -> (means, covariances)
        The structure's NumPyro parameterisation, called inside a NumPyro
        model (:func:`bayesgmm.gmm_model`). It samples the site
        ``"means"`` (K, D) and exactly one covariance site whose value is the
        structure's compact form ``to_sklearn(covariances)``, with the density
        :attr:`log_prior` uses, under the plate ``"component"``; it records the
        full (K, D, D) covariances as the site ``"covariances"`` (the sample
        site itself for ``full``, a deterministic site otherwise) and returns
        ``(means, covariances)``. NumPyro is imported inside, so the registry
        stays light.
    conjugate : ConjugateFamily or None
        The structure's part of the conjugate posterior update (variational
        Bayes, the Gibbs sampler): see :mod:`bayesgmm._core._conjugate`. None
        for a structure without one (:func:`bayesgmm.fit_vb` and the Gibbs
        sampler then refuse it).
    """

    name: str
    description: str
    n_parameters: Callable[[int, int], int]
    m_step: Callable
    log_prior: Callable
    project: Callable
    to_sklearn: Callable
    from_sklearn: Callable
    numpyro_sample: Callable
    conjugate: _conjugate.ConjugateFamily | None = None


_REGISTRY: dict[str, CovarianceStructure] = {}


def register(structure: CovarianceStructure) -> CovarianceStructure:
    """Add a structure to the registry (its ``name`` must be new)."""
    if structure.name in _REGISTRY:
        raise ValueError(f"covariance structure {structure.name!r} is already registered")
    _REGISTRY[structure.name] = structure
    return structure


def get(name) -> CovarianceStructure:
    """The registered structure called ``name``; a clear error otherwise."""
    if isinstance(name, CovarianceStructure):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"covariance_type must be a string, one of {sorted(_REGISTRY)}; got {name!r} "
            f"of type {type(name).__name__}."
        )
    if name not in _REGISTRY:
        raise ValueError(f"covariance_type must be one of {sorted(_REGISTRY)}; got {name!r}.")
    return _REGISTRY[name]


# ----------------------------------------------------------------- helpers ---
def _eye_like(cov):
    return jnp.eye(cov.shape[-1], dtype=cov.dtype)


def _diag_part(mat):
    """Keep the diagonal of (..., D, D) matrices, zero elsewhere."""
    return jnp.diagonal(mat, axis1=-2, axis2=-1)[..., None] * _eye_like(mat)


def _log_inv_wishart(cov, dof, scale):
    """Log density of ``IW(dof, scale)`` at ``cov``; ``cov`` (..., D, D)."""
    D = cov.shape[-1]
    chol = _linalg.cholesky(cov)
    scale_logdet = _linalg.logdet_from_cholesky(_linalg.cholesky(scale))
    return (
        0.5 * dof * scale_logdet
        - 0.5 * dof * D * jnp.log(2.0)
        - multigammaln(0.5 * dof, D)
        - 0.5 * (dof + D + 1) * _linalg.logdet_from_cholesky(chol)
        - 0.5 * _linalg.trace_solve(chol, jnp.broadcast_to(scale, cov.shape))
    )


def _log_inv_gamma(x, shape, scale):
    return shape * jnp.log(scale) - gammaln(shape) - (shape + 1) * jnp.log(x) - scale / x


def _log_mvn_scaled(means, cov, prior):
    """``sum_k log N(mu_k | m0, Sigma_k / kappa)`` with full ``cov`` (K, D, D)."""
    D = means.shape[-1]
    chol = _linalg.cholesky(cov)
    diff = means - prior.mean
    maha = _linalg.mahalanobis_sq(chol, diff) * prior.mean_precision
    logdet = _linalg.logdet_from_cholesky(chol) - D * jnp.log(prior.mean_precision)
    return jnp.sum(-0.5 * (D * _linalg.LOG_2PI + logdet + maha))


def _log_normal_diag(means, variances, prior):
    """``sum log N(mu_kd | m0_d, s_kd / kappa)`` for diagonal variances (K, D)."""
    v = variances / prior.mean_precision
    return jnp.sum(-0.5 * (_linalg.LOG_2PI + jnp.log(v) + (means - prior.mean) ** 2 / v))


# -------------------------------------------------------------- structures ---
def _full_m_step(scatter, counts, prior):
    D = scatter.shape[-1]
    if prior is None:
        return scatter / counts[:, None, None]
    return (prior.scale + scatter) / (prior.dof + counts + D + 2)[:, None, None]


def _full_log_prior(means, cov, prior):
    return jnp.sum(_log_inv_wishart(cov, prior.dof, prior.scale)) + _log_mvn_scaled(
        means, cov, prior
    )


def _tied_m_step(scatter, counts, prior):
    K, D = scatter.shape[0], scatter.shape[-1]
    pooled = scatter.sum(axis=0)
    if prior is None:
        shared = pooled / counts.sum()
    else:
        shared = (prior.scale + pooled) / (prior.dof + counts.sum() + D + 1 + K)
    return jnp.broadcast_to(shared, scatter.shape)


def _tied_log_prior(means, cov, prior):
    return _log_inv_wishart(cov[0], prior.dof, prior.scale) + _log_mvn_scaled(means, cov, prior)


def _diag_m_step(scatter, counts, prior):
    if prior is None:
        return _diag_part(scatter) / counts[:, None, None]
    return _diag_part(prior.scale + scatter) / (prior.dof + counts + 3)[:, None, None]


def _diag_log_prior(means, cov, prior):
    var = jnp.diagonal(cov, axis1=-2, axis2=-1)
    psi = jnp.diagonal(prior.scale)
    return jnp.sum(_log_inv_gamma(var, 0.5 * prior.dof, 0.5 * psi)) + _log_normal_diag(
        means, var, prior
    )


def _spherical_m_step(scatter, counts, prior):
    D = scatter.shape[-1]
    tr = jnp.trace(scatter, axis1=-2, axis2=-1)
    if prior is None:
        var = tr / (D * counts)
    else:
        var = (jnp.trace(prior.scale) + tr) / (prior.dof * D + 2 + D + counts * D)
    return var[:, None, None] * _eye_like(scatter)


def _spherical_log_prior(means, cov, prior):
    D = means.shape[-1]
    var = cov[..., 0, 0]
    lp = _log_inv_gamma(var, 0.5 * prior.dof * D, 0.5 * jnp.trace(prior.scale))
    return jnp.sum(lp) + _log_normal_diag(
        means, jnp.broadcast_to(var[:, None], means.shape), prior
    )


def _spherical_project(cov):
    D = cov.shape[-1]
    var = jnp.trace(cov, axis1=-2, axis2=-1) / D
    return var[..., None, None] * _eye_like(cov)


# ------------------------------------------------- NumPyro parameterisations ---
# Each samples the sites in the coordinates ``log_prior`` uses (covariance
# matrices, or variances), so the NumPyro model's log joint density is the
# MAP-EM objective, term for term. Their distributions are built with
# validate_args=False: the Prior is validated on construction, and NumPyro's
# checks (on by default) evaluate constant masks eagerly while the model is
# traced, a small compiled program per check and shape in every process.
def _numpyro():
    import numpyro
    import numpyro.distributions as dist

    return numpyro, dist


def _mvn_means(numpyro, dist, chol, prior):
    """``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa)`` from the Cholesky factors of Sigma."""
    return numpyro.sample(
        "means",
        dist.MultivariateNormal(
            prior.mean, scale_tril=chol / jnp.sqrt(prior.mean_precision), validate_args=False
        ),
    )


def _full_numpyro_sample(prior, n_components):
    numpyro, dist = _numpyro()
    with numpyro.plate("component", n_components):
        cov = numpyro.sample(
            "covariances",
            dist.InverseWishart(prior.dof, scale_matrix=prior.scale, validate_args=False),
        )
        means = _mvn_means(numpyro, dist, _linalg.cholesky(cov), prior)
    return means, cov


def _tied_numpyro_sample(prior, n_components):
    numpyro, dist = _numpyro()
    shared = numpyro.sample(
        "covariance", dist.InverseWishart(prior.dof, scale_matrix=prior.scale, validate_args=False)
    )
    with numpyro.plate("component", n_components):
        means = _mvn_means(numpyro, dist, _linalg.cholesky(shared), prior)
    cov = jnp.broadcast_to(shared, (n_components, *shared.shape))
    return means, numpyro.deterministic("covariances", cov)


def _diag_numpyro_sample(prior, n_components):
    numpyro, dist = _numpyro()
    psi = jnp.diagonal(prior.scale)
    with numpyro.plate("component", n_components):
        var = numpyro.sample(
            "variances",
            dist.InverseGamma(0.5 * prior.dof, 0.5 * psi, validate_args=False).to_event(1),
        )
        means = numpyro.sample(
            "means",
            dist.Normal(
                prior.mean, jnp.sqrt(var / prior.mean_precision), validate_args=False
            ).to_event(1),
        )
    return means, numpyro.deterministic("covariances", var[..., None] * _eye_like(prior.scale))


def _spherical_numpyro_sample(prior, n_components):
    numpyro, dist = _numpyro()
    D = prior.mean.shape[-1]
    with numpyro.plate("component", n_components):
        var = numpyro.sample(
            "variances",
            dist.InverseGamma(
                0.5 * prior.dof * D, 0.5 * jnp.trace(prior.scale), validate_args=False
            ),
        )
        sd = jnp.sqrt(var / prior.mean_precision)[..., None]
        means = numpyro.sample(
            "means", dist.Normal(prior.mean, sd, validate_args=False).to_event(1)
        )
    cov = var[..., None, None] * _eye_like(prior.scale)
    return means, numpyro.deterministic("covariances", cov)


register(
    CovarianceStructure(
        name="full",
        description="each component has its own general covariance matrix",
        n_parameters=lambda K, D: K * D * (D + 1) // 2,
        m_step=_full_m_step,
        log_prior=_full_log_prior,
        project=lambda cov: cov,
        to_sklearn=lambda cov: np.asarray(cov),
        from_sklearn=lambda arr, K, D: np.asarray(arr).reshape(K, D, D),
        numpyro_sample=_full_numpyro_sample,
        conjugate=_conjugate.FULL,
    )
)
register(
    CovarianceStructure(
        name="tied",
        description="all components share one general covariance matrix",
        n_parameters=lambda K, D: D * (D + 1) // 2,
        m_step=_tied_m_step,
        log_prior=_tied_log_prior,
        project=lambda cov: jnp.broadcast_to(cov.mean(axis=-3, keepdims=True), cov.shape),
        to_sklearn=lambda cov: np.asarray(cov)[..., 0, :, :],
        from_sklearn=lambda arr, K, D: np.broadcast_to(np.asarray(arr), (K, D, D)).copy(),
        numpyro_sample=_tied_numpyro_sample,
        conjugate=_conjugate.TIED,
    )
)
register(
    CovarianceStructure(
        name="diag",
        description="each component has its own diagonal covariance matrix",
        n_parameters=lambda K, D: K * D,
        m_step=_diag_m_step,
        log_prior=_diag_log_prior,
        project=_diag_part,
        to_sklearn=lambda cov: np.diagonal(np.asarray(cov), axis1=-2, axis2=-1).copy(),
        from_sklearn=lambda arr, K, D: np.asarray(arr)[..., None] * np.eye(D),
        numpyro_sample=_diag_numpyro_sample,
        conjugate=_conjugate.DIAG,
    )
)
register(
    CovarianceStructure(
        name="spherical",
        description="each component has its own single variance (covariance s_k * I)",
        n_parameters=lambda K, D: K,
        m_step=_spherical_m_step,
        log_prior=_spherical_log_prior,
        project=_spherical_project,
        to_sklearn=lambda cov: np.asarray(cov)[..., 0, 0].copy(),
        from_sklearn=lambda arr, K, D: np.asarray(arr)[..., None, None] * np.eye(D),
        numpyro_sample=_spherical_numpyro_sample,
        conjugate=_conjugate.SPHERICAL,
    )
)

COVARIANCE_TYPES: tuple[str, ...] = tuple(_REGISTRY)
