"""The conjugate posterior of the shared prior: one place for VB and Gibbs.

Given weighted sufficient statistics of the assignments (soft responsibilities
for variational Bayes, sampled one-hot assignments for the Gibbs sampler)
the prior of :class:`~bayesgmm.Prior` updates in closed form. Every covariance
structure is written in one representation, :class:`Conjugate`:

- ``weight_concentration`` ``alpha_k + N_k``: ``weights ~ Dirichlet``;
- ``mean_precision`` ``kappa_k = kappa + N_k`` and ``means``
  ``m_k = (kappa m0 + sum_n r_nk x_n) / kappa_k``:
  ``mu_k | Sigma_k ~ N(m_k, Sigma_k / kappa_k)``;
- ``dof`` ``nu_k`` and ``scale`` ``Psi_k`` (K, D, D) of the covariances:

=========  ==============================================  =========================
structure  covariance posterior                            ``nu_k``, ``Psi_k``
=========  ==============================================  =========================
full       ``Sigma_k ~ IW(nu_k, Psi_k)``                    ``nu + N_k``, ``Psi + S_k``
tied       one ``Sigma ~ IW(nu_k, Psi_k)`` (all k equal)    ``nu + N``, pooled
diag       ``s_kd ~ InvGamma(nu_k / 2, Psi_k,dd / 2)``      ``nu + N_k``, diagonal
spherical  ``s_k ~ InvGamma(D nu_k / 2, D Psi_k,00 / 2)``   ``nu + N_k``, ``tr / D * I``
=========  ==============================================  =========================

with ``S_k = sum_n r_nk x_n x_n^T + kappa m0 m0^T - kappa_k m_k m_k^T`` (the
scatter about ``m_k`` plus the prior's pseudo-observation). In every
structure ``E[Sigma_k^{-1}] = nu_k Psi_k^{-1}``. The tied posterior is exact
(the K means integrate out of the shared covariance one by one), so no
structure needs a further mean-field split between the means and the
covariances.

The functions broadcast over leading batch axes of the statistics (chains of
the Gibbs sampler); the prior is unbatched. Linear algebra goes through
:mod:`bayesgmm._core._linalg` (one matrix per LAPACK call).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln, multigammaln

from bayesgmm._core import _linalg
from bayesgmm._core.params import GMMParams

__all__ = [
    "DIAG",
    "FULL",
    "SPHERICAL",
    "TIED",
    "Conjugate",
    "ConjugateFamily",
    "dirichlet_kl",
    "expected_params",
    "kl_to_prior",
    "log_evidence",
    "mean_params",
    "posterior",
    "sample",
]


class Conjugate(NamedTuple):
    """Posterior hyperparameters, batch axes ``...`` in front (see the module docstring).

    weight_concentration (..., K), mean_precision (..., K), means (..., K, D),
    dof (..., K), scale (..., K, D, D).
    """

    weight_concentration: jax.Array
    mean_precision: jax.Array
    means: jax.Array
    dof: jax.Array
    scale: jax.Array


# ------------------------------------------------------ Wishart pieces ---
def _mvdigamma(a, d: int):
    """``sum_{i=1}^{d} digamma(a + (1 - i) / 2)``."""
    return jnp.sum(digamma(a[..., None] - 0.5 * jnp.arange(d, dtype=a.dtype)), axis=-1)


def _kl_inv_wishart(nu_q, psi_q, nu_p, psi_p):
    """``KL(IW(nu_q, Psi_q) || IW(nu_p, Psi_p))`` for (..., d, d) scales; shape (...)."""
    d = psi_q.shape[-1]
    chol_q = _linalg.cholesky(psi_q)
    logdet_q = _linalg.logdet_from_cholesky(chol_q)
    logdet_p = _linalg.logdet_from_cholesky(_linalg.cholesky(psi_p))
    trace = _linalg.trace_solve(chol_q, jnp.broadcast_to(psi_p, psi_q.shape))
    return (
        -0.5 * nu_p * (logdet_p - logdet_q)
        + 0.5 * nu_q * (trace - d)
        + multigammaln(0.5 * nu_p, d)
        - multigammaln(0.5 * nu_q, d)
        + 0.5 * (nu_q - nu_p) * _mvdigamma(0.5 * nu_q, d)
    )


def _kl_inv_gamma(a_q, b_q, a_p, b_p):
    """``KL(InvGamma(a_q, b_q) || InvGamma(a_p, b_p))`` (that of the Gammas of 1 / s)."""
    return (
        (a_q - a_p) * digamma(a_q)
        - gammaln(a_q)
        + gammaln(a_p)
        + a_p * (jnp.log(b_q) - jnp.log(b_p))
        + a_q * (b_p - b_q) / b_q
    )


def _inv_wishart_factor(key, nu, psi, shape=()):
    """``B`` with ``B B^T ~ IW(nu, Psi)``, by Bartlett's decomposition; shape + (..., D, D).

    ``Sigma^{-1} ~ W(nu, Psi^{-1}) = (L^{-T} A)(L^{-T} A)^T`` with ``Psi = L L^T``
    and ``A`` lower triangular (``A_ii^2 ~ chi2(nu - i + 1)``, ``A_ij ~ N(0, 1)``
    below), so ``Sigma = (L A^{-T})(L A^{-T})^T``. ``shape`` are leading axes of
    independent draws; ``Psi`` is factorised once.
    """
    D = psi.shape[-1]
    key_c, key_n = jax.random.split(key)
    dof = 0.5 * (nu[..., None] - jnp.arange(D, dtype=psi.dtype))
    chi = jnp.sqrt(2.0 * jax.random.gamma(key_c, dof, shape + dof.shape, dtype=psi.dtype))
    normal = jax.random.normal(key_n, shape + psi.shape, dtype=psi.dtype)
    eye = jnp.eye(D, dtype=psi.dtype)
    A = jnp.tril(normal, -1) + chi[..., None] * eye
    A_inv = _linalg.solve_triangular(A, jnp.broadcast_to(eye, A.shape))
    return _linalg.cholesky(psi) @ jnp.swapaxes(A_inv, -1, -2)


# ------------------------------------------------------------- families ---
@dataclass(frozen=True)
class ConjugateFamily:
    """The structure-specific half of the conjugate update.

    Attributes
    ----------
    project : callable (S (..., K, D, D), counts (..., K), nu, Psi) -> (nu_k, Psi_k)
        Posterior ``dof`` (..., K) and ``scale`` (..., K, D, D) from the
        augmented scatter matrices ``S`` and the prior's ``nu``, ``Psi``.
    log_det_gap : callable (nu_k, D) -> (..., K)
        ``E[log |Sigma_k^{-1}|] + log |Psi_k / nu_k|`` (a function of ``nu_k`` only).
    kl : callable (nu_k, Psi_k, nu, Psi) -> (...)
        KL divergence of the covariances' posterior from their prior, summed.
    sample : callable (key, nu_k, Psi_k, shape) -> B shape + (..., K, D, D)
        A factor ``B`` with ``B B^T`` a draw of the covariances, for
        independent draws on the leading axes ``shape``.
    mean_offset : callable (D) -> float
        ``c`` with ``E[Sigma_k] = Psi_k / (nu_k - c)`` (finite for ``nu_k > c``).
    log_normalizer : callable (kappa_k (..., K), nu_k, Psi_k) -> (...)
        The log normalising constant of the joint density of all K means and
        covariances in this representation, summed over the components (the
        shared covariance of ``tied`` counted once); :func:`log_evidence`
        is its change from the prior to the posterior.
    """

    project: Callable
    log_det_gap: Callable
    kl: Callable
    sample: Callable
    mean_offset: Callable
    log_normalizer: Callable


def _diag_of(mat):
    return jnp.diagonal(mat, axis1=-2, axis2=-1)


def _full_project(S, counts, nu, psi):
    return nu + counts, psi + S


def _tied_project(S, counts, nu, psi):
    pooled = psi + S.sum(axis=-3, keepdims=True)
    total = nu + counts.sum(axis=-1, keepdims=True)
    return jnp.broadcast_to(total, counts.shape), jnp.broadcast_to(pooled, S.shape)


def _diag_project(S, counts, nu, psi):
    eye = jnp.eye(S.shape[-1], dtype=S.dtype)
    return nu + counts, _diag_of(psi + S)[..., None] * eye


def _spherical_project(S, counts, nu, psi):
    D = S.shape[-1]
    var = jnp.trace(psi + S, axis1=-2, axis2=-1) / D
    return nu + counts, var[..., None, None] * jnp.eye(D, dtype=S.dtype)


def _wishart_gap(nu_k, D):
    return _mvdigamma(0.5 * nu_k, D) + D * math.log(2.0) - D * jnp.log(nu_k)


def _full_kl(nu_k, psi_k, nu, psi):
    return jnp.sum(_kl_inv_wishart(nu_k, psi_k, nu, psi), axis=-1)


def _tied_kl(nu_k, psi_k, nu, psi):
    return _kl_inv_wishart(nu_k[..., 0], psi_k[..., 0, :, :], nu, psi)


def _diag_kl(nu_k, psi_k, nu, psi):
    a_q, b_q = 0.5 * nu_k[..., None], 0.5 * _diag_of(psi_k)
    return jnp.sum(_kl_inv_gamma(a_q, b_q, 0.5 * nu, 0.5 * _diag_of(psi)), axis=(-2, -1))


def _spherical_kl(nu_k, psi_k, nu, psi):
    D = psi.shape[-1]
    a_q, b_q = 0.5 * D * nu_k, 0.5 * D * psi_k[..., 0, 0]
    return jnp.sum(_kl_inv_gamma(a_q, b_q, 0.5 * D * nu, 0.5 * jnp.trace(psi)), axis=-1)


def _full_sample(key, nu_k, psi_k, shape):
    return _inv_wishart_factor(key, nu_k, psi_k, shape)


def _tied_sample(key, nu_k, psi_k, shape):
    factor = _inv_wishart_factor(key, nu_k[..., 0], psi_k[..., 0, :, :], shape)
    return jnp.broadcast_to(factor[..., None, :, :], shape + psi_k.shape)


def _diag_sample(key, nu_k, psi_k, shape):
    a = jnp.broadcast_to(0.5 * nu_k[..., None], psi_k.shape[:-1])
    g = jax.random.gamma(key, a, shape + a.shape, dtype=psi_k.dtype)
    sd = jnp.sqrt(0.5 * _diag_of(psi_k) / g)
    return sd[..., None] * jnp.eye(psi_k.shape[-1], dtype=psi_k.dtype)


def _spherical_sample(key, nu_k, psi_k, shape):
    D = psi_k.shape[-1]
    g = jax.random.gamma(key, 0.5 * D * nu_k, shape + nu_k.shape, dtype=psi_k.dtype)
    sd = jnp.sqrt(0.5 * D * psi_k[..., 0, 0] / g)
    return sd[..., None, None] * jnp.eye(D, dtype=psi_k.dtype)


#: The families of the registered structures (each is the ``conjugate`` of its
#: entry in :mod:`bayesgmm.covariance`'s registry).
def _mean_normalizer(kappa_k, D: int):
    """``sum_k log (2 pi / kappa_k)^(D/2)``: the means' Gaussians given the covariances."""
    return 0.5 * D * jnp.sum(_linalg.LOG_2PI - jnp.log(kappa_k), axis=-1)


