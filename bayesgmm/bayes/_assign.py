"""The assignment step of the Gibbs samplers: every row's component, and its statistics.

``z | theta, X`` for every chain at once, block by block over the data, for
:mod:`bayesgmm.bayes._gibbs` and :mod:`bayesgmm.bayes._telescope`. With hard
assignments everything a sweep needs from a row is one vector of features,

    f(x) = w * [1, x_1, ..., x_D, x_1 x_1, x_1 x_2, ..., x_D x_D]

(``w`` the row's weight, 0 or 1; the products ``vech(x x^T)`` in the row-major
order of ``np.triu_indices(D)``): ``F = 1 + D + D (D + 1) / 2`` values.

- The log densities are linear in ``f``: ``log w_k + log N(x | mu_k, Sigma_k)
  = c_k + (Lambda_k mu_k)^T x - x^T Lambda_k x / 2`` with ``Lambda_k`` the
  precision. One GEMM of the block's features with the coefficients of all
  chains' components gives every ``(chain, component, row)`` at once:
  ``F x C K`` multiply-adds per row, against ``D x D K`` and as many
  elementwise operations again per chain for the whitened residuals of
  :func:`bayesgmm._core._mixture.component_log_prob`.
- The draw: one uniform per row and chain against the cumulative
  ``exp(log p - max)``; the uniforms of block ``i`` come from Philox with the
  sweep's key and a counter run of the block's own (:func:`_block_uniforms`).
- The statistics of the drawn assignments are the one-hot matrix times the
  same features, a second GEMM: counts, sums and ``vech`` of the outer
  products of every component of every chain, ``C K x F`` per row, without
  the ``K``-fold ``(D + 1) x D K`` product of
  :func:`bayesgmm.em._core.stats_from_responsibilities` (whose soft
  responsibilities need it).

The block is held transposed, ``(F, B)`` with the rows last, so that every
elementwise step (features, maximum, exp, cumulative sum, comparisons) runs
along contiguous rows and vectorises; ``K`` or ``D`` last (8 or 10 values)
does not. The data are laid out the same way, ``(n_blocks, D, B)``
(:func:`rows_last`, once per call, outside the compiled sweeps): the features
are then two row gathers of ``w [1, x]`` and one product, with no transpose
of the block inside the loop (51 against 66 us per block of 248 rows at
D = 10, K = 8, 2 chains, on one core, against the ``(n_blocks, B, D)``
layout and a 0/1 selection GEMM; identical draws and statistics).

Numerics. Written as a quadratic form the log density loses
``~eps |x|^2 ||Lambda_k||`` to cancellation, against ``~eps |x| ||P_k||
sqrt(maha)`` for the whitened residuals; the data are standardised first
(``|x|`` of order ``sqrt(D)``), so that is ``1e-13`` for a component of unit
scale and ``1e-7`` for one with a standard deviation of ``1e-4`` in some
direction, far below what moves a draw (the categorical draw already resolves
probabilities to ``2^-53``). ``tests/test_gibbs.py`` checks the statistics
against NumPy and the log densities against the whitened ones.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm._core import _devices, _linalg
from bayesgmm._core._blocks import bucket

__all__ = [
    "GIBBS_BLOCK_ELEMENTS",
    "assign_chains",
    "coefficients",
    "gibbs_block_layout",
    "n_features_of",
    "rows_last",
    "unpack_stats",
]

#: Largest ``features x rows`` block. Up to 2^14 elements (128 KiB in float64)
#: XLA's CPU runtime runs an operation on the calling thread (see
#: :mod:`bayesgmm._core._blocks`); larger ones go to its thread pool.
GIBBS_BLOCK_ELEMENTS = 1 << 14
#: Lower bound on the rows of a block (per-block overheads).
_MIN_ROWS = 64


def n_features_of(n_features: int) -> int:
    """``F = 1 + D + D (D + 1) / 2``: features of one row."""
    return 1 + n_features + n_features * (n_features + 1) // 2


def gibbs_block_layout(
    n_samples: int, n_features: int, block_size: int | None = None, n_outputs: int = 0
):
    """Blocks of the assignment step: ``(n_alloc, n_used, B)`` as in ``em_block_layout``.

    ``B`` rows such that a block's features, and its ``n_outputs`` (chains x
    components) log densities, fit :data:`GIBBS_BLOCK_ELEMENTS` (at least 64
    rows), unless ``block_size`` is given (then the layout is exact); the
    allocated blocks are rounded up to the shape class of ``n_used``.
    """
    if block_size is not None:
        block_size = min(block_size, n_samples)
        n_blocks = -(-n_samples // block_size)
        return n_blocks, n_blocks, block_size
    B = max(_MIN_ROWS, GIBBS_BLOCK_ELEMENTS // max(n_features_of(n_features), n_outputs))
    if n_samples <= B:
        return 1, 1, B
    n_used = -(-n_samples // B)
    return bucket(n_used), n_used, B


def rows_last(blocks: np.ndarray) -> np.ndarray:
    """Blocks ``(..., n_blocks, B, D)`` as the sampler holds them: ``(..., n_blocks, D, B)``."""
    return np.ascontiguousarray(np.swapaxes(blocks, -1, -2))


@functools.cache
def _factors(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``[1, x]`` whose products are the features: ``(ia, ib)``, each ``(F,)``."""
    D = n_features
    i, j = np.triu_indices(D)
    first = np.concatenate([[0], np.zeros(D, int), 1 + i])
    second = np.concatenate([[0], 1 + np.arange(D), 1 + j])
    return first, second


