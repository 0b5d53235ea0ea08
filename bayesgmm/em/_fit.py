"""EM and MAP-EM for Gaussian mixtures: :func:`fit_em` and :class:`EMResult`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import jax
import numpy as np

from bayesgmm._core import _devices, _warnings
from bayesgmm._core import covariance as _cov
from bayesgmm._core._blocks import component_class, em_block_layout, feature_class
from bayesgmm._core._dask_arrays import is_dask_collection
from bayesgmm._core._precision import resolve_dtype, x64
from bayesgmm._core._threads import single_threaded_blas
from bayesgmm._core._validation import (
    ColumnStats,
    check_feature_names,
    check_fit_inputs,
    check_positive,
    check_positive_int,
    check_seed,
    column_stats,
    warn_data_problems,
    warn_reg_covar_scale,
)
from bayesgmm._core._warnings import warn
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior, log_prior_jit
from bayesgmm.em import _core as _em_core
from bayesgmm.em import _threaded
from bayesgmm.em._degenerate import degenerate_components
from bayesgmm.em._init import INIT_METHODS
from bayesgmm.em._standardize import Standardizer

__all__ = ["EMResult", "check_em_settings", "fit_em", "fit_validated", "n_parameters"]


def n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Free parameters of a mixture: weights ``K - 1``, means ``K D``, covariances."""
    K, D = n_components, n_features
    return (K - 1) + K * D + _cov.get(covariance_type).n_parameters(K, D)


# fit_em's stopping rule. scikit-learn's tol=1e-3 stops short of the optimum
# (Old Faithful, tied, K=3, 10 restarts: -1126.557 against -1126.317 at 1e-5,
# where mclust's published fit is -1126.326); the estimate is compared with the
# posterior, so it must be the optimum. GaussianMixture keeps scikit-learn's.
TOL = 1e-5
MAX_ITER = 500


