"""EM on data that do not fit in memory: a dask array, chunk by chunk, on a Dask cluster.

:func:`bayesgmm.fit_em` hands a dask array here. The heavy work runs where the
chunks live, on the workers of the current Dask scheduler (the ``Client``
the user connected, a ``LocalCluster`` or a remote one; without a Client,
Dask's local threads); the driver holds only sufficient statistics.

The passes over the data
------------------------
1. **Summary** (one pass): every chunk is validated (NaN/inf in ``X``,
   invalid ``sample_weight``, reported with the chunk's row range), and
   returns its weighted column means and squared deviations (merged by
   Chan et al.'s pairwise update, as stable as the in-memory two-pass
   formula), column ranges, its first rows (for the distinct-rows warning)
   and a Bernoulli sample of about :data:`SAMPLE_ROWS` rows.
2. **Initialisation** (one pass; none when ``init`` is a ``GMMParams``): the
   restarts' k-means++ centres are chosen on the driver from the sample, then
   one pass assigns every row to its nearest centre and returns the
   statistics of the initial M-step for all restarts at once.
3. **EM** (one pass per iteration): each chunk gives the E-step statistics
   (weighted counts, first and second moments, log-likelihood) of every
   running restart, computed by the in-memory engine's compiled kernel
   (:mod:`bayesgmm.em._dask_chunks`); a tree reduction sums them; the driver
   runs the M-step and the convergence test of each restart exactly as
   :func:`bayesgmm.em._core.run_em` does (:mod:`bayesgmm.em._driver`), and a
   last pass evaluates the final parameters.

Why k-means++ on a sample and not k-means|| (Bahmani et al. 2012): k-means||
needs about five passes over the data for its rounds plus one to weight the
candidates, whereas the sample comes free with the summary pass. A component
holding a fraction ``p`` of the data has about ``p * SAMPLE_ROWS`` rows in the
sample, so every component above ~1e-4 of the data can be seeded; EM
refines the start and restarts cover bad draws. So a fit reads the data
``n_iter + 3`` times (``n_iter + 2`` from given parameters), and each read
sends ``R (K + K D + K D^2 + 2)`` numbers per chunk to the reduction.

The results equal the in-memory fit's from the same start up to the order of
floating-point sums (the tests ask for relative 1e-10). Every chunk's result is a
deterministic function of the chunk, so Dask may recompute it on another
worker (a worker lost mid-fit) without changing a bit.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import replace
from typing import NamedTuple

import jax
import numpy as np

from bayesgmm._core._blocks import bucket, em_rows_per_block
from bayesgmm._core._precision import resolve_dtype, x64
from bayesgmm._core._validation import (
    ColumnStats,
    check_feature_names,
    check_n_components,
    check_seed,
    warn_data_problems,
    warn_reg_covar_scale,
)
from bayesgmm._core.params import GMMParams
from bayesgmm.em import _core as _em_core
from bayesgmm.em import _dask_chunks as _chunks
from bayesgmm.em import _driver
from bayesgmm.em._fit import MAX_ITER, TOL, EMResult, _select_best, check_em_settings
from bayesgmm.em._init import _LLOYD_ITERATIONS, _lloyd, kmeans_plusplus
from bayesgmm.em._standardize import Standardizer

__all__ = ["SAMPLE_ROWS", "DaskRows", "fit_em", "from_npy", "import_dask"]

#: Rows the initialisation's sample holds on average (5 MiB at D = 10).
SAMPLE_ROWS = 1 << 16
#: How many partial results one reduction task adds (the tree's fan-in).
SPLIT_EVERY = 8
#: The sample's random stream is ``fold_in(key, SAMPLE_SALT)``, apart from the restarts'.
SAMPLE_SALT = 0x5A3
_INSTALL = "pip install 'bayesgmm[dask]'"
# Passes completed in this process (for tests that act while a fit runs).
passes_done = 0


def import_dask():
    """``(dask, dask.array)``, or an ImportError saying what to install."""
    try:
        import dask
        import dask.array as da
    except ImportError as err:
        raise ImportError(
            "X is a Dask collection: bayesgmm fits it chunk by chunk with Dask, which is an "
            f"optional extra that is not installed. Install it with {_INSTALL} (dask[array] "
            "and distributed), or pass a NumPy array."
        ) from err
    return dask, da


class DaskRows:
    """Rows of a dask array (and their weights) as the passes read them.

    Parameters
    ----------
    X : dask array of shape (N, D) or (N,), or dask DataFrame
        Converted to one chunk of columns (the chunks of rows are kept).
    sample_weight : None, scalar, array of shape (N,) or dask array
        Brought to the row chunks of ``X``.
    dtype : numpy dtype
        The fit's dtype; each chunk is converted on its worker.
    """

    def __init__(self, X, sample_weight, dtype):
        self.dask, da = import_dask()
        if hasattr(X, "to_dask_array"):  # DataFrame or Series
            X = X.to_dask_array(lengths=True)
        if not isinstance(X, da.Array):
            raise TypeError(f"X must be a dask array or DataFrame; got {type(X).__name__}.")
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features); got {X.ndim}-D {X.shape}.")
        if any(math.isnan(n) for n in X.shape):
            raise ValueError(
                f"X has chunks of unknown size (shape {X.shape}); call X.compute_chunk_sizes() "
                "(or to_dask_array(lengths=True)) before fitting."
            )
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must hold real numbers; got dtype {X.dtype}.")
        N, D = X.shape
        if N == 0 or D == 0:
            raise ValueError(f"X has no rows or no columns (shape {X.shape}).")
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        self.X, self.n_rows, self.n_features, self.dtype = X, int(N), int(D), np.dtype(dtype)
        self.w = self._weights(sample_weight, da)
        self.starts = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(int)
        self._x = list(X.to_delayed().ravel())
        self._w = [None] * len(self._x) if self.w is None else list(self.w.to_delayed().ravel())

    def _weights(self, sample_weight, da):
        if sample_weight is None:
            return None
        if hasattr(sample_weight, "to_dask_array"):
            sample_weight = sample_weight.to_dask_array(lengths=True)
        if not isinstance(sample_weight, da.Array):
            w = np.asarray(sample_weight)
            if w.dtype.kind not in "biuf":
                raise ValueError(f"sample_weight must be numeric; got dtype {w.dtype}.")
            w = np.full(self.n_rows, w) if w.ndim == 0 else w
            sample_weight = da.from_array(w, chunks=(self.X.chunks[0],))
        if sample_weight.dtype.kind not in "biuf":
            raise ValueError(f"sample_weight must be numeric; got dtype {sample_weight.dtype}.")
        if sample_weight.shape != (self.n_rows,):
            raise ValueError(
                f"sample_weight must have shape ({self.n_rows},), one weight per row of X; "
                f"got shape {sample_weight.shape}."
            )
        if sample_weight.chunks[0] != self.X.chunks[0]:
            sample_weight = sample_weight.rechunk((self.X.chunks[0],))
        return sample_weight

    @property
    def n_chunks(self) -> int:
        return len(self._x)

    def reduce(self, fn, merge, *args, with_index=False):
        """``merge`` of ``fn(chunk, weights, [index, start,] *args)`` over all chunks.

        One task per chunk, then a tree of ``merge`` tasks of fan-in
        :data:`SPLIT_EVERY` in row order; one ``compute`` on the current scheduler.
        """
        global passes_done
        delayed = self.dask.delayed
        parts = [
            delayed(fn, pure=True)(x, w, *((i, int(self.starts[i])) if with_index else ()), *args)
            for i, (x, w) in enumerate(zip(self._x, self._w, strict=True))
        ]
        while len(parts) > 1:
            parts = [
                delayed(merge, pure=True)(parts[i : i + SPLIT_EVERY])
                for i in range(0, len(parts), SPLIT_EVERY)
            ]
        (out,) = self.dask.compute(parts[0])
        passes_done += 1
        return out

    def summary(self, n_components: int, key) -> _chunks.ChunkSummary:
        """The first pass (see the module docstring); raises on invalid values."""
        head = max(20 * n_components, 1000)
        rate = min(1.0, SAMPLE_ROWS / self.n_rows)
        seed = [int(v) for v in np.asarray(jax.random.key_data(key)).ravel()]
        merge = functools.partial(_chunks.merge_summaries, head_rows=head)
        args = (self.dtype, rate, seed, head)
        out = self.reduce(_chunks.summarise_chunk, merge, *args, with_index=True)
        if out.problem is not None:
            raise ValueError(out.problem[1])
        if not out.weight > 0:
            raise ValueError(
                "sample_weight sums to zero: at least one row needs a positive weight."
            )
        if out.n_positive < n_components:
            raise ValueError(
                f"only {out.n_positive} row(s) have a positive sample_weight, fewer than "
                f"n_components={n_components}; use fewer components or give more rows weight."
            )
        return out


def column_stats(s: _chunks.ChunkSummary, dtype) -> ColumnStats:
    """The in-memory :class:`ColumnStats` from the first pass's summary."""
    return ColumnStats(
        s.n_positive,
        s.mean.astype(dtype),
        (np.diagonal(s.m2) / s.weight).astype(dtype),
        s.lo.astype(dtype),
        s.hi.astype(dtype),
    )


