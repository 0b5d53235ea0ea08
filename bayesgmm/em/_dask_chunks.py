"""What a Dask worker does with one chunk of rows: the per-chunk half of :mod:`bayesgmm.em._dask`.

Every function here takes one chunk (a NumPy array of shape (n, D), and its
sample weights of shape (n,) or None for ones) and returns a small summary
that does not grow with the data: the first pass's column statistics,
problems and row sample (:func:`summarise_chunk`), or the EM sufficient
statistics for every restart at once (:func:`chunk_e_step`,
:func:`chunk_init_stats`). The summaries of two chunks add
(:func:`merge_summaries`, :func:`sum_stats`), so the driver sums them with a
tree reduction and never sees a row of data.

The E-step is the in-memory engine's own compiled kernel
(:func:`bayesgmm.em._core.e_step`) on the chunk laid out in blocks: the chunk
is standardised by the fit's :class:`~bayesgmm.em._standardize.Standardizer`
into ``(n_alloc, B, D)`` with ``n_alloc`` rounded up to its shape class
(:func:`bayesgmm._core._blocks.bucket`), so a worker compiles one program per
chunk-shape class (and number of restarts) and reuses it for every chunk of
that class and every iteration. Everything is deterministic given the chunk
and its index: a chunk recomputed on another worker (after a worker died)
gives the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm._core._blocks import bucket
from bayesgmm._core.params import GMMParams
from bayesgmm.em._core import Stats, e_step, stats_from_responsibilities
from bayesgmm.em._init import _nearest
from bayesgmm.em._standardize import Standardizer

__all__ = [
    "ChunkLayout",
    "ChunkSummary",
    "chunk_e_step",
    "chunk_init_stats",
    "merge_summaries",
    "sum_stats",
    "summarise_chunk",
]


# ------------------------------------------------------------ first pass ---
@dataclass(frozen=True)
class ChunkSummary:
    """What the first pass learns from a run of consecutive chunks.

    ``weight``, ``mean`` and ``m2`` are the weighted count, the column means
    and the matrix of weighted sums of products of deviations, (D, D)
    (float64, merged by Chan et al.'s pairwise update, stable for any number
    of chunks; its diagonal gives the column variances, all of it the data
    covariance of the default prior); ``lo``/``hi`` the
    column ranges of the rows with positive weight; ``head_*`` the first rows
    with positive weight (for the distinct-rows warning); ``sample_*`` a
    Bernoulli sample of the rows with positive weight (for the initialisation);
    ``problem`` ``(first row of the chunk, message)`` of the earliest chunk
    with invalid values, else None.
    """

    rows: int
    weight: float
    weight_max: float
    n_positive: int
    mean: np.ndarray
    m2: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    head_x: np.ndarray
    head_w: np.ndarray
    sample_x: np.ndarray
    sample_w: np.ndarray
    problem: tuple[int, str] | None = None


def _chunk_weights(w, n: int, dtype) -> np.ndarray:
    return np.ones(n, dtype) if w is None else np.asarray(w, dtype=dtype).reshape(n)


def summarise_chunk(x, w, index, start, dtype, sample_rate, seed, head_rows) -> ChunkSummary:
    """Validate one chunk and summarise it (the first pass over the data).

    Parameters
    ----------
    x : array of shape (n, D)
        The chunk as stored (any real dtype); converted to ``dtype`` here.
    w : array of shape (n,) or None
    index, start : int
        The chunk's position and its first row in the whole array (for the
        messages and the sample's random stream).
    dtype : numpy dtype
    sample_rate : float
        Probability that a row with positive weight enters the sample.
    seed : sequence of int
        Entropy of the sample; with ``index`` it fixes which rows are drawn.
    head_rows : int
        How many leading rows with positive weight to keep.
    """
    raw = np.asarray(x)
    data = np.asarray(raw, dtype=dtype)
    n, D = data.shape
    where = f"the chunk of rows {start} to {start + n - 1} (chunk {index})"
    finite = np.isfinite(data).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        kind = "NaN" if np.isnan(data).any() else "infinite"
        overflow = raw.dtype.kind == "f" and bool(np.isfinite(raw).all())
        hint = (
            f" (the values overflow {np.dtype(dtype)}; rescale the data or use float64)"
            if overflow
            else "; remove or impute those rows first"
        )
        message = (
            f"X contains {kind} values (NaN or inf) in {bad.size} row(s) of {where}, "
            f"first at row {start + bad[0]}{hint}."
        )
        return _problem(start, D, dtype, message)
    ws = _chunk_weights(w, n, dtype)
    if not np.isfinite(ws).all():
        first = start + np.flatnonzero(~np.isfinite(ws))[0]
        message = f"sample_weight contains NaN or inf values in {where}, first at row {first}."
        return _problem(start, D, dtype, message)
    if (ws < 0).any():
        neg = np.flatnonzero(ws < 0)
        message = (
            f"sample_weight must be non-negative; {neg.size} weight(s) in {where} are negative "
            f"(first at row {start + neg[0]}, smallest {ws.min():g}). Weights act as "
            "replication counts."
        )
        return _problem(start, D, dtype, message)
    used = ws > 0
    total = float(ws.sum(dtype=np.float64))
    x64 = data.astype(np.float64, copy=False)
    mean = (ws @ x64) / total if total > 0 else np.zeros(D)
    diff = x64 - mean
    m2 = (diff * ws[:, None]).T @ diff if total > 0 else np.zeros((D, D))
    kept = data[used]
    lo = kept.min(axis=0) if kept.shape[0] else np.full(D, np.inf, dtype)
    hi = kept.max(axis=0) if kept.shape[0] else np.full(D, -np.inf, dtype)
    rng = np.random.default_rng([*seed, int(index)])
    take = used & (rng.random(n) < sample_rate)
    return ChunkSummary(
        rows=n,
        weight=total,
        weight_max=float(ws.max(initial=0.0)),
        n_positive=int(used.sum()),
        mean=mean,
        m2=m2,
        lo=lo,
        hi=hi,
        head_x=kept[:head_rows],
        head_w=ws[used][:head_rows],
        sample_x=data[take],
        sample_w=ws[take],
    )


def _problem(start: int, D: int, dtype, message: str) -> ChunkSummary:
    empty = np.zeros((0, D), dtype)
    return ChunkSummary(
        0, 0.0, 0.0, 0, np.zeros(D), np.zeros((D, D)), np.full(D, np.inf), np.full(D, -np.inf),
        empty, np.zeros(0, dtype), empty, np.zeros(0, dtype), (start, message),
    )  # fmt: skip


def merge_summaries(parts: list[ChunkSummary], head_rows: int) -> ChunkSummary:
    """The summary of consecutive chunks from theirs (in row order)."""
    out = parts[0]
    for b in parts[1:]:
        a = out
        problems = [p for p in (a.problem, b.problem) if p is not None]
        weight = a.weight + b.weight
        if weight > 0:
            delta = b.mean - a.mean
            mean = a.mean + delta * (b.weight / weight)
            m2 = a.m2 + b.m2 + np.outer(delta, delta) * (a.weight * b.weight / weight)
        else:
            mean, m2 = a.mean, a.m2
        out = ChunkSummary(
            rows=a.rows + b.rows,
            weight=weight,
            weight_max=max(a.weight_max, b.weight_max),
            n_positive=a.n_positive + b.n_positive,
            mean=mean,
            m2=m2,
            lo=np.minimum(a.lo, b.lo),
            hi=np.maximum(a.hi, b.hi),
            head_x=np.concatenate([a.head_x, b.head_x])[:head_rows],
            head_w=np.concatenate([a.head_w, b.head_w])[:head_rows],
            sample_x=np.concatenate([a.sample_x, b.sample_x]),
            sample_w=np.concatenate([a.sample_w, b.sample_w]),
            problem=min(problems) if problems else None,
        )
    return out


# ------------------------------------------------------- the EM passes ---
@dataclass(frozen=True)
class ChunkLayout:
    """How a worker lays a chunk out for the compiled kernel.

    ``standardizer`` maps the rows as in memory; the weights are divided by
    ``w_scale`` (see :func:`bayesgmm.em._fit._weights_for_fit`); ``block_rows``
    rows per block, and the number of blocks rounded up to its shape class.
    """

    standardizer: Standardizer
    w_scale: float
    block_rows: int
    dtype: str

    def blocks(self, x, w):
        """``(X, w, n_used)``: the chunk standardised in blocks ``(n_alloc, B, D)``."""
        dt = np.dtype(self.dtype)
        data = np.asarray(x, dtype=dt)
        n = data.shape[0]
        B = self.block_rows
        n_used = -(-n // B)
        n_alloc = bucket(n_used)
        Xb = self.standardizer.blocks(data, n_alloc, B)
        ws = _chunk_weights(w, n, dt)
        if self.w_scale != 1.0:
            ws = (ws / self.w_scale).astype(dt, copy=False)
        wb = np.zeros(n_alloc * B, dt)
        wb[:n] = ws
        return Xb, wb.reshape(n_alloc, B), np.asarray(n_used, np.int32)


def _e_step_restarts(params: GMMParams, active, X, w, n_used) -> Stats:
    """``e_step`` for each restart's parameters (leading axis R) that is ``active``."""
    K, D = params.means.shape[-2:]

    def one(pa):
        p, on = pa

        def zero():
            z = jnp.zeros((), X.dtype)
            return Stats(jnp.zeros(K, X.dtype), jnp.zeros((K, D), X.dtype),
                         jnp.zeros((K, D, D), X.dtype), z, z)  # fmt: skip

        return jax.lax.cond(on, lambda: e_step(p, X, w, n_used), zero)

    return jax.lax.map(one, (params, active))


