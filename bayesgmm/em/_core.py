"""Pure functional EM core: sufficient statistics, M-step, one step, the loop.

Nothing here validates or converts; :mod:`bayesgmm.em` is the shell that does.
Data arrive in blocks, ``X`` of shape (n_blocks, B, D) and ``w`` of shape
(n_blocks, B) (padding rows carry weight 0), so that no intermediate is larger
than ``B x K x D``. Restarts run one after another (``lax.map`` over keys) in
one compiled program.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesgmm._core import _devices, _linalg
from bayesgmm._core import covariance as _cov
from bayesgmm._core._quadratic import (
    coefficients,
    n_quadratic_features,
    quadratic_features,
    unpack_stats,
)
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import log_prior
from bayesgmm.em._init import active_components, initial_responsibilities


class Stats(NamedTuple):
    """Weighted sufficient statistics of the E-step.

    counts (K,), sums (K, D), outer (K, D, D), log_lik (), hard_log_resp ().
    ``hard_log_resp`` is ``sum_n w_n log max_k r_nk`` (for ICL).
    """

    counts: jax.Array
    sums: jax.Array
    outer: jax.Array
    log_lik: jax.Array
    hard_log_resp: jax.Array


class EMState(NamedTuple):
    """Loop state of one EM run (one restart)."""

    params: GMMParams  # parameters to evaluate next
    good_params: GMMParams  # last parameters with a finite objective
    n_iter: jax.Array  # M-steps done
    prev_objective: jax.Array  # mean objective per unit weight at the previous step
    converged: jax.Array
    failed: jax.Array  # a non-finite objective was met
    history: jax.Array  # (history_len,) total log-likelihood of params 0..n_iter, then NaN
    history_objective: jax.Array  # (history_len,) log-likelihood + log prior


def _block_stats(xb, wb, resp_b):
    """Statistics of one block from weighted responsibilities ``resp_b`` (B, K).

    One GEMM gives the sums and the outer products together:
    ``[x, 1]^T @ (r x)``, with ``(r x)[n, (d, k)] = r_nk x_nd`` of shape (B, D K)
    and the contraction over the block's rows.
    """
    B, D = xb.shape
    K = resp_b.shape[-1]
    r = resp_b * wb[:, None]
    rx = (xb[:, :, None] * r[:, None, :]).reshape(B, D * K)
    x1_t = jnp.concatenate([xb.T, jnp.ones((1, B), xb.dtype)], axis=0)  # (D + 1, B)
    m = (x1_t @ rx).reshape(D + 1, D, K)  # m[e, d, k] = sum_n x1_en r_nk x_nd
    outer = jnp.transpose(m[:D], (2, 1, 0))
    return r.sum(axis=0), m[D].T, outer


def _over_blocks(block, init, X, w, n_used):
    """Fold ``block(acc, (x_b, w_b))`` over the first ``n_used`` blocks of ``X``, ``w``.

    ``n_used`` is a traced integer: blocks past it (padding up to the shape
    class, see :func:`bayesgmm._core._blocks.em_block_layout`) cost nothing, and
    one compiled program serves every number of blocks up to the allocated one.
    """

    def fold(init, X, w, lo, hi):
        if hi is None:
            return jax.lax.scan(block, init, (X, w))[0]
        return jax.lax.fori_loop(lo, hi, lambda i, acc: block(acc, (X[i], w[i]))[0], init)

    return _devices.sum_over_row_shards(fold, init, X, w, n_used)


def e_step(params: GMMParams, X, w, n_used=None) -> Stats:
    """Sufficient statistics and log-likelihood of blocked data under ``params``.

    ``X`` (n_blocks, B, D) and ``w`` (n_blocks, B); only the first ``n_used``
    blocks are read (all when None). Each block is transposed (rows last) and
    expanded into its quadratic features ``f`` (F, B)
    (:mod:`bayesgmm._core._quadratic`): the log densities are one GEMM
    ``coef @ f``, the statistics of the weighted responsibilities ``r`` a
    second, ``r @ f^T``. That is about half the multiply-adds of the whitened
    residuals and the ``(D + 1) x D K`` statistics product, and 2x faster at
    D = 10 and D = 50 (see that module).
    """
    block, init = _e_step_block(params, X.dtype)
    return _unpack(_over_blocks(block, init, X, w, n_used), X.shape[-1])


def e_step_range(params: GMMParams, X, w, lo, hi) -> Stats:
    """:func:`e_step` over blocks ``lo`` to ``hi - 1`` only (traced integers), on one device.

    The statistics of a split of the blocks add up to those of the whole
    (:mod:`bayesgmm.em._threaded` runs the parts on host threads).
    """
    block, init = _e_step_block(params, X.dtype)
    acc = jax.lax.fori_loop(lo, hi, lambda i, acc: block(acc, (X[i], w[i]))[0], init)
    return _unpack(acc, X.shape[-1])


def _unpack(acc, D: int) -> Stats:
    S, ll, hard = acc
    return Stats(*unpack_stats(S, D), ll, hard)


def _e_step_block(params: GMMParams, dtype):
    """The E-step of one block, ``block(acc, (x_b, w_b))``, and its accumulator's zero."""
    chol = _linalg.cholesky(params.covariances)
    prec = _linalg.precision_cholesky(chol)
    logdet = _linalg.logdet_from_cholesky(chol)
    coef = coefficients(params.means, prec, logdet, jnp.log(params.weights))  # (K, F)
    K, D = params.means.shape

    def block(acc, xw):
        xb, wb = xw
        f = quadratic_features(xb.T)  # (F, B)
        lp = coef @ f  # (K, B)
        # logsumexp and the responsibilities with one exp per entry: shifted by
        # the row maximum, e = exp(lp - top) has a 1 in every finite row, so
        # s = sum_k e >= 1, lse = top + log(s) and r = e / s (a softmax).
        top = jnp.max(lp, axis=0)
        top = jnp.where(jnp.isfinite(top), top, 0.0)
        e = jnp.exp(lp - top)
        s = jnp.sum(e, axis=0)
        log_s = jnp.log(s)
        S = (e * (wb / s)) @ f.T  # (K, F): counts, sums, vech of the outer products
        used = wb > 0
        ll = jnp.sum(jnp.where(used, wb * (top + log_s), 0.0))
        # max_k log r_nk = (top - lse) = -log(s)
        hard = -jnp.sum(jnp.where(used, wb * log_s, 0.0))
        return (acc[0] + S, acc[1] + ll, acc[2] + hard), None

    zero = jnp.zeros((), dtype)
    return block, (jnp.zeros((K, n_quadratic_features(D)), dtype), zero, zero)


