"""Log densities, responsibilities and sampling of a Gaussian mixture.

Each function is written for one unbatched set of parameters and lifted over
leading batch axes (``(chain, draw)`` for posterior draws) with ``jax.vmap``.
Everything stays in log space; the only ``exp`` returns a probability.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from bayesgmm import _linalg
from bayesgmm._precision import x64
from bayesgmm._validation import check_data, check_positive_int
from bayesgmm.params import GMMParams

__all__ = [
    "component_log_prob",
    "log_prob",
    "log_prob_components",
    "responsibilities",
    "sample",
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


def _joint_log_prob(params: GMMParams, X):
    """``log w_k + log N(x_n | k)`` for unbatched params, shape (N, K)."""
    chol = _linalg.cholesky(params.covariances)
    prec = _linalg.precision_cholesky(chol)
    logdet = _linalg.logdet_from_cholesky(chol)
    return jnp.log(params.weights) + component_log_prob(X, params.means, prec, logdet)


def _batched(fn, params: GMMParams, *args):
    """Apply an unbatched ``fn(params, *args)`` over the batch axes of ``params``."""
    batch = params.batch_shape
    if not batch:
        return fn(params, *args)
    flat = jax.tree.map(lambda leaf: leaf.reshape((-1, *leaf.shape[len(batch) :])), params)
    out = jax.vmap(lambda p: fn(p, *args))(flat)
    return jax.tree.map(lambda leaf: leaf.reshape(batch + leaf.shape[1:]), out)


def _prepare(params: GMMParams, X):
    if not isinstance(params, GMMParams):
        raise TypeError(f"expected GMMParams; got {type(params).__name__}.")
    return jnp.asarray(check_data(X, dtype=params.dtype, n_features=params.n_features))


@jax.jit
def _log_prob_components_jit(params, X):
    return _batched(_joint_log_prob, params, X)


@jax.jit
def _log_prob_jit(params, X):
    return _batched(lambda p, x: logsumexp(_joint_log_prob(p, x), axis=-1), params, X)


def _responsibilities_one(params: GMMParams, X):
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
def _responsibilities_jit(params, X):
    return _batched(_responsibilities_one, params, X)


@x64
def log_prob_components(params: GMMParams, X) -> jax.Array:
    """Joint log density ``log w_k + log N(x_n | mu_k, Sigma_k)``.

    Parameters
    ----------
    params : GMMParams with batch shape ``S``
    X : array-like of shape (N, D)

    Returns
    -------
    array of shape S + (N, K)
    """
    return _log_prob_components_jit(params, _prepare(params, X))


@x64
def log_prob(params: GMMParams, X) -> jax.Array:
    """Mixture log density of each row, ``logsumexp_k (log w_k + log N(x_n | k))``.

    Parameters
    ----------
    params : GMMParams with batch shape ``S``
    X : array-like of shape (N, D)

    Returns
    -------
    array of shape S + (N,)
    """
    return _log_prob_jit(params, _prepare(params, X))


@x64
def responsibilities(params: GMMParams, X) -> jax.Array:
    """Membership probabilities ``P(z_n = k | x_n)``, computed in log space.

    Parameters
    ----------
    params : GMMParams with batch shape ``S``
    X : array-like of shape (N, D)

    Returns
    -------
    array of shape S + (N, K)
        Finite, rows summing to one. A row far from every component (``log_prob``
        ``-inf``) gets the limit: all its weight on the component nearest in
        Mahalanobis terms (shared in proportion to the weights among components
        whose distances are equal to working precision).

    Raises
    ------
    ValueError
        When a row lies so far away that even its whitened residual overflows
        (``|x|`` near the largest float), with the rows named.
    """
    data = _prepare(params, X)
    resp = _responsibilities_jit(params, data)
    ok = np.asarray(jnp.isfinite(resp).all(axis=-1))
    if not ok.all():
        bad = np.flatnonzero(~ok.reshape(-1, ok.shape[-1]).all(axis=0))
        big = float(np.abs(np.asarray(data)[bad]).max())
        raise ValueError(
            f"the responsibilities of {bad.size} row(s) of X, first row {bad[0]}, cannot be "
            f"computed in {params.dtype}: the rows lie so far from every component (values up "
            f"to {big:.3g}) that their whitened distances overflow, and their log_prob is "
            "-inf. Remove such rows, or rescale the data and refit."
        )
    return resp


def _sample_one(key, params: GMMParams, n_samples: int):
    key_z, key_x = jax.random.split(key)
    labels = jax.random.categorical(key_z, jnp.log(params.weights), shape=(n_samples,))
    chol = _linalg.cholesky(params.covariances)
    eps = jax.random.normal(key_x, (n_samples, params.n_features), dtype=params.dtype)
    X = params.means[labels] + jnp.einsum("nde,ne->nd", chol[labels], eps)
    return X, labels


@x64
def sample(key: jax.Array, params: GMMParams, n_samples: int) -> tuple[jax.Array, jax.Array]:
    """Draw ``n_samples`` rows (and their component labels) from the mixture.

    Parameters
    ----------
    key : jax.random key
    params : GMMParams with batch shape ``S``
        Each set of parameters in the batch draws its own data set.
    n_samples : int

    Returns
    -------
    X : array of shape S + (n_samples, D)
    labels : int array of shape S + (n_samples,)
    """
    n_samples = check_positive_int("n_samples", n_samples)
    batch = params.batch_shape
    if not batch:
        return _sample_jit(key, params, n_samples)
    keys = jax.random.split(key, math.prod(batch)).reshape((*batch, *np.shape(key)))
    flat_keys = keys.reshape((-1, *np.shape(key)))
    flat = jax.tree.map(lambda leaf: leaf.reshape((-1, *leaf.shape[len(batch) :])), params)
    X, labels = jax.vmap(lambda k, p: _sample_jit(k, p, n_samples))(flat_keys, flat)
    return X.reshape((*batch, *X.shape[1:])), labels.reshape((*batch, *labels.shape[1:]))


_sample_jit = jax.jit(_sample_one, static_argnums=2)
