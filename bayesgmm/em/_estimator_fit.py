"""How :class:`~bayesgmm.GaussianMixture` fits, beyond one :func:`~bayesgmm.fit_em` call.

Starting values (``max_iter=0``, partial ``*_init``, scikit-learn's
``_initialize`` hook), the ``*_init`` arguments checked in scikit-learn's
wording then the library's, restarts that never end below the first start,
warm starts that carry the convergence test across fits, and the verbose
lines. The estimator module keeps the scikit-learn interface; the maths is
:mod:`bayesgmm.em`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import numbers
import warnings

import jax
import numpy as np
from jax.scipy.special import logsumexp

from bayesgmm._core import _mixture
from bayesgmm._core import covariance as _cov
from bayesgmm._core._blocks import em_block_layout
from bayesgmm._core._precision import resolve_dtype, x64
from bayesgmm._core._validation import (
    check_fit_inputs,
    check_sample_weight,
    column_stats,
)
from bayesgmm._core._warnings import ConvergenceWarning
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.em import _core as _em_core
from bayesgmm.em import _programs
from bayesgmm.em._fit import EMResult, check_em_settings, fit_em
from bayesgmm.em._standardize import Standardizer

# scikit-learn's wording, which code written for scikit-learn matches; the
# library's own explanation follows it in each message.
SK_NOT_CONVERGED = (
    "Best performing initialization did not converge. Try different init parameters, "
    "or increase max_iter, tol, or check for degenerate data."
)
SK_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease "
    "the number of components, increase reg_covar, or scale the input data."
)


# ---------------------------------------------------------------- results ---
def fit_em_quiet(X, K, **kwargs):
    """:func:`fit_em`, whose non-convergence warning the estimator words itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        return fit_em(X, K, **kwargs)


def history(result: EMResult) -> np.ndarray:
    """The total objective (log posterior under a prior) at the start and after each iteration."""
    if result.history_log_posterior is None:
        return np.asarray(result.history)
    return np.asarray(result.history_log_posterior)


def _log_prob_rows(params, X):
    """``log p(x_n)`` of unbatched ``params``, as :meth:`GMMParams.log_prob` computes it."""
    return logsumexp(_mixture.joint_log_prob(params, X), axis=-1)


@x64
def log_prob(params: GMMParams, X) -> np.ndarray:
    """``params.log_prob(X)`` (the same padding, the same values), its program kept on disk.

    The estimator scores every fit (``lower_bound_``, ``score``); through
    :mod:`bayesgmm.em._programs` a fresh process loads the scoring program
    instead of tracing and lowering it (GridSearchCV scores each fold).
    """
    return params._per_row(_log_prob_kept, X, per_component=False)


def _log_prob_kept(padded: GMMParams, rows: np.ndarray):
    return _programs.call(_log_prob_rows, "log_prob", (padded, rows), {}, (), {})


def objective(result: EMResult) -> float:
    return result.log_likelihood if result.log_posterior is None else result.log_posterior


def mean_objective(result: EMResult, X, sample_weight) -> float:
    """``lower_bound_``: the mean log-likelihood of ``X`` computed as :meth:`score` does.

    Plus ``log prior / n_samples`` under a prior. EM's own total differs from
    it in the last bits; computing both the same way keeps ``lower_bound_``
    and ``score(X)`` of a fit equal and comparable across fits.
    """
    values = log_prob(result.params, X)
    if sample_weight is None:
        mean = float(values.mean())
    else:
        w = check_sample_weight(sample_weight, values.shape[0], np.dtype(np.float64))
        mean = float(np.average(values, weights=w))
    if result.prior is not None:
        log_prior = result.prior.log_prob(result.params, result.covariance_type)
        mean += float(log_prior) / result.n_samples
    return mean


def last_change(result: EMResult) -> float:
    """How much the last iteration changed the mean objective (inf without iterations)."""
    if result.n_iter < 1:
        return math.inf
    totals = history(result)
    return abs(float(totals[-1] - totals[-2])) / result.n_samples