@x64
def fit_em(
    X,
    n_components,
    *,
    covariance_type="full",
    prior=None,
    sample_weight=None,
    init="kmeans++",
    n_init=1,
    tol=TOL,
    max_iter=MAX_ITER,
    reg_covar=None,
    seed=0,
    key=None,
    dtype=None,
    block_size=None,
    feature_names=None,
) -> EMResult:
    """:func:`bayesgmm.fit_em` on a dask array: the same arguments, the same :class:`EMResult`.

    See :func:`bayesgmm.fit_em` for the parameters and the module docstring
    for the passes over the data. ``block_size`` is the rows per block of
    the compiled kernel inside each chunk. A chunk of ``n`` rows occupies
    about ``2 n D`` numbers on its worker while it is read; keep chunks of
    10^5 to 10^6 rows. Data read from disk are read again at every
    iteration: ``X.persist()`` first when the cluster's memory holds them.

    Examples
    --------
    >>> import dask.array as da  # doctest: +SKIP
    >>> from dask.distributed import Client  # doctest: +SKIP
    >>> client = Client()  # doctest: +SKIP
    >>> X = da.from_zarr("events.zarr")  # doctest: +SKIP
    >>> em = bg.fit_em(X, n_components=8, n_init=3)  # doctest: +SKIP
    """
    dt = resolve_dtype(dtype, X)
    rows = DaskRows(X, sample_weight, dt)
    N, D = rows.n_rows, rows.n_features
    K = check_n_components(n_components, N)
    names = check_feature_names(feature_names, X, D)
    settings = check_em_settings(
        np.empty((0, D), dt),  # only its width and dtype are read
        K,
        covariance_type=covariance_type,
        prior=prior,
        init=init,
        n_init=n_init,
        tol=tol,
        max_iter=max_iter,
        reg_covar=reg_covar,
        block_size=block_size,
    )
    if key is None:
        seed = check_seed(seed)
        key = jax.random.key(0 if seed is None else seed)
    summary = rows.summary(K, jax.random.fold_in(key, SAMPLE_SALT))
    stats = column_stats(summary, dt)
    # constant columns from the pass's ranges; distinct rows among the first rows only
    warn_data_problems(summary.head_x, summary.head_w, K, stats)
    warn_reg_covar_scale(None, None, settings["reg_covar"], stats)
    result = _fit(rows, summary, stats, K, key=key, **settings)
    return result if names is None else replace(result, feature_names=names)