def _inv_wishart_normalizer(nu, psi):
    """``log 2^(nu D / 2) Gamma_D(nu / 2) |Psi|^(-nu / 2)``, shape (...)."""
    D = psi.shape[-1]
    logdet = _linalg.logdet_from_cholesky(_linalg.cholesky(psi))
    return 0.5 * nu * D * math.log(2.0) + multigammaln(0.5 * nu, D) - 0.5 * nu * logdet


def _full_normalizer(kappa_k, nu_k, psi_k):
    D = psi_k.shape[-1]
    return _mean_normalizer(kappa_k, D) + _inv_wishart_normalizer(nu_k, psi_k).sum(-1)


def _tied_normalizer(kappa_k, nu_k, psi_k):
    D = psi_k.shape[-1]
    return _mean_normalizer(kappa_k, D) + _inv_wishart_normalizer(
        nu_k[..., 0], psi_k[..., 0, :, :]
    )


def _diag_normalizer(kappa_k, nu_k, psi_k):
    # s_kd ~ InvGamma(nu_k / 2, Psi_k,dd / 2): log Gamma(a) - a log b, for every d
    D = psi_k.shape[-1]
    a = 0.5 * nu_k[..., None]
    per = gammaln(a) - a * jnp.log(0.5 * _diag_of(psi_k))
    return _mean_normalizer(kappa_k, D) + per.sum(axis=(-2, -1))