def not_converged_message(result: EMResult, max_iter: int, tol) -> str:
    return (
        f"{SK_NOT_CONVERGED} bayesgmm: EM stopped after {result.n_iter} iterations "
        f"(max_iter={max_iter}) with the mean objective still changing by "
        f"{last_change(result):.3g} per iteration (tol={tol:g})."
    )


# -------------------------------------------------------------- arguments ---
_DRAW_CHUNK = 1 << 16


def draw_size(n: int) -> int:
    """Draws made for ``n`` samples: the next power of two, or multiple of 65536 above it."""
    if n <= _DRAW_CHUNK:
        return 1 << (n - 1).bit_length()
    return -(-n // _DRAW_CHUNK) * _DRAW_CHUNK


def check_max_iter(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"max_iter must be an integer >= 0 (0 returns the initialisation); got {value!r}."
        )
    return int(value)


# -------------------------------------------------------------- strategies ---
def fit_restarts(X, K, *, method, seed, max_iter, n_init, settings) -> EMResult:
    """``n_init`` restarts by ``method``; never lower than the first one alone.

    The restarts run together (vectorised), so the first one's arithmetic
    differs from the same start run alone (``n_init=1``) in the last bits,
    and its result can end a hair lower. The first start is therefore also
    run alone, and taken when it ends higher than the vectorised best.
    """
    result = fit_em_quiet(
        X, K, init=method, n_init=n_init, seed=seed, max_iter=max_iter, **settings
    )
    if result.restart_objectives.shape[0] == 1:
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the data warnings were given by the fit above
        try:
            first = fit_em_quiet(
                X, K, init=method, n_init=1, seed=seed, max_iter=max_iter, **settings
            )
        except ValueError:  # the first start broke down alone; another restart did not
            return result
    # Compared as lower_bound_ and score() compute them, so that neither can
    # end below the first start's.
    weights = settings["sample_weight"]
    if mean_objective(first, X, weights) <= mean_objective(result, X, weights):
        return result
    objectives = result.restart_objectives.copy()
    objectives[0] = objective(first)
    return dataclasses.replace(first, restart_objectives=objectives, best_restart=0)


def fit_warm(previous: EMResult, X, K, *, max_iter, tol, settings, prepare) -> EMResult:
    """Continue EM from ``previous.params`` (``warm_start=True`` after a fit).

    ``prepare()`` gives the validated inputs, needed only for ``max_iter=0``.
    """
    D = X.shape[1]
    if previous.n_components != K or previous.n_features != D:
        raise ValueError(
            f"warm_start=True continues from the previous fit, which has n_components="
            f"{previous.n_components} and {previous.n_features} features; got n_components="
            f"{K} and X with {D} features. Set warm_start=False to start afresh."
        )
    start = previous.params
    if max_iter == 0:
        return evaluate_start(prepare(), start)
    if last_change(previous) < tol:
        # scikit-learn's test carried across fits: the previous fit's last
        # iteration already changed the mean objective by less than tol, so
        # this fit's first iteration ends converged.
        result = fit_em_quiet(X, K, init=start, max_iter=1, **settings)
        return dataclasses.replace(result, converged=True)
    return fit_em_quiet(X, K, init=start, max_iter=max_iter, **settings)


def print_report(result: EMResult, lower_bound, lower_bounds, *, warm, elapsed, verbose, interval):
    """scikit-learn's verbose lines, printed after the compiled EM loop returns."""
    n_restarts = result.restart_objectives.shape[0]
    if warm:
        print("Initialization 0 (warm start: continuing from the previous fit)")
    elif n_restarts > 1:
        print(f"Initialization {result.best_restart} (the best of {n_restarts}, run together)")
    else:
        print("Initialization 0")
    # Mean objective of the starting parameters, then after each iteration.
    path = [float(history(result)[0]) / result.n_samples, *lower_bounds]
    for i in range(interval, result.n_iter + 1, interval):
        if verbose == 1:
            print(f"  Iteration {i}")
        else:
            change = path[i] - path[i - 1]
            print(f"  Iteration {i}\t lower bound {path[i]:.5f}\t ll change {change:.5f}")
    status = "converged" if result.converged else "did not converge"
    if verbose == 1:
        print(f"Initialization {status}.")
        return
    print(f"Initialization {status}. time lapse {elapsed:.5f}s\t lower bound {lower_bound:.5f}.")
    if n_restarts > 1:
        finals = ", ".join(f"{v / result.n_samples:.5f}" for v in result.restart_objectives)
        print(f"  final lower bound of each restart: {finals}")


# --------------------------------------------------------- starting values ---
@dataclasses.dataclass(frozen=True)
class Prepared:
    """Validated inputs of a start computed here (what ``fit_em`` would check)."""

    data: np.ndarray
    w: np.ndarray
    K: int
    structure: str
    prior: Prior | None
    reg_covar: float


def prepare(X, K, settings, *, n_init, quiet) -> Prepared:
    """Validated data, weights and settings, for the starts computed here.

    ``settings`` are the estimator's keyword arguments of :func:`fit_em`;
    ``quiet`` drops the ``reg_covar=0`` warning that a following
    :func:`~bayesgmm.fit_em` call gives again.
    """
    dt = resolve_dtype(settings["dtype"], X)
    data, w, K = check_fit_inputs(X, K, settings["sample_weight"], dt, copy=False)
    with warnings.catch_warnings():
        if quiet:
            warnings.filterwarnings("ignore", message="reg_covar=0 without a prior")
        checked = check_em_settings(
            data,
            K,
            covariance_type=settings["covariance_type"],
            prior=settings["prior"],
            n_init=n_init,
            tol=settings["tol"],
            reg_covar=settings["reg_covar"],
        )
    return Prepared(data, w, K, checked["structure"], checked["prior"], checked["reg_covar"])


def with_inits(prep: Prepared, weights_init, means_init, precisions_init, base) -> GMMParams:
    """Starting parameters: ``base()`` (a GMMParams) with the ``*_init`` in place of its parts.

    With ``means_init``: equal weights unless given, and the covariance of the
    whole data set unless given. Without it: ``base()``'s means and whatever
    else is not given. ``base`` is called only when it is needed.
    """
    K, D = prep.K, prep.data.shape[1]
    weights = None if weights_init is None else check_weights_init(weights_init, K)
    means = None if means_init is None else check_means_init(means_init, K, D)
    covariances = (
        None
        if precisions_init is None
        else covariances_from_precisions(precisions_init, prep.structure, K, D)
    )
    if means is None:
        start = base().to_numpy()
        means = start["means"]
        weights = start["weights"] if weights is None else weights
        covariances = start["covariances"] if covariances is None else covariances
    else:
        weights = np.full(K, 1.0 / K) if weights is None else weights
        if covariances is None:
            covariances = np.broadcast_to(whole_data_covariance(prep), (K, D, D))
    params = GMMParams(weights=weights, means=means, covariances=covariances)
    return params.astype(prep.data.dtype)


_init_params_jit = jax.jit(
    _em_core.init_params, static_argnames=("n_components", "method", "structure")
)


@functools.partial(jax.jit, static_argnames="structure")
def _m_step_jit(X, w, resp, prior, reg_covar, *, structure):
    stats = _em_core.stats_from_responsibilities(X, w, resp)
    return _em_core.m_step(stats, structure, prior, reg_covar)


def _standardized(prep: Prepared, n_components: int, prior):
    """The data as EM sees them: standardised, in blocks, weights of mean one without a prior."""
    data, w = prep.data, prep.w
    N, D = data.shape
    std = Standardizer.from_stats(column_stats(data, w))
    n_blocks, _, B = em_block_layout(N, n_components, D)
    if prior is None:  # the scale of the weights does not change an ML start
        scale = float(w.mean())
        w = w / (scale if np.isfinite(scale) and scale > 0 else float(w.max()))
    ws = np.zeros(n_blocks * B, data.dtype)
    ws[:N] = w
    return std, std.blocks(data, n_blocks, B), jax.device_put(ws.reshape(n_blocks, B))


@x64
def first_start(prep: Prepared, method: str, seed: int) -> GMMParams:
    """The initialisation ``fit_em(init=method, seed=seed)`` gives its first restart."""
    std, Xs, ws = _standardized(prep, prep.K, prep.prior)
    key = jax.random.split(jax.random.key(seed), 1)[0]  # fit_em's key for restart 0
    params = _init_params_jit(
        key,
        Xs,
        ws,
        n_components=prep.K,
        method=method,
        structure=prep.structure,
        prior=std.prior_in(prep.prior),
        reg_covar=np.asarray(prep.reg_covar / std.scale**2, prep.data.dtype),
    )
    return std.params_out(params)


@x64
def m_step_params(prep: Prepared, resp, *, prior, reg_covar) -> GMMParams:
    """One M-step from responsibilities ``resp`` (N, K), in the user's units."""
    N, K = resp.shape
    std, Xs, ws = _standardized(prep, K, prior)
    n_blocks, B = Xs.shape[:2]
    padded = np.zeros((n_blocks * B, K), prep.data.dtype)
    padded[:N] = resp
    params = _m_step_jit(
        Xs,
        ws,
        jax.device_put(padded.reshape(n_blocks, B, K)),
        std.prior_in(prior),
        np.asarray(reg_covar / std.scale**2, prep.data.dtype),
        structure=prep.structure,
    )
    return std.params_out(params)


def whole_data_covariance(prep: Prepared) -> np.ndarray:
    """The covariance of a one-component fit of the structure (``reg_covar``, at least 1e-6)."""
    ones = np.ones((prep.data.shape[0], 1), prep.data.dtype)
    one = m_step_params(prep, ones, prior=None, reg_covar=prep.reg_covar or 1e-6)
    return np.asarray(one.covariances)[0]


@x64
def evaluate_start(prep: Prepared, params: GMMParams) -> EMResult:
    """An EMResult for ``params`` without any iteration (``max_iter=0``)."""
    data, w, structure, prior = prep.data, prep.w, prep.structure, prep.prior
    log_prob = np.asarray(params.log_prob(data))
    resp = np.asarray(params.responsibilities(data))
    used = w > 0
    log_lik = float(np.sum(w[used] * log_prob[used]))
    hard = float(np.sum(w[used] * np.log(resp[used].max(axis=1))))
    log_post = None if prior is None else log_lik + float(prior.log_prob(params, structure))
    objective = log_lik if log_post is None else log_post
    return EMResult(
        params=params,
        log_likelihood=log_lik,
        log_posterior=log_post,
        converged=False,
        n_iter=0,
        history=np.array([log_lik]),
        history_log_posterior=None if log_post is None else np.array([log_post]),
        covariance_type=structure,
        prior=prior,
        n_samples=float(w.sum()),
        reg_covar=prep.reg_covar,
        restart_objectives=np.array([objective]),
        best_restart=0,
        _hard_log_resp=hard,
    )


def inverse_and_factor(mat):
    """For SPD ``mat`` (..., D, D): ``U = L^{-T}`` (``mat = L L^T``) and ``mat^{-1} = U U^T``.

    One batched Cholesky factorisation and one batched solve against the
    identity, in NumPy: a handful of small matrices, no compiled program per
    shape. Entries are NaN where ``mat`` is not positive definite. (SciPy
    1.17's ``solve_triangular`` took ~15 ms of CPU for a stack of two 2 x 2
    factors, hundreds of times NumPy's batched ``solve``; every ``fit`` calls this.)
    """
    dtype = np.asarray(mat).dtype
    mat = np.asarray(mat, dtype=np.float64)
    flat = mat.reshape(-1, *mat.shape[-2:])
    try:
        chol = np.linalg.cholesky(flat)
    except np.linalg.LinAlgError:  # some are not positive definite: those get NaN
        chol = np.full_like(flat, np.nan)
        for i, m in enumerate(flat):
            with contextlib.suppress(np.linalg.LinAlgError):
                chol[i] = np.linalg.cholesky(m)
    eye = np.broadcast_to(np.eye(flat.shape[-1]), flat.shape)
    # L^{-1}, its zeros made exact (the LU solve may pivot); NaN stays NaN (0 * NaN)
    solved = np.linalg.solve(chol, eye) * np.tri(flat.shape[-1])
    factor = np.swapaxes(solved, -1, -2).reshape(mat.shape)
    inverse = factor @ np.swapaxes(factor, -1, -2)
    inverse = 0.5 * (inverse + np.swapaxes(inverse, -1, -2))
    return factor.astype(dtype, copy=False), inverse.astype(dtype, copy=False)


# ------------------------------------------------------- *_init arguments ---
def _as_float_array(name, value):
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    return arr.astype(np.float64)


def _check_shape(arr, shape, sk_name, requirement):
    """Shape check worded as scikit-learn's (``sk_name``), then as the library's."""
    if arr.shape != shape:
        raise ValueError(
            f"The parameter '{sk_name}' should have the shape of {shape}, but got {arr.shape}: "
            f"{requirement}; got shape {arr.shape}."
        )


def _check_finite(arr, name):
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values.")


def check_weights_init(weights, K):
    w = _as_float_array("weights_init", weights)
    _check_shape(w, (K,), "weights", f"weights_init must have shape ({K},)")
    _check_finite(w, "weights_init")
    lo, hi, total = float(w.min()), float(w.max()), float(w.sum())
    if lo < 0 or hi > 1:
        raise ValueError(
            # scikit-learn's message prints the minimum as "max value" and the
            # maximum as "min value"; its wording is kept so that code matching
            # it still does, and the values are then named correctly.
            f"The parameter 'weights' should be in the range [0, 1], but got max value "
            f"{lo:.5f}, min value {hi:.5f} (scikit-learn's wording; the smallest weight is "
            f"{lo:.6g} and the largest {hi:.6g}): weights_init must be non-negative and sum to 1."
        )
    if abs(total - 1.0) > 1e-6:
        raise ValueError(
            f"The parameter 'weights' should be normalized, but got sum(weights) = {total:.5f}: "
            f"weights_init must be non-negative and sum to 1; got {w} (sum {total:.10g}). "
            "Normalise with w / w.sum()."
        )
    return w / total


def check_means_init(means, K, D):
    m = _as_float_array("means_init", means)
    _check_shape(m, (K, D), "means", f"means_init must have shape {(K, D)} (K, D)")
    _check_finite(m, "means_init")
    return m


def covariances_from_precisions(precisions, structure, K, D):
    """Full ``(K, D, D)`` covariances from precisions in scikit-learn's shape."""
    struct = _cov.get(structure)
    shape = np.shape(struct.to_sklearn(np.broadcast_to(np.eye(D), (K, D, D))))
    arr = _as_float_array("precisions_init", precisions)
    _check_shape(
        arr,
        shape,
        f"{structure} precision",
        f"precisions_init for covariance_type={structure!r} must have scikit-learn's shape "
        f"{shape} (K={K}, D={D})",
    )
    _check_finite(arr, "precisions_init")
    matrices = structure in ("full", "tied")
    sk_requirement = "symmetric, positive-definite" if matrices else "positive"
    full = struct.from_sklearn(arr, K, D)
    if not np.allclose(full, np.swapaxes(full, -1, -2)):
        raise ValueError(
            f"'{structure} precision' should be {sk_requirement}: precisions_init must be "
            "symmetric; pass (P + P.T) / 2."
        )
    _, covariances = inverse_and_factor(full)
    if not np.isfinite(covariances).all():
        raise ValueError(
            f"'{structure} precision' should be {sk_requirement}: precisions_init must be "
            "positive definite (positive for 'diag' and 'spherical')."
        )
    return covariances