class Setup(NamedTuple):
    """What a fit computes with, from the first pass: the standardising map and the layout.

    ``prior`` and ``reg_covar`` are in standardised units; the weights are
    divided by ``w_scale`` on the workers (see :class:`~bayesgmm.em._dask_chunks.ChunkLayout`).
    """

    std: Standardizer
    layout: _chunks.ChunkLayout
    w_scale: float
    prior: object
    reg_covar: np.ndarray


def setup(rows: DaskRows, summary, stats: ColumnStats, K: int, *, prior, reg_covar, block_size):
    """The :class:`Setup` of a fit, as :func:`bayesgmm.em._fit.fit_validated` sets up in memory."""
    std = Standardizer.from_stats(stats)
    w_scale = 1.0
    if prior is None:  # as _weights_for_fit: EM runs on weights of mean 1
        w_scale = summary.weight / rows.n_rows
        if not np.isfinite(w_scale):
            raise ValueError("sample_weight's sum overflows; divide the weights by a constant.")
    B = block_size or em_rows_per_block(K, rows.n_features)
    layout = _chunks.ChunkLayout(std, w_scale, B, rows.dtype.str)
    reg = np.asarray(reg_covar / std.scale**2, rows.dtype)
    return Setup(std, layout, w_scale, std.prior_in(prior), reg)


def _fit(rows: DaskRows, summary, stats, K, *, key, structure, prior, init, n_init, tol,
         max_iter, reg_covar, block_size) -> EMResult:  # fmt: skip
    s = setup(rows, summary, stats, K, prior=prior, reg_covar=reg_covar, block_size=block_size)
    if isinstance(init, GMMParams):
        starts = [s.std.params_in(init)]
    else:
        starts = initial_params(rows, s, summary, key, n_init, K, init, structure)
    total_w = summary.weight / s.w_scale
    out = _driver.run(
        lambda params, active: e_step_pass(rows, s, params, active),
        starts,
        structure=structure,
        prior=s.prior,
        reg_covar=s.reg_covar,
        tol=tol,
        max_iter=max_iter,
        total_w=total_w,
        dtype=rows.dtype,
    )
    totals = (summary.weight, summary.n_positive)
    return _select_best(out, s.std, prior, structure, totals, reg_covar, rows.n_features,
                        s.w_scale)  # fmt: skip


