"""Private linear algebra: Cholesky once, triangular solves, no ``inv`` or ``det``.

All functions act on the trailing two axes and broadcast over leading ones.

Every LAPACK kernel (Cholesky, triangular solve) is handed one matrix at a
time (:func:`_one_matrix_at_a_time`). jaxlib 0.10's CPU LAPACK kernels split a
batch of matrices into chunks, schedule them on XLA's intra-op thread pool and
block the pool thread they run on until the chunks are done. That thread pool
has one thread per core: on a two-core machine two batched kernels in flight at
once (EM's E-step and the log prior of MAP-EM both solve against the
covariances) left no thread to run the chunks, and ``bayesgmm em --map`` hung
for good, every thread waiting on a futex. A kernel given a single matrix runs
it inline and waits for nothing.

:func:`cholesky` and :func:`solve_triangular` are jitted at module level: called
outside a compiled program (on a fitted model's parameters, say), the
``lax.map`` inside them would otherwise compile a fresh program on every call,
and each compiled program keeps memory maps of its own until the process ends
(scikit-learn's warm-start test, 600 one-iteration fits, reached the kernel's
``vm.max_map_count`` and crashed).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular as _solve_triangular

LOG_2PI = math.log(2.0 * math.pi)


@jax.jit
def cholesky(cov):
    """Lower Cholesky factor ``L`` with ``cov = L @ L.T``; NaN where not positive definite.

    Parameters
    ----------
    cov : array of shape (..., D, D)
    """
    return _one_matrix_at_a_time(jnp.linalg.cholesky, cov)


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
    eye = jnp.eye(chol.shape[-1], dtype=chol.dtype)
    return jnp.swapaxes(solve_triangular(chol, eye), -1, -2)


def trace_solve(chol, mat):
    """``tr(cov^{-1} @ mat)`` for symmetric ``mat``, from ``cov``'s Cholesky factor.

    Parameters
    ----------
    chol : array of shape (..., D, D)
        Lower Cholesky factor of ``cov``.
    mat : array of shape (..., D, D)
        Symmetric matrix.
    """
    half = solve_triangular(chol, mat)  # L^{-1} M
    full = solve_triangular(chol, jnp.swapaxes(half, -1, -2))  # L^{-1} M L^{-T}
    return jnp.trace(full, axis1=-2, axis2=-1)


def mahalanobis_sq(chol, diff):
    """Squared Mahalanobis distance ``diff^T cov^{-1} diff``.

    Parameters
    ----------
    chol : array of shape (..., D, D)
        Lower Cholesky factor of ``cov``.
    diff : array of shape (..., D)
    """
    z = solve_triangular(chol, diff[..., None])[..., 0]
    return jnp.sum(z * z, axis=-1)


@jax.jit
def solve_triangular(chol, b):
    """``L^{-1} b`` for lower-triangular ``chol`` (..., D, D) and ``b`` (..., D, M)."""
    return _one_matrix_at_a_time(lambda c, m: _solve_triangular(c, m, lower=True), chol, b)


def _one_matrix_at_a_time(fn, *args):
    """``fn`` of single matrices, applied over the broadcast leading axes of ``args``.

    The matrices go to ``fn`` one after another (``lax.map``), so each LAPACK
    kernel sees a batch of one and never waits on the thread pool (see the
    module docstring). Arguments without leading axes are shared by all. Under
    ``jax.vmap`` the kernels still get the mapped axis as their batch.
    """
    batch = jnp.broadcast_shapes(*(a.shape[:-2] for a in args))
    n = math.prod(batch)
    if n <= 1:
        return fn(*(jnp.broadcast_to(a, batch + a.shape[-2:]) for a in args))
    shared = [not a.shape[:-2] for a in args]
    stacked = tuple(
        jnp.broadcast_to(a, batch + a.shape[-2:]).reshape(n, *a.shape[-2:])
        for a, s in zip(args, shared, strict=True)
        if not s
    )

    def one(mats):
        mats = iter(mats)
        return fn(*(a if s else next(mats) for a, s in zip(args, shared, strict=True)))

    out = jax.lax.map(one, stacked)
    return out.reshape(batch + out.shape[1:])


def symmetrize(mat):
    """``(M + M.T) / 2`` over the trailing axes."""
    return 0.5 * (mat + jnp.swapaxes(mat, -1, -2))
