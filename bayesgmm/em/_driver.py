"""EM's loop on the host: the M-step and the stopping rule here, the E-step passed in.

:func:`bayesgmm.em._core.run_em` keeps the whole loop inside one compiled
program. Two engines cannot: a fit on a Dask cluster (:mod:`bayesgmm.em._dask`),
whose E-step runs on the workers, and a large in-memory fit whose E-step is
split over host threads (:mod:`bayesgmm.em._threaded`). Both hand
:func:`run` a function that computes the E-step statistics of every running
restart, and get the same :class:`~bayesgmm.em._core.FitOutput` as the
compiled loop: the same order of operations, the same history, the same
fallback to the last good parameters; only sums in another order differ.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import numpy as np

from bayesgmm._core.params import GMMParams
from bayesgmm.em import _core as _em_core

__all__ = ["run", "stack"]

_FIELDS = ("weights", "means", "covariances")


@functools.partial(jax.jit, static_argnames=("structure",))
def _objective_and_m_step(params, stats, prior, reg_covar, structure):
    obj = _em_core.objective(params, stats, structure, prior)
    return obj, _em_core.m_step(stats, structure, prior, reg_covar)


def stack(params: list[GMMParams]) -> list[np.ndarray]:
    """Weights, means and covariances of the restarts, stacked on a leading axis."""
    return [np.stack([np.asarray(getattr(p, f)) for p in params]) for f in _FIELDS]


def run(
    e_pass: Callable[[list[GMMParams], np.ndarray], _em_core.Stats],
    starts: list[GMMParams],
    *,
    structure: str,
    prior,
    reg_covar,
    tol: float,
    max_iter: int,
    total_w: float,
    dtype,
) -> _em_core.FitOutput:
    """EM for every restart of ``starts``, the restarts' E-steps sharing each pass.

    ``e_pass(params, active)`` returns the E-step statistics of each of
    ``params`` (standardised units) that is ``active``, stacked on a leading
    axis (zeros for the others). This is the host's half of
    :func:`bayesgmm.em._core.run_em` and :func:`~bayesgmm.em._core.finish`,
    restart by restart, in the same order of operations: a restart that has
    stopped is evaluated once more (its final parameters) in the next pass,
    then drops out of the passes. ``total_w`` is the sum of the weights EM
    runs on (the stopping rule compares the objective per unit of weight).
    """
    R = len(starts)
    params, good = list(starts), list(starts)
    n_iter = np.zeros(R, np.int32)
    prev = np.full(R, -np.inf)
    converged = np.zeros(R, bool)
    failed = np.zeros(R, bool)
    history = np.full((R, max_iter + 1), np.nan, dtype)
    history_obj = np.full((R, max_iter + 1), np.nan, dtype)
    final = np.full((3, R), np.nan, dtype)  # log_lik, objective, hard_log_resp
    phase = np.zeros(R, np.int8)  # 0: iterating, 1: final evaluation, 2: done
    while (phase < 2).any():
        active = phase < 2
        total = e_pass(params, active)
        for r in np.flatnonzero(active):
            stats = _em_core.Stats(*(np.asarray(leaf[r]) for leaf in total))
            obj, new = _objective_and_m_step(params[r], stats, prior, reg_covar, structure)
            obj = float(obj)
            ok = math.isfinite(obj)
            i = n_iter[r]
            if phase[r] == 0:
                history[r, i], history_obj[r, i] = stats.log_lik, obj
                failed[r] = not ok
                converged[r] = ok and abs(obj / total_w - prev[r]) < tol
                if ok:
                    good[r], params[r] = params[r], jax.tree.map(np.asarray, new)
                    n_iter[r] += 1
                    prev[r] = obj / total_w
                if failed[r]:
                    params[r], phase[r] = good[r], 2
                elif converged[r] or n_iter[r] >= max_iter:
                    phase[r] = 1
            else:
                finite = all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params[r]))
                if ok and finite:
                    final[:, r] = stats.log_lik, obj, stats.hard_log_resp
                    history[r, i], history_obj[r, i] = stats.log_lik, obj
                else:
                    params[r], failed[r], converged[r] = good[r], True, False
                phase[r] = 2
    return _em_core.FitOutput(
        params=GMMParams._unchecked(*stack(params)),
        log_lik=final[0],
        objective=final[1],
        hard_log_resp=final[2],
        n_iter=n_iter,
        converged=converged & ~failed,
        failed=failed,
        history=history,
        history_objective=history_obj,
    )
