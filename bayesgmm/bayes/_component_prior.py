"""The hierarchical component prior of the telescope papers, as steps of the sparse sweep.

Two options of :meth:`bayesgmm.Prior.sparse` (:class:`~bayesgmm.SparsePrior`
fields ``mean_covariance`` and ``scale_prior``) replace parts of the conjugate
Normal-Inverse-Wishart prior by the prior of Malsiner-Walli,
Frühwirth-Schnatter & Grün (2016) and Frühwirth-Schnatter, Malsiner-Walli &
Grün (2021), which the R package telescope samples:

- :func:`draw_independent_means` -- ``mu_k ~ N(m0, B0)`` independent of
  ``Sigma_k ~ IW(nu, Psi)``. The pair is no longer conjugate, so the sweep
  draws ``Sigma_k | mu_k, partition`` (Inverse-Wishart with the scatter about
  the current ``mu_k``) and then ``mu_k | Sigma_k, partition`` (Gaussian with
  precision ``B0^{-1} + N_k Sigma_k^{-1}``), as telescope does. With no rows
  both are the prior.
- :func:`scale_step` -- ``Psi ~ Wishart(a, G^{-1})``. Its full conditional
  given the non-empty components' covariances is
  ``Wishart(a + K+ nu, (G + sum_{N_k > 0} Sigma_k^{-1})^{-1})``; the empty
  components (active or not) are then drawn again from the prior at the new
  ``Psi``. That is one Gibbs step on the block ``(Psi, empty components)``,
  the empty ones integrated out of ``Psi``'s conditional: the telescope
  package's order (its step 2b before step 4a). Conditioning ``Psi`` on all
  ``k_max`` covariances would also be valid but would tie it to dozens of
  prior draws, and it would hardly move.

Everything broadcasts over the leading chain axis; ``prior.scale`` may carry
it as ``(C, 1, D, D)`` (one ``Psi`` per chain).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesgmm._core import _conjugate, _linalg
from bayesgmm._core._conjugate import _inv_wishart_factor
from bayesgmm._core._pytree import unchecked_replace
from bayesgmm._core.params import GMMParams

__all__ = ["draw_independent_means", "scale_step"]


def _precision(cov):
    """``cov^{-1}`` through the Cholesky factor (no ``inv``)."""
    upper = _linalg.precision_cholesky(_linalg.cholesky(cov))
    return upper @ jnp.swapaxes(upper, -1, -2)


def draw_independent_means(key, prior, b0_inv, means, counts, sums, outer, fam) -> GMMParams:
    """``Sigma_k | mu_k`` then ``mu_k | Sigma_k`` under ``mu_k ~ N(m0, B0)``; every component.

    Parameters
    ----------
    key : jax.random key
    prior : Prior
        ``mean`` ``m0`` (D,), ``dof`` ``nu``, ``scale`` ``Psi`` (D, D) or (C, 1, D, D).
    b0_inv : array of shape (D, D)
        ``B0^{-1}``.
    means : array of shape (C, K, D)
        The current means (in the labels of the statistics).
    counts, sums, outer : arrays (C, K), (C, K, D), (C, K, D, D)
        The partition's (possibly tempered) sufficient statistics.
    fam : ConjugateFamily

    Returns
    -------
    GMMParams
        Means and covariances (C, K, ...); the weights are placeholders.
    """
    key_c, key_m = jax.random.split(key)
    m = means
    cross = sums[..., :, None] * m[..., None, :]  # s_k mu_k^T
    scatter = (
        outer
        - cross
        - jnp.swapaxes(cross, -1, -2)
        + counts[..., None, None] * m[..., :, None] * m[..., None, :]
    )
    nu_k, psi_k = fam.project(_linalg.symmetrize(scatter), counts, prior.dof, prior.scale)
    factor = fam.sample(key_c, nu_k, psi_k, ())
    cov = _linalg.symmetrize(factor @ jnp.swapaxes(factor, -1, -2))
    prec = _precision(cov)
    post_prec = b0_inv + counts[..., None, None] * prec
    rhs = b0_inv @ prior.mean + jnp.einsum("...de,...e->...d", prec, sums)
    upper = _linalg.precision_cholesky(_linalg.cholesky(_linalg.symmetrize(post_prec)))
    mean = jnp.einsum("...de,...e->...d", upper, jnp.einsum("...ed,...e->...d", upper, rhs))
    z = jax.random.normal(key_m, mean.shape, dtype=mean.dtype)
    new_means = mean + jnp.einsum("...de,...e->...d", upper, z)
    return GMMParams._unchecked(counts, new_means, cov)


def _wishart(key, dof, rate):
    """``W ~ Wishart(dof, rate^{-1})`` (mean ``dof rate^{-1}``), batch (C,): the inverse of
    an Inverse-Wishart draw with scale ``rate`` (Bartlett's decomposition)."""
    factor = _inv_wishart_factor(key, dof, rate)
    return _precision(_linalg.symmetrize(factor @ jnp.swapaxes(factor, -1, -2)))


def scale_step(key, theta, counts, prior, scale_prior, b0_inv, fam):
    """``Psi | filled covariances``, then the empty components from the prior at the new ``Psi``.

    Parameters
    ----------
    key : jax.random key
    theta : GMMParams
        Means (C, K, D) and covariances (C, K, D, D) just drawn.
    counts : array of shape (C, K)
        Untempered counts: which components are non-empty.
    prior : Prior
        The component prior (its ``scale`` is replaced per chain).
    scale_prior : (a, G)
        ``a`` scalar, ``G`` (D, D): ``Psi ~ Wishart(a, G^{-1})``.
    b0_inv : array of shape (D, D) or None
        ``B0^{-1}`` of independent means; None for the conjugate prior.
    fam : ConjugateFamily

    Returns
    -------
    (psi, theta)
        ``psi`` (C, D, D) and the components with the empty ones redrawn.
    """
    key_psi, key_new = jax.random.split(key)
    a, rate = scale_prior
    filled = counts > 0
    prec = _precision(theta.covariances)
    total = rate + jnp.sum(jnp.where(filled[..., None, None], prec, 0.0), axis=-3)
    dof = a + prior.dof * filled.sum(-1).astype(total.dtype)
    psi = _wishart(key_psi, dof, _linalg.symmetrize(total))
    at_psi = unchecked_replace(prior, scale=psi[:, None])
    zeros = jnp.zeros_like(counts)
    if b0_inv is None:
        empty = _conjugate.posterior(
            at_psi, zeros, jnp.zeros_like(theta.means), jnp.zeros_like(theta.covariances), fam
        )
        fresh = _conjugate.sample(key_new, empty, fam)
    else:
        fresh = draw_independent_means(
            key_new,
            at_psi,
            b0_inv,
            theta.means,
            zeros,
            jnp.zeros_like(theta.means),
            jnp.zeros_like(theta.covariances),
            fam,
        )
    means = jnp.where(filled[..., None], theta.means, fresh.means)
    cov = jnp.where(filled[..., None, None], theta.covariances, fresh.covariances)
    return psi, GMMParams._unchecked(theta.weights, means, cov)