def stats_from_responsibilities(X, w, resp) -> Stats:
    """Statistics of blocked data for given responsibilities ``resp`` (n_blocks, B, K)."""

    def block(acc, xwr):
        counts, sums, outer = _block_stats(*xwr)
        return (acc[0] + counts, acc[1] + sums, acc[2] + outer), None

    K, D = resp.shape[-1], X.shape[-1]
    init = (jnp.zeros(K, X.dtype), jnp.zeros((K, D), X.dtype), jnp.zeros((K, D, D), X.dtype))
    (counts, sums, outer), _ = jax.lax.scan(block, init, (X, w, resp))
    zero = jnp.zeros((), X.dtype)
    return Stats(counts, sums, outer, zero, zero)


def m_step(
    stats: Stats, structure, prior, reg_covar, n_active=None, which=None, n_features=None
) -> GMMParams:
    """Parameters maximising the expected complete-data log-likelihood (or posterior).

    Means: ``(sum_n r_nk x_n + kappa m0) / (N_k + kappa)`` (``kappa = 0``
    without a prior). Covariances: the registry's estimator applied to the
    scatter matrices about those means, plus ``reg_covar * I``. Weights:
    ``(N_k + alpha_k - 1) / (N + sum(alpha) - K)`` (``alpha = 1`` without a prior).
    Empty components are guarded by ``10 * eps`` as in scikit-learn.

    With ``n_active`` (components padded to a shape class, maximum likelihood
    only), the components from ``n_active`` on are padding: their counts are
    taken as exactly 0, so every total is that of the first ``n_active``, and
    they come out with weight 0, mean 0 and covariance ``I``.

    ``structure`` is a name of the covariance registry, or (maximum likelihood
    only) a tuple of names and ``which`` a traced index into it: one compiled
    program then serves every structure of the tuple (the built-in four,
    :data:`bayesgmm.COVARIANCE_TYPES`, for maximum likelihood on small data).

    With ``n_features`` (features padded to a class with columns of zeros,
    maximum likelihood and the built-in structures only), the coordinates from
    ``n_features`` on are padding: they come out with mean 0, variance 1 and no
    covariance with the others, so they add the same constant to every
    component's log density. Before the structure's estimator sees the scatter
    matrices, their padding diagonal is filled with the mean of the real
    diagonal, which makes a spherical variance (trace over dimension) that of
    the real coordinates; every other estimate of the padding is replaced.
    """
    dtype = stats.sums.dtype
    K, D = stats.sums.shape
    active = active_components(K, n_active)
    counts = stats.counts + 10 * jnp.finfo(dtype).eps
    if active is not None:
        if prior is not None:
            raise ValueError("padded components are for maximum likelihood EM only")
        counts = jnp.where(active, counts, 0.0)
    if prior is None:
        # (counts are > 0 except on padding, whose sums are 0: its means are 0)
        means = stats.sums / jnp.where(counts > 0, counts, 1.0)[:, None]
        scatter = stats.outer - counts[:, None, None] * jnp.einsum("kd,ke->kde", means, means)
        weights = counts / counts.sum()
    else:
        kappa, m0 = prior.mean_precision, prior.mean
        means = (stats.sums + kappa * m0) / (counts + kappa)[:, None]
        scatter = (
            stats.outer
            + kappa * jnp.outer(m0, m0)
            - (counts + kappa)[:, None, None] * jnp.einsum("kd,ke->kde", means, means)
        )
        alpha = prior.weight_concentration
        weights = (counts + alpha - 1.0) / (counts.sum() + alpha.sum() - K)
    scatter = _linalg.symmetrize(scatter)
    real = active_components(D, n_features)  # (D,) the features in use, or None
    if real is not None:
        if prior is not None:
            raise ValueError("padded features are for maximum likelihood EM only")
        real2 = real[:, None] & real[None, :]
        diag = jnp.diagonal(scatter, axis1=-2, axis2=-1)
        fill = jnp.sum(jnp.where(real, diag, 0.0), axis=-1) / n_features
        scatter = jnp.where(real2, scatter, fill[:, None, None] * jnp.eye(D, dtype=dtype))
    if isinstance(structure, tuple):
        if prior is not None:
            raise ValueError("a family of structures is for maximum likelihood EM only")
        branches = [_cov.get(name).m_step for name in structure]
        cov = jax.lax.switch(which, branches, scatter, counts, None)
    else:
        cov = _cov.get(structure).m_step(scatter, counts, prior)
    cov = cov + reg_covar * jnp.eye(D, dtype=dtype)
    if real is not None:  # padding coordinates: mean 0, variance 1, independent
        means = jnp.where(real, means, 0.0)
        cov = jnp.where(real2, cov, jnp.eye(D, dtype=dtype))
    if active is not None:  # the padding's 0 / 0 replaced by a harmless component
        means = jnp.where(active[:, None], means, 0.0)
        cov = jnp.where(active[:, None, None], cov, jnp.eye(D, dtype=dtype))
    return GMMParams._unchecked(weights, means, cov)


