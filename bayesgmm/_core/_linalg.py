"""Private linear algebra: Cholesky once, triangular solves, no ``inv`` or ``det``.

All functions act on the trailing two axes and broadcast over leading ones.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

LOG_2PI = math.log(2.0 * math.pi)


def cholesky(cov):
    """Lower Cholesky factor ``L`` with ``cov = L @ L.T``; NaN where not positive definite.

    Parameters
    ----------
    cov : array of shape (..., D, D)
    """
    return jnp.linalg.cholesky(cov)


def logdet_from_cholesky(chol):
    """``log|cov|`` from its lower Cholesky factor: ``2 * sum(log(diag(L)))``.

    Parameters
    ----------
    chol : array of shape (..., D, D)

    Returns
    -------
    array of shape (...)
    """
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def precision_cholesky(chol):
    """Upper-triangular ``P = L^{-T}``, so that ``cov^{-1} = P @ P.T``.

    ``(x - mu) @ P`` is the whitened residual, and ``||(x - mu) @ P||^2`` the
    squared Mahalanobis distance. Computed by one triangular solve against the
    identity, never by inverting ``cov``.

    Parameters
    ----------
    chol : array of shape (..., D, D)
        Lower Cholesky factors.

    Returns
    -------
    array of shape (..., D, D)
    """
    eye = jnp.broadcast_to(jnp.eye(chol.shape[-1], dtype=chol.dtype), chol.shape)
    return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)


def trace_solve(chol, mat):
    """``tr(cov^{-1} @ mat)`` for symmetric ``mat``, from ``cov``'s Cholesky factor.

    Parameters
    ----------
    chol : array of shape (..., D, D)
        Lower Cholesky factor of ``cov``.
    mat : array of shape (..., D, D)
        Symmetric matrix.
    """
    half = solve_triangular(chol, mat, lower=True)  # L^{-1} M
    full = solve_triangular(chol, jnp.swapaxes(half, -1, -2), lower=True)  # L^{-1} M L^{-T}
    return jnp.trace(full, axis1=-2, axis2=-1)


def mahalanobis_sq(chol, diff):
    """Squared Mahalanobis distance ``diff^T cov^{-1} diff``.

    Parameters
    ----------
    chol : array of shape (..., D, D)
        Lower Cholesky factor of ``cov``.
    diff : array of shape (..., D)
    """
    z = solve_triangular(chol, diff[..., None], lower=True)[..., 0]
    return jnp.sum(z * z, axis=-1)


def symmetrize(mat):
    """``(M + M.T) / 2`` over the trailing axes."""
    return 0.5 * (mat + jnp.swapaxes(mat, -1, -2))
