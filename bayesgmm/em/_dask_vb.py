"""Variational Bayes on a dask array: :func:`bayesgmm.fit_vb` chunk by chunk on a Dask cluster.

The passes are those of :mod:`bayesgmm.em._dask` (summary, initialisation,
one per iteration): VB's E-step is an ordinary mixture E-step for the
parameters :func:`~bayesgmm._core._conjugate.expected_params` returns, so the
workers run the same chunk kernel, and the driver does the conjugate update
and the ELBO in the order of :func:`bayesgmm.em._vb_core.run_vb`.

The default prior (``prior=None``) is :meth:`bayesgmm.Prior.default`'s,
computed from the first pass's weighted mean and covariance: calling
``Prior.default`` on a dask array would instead read it all into memory.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm._core import _conjugate
from bayesgmm._core import covariance as _cov
from bayesgmm._core._precision import resolve_dtype, x64
from bayesgmm._core._validation import (
    check_feature_names,
    check_n_components,
    check_seed,
    warn_data_problems,
)
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.em import _core as _em_core
from bayesgmm.em import _vb_core
from bayesgmm.em._dask import (
    SAMPLE_SALT,
    DaskRows,
    column_stats,
    e_step_pass,
    initial_stats,
    setup,
)
from bayesgmm.em._fit import MAX_ITER, TOL, check_em_settings
from bayesgmm.em._vb import VBResult, vb_result

__all__ = ["default_prior", "fit_vb", "prior_default"]


def default_prior(summary, K: int, dtype) -> Prior:
    """``Prior.default(X, K)`` from the first pass's weighted mean and covariance."""
    D = summary.mean.shape[0]
    cov = summary.m2 / summary.weight
    eig = np.linalg.eigvalsh(cov)
    if not eig[0] > 1e-12 * max(np.trace(cov), 1e-300):
        raise ValueError(
            "Prior.default: the data covariance is singular or nearly so (a constant column, "
            "linearly dependent columns, columns on very different scales); pass an explicit "
            "prior=bg.Prior(...) with a positive definite scale."
        )
    return Prior(
        weight_concentration=np.full(K, 1.0, dtype=dtype),
        mean=summary.mean.astype(dtype),
        mean_precision=np.asarray(0.01, dtype=dtype),
        dof=np.asarray(D + 2.0, dtype=dtype),
        scale=(cov / K ** (2.0 / D)).astype(dtype),
    )


@x64
def prior_default(X, n_components: int, dtype=None) -> Prior:
    """``Prior.default(X, K)`` of a dask array from one pass over it (no row in memory)."""
    dt = resolve_dtype(dtype, X)
    rows = DaskRows(X, None, dt)
    K = check_n_components(n_components, rows.n_rows)
    return default_prior(rows.summary(K, jax.random.key(0)), K, dt)


@functools.partial(jax.jit, static_argnames=("structure",))
def _expected(post, structure):
    """The mixture whose E-step is VB's, its largest log weight shifted to 0, and the shift."""
    fam = _cov.get(structure).conjugate
    log_w, means, cov = _conjugate.expected_params(post, fam)
    shift = jnp.max(log_w)
    return GMMParams._unchecked(jnp.exp(log_w - shift), means, cov), shift


@functools.partial(jax.jit, static_argnames=("structure",))
def _elbo_and_update(post, stats, shift, w_total, prior, structure):
    """ELBO of ``post`` from its E-step statistics, and the next ``q(theta)``."""
    fam = _cov.get(structure).conjugate
    elbo = stats.log_lik + shift * w_total - _conjugate.kl_to_prior(post, prior, fam)
    return elbo, _vb_core._update(stats, prior, structure)


_update_jit = jax.jit(_vb_core._update, static_argnames=("structure",))


def _take(tree, r):
    return jax.tree.map(lambda leaf: np.asarray(leaf[r]), tree)


def _elbos(rows, s, posts, active, w_total, structure):
    """One pass: the ELBO and the next ``q(theta)`` of every active restart."""
    shifted = [_expected(post, structure) for post in posts]
    params = [jax.tree.map(np.asarray, p) for p, _ in shifted]
    total = e_step_pass(rows, s, params, active)
    out = {}
    for r in np.flatnonzero(active):
        stats = _em_core.Stats(*(np.asarray(leaf[r]) for leaf in total))
        elbo, new = _elbo_and_update(posts[r], stats, shifted[r][1], w_total, s.prior, structure)
        out[r] = (float(elbo), jax.tree.map(np.asarray, new))
    return out


