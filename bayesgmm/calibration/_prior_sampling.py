"""Parameters drawn from a :class:`~bayesgmm.Prior` with NumPy/SciPy only.

:func:`sample_prior` draws weights, means and covariances from the prior *as
documented* in :class:`~bayesgmm.Prior` and :mod:`bayesgmm.covariance`
(``Generator.dirichlet``, ``scipy.stats.invwishart``, ``scipy.stats.invgamma``,
normal draws), independently of the NumPyro model; :func:`reference_log_prior`
is its density computed with SciPy. Simulation-based calibration
(:mod:`bayesgmm.calibration`) draws its true parameters here, so that a model whose
prior, parameterisation or Jacobian differs from the documented one cannot
pass by sampling its own (wrong) prior.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.stats as st

from bayesgmm._core import covariance as _cov
from bayesgmm._core._precision import x64
from bayesgmm._core._validation import check_positive_int
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior

__all__ = ["reference_log_prior", "sample_prior"]


# ------------------------------------------- the independent prior sampler ---
class _Reference(NamedTuple):
    """SciPy version of one structure's prior: sampler and log density."""

    sample: Callable  # (rng, prior numpy dict, K, size) -> (means, covariances)
    log_density: Callable  # (means (K, D), covariances (K, D, D), prior dict) -> float


def _np_prior(prior: Prior) -> dict[str, np.ndarray]:
    return {
        "alpha": np.asarray(prior.weight_concentration, dtype=np.float64),
        "m0": np.asarray(prior.mean, dtype=np.float64),
        "kappa": float(prior.mean_precision),
        "nu": float(prior.dof),
        "psi": np.asarray(prior.scale, dtype=np.float64),
    }


def _invwishart_rvs(rng, nu, psi, size):
    D = psi.shape[0]
    draws = st.invwishart(df=nu, scale=psi).rvs(size=size, random_state=rng)
    return np.asarray(draws, dtype=np.float64).reshape(size, D, D)


def _invwishart_logpdf(cov, nu, psi):
    D = psi.shape[0]
    x = cov.reshape(()) if D == 1 else cov
    return float(st.invwishart.logpdf(x, df=nu, scale=psi))


def _gaussian_means(rng, m0, cov, kappa):
    """``mu ~ N(m0, cov / kappa)`` for covariances (..., D, D)."""
    chol = np.linalg.cholesky(cov / kappa)
    z = rng.standard_normal(cov.shape[:-1])
    return m0 + np.einsum("...de,...e->...d", chol, z)


def _full_sample(rng, p, K, size):
    D = p["m0"].shape[0]
    cov = _invwishart_rvs(rng, p["nu"], p["psi"], size * K).reshape(size, K, D, D)
    return _gaussian_means(rng, p["m0"], cov, p["kappa"]), cov


def _full_log_density(means, cov, p):
    return sum(
        _invwishart_logpdf(c, p["nu"], p["psi"])
        + st.multivariate_normal(p["m0"], c / p["kappa"]).logpdf(m)
        for m, c in zip(means, cov, strict=True)
    )


def _tied_sample(rng, p, K, size):
    D = p["m0"].shape[0]
    shared = _invwishart_rvs(rng, p["nu"], p["psi"], size)
    cov = np.broadcast_to(shared[:, None], (size, K, D, D)).copy()
    return _gaussian_means(rng, p["m0"], cov, p["kappa"]), cov


def _tied_log_density(means, cov, p):
    return _invwishart_logpdf(cov[0], p["nu"], p["psi"]) + sum(
        st.multivariate_normal(p["m0"], cov[0] / p["kappa"]).logpdf(m) for m in means
    )


def _diag_sample(rng, p, K, size):
    D = p["m0"].shape[0]
    scale = 0.5 * np.diag(p["psi"])
    var = st.invgamma(0.5 * p["nu"], scale=scale).rvs(size=(size, K, D), random_state=rng)
    means = p["m0"] + np.sqrt(var / p["kappa"]) * rng.standard_normal((size, K, D))
    return means, var[..., None] * np.eye(D)