def _spherical_normalizer(kappa_k, nu_k, psi_k):
    # s_k ~ InvGamma(D nu_k / 2, D Psi_k,00 / 2)
    D = psi_k.shape[-1]
    a = 0.5 * D * nu_k
    per = gammaln(a) - a * jnp.log(0.5 * D * psi_k[..., 0, 0])
    return _mean_normalizer(kappa_k, D) + per.sum(-1)


FULL = ConjugateFamily(
    _full_project,
    _wishart_gap,
    _full_kl,
    _full_sample,
    lambda D: D + 1.0,
    _full_normalizer,
)
TIED = ConjugateFamily(
    _tied_project,
    _wishart_gap,
    _tied_kl,
    _tied_sample,
    lambda D: D + 1.0,
    _tied_normalizer,
)
DIAG = ConjugateFamily(
    _diag_project,
    lambda nu_k, D: D * (digamma(0.5 * nu_k) - jnp.log(0.5 * nu_k)),
    _diag_kl,
    _diag_sample,
    lambda D: 2.0,
    _diag_normalizer,
)
SPHERICAL = ConjugateFamily(
    _spherical_project,
    lambda nu_k, D: D * (digamma(0.5 * D * nu_k) - jnp.log(0.5 * D * nu_k)),
    _spherical_kl,
    _spherical_sample,
    lambda D: 2.0 / D,
    _spherical_normalizer,
)