def _features(xt, wb):
    """Features ``(F, B)`` of a block ``xt`` (D, B), rows last, with weights ``wb`` (B,) (0 or 1).

    Row ``f`` is the product of rows ``ia[f]`` and ``ib[f]`` of ``w [1, x]``
    (``w^2 = w``): two gathers of whole rows with constant indices, fused
    with the product into one pass. Exact: each entry is one product.
    """
    first, second = _factors(xt.shape[0])
    x1 = jnp.concatenate([wb[None, :], xt * wb[None, :]], axis=0)  # (1 + D, B)
    return x1[first] * x1[second]


def coefficients(means, prec_chol, logdet, log_w, beta=1.0):
    """``(..., K, F)`` coefficients with ``f(x) . coef_k = log w_k + beta log N(x | k)``.

    ``prec_chol`` are the upper factors ``P_k`` (``Lambda_k = P_k P_k^T``) of
    :func:`bayesgmm._core._linalg.precision_cholesky`. A weight of 0 gives a
    constant of ``-1e300`` instead of ``-inf``, so that a padding row's zero
    features give 0, not NaN, and a real row's probability is still exactly 0.
    """
    D = means.shape[-1]
    a = jnp.einsum("...kd,...kde->...ke", means, prec_chol)  # mu^T P
    lam = jnp.einsum("...kde,...kfe->...kdf", prec_chol, prec_chol)  # P P^T
    lin = jnp.einsum("...kde,...ke->...kd", prec_chol, a)  # Lambda mu
    const = -0.5 * (D * _linalg.LOG_2PI + logdet + jnp.sum(a * a, axis=-1))
    i, j = np.triu_indices(D)
    quad = jnp.where(i == j, -0.5, -1.0) * lam[..., i, j]
    tiny = jnp.asarray(-1e300, means.dtype)
    bias = jnp.maximum(beta * const + log_w, tiny)
    return jnp.concatenate([bias[..., None], beta * lin, beta * quad], axis=-1)


def unpack_stats(S, n_features: int):
    """Counts ``(..., K)``, sums ``(..., K, D)``, outer products ``(..., K, D, D)`` from ``S``."""
    D = n_features
    i, j = np.triu_indices(D)
    vech = S[..., 1 + D :]
    outer = jnp.zeros((*S.shape[:-1], D, D), S.dtype).at[..., i, j].set(vech)
    outer = outer.at[..., j, i].set(vech)
    return S[..., 0], S[..., 1 : 1 + D], outer


def _block_uniforms(key, i, shape, dt):
    """Uniforms on [0, 1) for block ``i`` from the sweep's ``key`` (two uint32 words).

    Philox 4x32 (XLA's ``RngBitGenerator``, expanded into elementwise code):
    the key is the sweep's, the counter starts at ``i * 2^32``, so
    each block reads its own run of the counter whichever device draws it
    (a block uses fewer than 2^32 counters). It replaces a Threefry
    ``fold_in`` and ``uniform`` per block, which XLA's CPU backend runs as two
    rolled loops of five rounds: 4-6% of a block's time at D = 10, K = 8,
    2 chains (64 against 68 us per block of 248 rows in one interleaved run,
    75 against 77 in a noisier one). A float64
    uniform takes the top 53 bits of a 64-bit word, a float32 one 24 of 32.

    Under ``jax.vmap`` over keys (chains with data of their own) JAX batches
    ``RngBitGenerator`` by drawing the whole batch from the first key, each
    member a consecutive slice of that counter run: still disjoint, so still
    independent, but not the draws each key gives alone.
    """
    state = jnp.stack([key[0], key[1], jnp.uint32(0), jnp.asarray(i, jnp.uint32)])
    wide = jnp.dtype(dt) == jnp.float64
    _, bits = jax.lax.rng_bit_generator(
        state,
        shape,
        jnp.uint64 if wide else jnp.uint32,
        algorithm=jax.lax.RandomAlgorithm.RNG_PHILOX,
    )
    if wide:
        return (bits >> 11).astype(dt) * 2.0**-53
    return (bits >> 8).astype(dt) * jnp.asarray(2.0**-24, dt)