def _diag_log_density(means, cov, p):
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    return float(
        st.invgamma(0.5 * p["nu"], scale=0.5 * np.diag(p["psi"])).logpdf(var).sum()
        + st.norm(p["m0"], np.sqrt(var / p["kappa"])).logpdf(means).sum()
    )


def _spherical_sample(rng, p, K, size):
    D = p["m0"].shape[0]
    a, b = 0.5 * p["nu"] * D, 0.5 * np.trace(p["psi"])
    var = st.invgamma(a, scale=b).rvs(size=(size, K), random_state=rng)
    means = p["m0"] + np.sqrt(var / p["kappa"])[..., None] * rng.standard_normal((size, K, D))
    return means, var[..., None, None] * np.eye(D)


def _spherical_log_density(means, cov, p):
    D = means.shape[-1]
    var = cov[:, 0, 0]
    return float(
        st.invgamma(0.5 * p["nu"] * D, scale=0.5 * np.trace(p["psi"])).logpdf(var).sum()
        + st.norm(p["m0"], np.sqrt(var / p["kappa"])[:, None]).logpdf(means).sum()
    )


_REFERENCE = {
    "full": _Reference(_full_sample, _full_log_density),
    "tied": _Reference(_tied_sample, _tied_log_density),
    "diag": _Reference(_diag_sample, _diag_log_density),
    "spherical": _Reference(_spherical_sample, _spherical_log_density),
}


def _reference(covariance_type) -> _Reference:
    name = _cov.get(covariance_type).name
    if name not in _REFERENCE:
        raise ValueError(
            f"no reference prior sampler for covariance_type={name!r}; SBC supports "
            f"{sorted(_REFERENCE)}."
        )
    return _REFERENCE[name]


@x64
def sample_prior(prior: Prior, covariance_type: str, size: int, *, rng) -> GMMParams:
    """Draw parameters from the documented prior with NumPy/SciPy only.

    ``weights ~ Dirichlet(alpha)``; means and covariances per structure as in
    the table of :mod:`bayesgmm.covariance`. Independent of the NumPyro model.

    Parameters
    ----------
    prior : Prior
    covariance_type : {"full", "tied", "diag", "spherical"}
    size : int
        Number of parameter sets.
    rng : numpy.random.Generator

    Returns
    -------
    GMMParams
        Batch shape ``(size,)``, float64.
    """
    size = check_positive_int("size", size)
    p = _np_prior(prior)
    K = p["alpha"].shape[0]
    weights = rng.dirichlet(p["alpha"], size=size)
    means, cov = _reference(covariance_type).sample(rng, p, K, size)
    return GMMParams(weights, means, 0.5 * (cov + np.swapaxes(cov, -1, -2)))


def reference_log_prior(params: GMMParams, prior: Prior, covariance_type: str) -> float:
    """Log density of :func:`sample_prior`'s distribution at unbatched ``params`` (SciPy).

    With respect to the weights, the means and the free covariance entries, as
    :meth:`bayesgmm.Prior.log_prob`, which it must equal.
    """
    p = _np_prior(prior)
    weights = np.asarray(params.weights, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    cov = np.asarray(params.covariances, dtype=np.float64)
    log_w = float(st.dirichlet(p["alpha"]).logpdf(weights))
    return log_w + _reference(covariance_type).log_density(means, cov, p)


def _sample_data(rng, params: dict[str, np.ndarray], n_obs: int) -> np.ndarray:
    """``n_obs`` rows from each parameter set; shape (R, n_obs, D)."""
    weights, means, cov = params["weights"], params["means"], params["covariances"]
    R, _, D = means.shape
    u = rng.random((R, n_obs, 1))
    labels = (u > np.cumsum(weights, axis=-1)[:, None, :-1]).sum(-1)  # (R, N)
    chol = np.linalg.cholesky(cov)
    take = np.arange(R)[:, None]
    z = rng.standard_normal((R, n_obs, D))
    return means[take, labels] + np.einsum("rnde,rne->rnd", chol[take, labels], z)