def objective(params: GMMParams, stats: Stats, structure, prior):
    """Total log-likelihood plus, under a prior, the log prior density."""
    if prior is None:
        return stats.log_lik
    return stats.log_lik + log_prior(prior, params, structure)


def _all_finite(params: GMMParams):
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(params)]))


def run_em(
    params0,
    X,
    w,
    *,
    structure,
    prior,
    reg_covar,
    tol,
    max_iter,
    history_len: int,
    n_used=None,
    n_active=None,
    which=None,
    n_features=None,
) -> EMState:
    """EM from ``params0`` until the mean objective changes by less than ``tol``.

    The change is measured per unit of sample weight (the mean log-likelihood
    per sample, or log posterior per sample under a prior), as in scikit-learn.
    ``max_iter`` may be traced: the histories are ``history_len`` long (at
    least ``max_iter + 1``, see :func:`history_class`), NaN past the last
    iteration.
    """
    total_w = w.sum()
    nan_hist = jnp.full(history_len, jnp.nan, dtype=X.dtype)

    def cond(s: EMState):
        return (~s.converged) & (~s.failed) & (s.n_iter < max_iter)

    def body(s: EMState):
        stats = e_step(s.params, X, w, n_used)
        obj = objective(s.params, stats, structure, prior)
        ok = jnp.isfinite(obj)
        new = m_step(stats, structure, prior, reg_covar, n_active, which, n_features)
        mean_obj = obj / total_w
        converged = ok & (jnp.abs(mean_obj - s.prev_objective) < tol)
        return EMState(
            params=jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, s.params),
            good_params=jax.tree.map(lambda a, b: jnp.where(ok, a, b), s.params, s.good_params),
            n_iter=s.n_iter + ok.astype(s.n_iter.dtype),
            prev_objective=jnp.where(ok, mean_obj, s.prev_objective),
            converged=converged,
            failed=~ok,
            history=s.history.at[s.n_iter].set(stats.log_lik),
            history_objective=s.history_objective.at[s.n_iter].set(obj),
        )

    state = EMState(
        params=params0,
        good_params=params0,
        n_iter=jnp.zeros((), jnp.int32),
        prev_objective=jnp.asarray(-jnp.inf, X.dtype),
        converged=jnp.asarray(False),
        failed=jnp.asarray(False),
        history=nan_hist,
        history_objective=nan_hist,
    )
    return jax.lax.while_loop(cond, body, state)