_e_step_restarts_jit = jax.jit(_e_step_restarts)


def chunk_e_step(x, w, layout: ChunkLayout, weights, means, covariances, active) -> Stats:
    """EM sufficient statistics of one chunk for every active restart.

    ``weights`` (R, K), ``means`` (R, K, D), ``covariances`` (R, K, D, D) in
    standardised units; ``active`` (R,) booleans. Returns :class:`Stats`
    of NumPy arrays with the leading axis R (zeros for inactive restarts).
    """
    with jax.enable_x64(True):
        Xb, wb, n_used = layout.blocks(x, w)
        params = GMMParams._unchecked(weights, means, covariances)
        out = _e_step_restarts_jit(params, np.asarray(active), Xb, wb, n_used)
        return Stats(*(np.asarray(leaf) for leaf in out))


def _init_stats(starts, X, w, n_components: int, method: str, index) -> Stats:
    """Statistics of the initial responsibilities, one set per restart (leading axis R).

    ``starts`` are centres (R, K, D) (every row to its nearest, as in memory)
    or, for ``method="random"``, key data (R, ...) folded with the chunk's index.
    """
    flat = X.reshape(-1, X.shape[-1])

    def one(start):
        if method == "random":
            key = jax.random.fold_in(jax.random.wrap_key_data(start), index)
            u = jax.random.uniform(key, (flat.shape[0], n_components), X.dtype)
            resp = u / u.sum(axis=1, keepdims=True)
        else:
            resp = _nearest(flat, start, n_components)
        return stats_from_responsibilities(X, w, resp.reshape(*w.shape, n_components))

    return jax.lax.map(one, starts)


_init_stats_jit = jax.jit(_init_stats, static_argnames=("n_components", "method"))


def chunk_init_stats(x, w, index, start, layout: ChunkLayout, starts, n_components, method):
    """The statistics that the initial M-step of every restart needs, for one chunk.

    ``index`` (the chunk's position) seeds ``method="random"``; ``start``, its
    first row, is not needed.
    """
    with jax.enable_x64(True):
        Xb, wb, _ = layout.blocks(x, w)
        out = _init_stats_jit(
            np.asarray(starts), Xb, wb, n_components, method, np.asarray(index, np.uint32)
        )
        return Stats(*(np.asarray(leaf) for leaf in out))


def sum_stats(parts: list[Stats]) -> Stats:
    """The statistics of several chunks: their sum, leaf by leaf, in order."""
    out = parts[0]
    for part in parts[1:]:
        out = Stats(*(a + b for a, b in zip(out, part, strict=True)))
    return out