# ------------------------------------------------------------ the update ---
def posterior(prior, counts, sums, outer, fam: ConjugateFamily) -> Conjugate:
    """Posterior hyperparameters from weighted sufficient statistics.

    Parameters
    ----------
    prior : Prior
    counts : array of shape (..., K)
        ``N_k = sum_n w_n r_nk``.
    sums : array of shape (..., K, D)
        ``sum_n w_n r_nk x_n``.
    outer : array of shape (..., K, D, D)
        ``sum_n w_n r_nk x_n x_n^T``.
    fam : ConjugateFamily
        The structure's entry, ``bayesgmm.covariance.get(name).conjugate``.

    Returns
    -------
    Conjugate
        With zero statistics, the prior itself in the structure's form.
    """
    kappa, m0 = prior.mean_precision, prior.mean
    kappa_k = kappa + counts
    means = (sums + kappa * m0) / kappa_k[..., None]
    scatter = (
        outer
        + kappa * jnp.outer(m0, m0)
        - kappa_k[..., None, None] * means[..., :, None] * means[..., None, :]
    )
    nu_k, psi_k = fam.project(_linalg.symmetrize(scatter), counts, prior.dof, prior.scale)
    return Conjugate(prior.weight_concentration + counts, kappa_k, means, nu_k, psi_k)


def log_evidence(prior, counts, sums, outer, fam: ConjugateFamily):
    """``log p(X | z)``: the data's density given the assignments, parameters integrated out.

    The marginal likelihood of the rows under the conjugate prior of the
    means and covariances (not the weights), from the assignments' weighted
    statistics: the change of :attr:`ConjugateFamily.log_normalizer` from
    the prior to the posterior, less ``N D / 2 log(2 pi)`` with ``N`` the
    weighted count. With statistics weighted by a temperature ``beta`` it is
    the evidence of the tempered likelihood ``p(X | theta)^beta``. Shapes as
    :func:`posterior`; returns (...). Zero statistics give 0.
    """
    post = posterior(prior, counts, sums, outer, fam)
    zero = jnp.zeros_like(counts)
    D = sums.shape[-1]
    nu0, psi0 = fam.project(jnp.zeros_like(outer), zero, prior.dof, prior.scale)
    kappa0 = prior.mean_precision + zero
    return (
        fam.log_normalizer(post.mean_precision, post.dof, post.scale)
        - fam.log_normalizer(kappa0, nu0, psi0)
        - 0.5 * D * _linalg.LOG_2PI * counts.sum(-1)
    )


def dirichlet_kl(alpha_q, alpha_p):
    """``KL(Dirichlet(alpha_q) || Dirichlet(alpha_p))`` over the last axis."""
    total_q = alpha_q.sum(-1)
    return (
        gammaln(total_q)
        - gammaln(alpha_q).sum(-1)
        - gammaln(alpha_p.sum(-1))
        + gammaln(alpha_p).sum(-1)
        + ((alpha_q - alpha_p) * (digamma(alpha_q) - digamma(total_q)[..., None])).sum(-1)
    )