class FitOutput(NamedTuple):
    """What one restart returns: final parameters and their statistics."""

    params: GMMParams
    log_lik: jax.Array
    objective: jax.Array
    hard_log_resp: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    failed: jax.Array
    history: jax.Array
    history_objective: jax.Array


#: The tree structure of a :class:`FitOutput` (what :func:`fit_from_key` returns),
#: known without tracing it.
FIT_OUTPUT_TREE = jax.tree.structure(
    FitOutput(GMMParams._unchecked(0.0, 0.0, 0.0), *([0.0] * (len(FitOutput._fields) - 1)))
)


def unpad(out: FitOutput, K: int, D: int, D_fit: int, w_total: float):
    """The program's output for ``K`` components and ``D`` features.

    Each zero padding coordinate (mean 0, variance 1) multiplied every row's
    density by ``(2 pi) ** -1/2``: the totals get their ``log`` back.
    """
    params = out.params._take_components(K)._take_features(D)
    if D_fit == D:
        return out._replace(params=params)
    shift = 0.5 * (D_fit - D) * _linalg.LOG_2PI * w_total
    return out._replace(
        params=params,
        log_lik=out.log_lik + shift,
        objective=out.objective + shift,
        history=out.history + shift,
        history_objective=out.history_objective + shift,
    )


def finish(state: EMState, X, w, *, structure, prior, n_used=None) -> FitOutput:
    """Evaluate the final parameters; fall back to the last good ones if they fail."""
    stats = e_step(state.params, X, w, n_used)
    obj = objective(state.params, stats, structure, prior)
    ok = jnp.isfinite(obj) & _all_finite(state.params) & ~state.failed
    params = jax.tree.map(lambda a, b: jnp.where(ok, a, b), state.params, state.good_params)
    # When the final parameters fail, re-evaluate the fallback.
    stats = jax.lax.cond(ok, lambda: stats, lambda: e_step(params, X, w, n_used))
    obj = objective(params, stats, structure, prior)
    idx = state.n_iter
    return FitOutput(
        params=params,
        log_lik=stats.log_lik,
        objective=obj,
        hard_log_resp=stats.hard_log_resp,
        n_iter=idx,
        converged=state.converged & ok,
        failed=~ok,
        history=state.history.at[idx].set(jnp.where(ok, stats.log_lik, state.history[idx])),
        history_objective=state.history_objective.at[idx].set(
            jnp.where(ok, obj, state.history_objective[idx])
        ),
    )


def init_params(
    key,
    X,
    w,
    *,
    n_components,
    method,
    structure,
    prior,
    reg_covar,
    n_active=None,
    which=None,
    n_features=None,
) -> GMMParams:
    """Initial parameters: responsibilities by ``method``, then one M-step."""
    flat_x = X.reshape(-1, X.shape[-1])
    flat_w = w.reshape(-1)
    # Padding rows have weight 0: log(0) = -inf keeps them from being chosen.
    resp = initial_responsibilities(key, flat_x, flat_w, n_components, method, n_active)
    stats = stats_from_responsibilities(X, w, resp.reshape(*w.shape, n_components))
    return m_step(stats, structure, prior, reg_covar, n_active, which, n_features)


