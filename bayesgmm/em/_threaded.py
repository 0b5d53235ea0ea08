"""EM on every core: the E-step's blocks split over host threads, for large in-memory data.

XLA's CPU runtime runs the loop over the blocks of one compiled program on
one thread: EM's blocks are small (:mod:`bayesgmm._core._blocks`), so each of
their operations runs inline on the calling thread, and two independent loops
in one program still run one after the other. Two host threads that each
call a compiled E-step on their own half of the blocks do run side by side
(jaxlib lets go of the GIL while a program runs): 1.5x at N=1e5, 1.7x at
N=1e6 (D=10, K=8) on 2 cores. So for large data :func:`fit` moves EM's loop
to the host (:func:`bayesgmm.em._driver.run`: the M-step and the stopping
rule, each a small compiled program) and runs each E-step as
:func:`bayesgmm.em._core.e_step_range` on ``T`` consecutive runs of blocks,
one per thread, summed in a fixed order: the result does not depend on
which thread finishes first. The starts are those of the one-program fit
(:func:`bayesgmm.em._core.init_from_key`), and the fit agrees with it to the
rounding of sums in another order.

:func:`threads_for` decides: more than one usable core, JAX on one CPU device
(with several, :mod:`bayesgmm._core._devices` splits the blocks instead), and
at least :data:`MIN_WORK` of E-step work per iteration (rows x K x quadratic
features), about 3 ms on one core: below that, the host's few hundred
microseconds per iteration would eat what the second core gives.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import threading

import jax
import numpy as np

from bayesgmm._core import _devices
from bayesgmm._core._precision import x64
from bayesgmm._core._quadratic import n_quadratic_features
from bayesgmm._core.params import GMMParams
from bayesgmm.em import _core as _em_core
from bayesgmm.em import _driver, _programs

__all__ = ["MIN_WORK", "fit", "run", "threads_for", "usable_cores"]

#: Least E-step work (rows x K x quadratic features) per iteration that runs on threads.
MIN_WORK = 1 << 24
#: Most threads one E-step is split over.
MAX_THREADS = 16

_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_for(n_rows: int, n_components: int, n_features: int, n_blocks: int) -> int:
    """How many threads the E-step of a fit of this size runs on (1: the one-program fit)."""
    if jax.default_backend() != "cpu" or _devices.n_shards() > 1:
        return 1
    work = n_rows * n_components * n_quadratic_features(n_features)
    if work < MIN_WORK:
        return 1
    return max(1, min(usable_cores(), MAX_THREADS, n_blocks))


def _pool(n_workers: int) -> concurrent.futures.ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < n_workers:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL = concurrent.futures.ThreadPoolExecutor(n_workers, "bayesgmm-e-step")
        return _POOL


def run(args: tuple, kwargs: dict, options: dict, total_w: float) -> _em_core.FitOutput:
    """:func:`bayesgmm.em._core.fit_from_key` on ``args`` and ``kwargs``: on threads or not.

    The E-step runs on threads when :func:`threads_for` says so and the fit
    is not padded (every component and feature the model's, which
    :data:`MIN_WORK` ensures); otherwise the one compiled program runs.
    """
    key_data, X, w, params0 = args
    B, D = X.shape[1:]
    K = kwargs["n_components"]
    n_active, n_features = kwargs.get("n_active"), kwargs.get("n_features")
    threads = threads_for(int(kwargs["n_used"]) * B, K, D, int(kwargs["n_used"]))
    padded = (n_active is not None and int(n_active) != K) or (
        n_features is not None and int(n_features) != D
    )
    if threads == 1 or padded:
        program, tree = _em_core.fit_from_key, _em_core.FIT_OUTPUT_TREE
        return _programs.call(program, "fit_em", args, kwargs, _em_core.STATIC, options, tree)
    structure = kwargs["structure"]
    if isinstance(structure, tuple):  # the family of structures: the one picked
        structure = structure[int(kwargs["which"])]
    return fit(
        key_data,
        X,
        w,
        params0,
        threads=threads,
        n_init=kwargs["n_init"],
        key_impl=kwargs["key_impl"],
        n_components=K,
        method=kwargs["method"],
        structure=structure,
        prior=kwargs["prior"],
        reg_covar=kwargs["reg_covar"],
        tol=kwargs["tol"],
        max_iter=kwargs["max_iter"],
        n_used=kwargs["n_used"],
        total_w=total_w,
        options=options,
    )


def fit(
    key_data,
    X,
    w,
    params0,
    *,
    threads: int,
    n_init: int,
    key_impl: str,
    n_components: int,
    method: str,
    structure: str,
    prior,
    reg_covar,
    tol,
    max_iter,
    n_used,
    total_w: float,
    options: dict,
) -> _em_core.FitOutput:
    """EM from ``params0`` (or ``n_init`` starts from the key), its E-steps on ``threads``.

    The arguments are those of :func:`bayesgmm.em._core.fit_from_key` for an
    unpadded fit (``structure`` a name, every component and feature the
    model's); ``X`` and ``w`` are the blocked data on the device, of which the
    first ``n_used`` blocks hold data, of total weight ``total_w``.
    """
    dtype = X.dtype
    if params0 is not None:
        starts = [jax.tree.map(np.asarray, params0)]
    else:
        settings = dict(
            n_init=n_init,
            key_impl=key_impl,
            n_components=n_components,
            method=method,
            structure=structure,
            prior=prior,
            reg_covar=reg_covar,
        )
        init = _em_core.init_from_key
        stacked = _programs.call(
            init, "em_init", (key_data, X, w), settings, _em_core.INIT_STATIC, options,
            _em_core.PARAMS_TREE,
        )  # fmt: skip
        stacked = jax.tree.map(np.asarray, stacked)
        starts = [jax.tree.map(lambda leaf, r=r: leaf[r], stacked) for r in range(n_init)]
    n_used = int(n_used)
    edges = [n_used * t // threads for t in range(threads + 1)]
    bounds = [(np.int32(lo), np.int32(hi)) for lo, hi in itertools.pairwise(edges)]
    example = (starts[0], X, w, *bounds[0])
    step = _programs.bind(
        _em_core.e_step_range, "em_e_step_range", example, {}, (), options, _em_core.STATS_TREE
    )
    pool = _pool(threads - 1)

    @x64  # JAX's 64-bit switch is per thread: the pool's threads get the fit's
    def part(params, t):
        return jax.tree.map(np.asarray, step(params, X, w, *bounds[t]))

    first = [True]

    def stats_of(params) -> _em_core.Stats:
        # the first call loads or compiles the program: on this thread alone
        head = part(params, 0) if first[0] else None
        first[0] = False
        futures = [pool.submit(part, params, t) for t in range(1, threads)]
        parts = [part(params, 0) if head is None else head] + [f.result() for f in futures]
        total = parts[0]
        for p in parts[1:]:  # in the order of the blocks, whatever finished first
            total = jax.tree.map(np.add, total, p)
        return total

    def e_pass(params: list[GMMParams], active) -> _em_core.Stats:
        rows = []
        for p, on in zip(params, active, strict=True):
            s = stats_of(p) if on else None
            rows.append(s)
        zero = next(s for s in rows if s is not None)
        rows = [jax.tree.map(np.zeros_like, zero) if s is None else s for s in rows]
        return jax.tree.map(lambda *leaves: np.stack(leaves), *rows)

    return _driver.run(
        e_pass,
        starts,
        structure=structure,
        prior=prior,
        reg_covar=reg_covar,
        tol=float(tol),
        max_iter=int(max_iter),
        total_w=total_w,
        dtype=dtype,
    )
