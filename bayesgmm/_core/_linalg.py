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

Small matrices (D <= :data:`SMALL_D`) skip LAPACK altogether: their Cholesky
factor and its inverse are computed for the whole batch at once with
elementwise operations, one column (row) at a time, unrolled over D. A
per-matrix LAPACK call costs XLA's CPU runtime half a dozen separate kernels
(copies, the call, the write-back) per matrix; for the K components of an EM
step on low-dimensional data that overhead was most of an iteration (8 x 7
kernel launches against the few microseconds of arithmetic). Both paths are
the textbook algorithms and agree to rounding.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular as _solve_triangular

LOG_2PI = math.log(2.0 * math.pi)
#: Matrices up to this size are factorised by the batched elementwise path.
SMALL_D = 12


@jax.jit
def cholesky(cov):
    """Lower Cholesky factor ``L`` with ``cov = L @ L.T``; NaN where not positive definite.

    Parameters
    ----------
    cov : array of shape (..., D, D)
    """
    if cov.shape[-1] <= SMALL_D:
        return _cholesky_small(cov)
    return _one_matrix_at_a_time(jnp.linalg.cholesky, cov)


def _cholesky_small(cov):
    """Cholesky-Banachiewicz over the whole batch, unrolled over the D columns.

    Column ``j``: ``v = A[:, j] - sum_{k<j} L[:, k] L[j, k]``, then
    ``L[j, j] = sqrt(v_j)`` and ``L[i, j] = v_i / L[j, j]`` below it: one
    expression ``v / sqrt(v_j)`` masked to rows ``>= j``. A matrix that is not
    positive definite (a pivot not > 0) comes out all NaN, as from LAPACK
    through :func:`jax.numpy.linalg.cholesky`.
    """
    D = cov.shape[-1]
    rows = jnp.arange(D)
    cols = []
    for j in range(D):
        v = cov[..., :, j]
        for k in range(j):
            v = v - cols[k] * cols[k][..., j : j + 1]
        pivot = jnp.sqrt(v[..., j : j + 1])
        cols.append(jnp.where(rows >= j, v / pivot, 0.0))
    chol = jnp.stack(cols, axis=-1)
    ok = jnp.all(jnp.diagonal(chol, axis1=-2, axis2=-1) > 0, axis=-1)
    return jnp.where(ok[..., None, None], chol, jnp.nan)  # all NaN, as LAPACK's


def _inverse_lower_small(chol):
    """``L^{-1}`` of lower-triangular factors by forward substitution, unrolled over rows."""
    D = chol.shape[-1]
    eye = jnp.eye(D, dtype=chol.dtype)
    inv_rows = []
    for i in range(D):
        r = eye[i]
        for k in range(i):
            r = r - chol[..., i, k, None] * inv_rows[k]
        inv_rows.append(r / chol[..., i, i, None])
    return jnp.stack(inv_rows, axis=-2)


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
    if chol.shape[-1] <= SMALL_D:
        return jnp.swapaxes(_inverse_lower_small(chol), -1, -2)
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
    if chol.shape[-1] <= SMALL_D:
        return _solve_lower_small(chol, b)
    return _one_matrix_at_a_time(lambda c, m: _solve_triangular(c, m, lower=True), chol, b)


def _solve_lower_small(chol, b):
    """Forward substitution ``y_i = (b_i - sum_{k<i} L_ik y_k) / L_ii``, unrolled over rows."""
    D = chol.shape[-1]
    batch = jnp.broadcast_shapes(chol.shape[:-2], b.shape[:-2])
    rows = []
    for i in range(D):
        y = b[..., i, :]
        for k in range(i):
            y = y - chol[..., i, k, None] * rows[k]
        rows.append(jnp.broadcast_to(y / chol[..., i, i, None], batch + b.shape[-1:]))
    return jnp.stack(rows, axis=-2)


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