def fit_restarts(
    keys,
    X,
    w,
    params0,
    *,
    n_components,
    method,
    structure,
    prior,
    reg_covar,
    tol,
    max_iter,
    history_len: int,
    n_used=None,
    n_active=None,
    which=None,
    n_features=None,
) -> FitOutput:
    """Run EM from every key in ``keys``, one after another; ``params0`` overrides the init.

    ``lax.map``, not ``jax.vmap``: under ``vmap`` every Cholesky factorisation and
    triangular solve would reach LAPACK as a batch over the restarts, which jaxlib
    0.10 splits over XLA's thread pool and can deadlock (see :mod:`bayesgmm._core._linalg`).
    Each restart also stops at its own convergence instead of running in step
    with the slowest.

    ``max_iter`` is a traced integer and ``history_len`` (static) the length
    of the histories, :func:`history_class` of ``max_iter``: a new
    ``max_iter`` of the same class compiles nothing.
    ``n_used`` (a traced integer, or None for all) is how many of the blocks of
    ``X`` hold data; the rest are zero-weight padding of the shape class.
    ``n_active`` (a traced integer, or None for all) is how many of the
    ``n_components`` are the model's; the rest are padding of the component
    class, with weight 0 from start to end (maximum likelihood only, and
    ``params0`` padded accordingly). With ``structure`` a tuple of names,
    ``which`` (a traced integer) picks the structure (see :func:`m_step`).
    ``n_features`` (a traced integer, or None for all) is how many of the
    columns of ``X`` are the data's; the rest are zero padding of the feature
    class, modelled as independent standard normal coordinates (see
    :func:`m_step`: maximum likelihood only, ``params0`` padded accordingly).
    """

    def one(key):
        if params0 is None:
            p0 = init_params(
                key,
                X,
                w,
                n_components=n_components,
                method=method,
                structure=structure,
                prior=prior,
                reg_covar=reg_covar,
                n_active=n_active,
                which=which,
                n_features=n_features,
            )
        else:
            p0 = params0
        state = run_em(
            p0,
            X,
            w,
            structure=structure,
            prior=prior,
            reg_covar=reg_covar,
            tol=tol,
            max_iter=max_iter,
            history_len=history_len,
            n_used=n_used,
            n_active=n_active,
            which=which,
            n_features=n_features,
        )
        return finish(state, X, w, structure=structure, prior=prior, n_used=n_used)

    if keys.shape[0] == 1:
        # A single restart runs without the loop around it; the result gets the
        # same leading restart axis.
        return jax.tree.map(lambda leaf: leaf[None], one(keys[0]))
    return jax.lax.map(one, keys)


def fit_from_key(key_data, X, w, params0, *, n_init, key_impl, **settings) -> FitOutput:
    """:func:`fit_restarts` from one key, split into ``n_init`` inside the program.

    ``key_data`` is the raw data of a JAX key of implementation ``key_impl``
    (``jax.random.key_data``): splitting it here rather than before the call
    spares a fresh process two small programs of its own (seeding and
    splitting), compiled anew in every process.
    """
    keys = jax.random.split(jax.random.wrap_key_data(key_data, impl=key_impl), n_init)
    return fit_restarts(keys, X, w, params0, **settings)


def init_from_key(key_data, X, w, *, n_init, key_impl, **settings) -> GMMParams:
    """The initial parameters of :func:`fit_from_key`'s ``n_init`` restarts, stacked.

    The same keys and the same :func:`init_params` as that program: a host
    loop (:mod:`bayesgmm.em._threaded`) starts where the compiled one would.
    """
    keys = jax.random.split(jax.random.wrap_key_data(key_data, impl=key_impl), n_init)
    if n_init == 1:
        return jax.tree.map(lambda leaf: leaf[None], init_params(keys[0], X, w, **settings))
    return jax.lax.map(lambda key: init_params(key, X, w, **settings), keys)


#: The static arguments of :func:`init_from_key`.
INIT_STATIC = ("n_init", "key_impl", "n_components", "method", "structure")
#: The tree structure of a :class:`GMMParams`, known without tracing.
PARAMS_TREE = jax.tree.structure(GMMParams._unchecked(0.0, 0.0, 0.0))
#: The tree structure of :class:`Stats`.
STATS_TREE = jax.tree.structure(Stats(*([0.0] * len(Stats._fields))))


def history_class(max_iter: int) -> int:
    """Length of the histories for ``max_iter``: ``max_iter + 1`` rounded up to a power
    of two, at least 128 (scikit-learn's default of 100 and ours of 500 are two classes)."""
    return max(128, 1 << int(max_iter).bit_length())


_STATIC = ("n_components", "method", "structure", "history_len")
#: The static arguments of :func:`fit_from_key`.
STATIC = (*_STATIC, "n_init", "key_impl")
fit_restarts_jit = jax.jit(fit_restarts, static_argnames=_STATIC)
#: Data with at most this many features compile without XLA's YNNPACK fusions.
NARROW_FEATURES = 3
# XLA's CPU compiler hands the E-step's "GEMM + Mahalanobis + log density" to
# YNNPACK as one fused kernel. With an inner dimension of 1-3 features that
# kernel is far slower than XLA's own loops: 2,000 rows, D = 2 (K padded to 8)
# took 211 us of CPU per EM iteration with it and 141 us without (one core,
# benchmarks/em_peers.py's first case), while at D = 10 it is the faster
# (27 ms against 39 ms at N = 1e5). The flag is per program, not per process.
NARROW_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def fit_options(n_features: int) -> dict:
    """XLA's compiler options for the EM program of data of ``n_features`` columns."""
    if n_features <= NARROW_FEATURES and jax.default_backend() == "cpu":
        return dict(NARROW_OPTIONS)
    return {}