def _draw_block(key, i, coef, xt, wb, labels: bool):
    """One block of every chain: features, draws, statistics; ``coef`` (C, K, F).

    ``xt`` (D, B): the block's rows, rows last; ``wb`` (B,) their weights.

    ``key``: the sweep's two uint32 words; ``i``: the block's index in the whole data.
    """
    C, K, F = coef.shape
    B = wb.shape[0]
    dt = xt.dtype
    f = _features(xt, wb)  # (F, B)
    lp = (coef.reshape(C * K, F) @ f).reshape(C, K, B)
    top = jnp.max(lp, axis=1)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    cum = jnp.cumsum(jnp.exp(lp - top[:, None]), axis=1)
    total = cum[:, -1]
    u = _block_uniforms(key, i, (C, B), dt)
    below = cum[:, :-1] < (u * total)[:, None]  # (C, K - 1, B): component > k
    # one-hot of z = #{k < K - 1: cum_k < u total} (so z <= K - 1)
    below = below.astype(dt)
    ones = jnp.ones((C, 1, B), dt)
    zeros = jnp.zeros((C, 1, B), dt)
    onehot = jnp.concatenate([ones, below], axis=1) - jnp.concatenate([below, zeros], axis=1)
    S = onehot.reshape(C * K, B) @ f.T  # (C K, F)
    ll = jnp.sum(jnp.where(wb > 0, wb * (top + jnp.log(total)), 0.0), axis=1)
    z = jnp.sum(below, axis=1).astype(jnp.int32) if labels else None
    return S.reshape(C, K, F), ll, z


def _assign_shared(key, coef, X, w, n_used, labels: bool, split: bool = True):
    """Every block of ``X`` for every chain; over the CPU devices when ``split``.

    Block ``i`` of the data draws its uniforms from the Philox counter run of
    block ``i`` under this sweep's key (:func:`_block_uniforms`) whichever device
    runs it (:func:`bayesgmm._core._devices.sum_over_row_shards`): the draws
    do not depend on the number of devices. The labels are summed across
    devices too, each device's zero outside its own blocks.
    """
    C, K, F = coef.shape

    words = jax.random.bits(key, (2,), jnp.uint32)  # the Philox key of this sweep

    def fold(init, X, w, lo, hi):
        def block(i, acc):
            S, ll, z = _draw_block(words, i, coef, X[i], w[i], labels)
            out = (acc[0] + S, acc[1] + ll)
            return out + ((acc[2].at[:, i].set(z),) if labels else ())

        return jax.lax.fori_loop(lo, hi, block, init)

    init = (jnp.zeros((C, K, F), X.dtype), jnp.zeros(C, X.dtype))
    init += (jnp.zeros((C, *w.shape), jnp.int32),) if labels else ()
    if split:
        return _devices.sum_over_row_shards(fold, init, X, w, n_used)
    return fold(init, X, w, 0, n_used)


def assign_chains(
    key,
    means,
    prec_chol,
    logdet,
    log_w,
    X,
    w,
    n_used,
    *,
    per_chain_data: bool = False,
    beta=1.0,
    labels: bool = False,
):
    """Draw every row's component in every chain; the statistics and log-likelihoods.

    Parameters
    ----------
    key : jax.random key
    means, prec_chol, logdet, log_w : arrays (C, K, D), (C, K, D, D), (C, K), (C, K)
        Every chain's components (``prec_chol`` the upper precision factors).
    X : array (n_blocks, D, B), or (C, n_blocks, D, B) with ``per_chain_data``
        The data in blocks of ``B`` rows, rows last (:func:`rows_last`).
    w : array (n_blocks, B), or (C, n_blocks, B); weights 0 or 1
    n_used : int
        Blocks that hold data.
    beta : float
        Likelihood temperature (``beta = 0`` draws the rows from the weights alone).
    labels : bool
        Also return the drawn components (C, n_blocks, B) (0 past ``n_used``).

    Returns
    -------
    counts (C, K), sums (C, K, D), outer (C, K, D, D), log_lik (C,)[, labels]
    """
    D = means.shape[-1]
    coef = coefficients(means, prec_chol, logdet, log_w, beta)
    if per_chain_data:  # one chain at a time over its own data, each with its own key
        C = coef.shape[0]
        one = lambda k, c, x, v: jax.tree.map(  # noqa: E731
            lambda a: a[0], _assign_shared(k, c[None], x, v, n_used, labels, split=False)
        )
        out = jax.vmap(one)(jax.random.split(key, C), coef, X, w)
    else:
        out = _assign_shared(key, coef, X, w, n_used, labels)
    counts, sums, outer = unpack_stats(out[0], D)
    return (counts, sums, outer, *out[1:])
