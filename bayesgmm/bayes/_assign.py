"""The assignment step of the Gibbs samplers: every row's component, and its statistics.

``z | theta, X`` for every chain at once, block by block over the data, for
:mod:`bayesgmm.bayes._gibbs` and :mod:`bayesgmm.bayes._telescope`. The log
densities and the statistics of the drawn labels are two GEMMs with the rows'
quadratic features (:mod:`bayesgmm._core._quadratic`, shared with EM's
E-step), of ``w [1, x]`` with ``w`` the row's weight, 0 or 1:

- one GEMM of a block's features with the coefficients of all chains'
  components gives every ``(chain, component, row)`` at once;
- the draw: one uniform per row and chain against the cumulative
  ``exp(log p - max)``; the uniforms of block ``i`` come from Philox with the
  sweep's key and a counter run of the block's own (:func:`_block_uniforms`);
- the statistics of the drawn assignments are the one-hot matrix times the
  same features: counts, sums and ``vech`` of the outer products of every
  component of every chain.

The data are laid out rows last, ``(n_blocks, D, B)`` (:func:`rows_last`, once
per call, outside the compiled sweeps): a block's features are then two row
gathers and one product with no transpose inside the loop (51 against 66 us
per block of 248 rows at D = 10, K = 8, 2 chains, on one core, against the
``(n_blocks, B, D)`` layout and a 0/1 selection GEMM; identical draws and
statistics).

Numerics (:mod:`bayesgmm._core._quadratic`): the quadratic form loses
``~eps |x|^2 ||Lambda_k||`` of a log density to cancellation, ``1e-7`` for a
component with a standard deviation of ``1e-4`` in some direction, far below
what moves a draw (the categorical draw resolves probabilities to ``2^-53``).
``tests/test_gibbs.py`` checks the statistics against NumPy and the log
densities against the whitened ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm._core import _devices
from bayesgmm._core._blocks import bucket
from bayesgmm._core._quadratic import (
    coefficients,
    n_quadratic_features,
    quadratic_features,
    unpack_stats,
)

__all__ = ["GIBBS_BLOCK_ELEMENTS", "assign_chains", "gibbs_block_layout", "rows_last"]

#: Largest ``features x rows`` block. Up to 2^14 elements (128 KiB in float64)
#: XLA's CPU runtime runs an operation on the calling thread (see
#: :mod:`bayesgmm._core._blocks`); larger ones go to its thread pool.
GIBBS_BLOCK_ELEMENTS = 1 << 14
#: Lower bound on the rows of a block (per-block overheads).
_MIN_ROWS = 64


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
    B = max(_MIN_ROWS, GIBBS_BLOCK_ELEMENTS // max(n_quadratic_features(n_features), n_outputs))
    if n_samples <= B:
        return 1, 1, B
    n_used = -(-n_samples // B)
    return bucket(n_used), n_used, B


def rows_last(blocks: np.ndarray) -> np.ndarray:
    """Blocks ``(..., n_blocks, B, D)`` as the sampler holds them: ``(..., n_blocks, D, B)``."""
    return np.ascontiguousarray(np.swapaxes(blocks, -1, -2))


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
    f = quadratic_features(xt, wb)  # (F, B), zero for a row of weight 0
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
