"""The mixture maths on parameter pytrees: log densities, responsibilities, sampling.

Each function is written for one unbatched set of parameters and lifted over
leading batch axes (``(chain, draw)`` for posterior draws) with ``jax.vmap``.
Everything stays in log space; the only ``exp`` returns a probability.
:class:`~bayesgmm.GMMParams` calls these for its methods and
:mod:`bayesgmm.density` offers them as functions; neither validation nor
conversion happens here.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from bayesgmm._core import _linalg

__all__ = [
    "batched",
    "component_log_prob",
    "joint_log_prob",
    "log_prob_components_jit",
    "log_prob_jit",
    "responsibilities_jit",
    "responsibilities_one",
    "sample_batched",
    "sample_one",
]


def component_log_prob(X, means, prec_chol, logdet):
    """Gaussian log densities ``log N(x_n | mu_k, Sigma_k)`` of every row and component.

    One matrix product ``X @ P`` for all components at once (``P`` the
    precision Cholesky factors), no per-component loop, no matrix inverse.
    ``P`` is laid out as one ``(D, D K)`` matrix with the component index
    fastest, so the product is a single GEMM and the sum of squares over the
    whitened coordinates runs over whole rows of ``K`` values.

    Parameters
    ----------
    X : array of shape (N, D)
    means : array of shape (K, D)
    prec_chol : array of shape (K, D, D)
        Upper factors ``P_k = L_k^{-T}`` from :func:`bayesgmm._linalg.precision_cholesky`.
    logdet : array of shape (K,)
        ``log|Sigma_k|``.

    Returns
    -------
    array of shape (N, K)
    """
    K, D = means.shape
    P = jnp.transpose(prec_chol, (1, 2, 0)).reshape(D, D * K)  # P[d, (e, k)]
    mean_p = jnp.einsum("kd,kde->ek", means, prec_chol)
    y = (X @ P).reshape(*X.shape[:-1], D, K) - mean_p  # y[n, e, k] = ((x_n - mu_k) P_k)_e
    maha = jnp.sum(y * y, axis=-2)
    return -0.5 * (D * _linalg.LOG_2PI + logdet + maha)


def joint_log_prob(params, X):
    """``log w_k + log N(x_n | k)`` for unbatched params, shape (N, K)."""
    chol = _linalg.cholesky(params.covariances)
    prec = _linalg.precision_cholesky(chol)
    logdet = _linalg.logdet_from_cholesky(chol)
    return jnp.log(params.weights) + component_log_prob(X, params.means, prec, logdet)


def batched(fn, params, *args):
    """Apply an unbatched ``fn(params, *args)`` over the batch axes of ``params``."""
    batch = params.batch_shape
    if not batch:
        return fn(params, *args)
    out = jax.vmap(lambda p: fn(p, *args))(params.flatten_batch())
    return jax.tree.map(lambda leaf: leaf.reshape(batch + leaf.shape[1:]), out)


@jax.jit
def log_prob_components_jit(params, X):
    return batched(joint_log_prob, params, X)


@jax.jit
def log_prob_jit(params, X):
    return batched(lambda p, x: logsumexp(joint_log_prob(p, x), axis=-1), params, X)


def responsibilities_one(params, X):
    """Responsibilities of unbatched params, finite wherever the whitened residuals are.

    The squared Mahalanobis distances are written as ``s_n^2 q_nk`` with ``s_n``
    the row's largest whitened coordinate, so ``q_nk`` lies in ``[0, D]``; only
    the gaps ``s_n^2 (q_nk - min_k q_nk)`` enter the softmax, and a gap of 0 is
    never multiplied by an infinite ``s_n^2``. A point so far away that every
    ``log N(x_n | k)`` underflows to ``-inf`` (``log_prob`` is ``-inf``) gets the
    limit of its responsibilities: all on the component(s) nearest in
    Mahalanobis terms, instead of NaN.
    """
    chol = _linalg.cholesky(params.covariances)
    prec = _linalg.precision_cholesky(chol)
    logdet = _linalg.logdet_from_cholesky(chol)
    K, D = params.means.shape
    P = jnp.transpose(prec, (1, 2, 0)).reshape(D, D * K)
    mean_p = jnp.einsum("kd,kde->ek", params.means, prec)
    y = (X @ P).reshape(*X.shape[:-1], D, K) - mean_p  # whitened residuals (N, D, K)
    s = jnp.max(jnp.abs(y), axis=(-2, -1))
    overflow = ~jnp.isfinite(s)  # y itself overflowed: NaN, which the caller reports
    s = jnp.where((s > 0) & ~overflow, s, 1.0)
    q = jnp.sum(jnp.square(y / s[:, None, None]), axis=-2)  # (N, K), in [0, D]
    log_w = jnp.log(params.weights)
    # The nearest component (with positive weight) gets a gap of exactly 0: XLA may
    # round q differently where it is fused into another reduction.
    nearest = jnp.argmin(jnp.where(params.weights > 0, q, jnp.inf), axis=-1)
    gap = q - jnp.take_along_axis(q, nearest[:, None], axis=-1)
    counts = (jnp.arange(K) != nearest[:, None]) & (gap > 0)  # else no inf * 0
    far = jnp.where(counts, 0.5 * jnp.square(s)[:, None] * gap, 0.0)
    lp = jnp.where(overflow[:, None], jnp.nan, log_w - 0.5 * logdet - far)
    return jnp.exp(lp - logsumexp(lp, axis=-1, keepdims=True))


@jax.jit
def responsibilities_jit(params, X):
    return batched(responsibilities_one, params, X)


def sample_one(key, params, n_samples: int):
    key_z, key_x = jax.random.split(key)
    labels = jax.random.categorical(key_z, jnp.log(params.weights), shape=(n_samples,))
    chol = _linalg.cholesky(params.covariances)
    eps = jax.random.normal(key_x, (n_samples, params.n_features), dtype=params.dtype)
    X = params.means[labels] + jnp.einsum("nde,ne->nd", chol[labels], eps)
    return X, labels


sample_jit = jax.jit(sample_one, static_argnums=2)


def sample_batched(key, params, n_samples: int):
    """``n_samples`` rows from every set of ``params`` in the batch, each with its own key."""
    batch = params.batch_shape
    if not batch:
        return sample_jit(key, params, n_samples)
    keys = jax.random.split(key, math.prod(batch)).reshape((*batch, *np.shape(key)))
    flat_keys = keys.reshape((-1, *np.shape(key)))
    X, labels = jax.vmap(lambda k, p: sample_jit(k, p, n_samples))(
        flat_keys, params.flatten_batch()
    )
    return X.reshape((*batch, *X.shape[1:])), labels.reshape((*batch, *labels.shape[1:]))