@dataclass(frozen=True, repr=False, eq=False)
class EMResult:
    """The outcome of :func:`fit_em`.

    Attributes
    ----------
    params : GMMParams
        The fitted parameters (no batch axes).
    log_likelihood : float
        Total (sample-weighted) log-likelihood of the data under ``params``.
    log_posterior : float or None
        ``log_likelihood`` plus the log prior density, for MAP-EM; None for ML.
    converged : bool
    n_iter : int
        EM iterations (M-steps) performed.
    history : ndarray of shape (n_iter + 1,)
        Total log-likelihood of the initial parameters and after each M-step;
        ``history[-1] == log_likelihood``. Never decreases when ``reg_covar``
        is 0 (``reg_covar > 0`` perturbs the M-step, which can lower it by
        about ``reg_covar`` near convergence; under MAP-EM the default is 0).
    history_log_posterior : ndarray of shape (n_iter + 1,) or None
        The same for the log posterior under MAP-EM.
    covariance_type : str
    prior : Prior or None
    n_samples : float
        Effective number of samples, the sum of the sample weights.
    restart_objectives : ndarray of shape (n_init,)
        Final log-likelihood (or log posterior) of every restart.
    degenerate_components : tuple of int
        Components whose covariance the data do not determine (``fit_em``
        warns with a ``DataWarning`` naming them): the data's own variance in
        some direction is no larger than ``reg_covar`` (the covariance is set by
        ``reg_covar``, or is numerically singular), or, without a prior, the
        component holds fewer effective points than its covariance needs
        (``D + 1`` for ``full``, 2 for ``diag`` and ``spherical``; effective
        points are the component's weight times the rows with positive
        sample weight). Their log-likelihood, and BIC, AIC and ICL, describe
        ``reg_covar`` rather than the data.
    feature_names : tuple of str or None
        Names of the data's columns (``feature_names=``, or a DataFrame's
        string column labels); they label :meth:`summary`, the plots and the
        files written by :func:`bayesgmm.save`. None when the data had none.
    """

    params: GMMParams
    log_likelihood: float
    log_posterior: float | None
    converged: bool
    n_iter: int
    history: np.ndarray
    history_log_posterior: np.ndarray | None
    covariance_type: str
    prior: Prior | None
    n_samples: float
    reg_covar: float
    restart_objectives: np.ndarray
    best_restart: int
    _hard_log_resp: float = field(repr=False)
    degenerate_components: tuple[int, ...] = ()
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.params, GMMParams):  # NumPy arrays: see GMMParams
            object.__setattr__(self, "params", self.params._host())

    @property
    def n_components(self) -> int:
        return self.params.n_components

    @property
    def n_features(self) -> int:
        return self.params.n_features

    @property
    def n_parameters(self) -> int:
        """Free parameters counted for BIC and AIC."""
        return n_parameters(self.n_components, self.n_features, self.covariance_type)

    @property
    def bic(self) -> float:
        """Bayesian information criterion ``-2 log L + p log n``; lower is better."""
        return -2.0 * self.log_likelihood + self.n_parameters * math.log(self.n_samples)

    @property
    def aic(self) -> float:
        """Akaike information criterion ``-2 log L + 2 p``; lower is better."""
        return -2.0 * self.log_likelihood + 2.0 * self.n_parameters

    @property
    def icl(self) -> float:
        """Integrated completed likelihood (Biernacki et al. 2000); lower is better.

        ``BIC - 2 sum_n log r_{n, z_n}`` with ``z_n`` the most probable
        component of row ``n`` (the hard-assignment form used by mclust): BIC
        penalised by how uncertain the assignments are.
        """
        return self.bic - 2.0 * self._hard_log_resp

    def log_prob(self, X) -> np.ndarray:
        """Log density of each row of ``X`` under the fitted mixture, shape (N,)."""
        return self.params.log_prob(X)

    def predict_proba(self, X) -> np.ndarray:
        """Membership probabilities, shape (N, K)."""
        return np.asarray(self.params.responsibilities(X))

    def predict(self, X) -> np.ndarray:
        """Most probable component of each row, shape (N,)."""
        return self.predict_proba(X).argmax(axis=1)

    def summary(self) -> str:
        """A readable multi-line summary of the fit."""
        p = self.params.to_numpy()
        kind = "MAP-EM" if self.prior is not None else "EM"
        lines = [
            f"{kind} fit: K={self.n_components}, D={self.n_features}, "
            f"covariance_type={self.covariance_type!r}, n_samples={self.n_samples:g}",
            f"  converged: {self.converged} after {self.n_iter} iterations",
            f"  log-likelihood: {self.log_likelihood:.4f}",
        ]
        if self.log_posterior is not None:
            lines.append(f"  log posterior:  {self.log_posterior:.4f}")
        lines.append(
            f"  BIC: {self.bic:.3f}   AIC: {self.aic:.3f}   ICL: {self.icl:.3f}   "
            f"(free parameters: {self.n_parameters})"
        )
        if self.degenerate_components:
            lines.append(
                f"  degenerate components: {list(self.degenerate_components)} "
                "(covariance not determined by the data)"
            )
        if self.feature_names is not None:
            lines.append(f"  features: {', '.join(self.feature_names)}")
        with np.printoptions(precision=4, suppress=True):
            for k in range(self.n_components):
                lines.append(f"  component {k}: weight {p['weights'][k]:.4f}")
                lines.append(f"    mean        {p['means'][k]}")
                cov = np.array2string(p["covariances"][k], prefix="    covariance  ")
                lines.append(f"    covariance  {cov}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        kind = "MAP-EM" if self.prior is not None else "EM"
        return (
            f"EMResult({kind}, K={self.n_components}, covariance_type={self.covariance_type!r}, "
            f"log_likelihood={self.log_likelihood:.4f}, converged={self.converged}, "
            f"n_iter={self.n_iter})"
        )


@x64
def fit_em(
    X,
    n_components: int,
    *,
    covariance_type: str = "full",
    prior: Prior | None = None,
    sample_weight=None,
    init="kmeans++",
    n_init: int = 1,
    tol: float = TOL,
    max_iter: int = MAX_ITER,
    reg_covar: float | None = None,
    seed: int | None = 0,
    key: jax.Array | None = None,
    dtype=None,
    block_size: int | None = None,
    feature_names=None,
) -> EMResult:
    """Fit a Gaussian mixture by EM (maximum likelihood) or MAP-EM (with ``prior``).

    Parameters
    ----------
    X : array-like of shape (N, D), or dask array
        Data. A 1-D array is read as N values of one feature. A dask array is
        fitted chunk by chunk on the current Dask cluster (:mod:`bayesgmm.em._dask`).
    n_components : int
        Number of components K, ``1 <= K <= N``.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance structure, from :mod:`bayesgmm.covariance`'s registry.
    prior : Prior, optional
        With a prior, EM maximises the log posterior (MAP-EM) under the
        Dirichlet / Normal-Inverse-Wishart prior, the same one the Bayesian
        model samples. ``Prior.default(X, K)`` is a sensible start.
    sample_weight : array-like of shape (N,), optional
        Non-negative weights acting as replication counts: a weight of 2 is a
        duplicated row, a weight of 0 a removed row. Multiplying all weights by
        a constant leaves a maximum-likelihood fit unchanged (the reported
        log-likelihood and ``n_samples`` scale with it); under MAP-EM their
        total is the amount of data weighed against the prior.
    init : {"kmeans++", "kmeans", "random", "random_from_data"} or GMMParams
        How to start (see :func:`bayesgmm.em._init.initial_responsibilities`), or
        parameters to start from (then ``n_init`` is 1).
    n_init : int
        Number of restarts, run one after another in one compiled program; the
        best final log likelihood (log posterior under MAP-EM) wins.
    tol : float, default 1e-5
        Stop when the mean log-likelihood (log posterior) per sample changes by
        less than ``tol`` between iterations. Tighter than scikit-learn's
        ``1e-3`` (which :class:`bayesgmm.GaussianMixture` keeps), which can stop
        visibly short of the optimum.
    max_iter : int, default 500
        Most EM iterations; a ``ConvergenceWarning`` is raised if reached.
    reg_covar : float, optional
        Added to the diagonal of every covariance in the M-step. Default
        ``1e-6`` without a prior and ``0`` with one (the prior keeps
        covariances positive definite, and the MAP-EM estimate is then exactly
        the posterior mode).
    seed : int, optional
        Seed of the initialisation, an int in ``[0, 2**63)`` (None means 0);
        ignored when ``key`` is given.
    key : jax.random key, optional
    dtype : {None, "float64", "float32"}
        float64 unless X is float32 or float32 is asked for.
    block_size : int, optional
        Rows per block of the E-step (memory ``block_size x K x D``).
    feature_names : sequence of str, optional
        Names of the D columns, kept as ``EMResult.feature_names``; by default
        the column labels of a pandas DataFrame (when they are strings).

    Returns
    -------
    EMResult

    Examples
    --------
    >>> import bayesgmm as bg
    >>> X = bg.datasets.load_faithful()
    >>> em = bg.fit_em(X, n_components=2, seed=0)
    >>> em.converged, em.params.weights.shape
    (True, (2,))
    >>> bool(em.bic < bg.fit_em(X, n_components=1).bic)
    True
    """
    if is_dask_collection(X):  # chunk by chunk on the Dask cluster, the same arguments
        return _fit_dask(**locals())
    dt = resolve_dtype(dtype, X)
    # No copy of X here: EM reads it once, into the standardised device buffer.
    data, w, K = check_fit_inputs(X, n_components, sample_weight, dt, copy=False)
    names = check_feature_names(feature_names, X, data.shape[1])
    settings = check_em_settings(
        data,
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
        key = seed_key_data(0 if seed is None else seed)
    stats = column_stats(data, w)
    warn_data_problems(data, w, K, stats)
    warn_reg_covar_scale(data, w, settings["reg_covar"], stats)
    result = fit_validated(data, w, K, key=key, stats=stats, **settings)
    return result if names is None else replace(result, feature_names=names)


def _fit_dask(**arguments) -> EMResult:  # Dask, an optional extra, is imported on call
    from bayesgmm.em._dask import fit_em as fit_em_dask

    return fit_em_dask(**arguments)


def check_em_settings(
    data: np.ndarray,
    K: int,
    *,
    covariance_type: str = "full",
    prior: Prior | None = None,
    init="kmeans++",
    n_init: int = 1,
    tol: float = TOL,
    max_iter: int = MAX_ITER,
    reg_covar: float | None = None,
    block_size: int | None = None,
) -> dict:
    """Validate :func:`fit_em`'s settings for validated ``data`` and ``K``.

    Returns the keyword arguments of :func:`fit_validated` (all but the data,
    weights, K and key): the structure's name, the prior checked for MAP-EM in
    the data's dtype, ``reg_covar``'s default resolved, ``init`` as a method
    name or checked ``GMMParams``. Warns when ``reg_covar=0`` has no prior.
    """
    D, dt = data.shape[1], data.dtype
    structure = _cov.get(covariance_type).name
    n_init = check_positive_int("n_init", n_init)
    max_iter = check_positive_int("max_iter", max_iter)
    tol = check_positive("tol", tol, allow_zero=True)
    if prior is not None:
        if not isinstance(prior, Prior):
            raise TypeError(f"prior must be a bayesgmm.Prior or None; got {type(prior).__name__}.")
        prior = prior.check(K, D, for_map=True).astype(dt)
    if reg_covar is None:
        reg_covar = 0.0 if prior is not None else 1e-6
    reg_covar = check_positive("reg_covar", reg_covar, allow_zero=True)
    if prior is None and reg_covar == 0.0:
        warn(
            "reg_covar=0 without a prior: a component that collapses onto a point will make "
            "EM fail; keep reg_covar > 0 or use a prior.",
            UserWarning,
        )
    params0 = _check_init(init, K, D, dt)
    if block_size is not None:
        block_size = check_positive_int("block_size", block_size)
    return {
        "structure": structure,
        "prior": prior,
        "init": init if params0 is None else params0,
        "n_init": n_init,
        "tol": tol,
        "max_iter": max_iter,
        "reg_covar": reg_covar,
        "block_size": block_size,
    }


@x64
def fit_validated(
    data: np.ndarray,
    w: np.ndarray,
    K: int,
    *,
    structure: str,
    prior: Prior | None,
    init,
    n_init: int,
    tol: float,
    max_iter: int,
    reg_covar: float,
    key,
    block_size: int | None = None,
    stats: ColumnStats | None = None,
) -> EMResult:
    """:func:`fit_em` on inputs that are already validated: no checks, no data warnings.

    ``data`` (N, D) and ``w`` (N,) in the fit's dtype, ``prior`` checked for
    this K and D (``for_map``), ``init`` a method name or unbatched
    ``GMMParams`` of the right shape, ``key`` a JAX key (or its raw data,
    :func:`seed_key_data`). The engines that start from EM
    (``sample_posterior``, ``find_map``, ``compare_models``) call this after validating once.

    BLAS and LAPACK run one thread per call meanwhile
    (:func:`bayesgmm._core._threads.single_threaded_blas`): the compiled EM
    program's Cholesky factorisations and triangular solves run side by side.
    """
    with single_threaded_blas():
        N, D = data.shape
        dt = data.dtype
        params0 = init if isinstance(init, GMMParams) else None
        n_init = 1 if params0 is not None else n_init
        std = Standardizer.from_stats(column_stats(data, w) if stats is None else stats)
        # ML on small data: K padded to its class, the structure picked at run time:
        # one program for K = 1..8 in all four (the padding keeps weight 0), and
        # D padded to its class with columns of zeros (D = 1..4 one program).
        padded = prior is None and block_size is None
        family = padded and structure in _cov.COVARIANCE_TYPES
        D_fit = feature_class(N, K, D) if family else D
        K_fit = component_class(N, K, D_fit) if padded else K
        n_blocks, n_used, B = em_block_layout(N, K_fit, D_fit, block_size)
        pad = n_blocks * B - N
        Xs = std.blocks(data, n_blocks, B, D_fit)
        del data  # the caller's array, or check_fit_inputs' conversion of it
        w_fit, w_scale = _weights_for_fit(w, prior)
        ws = np.concatenate([w_fit, np.zeros(pad, dt)]).reshape(n_blocks, B)
        Xs, ws = _devices.place_rows(Xs, ws)
        key_data, key_impl = _key_parts(key)
        args = (
            key_data,
            Xs,
            ws,
            None
            if params0 is None
            else std.params_in(params0)._pad_components(K_fit)._pad_features(D_fit),
        )
        kwargs = dict(
            n_init=n_init,
            key_impl=key_impl,
            n_components=K_fit,
            method="given" if params0 is not None else init,
            structure=_cov.COVARIANCE_TYPES if family else structure,
            prior=std.prior_in(prior),
            reg_covar=np.asarray(reg_covar / std.scale**2, dt),
            tol=np.asarray(tol, dt),
            max_iter=np.asarray(max_iter, np.int32),
            history_len=_em_core.history_class(max_iter),
            n_used=np.asarray(n_used, np.int32),
            n_active=np.asarray(K, np.int32) if padded else None,
            which=np.asarray(_cov.COVARIANCE_TYPES.index(structure), np.int32) if family else None,
            n_features=np.asarray(D, np.int32) if family else None,
        )
        # one compiled program, or the E-step on threads for large data (see _threaded)
        out = _threaded.run(args, kwargs, _em_core.fit_options(D_fit), float(w_fit.sum()))
        out = jax.tree.map(np.asarray, out)  # one transfer, then NumPy slicing
        del Xs, ws, args  # then JAX can free the blocks (see _devices.release_rows)
        _devices.release_rows()
        out = _em_core.unpad(out, K, D, D_fit, float(w_fit.sum()))
        totals = (float(w.sum()), int((w > 0).sum()))
        return _select_best(out, std, prior, structure, totals, reg_covar, D, w_scale)


def seed_key_data(seed: int) -> np.ndarray:
    """``jax.random.key_data(jax.random.key(seed))`` under 64-bit integers, computed in NumPy.

    JAX's default key (threefry2x32) holds a 64-bit seed as its two 32-bit
    halves; making it with JAX would compile a small program in every
    process. Under another default implementation JAX makes it.
    """
    if jax.config.jax_default_prng_impl != "threefry2x32":
        with jax.enable_x64(True):
            return jax.random.key(seed)
    return np.array([seed >> 32, seed & 0xFFFFFFFF], np.uint32)


def _key_parts(key) -> tuple[np.ndarray, str]:
    """The raw data and implementation name of a key (a typed key, or raw key data)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key)), str(jax.random.key_impl(key))
    return np.asarray(key, np.uint32), str(jax.config.jax_default_prng_impl)


def _weights_for_fit(w: np.ndarray, prior: Prior | None) -> tuple[np.ndarray, float]:
    """The sample weights EM computes with, and the factor that maps its totals back.

    A common scale of the weights does not change a maximum-likelihood fit, but
    the M-step's guard against empty components (``counts + 10 eps``) is
    absolute: weights of 1e-15 would make it as large as the counts themselves.
    Without a prior EM therefore runs on weights of mean 1 and every total it
    reports (log-likelihood, history, ICL term) is multiplied back by
    ``w_scale``. Under MAP-EM the weights' scale is information (how much data
    there is next to the prior), so they are used as given.
    """
    if prior is not None:
        return w, 1.0
    total = float(w.sum())  # > 0: check_sample_weight saw a positive sum
    if np.isfinite(total):
        scale = total / w.size
    else:  # the sum overflows: take the mean of w / max(w) instead
        top = float(w.max())
        scale = top * float((w / top).mean())
    if scale == 1.0:  # unit weights (the default): no copy
        return w, 1.0
    return (w / scale).astype(w.dtype, copy=False), scale


def _check_init(init, K: int, D: int, dtype) -> GMMParams | None:
    if isinstance(init, GMMParams):
        if init.batch_shape:
            raise ValueError(
                f"init must be a single GMMParams without batch axes; got batch shape "
                f"{init.batch_shape}. Select one, e.g. init=post.params[0, -1]."
            )
        if init.n_components != K or init.n_features != D:
            raise ValueError(
                f"init has K={init.n_components}, D={init.n_features} but the model has "
                f"K={K}, D={D}; pass initial parameters of matching shape."
            )
        return init.astype(dtype)
    if isinstance(init, str) and init in INIT_METHODS:
        return None
    raise ValueError(f"init must be one of {INIT_METHODS} or a GMMParams; got {init!r}.")


#: Restarts whose objectives agree to this relative tolerance are a tie, the first wins:
#: which of two restarts at one optimum rounding puts on top depends on the layout.
TIE_RTOL = 1e-11


def _select_best(out, std, prior, structure, totals, reg_covar, D, w_scale=1.0) -> EMResult:
    """The best restart, in the user's units and for the user's sample weights.

    ``totals`` is ``(sum of the user's weights, rows with positive weight)``;
    EM ran on ``w / w_scale`` (see :func:`_weights_for_fit`), so its totals
    are multiplied by ``w_scale``. Only these totals are needed, so a fit whose
    data never sit in one process (:mod:`bayesgmm.em._dask`) uses it too.
    """
    w_total, n_positive = totals
    failed = np.asarray(out.failed)
    objectives = np.where(failed, -np.inf, np.asarray(out.objective))
    if failed.all():
        float32 = ""
        if np.asarray(out.objective).dtype == np.float32:
            float32 = (
                " The data are float32, whose ~7 significant digits cannot hold the spread "
                "of most points next to values many orders of magnitude larger (an outlier, "
                "columns on very different scales): refit in float64 first (dtype='float64', "
                "or X.astype(np.float64)). Otherwise:"
            )
        raise ValueError(
            "EM broke down in every restart: a covariance became singular (a component "
            f"collapsed onto too few points).{float32} Increase reg_covar (now {reg_covar:g}), "
            "use a prior (prior=Prior.default(X, K)), fewer components, or another init."
        )
    top = float(objectives.max())  # within TIE_RTOL of it: a tie, the first restart wins
    best = int(np.flatnonzero(objectives >= top - TIE_RTOL * max(1.0, abs(top)))[0])
    pick = jax.tree.map(lambda leaf: np.asarray(leaf)[best], out)
    n_iter = int(pick.n_iter)
    log_jac = w_total * D * math.log(std.scale)
    history = w_scale * np.asarray(pick.history[: n_iter + 1]) - log_jac
    params = std.params_out(pick.params)
    log_lik = w_scale * float(pick.log_lik) - log_jac
    log_post = hist_post = None
    prior_shift = 0.0
    if prior is not None:
        # The prior density changes under the standardising map by a constant:
        # recompute it in the user's units and shift the history by the same amount.
        scaled_prior = std.prior_in(prior)
        with jax.enable_x64(True):
            lp_user = float(log_prior_jit(prior, params, structure))
            lp_scaled = float(log_prior_jit(scaled_prior, pick.params, structure))
        prior_shift = lp_user - lp_scaled
        log_post = log_lik + lp_user
        hist_post = np.asarray(pick.history_objective[: n_iter + 1]) - log_jac + prior_shift
    converged = bool(pick.converged)
    if not converged:
        warn(
            f"EM did not converge in {n_iter} iterations; increase max_iter or loosen tol.",
            _warnings.ConvergenceWarning,
        )
    degenerate = degenerate_components(params, structure, prior, reg_covar, n_positive)
    return EMResult(
        params=params,
        log_likelihood=log_lik,
        log_posterior=log_post,
        converged=converged,
        n_iter=n_iter,
        history=history,
        history_log_posterior=hist_post,
        covariance_type=structure,
        prior=prior,
        n_samples=w_total,
        reg_covar=reg_covar,
        restart_objectives=np.where(
            failed, np.nan, w_scale * np.asarray(out.objective) - log_jac + prior_shift
        ),
        best_restart=best,
        _hard_log_resp=w_scale * float(pick.hard_log_resp),
        degenerate_components=degenerate,
    )