def _run(rows, s, posts, structure, tol, max_iter, w_total, dt):
    """CAVI of every restart, their E-steps sharing each pass (as ``run_vb``)."""
    R = len(posts)
    good = list(posts)
    n_iter = np.zeros(R, np.int32)
    prev = np.full(R, -np.inf)
    converged = np.zeros(R, bool)
    failed = np.zeros(R, bool)
    history = np.full((R, max_iter + 1), np.nan, dt)
    final = np.full(R, np.nan, dt)
    phase = np.zeros(R, np.int8)  # 0: iterating, 1: final evaluation, 2: done
    while (phase < 2).any():
        for r, (elbo, new) in _elbos(rows, s, posts, phase < 2, w_total, structure).items():
            ok = math.isfinite(elbo)
            i = n_iter[r]
            if phase[r] == 0:
                history[r, i] = elbo
                failed[r] = not ok
                converged[r] = ok and abs(elbo / w_total - prev[r]) < tol
                if ok:
                    good[r], posts[r] = posts[r], new
                    n_iter[r] += 1
                    prev[r] = elbo / w_total
                if failed[r]:
                    posts[r], phase[r] = good[r], 2
                elif converged[r] or n_iter[r] >= max_iter:
                    phase[r] = 1
            else:
                if ok:
                    final[r] = history[r, i] = elbo
                else:
                    posts[r], failed[r], converged[r] = good[r], True, False
                phase[r] = 2
    return _vb_core.VBOutput(
        post=jax.tree.map(lambda *leaves: np.stack(leaves), *posts),
        elbo=final,
        n_iter=n_iter,
        converged=converged & ~failed,
        failed=failed,
        history=history,
    )


@x64
def fit_vb(
    X,
    n_components,
    *,
    prior=None,
    covariance_type="full",
    sample_weight=None,
    init="kmeans++",
    n_init=1,
    tol=TOL,
    max_iter=MAX_ITER,
    seed=0,
    key=None,
    dtype=None,
    block_size=None,
    feature_names=None,
) -> VBResult:
    """:func:`bayesgmm.fit_vb` on a dask array: the same arguments, the same :class:`VBResult`.

    See :func:`bayesgmm.fit_vb` for the parameters and :mod:`bayesgmm.em._dask`
    for the passes over the data. With ``prior=None`` the default prior comes
    from the first pass (the data are not read into memory).
    """
    dt = resolve_dtype(dtype, X)
    rows = DaskRows(X, sample_weight, dt)
    N, D = rows.n_rows, rows.n_features
    K = check_n_components(n_components, N)
    names = check_feature_names(feature_names, X, D)
    if prior is not None and not isinstance(prior, Prior):
        raise TypeError(f"prior must be a bayesgmm.Prior or None; got {type(prior).__name__}.")
    settings = check_em_settings(
        np.empty((0, D), dt),
        K,
        covariance_type=covariance_type,
        prior=None,  # checked below (VB takes any positive concentration)
        init=init,
        n_init=n_init,
        tol=tol,
        max_iter=max_iter,
        reg_covar=None,
        block_size=block_size,
    )
    structure = settings["structure"]
    if _cov.get(structure).conjugate is None:
        raise ValueError(
            f"covariance_type={structure!r} has no conjugate update; fit_vb needs one "
            "(full, tied, diag, spherical)."
        )
    if key is None:
        seed = check_seed(seed)
        key = jax.random.key(0 if seed is None else seed)
    summary = rows.summary(K, jax.random.fold_in(key, SAMPLE_SALT))
    stats = column_stats(summary, dt)
    if prior is None:
        prior = default_prior(summary, K, dt)
    prior = prior.check(K, D).astype(dt)
    warn_data_problems(summary.head_x, summary.head_w, K, stats)
    # VB uses the weights as given (w_scale 1) and no regularisation
    s = setup(rows, summary, stats, K, prior=prior, reg_covar=0.0, block_size=block_size)
    init = settings["init"]
    if isinstance(init, GMMParams):
        total = e_step_pass(rows, s, [s.std.params_in(init)])
        n = 1
    else:
        n = settings["n_init"]
        total = initial_stats(rows, s, summary, key, n, K, init)
    posts = [
        jax.tree.map(np.asarray, _update_jit(_take(total, r), s.prior, structure))
        for r in range(n)
    ]
    out = _run(rows, s, posts, structure, settings["tol"], settings["max_iter"],
               summary.weight, dt)  # fmt: skip
    result = vb_result(out, s.std, structure, prior, summary.weight, D, dt)
    return result if names is None else replace(result, feature_names=names)