def _sample_centers(keys, X, w, n_components: int, method: str):
    """The restarts' initial centres (R, K, D), chosen on the sample as in memory."""

    def one(key):
        if method == "random_from_data":
            scores = jax.numpy.log(w) + jax.random.gumbel(key, w.shape, X.dtype)
            return X[jax.lax.top_k(scores, n_components)[1]]
        centers = kmeans_plusplus(key, X, w, n_components)
        if method == "kmeans":
            centers = _lloyd(X, w, centers, _LLOYD_ITERATIONS)
        return centers

    return jax.lax.map(one, keys)


_sample_centers_jit = jax.jit(_sample_centers, static_argnames=("n_components", "method"))
_m_step_jit = jax.jit(_em_core.m_step, static_argnames=("structure",))


def initial_stats(rows, s: Setup, summary, key, n_init, K, method):
    """Statistics of every restart's initial responsibilities (leading axis ``n_init``).

    The restarts' keys are ``split(key, n_init)``, as in memory. Each
    restart's centres are chosen on the first pass's sample by ``method``;
    one pass over the data assigns every row to its nearest centre (random
    responsibilities for ``"random"``) and sums the statistics.
    """
    keys = jax.random.split(key, n_init)
    if method == "random":
        starts = np.asarray(jax.random.key_data(keys))
    else:
        dt = rows.dtype
        n = summary.sample_x.shape[0]
        m = bucket(max(n, 1), 32)  # padded to its class: zero-weight rows are never picked
        X = np.zeros((m, rows.n_features), dt)
        X[:n] = (summary.sample_x - s.std.center) / s.std.scale
        w = np.zeros(m, dt)
        w[:n] = summary.sample_w
        starts = np.asarray(_sample_centers_jit(keys, X, w, K, method))
    return rows.reduce(
        _chunks.chunk_init_stats, _chunks.sum_stats, s.layout, starts, K, method, with_index=True
    )


def initial_params(rows, s: Setup, summary, key, n_init, K, method, structure):
    """Initial parameters of every restart (standardised): :func:`initial_stats`, then M-steps."""
    total = initial_stats(rows, s, summary, key, n_init, K, method)
    out = []
    for r in range(n_init):
        stats = _em_core.Stats(*(leaf[r] for leaf in total))
        out.append(jax.tree.map(np.asarray, _m_step_jit(stats, structure, s.prior, s.reg_covar)))
    return out


def e_step_pass(rows, s: Setup, params: list[GMMParams], active=None) -> _em_core.Stats:
    """One pass: the E-step statistics of each of ``params`` (standardised), leading axis R."""
    active = np.ones(len(params), bool) if active is None else active
    return rows.reduce(
        _chunks.chunk_e_step, _chunks.sum_stats, s.layout, *_driver.stack(params), active
    )


def from_npy(path, chunk_rows: int = 1 << 18):
    """A dask array of the rows of a ``.npy`` file, read in chunks where they are used.

    Each chunk is a task that opens the file memory-mapped on its worker and
    copies ``chunk_rows`` rows out of it, so nothing but the file's path
    travels through the graph (``da.from_array(np.load(path, mmap_mode="r"))``
    would pickle the whole array into it). The workers must see the same path.

    Parameters
    ----------
    path : path-like
        A ``.npy`` file holding a 2-D array of shape (N, D) (or 1-D, N values).
    chunk_rows : int
        Rows per chunk; ``chunk_rows x D`` numbers are in memory per chunk.

    Returns
    -------
    dask array of shape (N, D)
    """
    dask, da = import_dask()
    path = os.fspath(path)
    head = np.load(path, mmap_mode="r")
    N, dtype = head.shape[0], head.dtype
    shape = head.shape[1:] if head.ndim == 2 else ()
    del head
    parts = [
        da.from_delayed(
            dask.delayed(_npy_rows, pure=True)(path, start, min(start + chunk_rows, N)),
            shape=(min(start + chunk_rows, N) - start, *shape),
            dtype=dtype,
        )
        for start in range(0, N, chunk_rows)
    ]
    return da.concatenate(parts, axis=0)


def _npy_rows(path: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the ``.npy`` file at ``path``, copied out of a memory map."""
    return np.array(np.load(path, mmap_mode="r")[start:stop])