def kl_to_prior(post: Conjugate, prior, fam: ConjugateFamily):
    """``KL(q || p)`` of the parameters' posterior ``post`` from the prior; shape (...).

    Dirichlet, covariances (:attr:`ConjugateFamily.kl`) and the means given
    the covariances: ``E_q KL(N(m_k, Sigma / kappa_k) || N(m0, Sigma / kappa))
    = (D kappa / kappa_k - D + D log(kappa_k / kappa)
    + kappa nu_k (m_k - m0)^T Psi_k^{-1} (m_k - m0)) / 2``.
    """
    D = post.means.shape[-1]
    kappa = prior.mean_precision
    ratio = kappa / post.mean_precision
    chol = _linalg.cholesky(post.scale)
    maha = _linalg.mahalanobis_sq(chol, post.means - prior.mean)
    means_kl = 0.5 * (D * ratio - D - D * jnp.log(ratio) + kappa * post.dof * maha)
    return (
        dirichlet_kl(post.weight_concentration, prior.weight_concentration)
        + fam.kl(post.dof, post.scale, prior.dof, prior.scale)
        + means_kl.sum(-1)
    )


def expected_params(post: Conjugate, fam: ConjugateFamily):
    """The variational E-step as a Gaussian mixture: ``(log_weights, means, covariances)``.

    ``E_q[log w_k + log N(x | mu_k, Sigma_k)] = log_weights_k + log N(x | m_k,
    Psi_k / nu_k)``, with ``log_weights_k = E[log w_k] + (E[log|Sigma_k^{-1}|]
    + log|Psi_k / nu_k|) / 2 - D / (2 kappa_k)`` (not normalised). Shapes
    (..., K), (..., K, D), (..., K, D, D).
    """
    D = post.means.shape[-1]
    alpha = post.weight_concentration
    e_log_w = digamma(alpha) - digamma(alpha.sum(-1, keepdims=True))
    gap = fam.log_det_gap(post.dof, D)
    log_weights = e_log_w + 0.5 * gap - 0.5 * D / post.mean_precision
    return log_weights, post.means, post.scale / post.dof[..., None, None]


def mean_params(post: Conjugate, fam: ConjugateFamily) -> GMMParams:
    """Parameters at the posterior mean: ``E[w]``, ``E[mu] = m``, ``E[Sigma]``.

    ``E[Sigma_k] = Psi_k / (nu_k - c)`` (:attr:`ConjugateFamily.mean_offset`)
    exists for ``nu_k > c``; where it does not (``dof`` below ``D + 2`` for
    full/tied and a nearly empty component) ``Psi_k / nu_k = E[Sigma_k^{-1}]^{-1}``
    is used instead.
    """
    D = post.means.shape[-1]
    c = fam.mean_offset(D)
    denom = jnp.where(post.dof > c, post.dof - c, post.dof)
    alpha = post.weight_concentration
    return GMMParams._unchecked(
        alpha / alpha.sum(-1, keepdims=True), post.means, post.scale / denom[..., None, None]
    )


def sample(key, post: Conjugate, fam: ConjugateFamily, shape: tuple[int, ...] = ()) -> GMMParams:
    """Independent draws of the parameters from ``post``: batch ``shape + (...)``.

    ``weights ~ Dirichlet``; covariances from the structure's family; then
    ``mu_k = m_k + B_k z / sqrt(kappa_k)`` with ``B_k B_k^T = Sigma_k`` the
    same factor, so no second Cholesky factorisation is needed.
    """
    key_w, key_c, key_m = jax.random.split(key, 3)
    alpha = post.weight_concentration
    # Dirichlet from log-Gammas: concentrations far below 1 do not underflow to 0/0.
    log_g = jax.random.loggamma(key_w, alpha, shape + alpha.shape, dtype=alpha.dtype)
    weights = jnp.exp(log_g - jax.nn.logsumexp(log_g, axis=-1, keepdims=True))
    factor = fam.sample(key_c, post.dof, post.scale, shape)
    cov = _linalg.symmetrize(factor @ jnp.swapaxes(factor, -1, -2))
    z = jax.random.normal(key_m, shape + post.means.shape, dtype=post.means.dtype)
    means = (
        post.means
        + jnp.einsum("...de,...e->...d", factor, z) / jnp.sqrt(post.mean_precision)[..., None]
    )
    return GMMParams._unchecked(weights, means, cov)
