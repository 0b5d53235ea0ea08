"""A scikit-learn compatible estimator over :func:`bayesgmm.fit_em`.

:class:`GaussianMixture` is a stateful shell: it validates input the
scikit-learn way, translates scikit-learn's conventions (``random_state``,
``*_init`` arguments, ``warm_start``, ``max_iter=0``, compact covariance
shapes, its messages) to and from the library's, and stores the fitted
:class:`~bayesgmm.GMMParams`. All the maths lives in :mod:`bayesgmm.em`,
:mod:`bayesgmm.density` and the covariance registry.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from bayesgmm._core import _linalg
from bayesgmm._core import covariance as _cov
from bayesgmm._core._blocks import em_block_layout
from bayesgmm._core._precision import resolve_dtype, x64
from bayesgmm._core._validation import (
    check_fit_inputs,
    check_n_components,
    check_positive_int,
    check_sample_weight,
    check_seed,
    column_stats,
)
from bayesgmm._core._warnings import ConvergenceWarning, warn
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.em import _core as _em_core
from bayesgmm.em._fit import EMResult, check_em_settings, fit_em, n_parameters
from bayesgmm.em._init import INIT_METHODS
from bayesgmm.em._standardize import Standardizer

__all__ = ["GaussianMixture"]

_DTYPES = (np.float64, np.float32)

# scikit-learn's spelling of an initialisation -> the library's name for it.
_INIT_ALIASES = {"k-means++": "kmeans++"}

# scikit-learn's wording, which code written for scikit-learn matches; the
# library's own explanation follows it in each message.
_SK_NOT_CONVERGED = (
    "Best performing initialization did not converge. Try different init parameters, "
    "or increase max_iter, tol, or check for degenerate data."
)
_SK_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease "
    "the number of components, increase reg_covar, or scale the input data."
)


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM or MAP-EM, usable wherever scikit-learn's is.

    A thin shell over :func:`bayesgmm.fit_em`: same model, same parameters,
    same results, with scikit-learn's interface (``fit``/``predict``/``score``,
    pipelines, grid searches, ``clone``, pickling, ``warm_start``,
    ``max_iter=0``, ``verbose``) and its fitted attributes in its shapes.
    scikit-learn's own ``GaussianMixture`` test module passes against this
    class (``tests/sklearn_compat``). The full-matrix
    :class:`~bayesgmm.GMMParams` (``params_``) and the
    :class:`~bayesgmm.EMResult` (``result_``) are kept alongside, so a fit made
    here can be compared with posterior draws like any other.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components K, at most the number of samples.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance structure (any name in :data:`bayesgmm.COVARIANCE_TYPES`).
    tol : float, default=1e-3
        Stop when the mean log-likelihood (log posterior under a prior) per
        sample changes by less than ``tol`` between iterations.
    reg_covar : float, optional
        Added to the diagonal of every covariance in the M-step. Default
        ``1e-6`` without a prior and ``0`` with one (see :func:`~bayesgmm.fit_em`).
    max_iter : int, default=100
        Most EM iterations; a :class:`~bayesgmm.ConvergenceWarning` (a subclass
        of scikit-learn's) is raised when they are used up. ``0`` runs no
        iteration: the fitted parameters are the initialisation EM would start
        from (the first restart's), as in scikit-learn.
    n_init : int, default=1
        Restarts, run together (vectorised); the best final objective wins.
        The first restart is the one ``n_init=1`` runs; it is also run alone
        (vectorised arithmetic rounds differently) and wins ties, so more
        restarts never end lower than one with the same int ``random_state``.
        Ignored (one start) when any of the
        ``*_init`` arguments is given, and by a warm-started fit.
    init_params : {"kmeans++", "k-means++", "kmeans", "random", "random_from_data"}, \
default="kmeans++"
        How initial responsibilities are drawn (see :func:`~bayesgmm.fit_em`);
        ``"k-means++"`` is scikit-learn's spelling of ``"kmeans++"``.
    weights_init : array-like of shape (n_components,), optional
        Initial weights, non-negative and summing to one.
    means_init : array-like of shape (n_components, n_features), optional
        Initial means.
    precisions_init : array-like, optional
        Initial precisions (inverse covariances) in scikit-learn's shape for
        ``covariance_type``: ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)``
        diag, ``(K,)`` spherical.

        When only some of the three ``*_init`` arguments are given, the rest
        are filled in once before EM starts:

        - with ``means_init``: equal weights, and every component starts with
          the covariance of the whole data set (a one-component fit of the same
          ``covariance_type``), so the first E-step is driven by the given means;
        - without it: means, and the missing weights or covariances, are those
          of the initialisation ``init_params`` gives (seeded by ``random_state``),
          the parameters ``max_iter=0`` returns.

    prior : None, "default" or Prior, default=None
        ``None`` fits by maximum likelihood. A :class:`~bayesgmm.Prior` (built
        for this ``n_components`` and the data's number of features) fits by
        MAP-EM; ``"default"`` builds ``Prior.default(X, n_components,
        sample_weight=sample_weight)`` from the training data at fit time.
    random_state : None, int or numpy.random.RandomState, optional
        Seed of the initialisation and of :meth:`sample`. An int (in
        ``[0, 2**63)``) is used as the JAX seed; otherwise an int seed is drawn
        from ``check_random_state(random_state)``.
    warm_start : bool, default=False
        When True, a fit after the first continues EM from the fitted
        parameters (one start, ``n_init`` ignored) with the same ``n_components``
        and number of features. The convergence test runs on across fits as in
        scikit-learn: if the previous fit's last iteration changed the mean
        objective by less than ``tol``, the next fit takes one iteration and
        reports ``converged_``.
    verbose : int, default=0
        1 prints the iterations (every ``verbose_interval``-th) and whether the
        fit converged, 2 also the lower bound, its change and the time. The
        whole EM loop runs as one compiled program, so the lines are printed
        when it returns, and the time is that of the whole fit.
    verbose_interval : int, default=10
        Iterations between two printed lines.
    dtype : {None, "float64", "float32"}, optional
        Precision of the fit; float64 unless X is float32 or float32 is asked for.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical.
    precisions_ : ndarray
        Inverses of the covariances, in the same shape as ``covariances_``.
    precisions_cholesky_ : ndarray
        Cholesky factors of the precisions, upper triangular for full and tied
        (``precision = P @ P.T``, as in scikit-learn), same shape as ``covariances_``.
    converged_ : bool
    n_iter_ : int
        EM iterations (M-steps) of the returned fit.
    lower_bound_ : float
        Mean log-likelihood per sample (per unit of sample weight) of the
        returned parameters; under a prior (MAP-EM), the mean log posterior
        ``(log-likelihood + log prior) / n_samples``. Unlike scikit-learn,
        whose value belongs to the parameters before the last M-step, it is
        evaluated at the returned parameters (also with ``max_iter=0``, where
        scikit-learn reports ``-inf``), by the same computation as
        :meth:`score`: for a maximum-likelihood fit it equals
        ``score(X, sample_weight=sample_weight)`` on the training data exactly.
    lower_bounds_ : list of float
        The same quantity after each iteration of the returned fit (length
        ``n_iter_``, last entry ``lower_bound_``).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when X has string column names (a pandas DataFrame).
    params_ : GMMParams
        The fitted parameters with full ``(K, D, D)`` covariances.
    result_ : EMResult
        Everything :func:`~bayesgmm.fit_em` returned (history, log posterior,
        restarts, BIC/AIC/ICL on the training data).

    See Also
    --------
    bayesgmm.fit_em : the functional engine underneath.
    sklearn.mixture.GaussianMixture : the interface this follows.

    Examples
    --------
    >>> from bayesgmm.datasets import load_faithful
    >>> from bayesgmm import GaussianMixture
    >>> X = load_faithful()
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> gm.means_.shape, gm.covariances_.shape
    ((2, 2), (2, 2, 2))
    >>> gm.predict(X[:4]).shape
    (4,)
    >>> bool(gm.bic(X) < GaussianMixture(n_components=1).fit(X).bic(X))
    True
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=None,
        max_iter=100,
        n_init=1,
        init_params="kmeans++",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        dtype=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.prior = prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.dtype = dtype

    # ------------------------------------------------------------------ fit ---
    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture by EM (MAP-EM with a prior).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights acting as replication counts.

        Returns
        -------
        self : GaussianMixture
        """
        X = validate_data(self, X, dtype=list(_DTYPES), ensure_min_samples=1)
        K = check_n_components(self.n_components, X.shape[0])
        method = self._init_method()
        max_iter = _check_max_iter(self.max_iter)
        self._check_verbose()
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        seed = _seed(self.random_state)
        prior = self._resolve_prior(X, K, sample_weight)
        settings = {
            "covariance_type": self.covariance_type,
            "prior": prior,
            "sample_weight": sample_weight,
            "tol": self.tol,
            "reg_covar": self.reg_covar,
            "dtype": self.dtype,
        }
        started = time.perf_counter()
        try:
            if warm:
                result = self._fit_warm(X, K, max_iter, settings)
            elif max_iter == 0:
                prep = self._prepare(X, K, settings, quiet=False)
                start = self._with_inits(prep, lambda: _first_start(prep, method, seed))
                result = _evaluate(prep, start)
            elif self._has_inits():
                prep = self._prepare(X, K, settings, quiet=True)
                start = self._with_inits(prep, lambda: _first_start(prep, method, seed))
                result = _fit_em(X, K, init=start, max_iter=max_iter, **settings)
            else:
                result = self._fit_restarts(X, K, method, seed, max_iter, settings)
        except ValueError as err:
            if str(err).startswith("EM broke down"):
                raise ValueError(f"{_SK_ILL_DEFINED} bayesgmm: {err}") from err
            raise
        self._store(result, X, sample_weight)
        if not self.converged_ and max_iter > 0:
            warn(_not_converged_message(result, max_iter, self.tol), ConvergenceWarning)
        if self.verbose:
            self._print_report(result, warm, time.perf_counter() - started)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each row of ``X``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.fit(X, y, sample_weight=sample_weight).predict(X)

    def _init_method(self):
        method = self.init_params
        if isinstance(method, str):
            method = _INIT_ALIASES.get(method, method)
        if not isinstance(method, str) or method not in INIT_METHODS:
            raise ValueError(
                f"init_params must be one of {INIT_METHODS} ('k-means++', scikit-learn's "
                f"spelling of 'kmeans++', is accepted too); got {self.init_params!r}."
            )
        return method

    def _check_verbose(self):
        verbose = self.verbose
        if not isinstance(verbose, numbers.Integral) or verbose < 0:
            raise ValueError(f"verbose must be an integer >= 0 (or a bool); got {verbose!r}.")
        check_positive_int("verbose_interval", self.verbose_interval)

    def _has_inits(self):
        return not (
            self.weights_init is None and self.means_init is None and self.precisions_init is None
        )

    def _resolve_prior(self, X, K, sample_weight):
        if self.prior is None:
            return None
        if isinstance(self.prior, Prior):
            return self.prior
        if isinstance(self.prior, str) and self.prior == "default":
            return Prior.default(X, K, sample_weight=sample_weight, dtype=self.dtype)
        raise ValueError(
            f"prior must be None (maximum likelihood), 'default' (Prior.default(X, K) at fit "
            f"time) or a bayesgmm.Prior; got {self.prior!r}."
        )

    def _prepare(self, X, K, settings, *, quiet):
        """Validated data, weights and settings, for the starts computed here.

        ``quiet`` drops the ``reg_covar=0`` warning that a following
        :func:`~bayesgmm.fit_em` call gives again.
        """
        dt = resolve_dtype(self.dtype, X)
        data, w, K = check_fit_inputs(X, K, settings["sample_weight"], dt, copy=False)
        with warnings.catch_warnings():
            if quiet:
                warnings.filterwarnings("ignore", message="reg_covar=0 without a prior")
            checked = check_em_settings(
                data,
                K,
                covariance_type=settings["covariance_type"],
                prior=settings["prior"],
                n_init=self.n_init,
                tol=self.tol,
                reg_covar=self.reg_covar,
            )
        return _Prepared(data, w, K, checked["structure"], checked["prior"], checked["reg_covar"])

    def _with_inits(self, prep, base):
        """Starting parameters: ``base()`` (a GMMParams) with the ``*_init`` in place of its parts.

        See ``precisions_init`` in the class docstring for what fills the
        parts that are not given; ``base`` is called only when it is needed.
        """
        K, D = prep.K, prep.data.shape[1]
        weights = None if self.weights_init is None else _check_weights_init(self.weights_init, K)
        means = None if self.means_init is None else _check_means_init(self.means_init, K, D)
        covariances = (
            None
            if self.precisions_init is None
            else _covariances_from_precisions(self.precisions_init, prep.structure, K, D)
        )
        if means is None:
            start = base().to_numpy()
            means = start["means"]
            weights = start["weights"] if weights is None else weights
            covariances = start["covariances"] if covariances is None else covariances
        else:
            weights = np.full(K, 1.0 / K) if weights is None else weights
            if covariances is None:
                covariances = np.broadcast_to(_whole_data_covariance(prep), (K, D, D))
        params = GMMParams(weights=weights, means=means, covariances=covariances)
        return params.astype(prep.data.dtype)

    def _fit_restarts(self, X, K, method, seed, max_iter, settings):
        """``n_init`` restarts by ``init_params``; never lower than the first one alone.

        The restarts run together (vectorised), so the first one's arithmetic
        differs from the same start run alone (``n_init=1``) in the last bits,
        and its result can end a hair lower. The first start is therefore also
        run alone and kept unless the best restart ends strictly higher.
        """
        result = _fit_em(
            X, K, init=method, n_init=self.n_init, seed=seed, max_iter=max_iter, **settings
        )
        if result.restart_objectives.shape[0] == 1:
            return result
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the data warnings were given by the fit above
            try:
                first = _fit_em(
                    X, K, init=method, n_init=1, seed=seed, max_iter=max_iter, **settings
                )
            except ValueError:  # the first start broke down alone; another restart did not
                return result
        # Compared as lower_bound_ and score() compute them, so that neither can
        # end below the first start's.
        if _mean_objective(first, X, settings["sample_weight"]) <= _mean_objective(
            result, X, settings["sample_weight"]
        ):
            return result
        objectives = result.restart_objectives.copy()
        objectives[0] = _objective(first)
        return dataclasses.replace(first, restart_objectives=objectives, best_restart=0)

    def _fit_warm(self, X, K, max_iter, settings):
        """Continue EM from the fitted parameters (``warm_start=True`` after a fit)."""
        previous = self.result_
        D = X.shape[1]
        if previous.n_components != K or previous.n_features != D:
            raise ValueError(
                f"warm_start=True continues from the previous fit, which has n_components="
                f"{previous.n_components} and {previous.n_features} features; got n_components="
                f"{K} and X with {D} features. Set warm_start=False to start afresh."
            )
        start = self.params_
        if max_iter == 0:
            return _evaluate(self._prepare(X, K, settings, quiet=False), start)
        if _last_change(previous) < self.tol:
            # scikit-learn's test carried across fits: the previous fit's last
            # iteration already changed the mean objective by less than tol, so
            # this fit's first iteration ends converged.
            result = _fit_em(X, K, init=start, max_iter=1, **settings)
            return dataclasses.replace(result, converged=True)
        return _fit_em(X, K, init=start, max_iter=max_iter, **settings)

    def _store(self, result, X, sample_weight):
        self.result_ = result
        self._set_params_attributes(result.params)
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.lower_bound_ = _mean_objective(result, X, sample_weight)
        self.lower_bounds_ = [float(v) / result.n_samples for v in _history(result)[1:]]

    def _set_params_attributes(self, params):
        """``params_`` and scikit-learn's fitted attributes in its shapes."""
        structure = _cov.get(self.covariance_type)
        self.params_ = params
        self.weights_ = np.array(params.weights)
        self.means_ = np.array(params.means)
        prec_chol, prec = _inverse_and_factor(params.covariances)
        self.covariances_ = np.array(structure.to_sklearn(np.asarray(params.covariances)))
        self.precisions_ = np.array(structure.to_sklearn(prec))
        self.precisions_cholesky_ = np.array(structure.to_sklearn(prec_chol))

    def _print_report(self, result, warm, elapsed):
        """scikit-learn's verbose lines, printed after the compiled EM loop returns."""
        n_restarts = result.restart_objectives.shape[0]
        if warm:
            print("Initialization 0 (warm start: continuing from the previous fit)")
        elif n_restarts > 1:
            print(f"Initialization {result.best_restart} (the best of {n_restarts}, run together)")
        else:
            print("Initialization 0")
        # Mean objective of the starting parameters, then after each iteration.
        path = [float(_history(result)[0]) / result.n_samples, *self.lower_bounds_]
        for i in range(self.verbose_interval, result.n_iter + 1, self.verbose_interval):
            if self.verbose == 1:
                print(f"  Iteration {i}")
            else:
                change = path[i] - path[i - 1]
                print(f"  Iteration {i}\t lower bound {path[i]:.5f}\t ll change {change:.5f}")
        status = "converged" if result.converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {status}.")
            return
        print(
            f"Initialization {status}. time lapse {elapsed:.5f}s\t "
            f"lower bound {self.lower_bound_:.5f}."
        )
        if n_restarts > 1:
            finals = ", ".join(f"{v / result.n_samples:.5f}" for v in result.restart_objectives)
            print(f"  final lower bound of each restart: {finals}")

    # ------------------------------------------- scikit-learn's private hooks ---
    def _get_parameters(self):
        return (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    def _set_parameters(self, params):
        """Set fitted parameters given as ``(weights, means, covariances, precisions_cholesky)``.

        The hook scikit-learn's mixtures share, with its shapes. As there, the precisions are
        computed from their Cholesky factors (``P @ P.T``, or squares for diag
        and spherical); ``params_`` is built from the covariances and
        validated. The arrays keep their dtype and are copied.
        """
        weights, means, covariances, prec_chol = (np.array(a) for a in params)
        structure = _cov.get(self.covariance_type)
        K, D = means.shape
        self.weights_, self.means_ = weights, means
        self.covariances_, self.precisions_cholesky_ = covariances, prec_chol
        if structure.name in ("full", "tied"):
            self.precisions_ = prec_chol @ np.swapaxes(prec_chol, -1, -2)
        else:
            self.precisions_ = prec_chol**2
        # scikit-learn's hook takes any arrays (its own tests pass unnormalised
        # weights); params_ holds them only when they are a valid mixture.
        try:
            self.params_ = GMMParams(
                weights=weights, means=means, covariances=structure.from_sklearn(covariances, K, D)
            )
        except ValueError as err:
            self.params_ = None
            self._invalid_params = str(err)

    def _initialize(self, X, resp):
        """Starting parameters from responsibilities ``resp`` (N, K), set as the fitted ones.

        The hook scikit-learn's mixtures share: one M-step from ``resp`` (with
        ``reg_covar`` and the prior), then the ``*_init`` arguments in place of
        their parts, by the same rules as :meth:`fit` (``resp`` stands for the
        responsibilities ``init_params`` would draw). K is ``resp``'s number of
        columns, as in scikit-learn.
        """
        X = check_array(X, dtype=list(_DTYPES))
        resp = check_array(resp, dtype=list(_DTYPES))
        if resp.shape[0] != X.shape[0]:
            raise ValueError(
                f"resp must have one row per row of X ({X.shape[0]}); got shape {resp.shape}."
            )
        K = resp.shape[1]
        settings = {
            "covariance_type": self.covariance_type,
            "prior": self._resolve_prior(X, K, None),
            "sample_weight": None,
        }
        prep = self._prepare(X, K, settings, quiet=False)
        params = self._with_inits(
            prep, lambda: _m_step_params(prep, resp, prior=prep.prior, reg_covar=prep.reg_covar)
        )
        self._set_params_attributes(params)

    # ------------------------------------------------------------- predict ---
    def _check_X(self, X):
        self._fitted_params()
        return validate_data(self, X, dtype=list(_DTYPES), reset=False)

    def _fitted_params(self) -> GMMParams:
        check_is_fitted(self)
        if self.params_ is None:
            raise ValueError(
                "The parameters set by _set_parameters are not a valid mixture "
                f"({self._invalid_params}); set valid ones or fit the estimator."
            )
        return self.params_

    def score_samples(self, X):
        """Log density of the fitted mixture at each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        X = self._check_X(X)
        return np.asarray(self._fitted_params().log_prob(X))

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood per sample of ``X`` (weighted mean with ``sample_weight``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        log_prob = self.score_samples(X)
        if sample_weight is None:
            return float(log_prob.mean())
        w = check_sample_weight(sample_weight, log_prob.shape[0], np.dtype(np.float64))
        return float(np.average(log_prob, weights=w))

    def predict_proba(self, X):
        """Membership probabilities of each row of ``X``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_components)
            Rows sum to one.
        """
        X = self._check_X(X)
        return np.asarray(self._fitted_params().responsibilities(X))

    def predict(self, X):
        """Most probable component of each row of ``X``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.predict_proba(X).argmax(axis=1)

    def sample(self, n_samples=1):
        """Draw new data from the fitted mixture.

        The JAX key is seeded from ``random_state`` (an int seed gives the
        same draws on every call, as in scikit-learn). JAX compiles one
        program per number of draws, so a bucketed number is drawn (a power of
        two, or a multiple of 65536 above that) and the first ``n_samples``
        rows, independent draws, are returned: calls with many different sizes
        reuse a few programs.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            The component each row was drawn from.
        """
        params = self._fitted_params()
        if (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, numbers.Integral)
            or n_samples < 1
        ):
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at least "
                "one sample: n_samples must be an integer >= 1."
            )
        n = int(n_samples)
        key = _key(_seed(self.random_state))
        X, labels = params.sample(key, _draw_size(n))
        return np.asarray(X)[:n], np.asarray(labels, dtype=np.int64)[:n]

    # ---------------------------------------------------- model selection ---
    def _n_parameters(self):
        check_is_fitted(self)
        K, D = self.means_.shape
        return n_parameters(K, D, _cov.get(self.covariance_type).name)

    def bic(self, X):
        """Bayesian information criterion on ``X``: ``-2 log L + p log n``; lower is better.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        float
        """
        n = self._check_X(X).shape[0]
        return -2.0 * self.score(X) * n + self._n_parameters() * math.log(n)

    def aic(self, X):
        """Akaike information criterion on ``X``: ``-2 log L + 2 p``; lower is better.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        float
        """
        n = self._check_X(X).shape[0]
        return -2.0 * self.score(X) * n + 2.0 * self._n_parameters()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


# ------------------------------------------------------------------ helpers ---
@dataclasses.dataclass(frozen=True)
class _Prepared:
    """Validated inputs of a start computed here (what ``fit_em`` would check)."""

    data: np.ndarray
    w: np.ndarray
    K: int
    structure: str
    prior: Prior | None
    reg_covar: float


def _fit_em(X, K, **kwargs):
    """:func:`fit_em`, whose non-convergence warning the estimator words itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        return fit_em(X, K, **kwargs)


def _history(result: EMResult) -> np.ndarray:
    """The total objective (log posterior under a prior) at the start and after each iteration."""
    if result.history_log_posterior is None:
        return np.asarray(result.history)
    return np.asarray(result.history_log_posterior)


def _objective(result: EMResult) -> float:
    return result.log_likelihood if result.log_posterior is None else result.log_posterior


def _mean_objective(result: EMResult, X, sample_weight) -> float:
    """``lower_bound_``: the mean log-likelihood of ``X`` computed as :meth:`score` does.

    Plus ``log prior / n_samples`` under a prior. EM's own total differs from
    it in the last bits; computing both the same way keeps ``lower_bound_``
    and ``score(X)`` of a fit equal and comparable across fits.
    """
    log_prob = np.asarray(result.params.log_prob(X))
    if sample_weight is None:
        mean = float(log_prob.mean())
    else:
        w = check_sample_weight(sample_weight, log_prob.shape[0], np.dtype(np.float64))
        mean = float(np.average(log_prob, weights=w))
    if result.prior is not None:
        log_prior = result.prior.log_prob(result.params, result.covariance_type)
        mean += float(log_prior) / result.n_samples
    return mean


def _last_change(result: EMResult) -> float:
    """How much the last iteration changed the mean objective (inf without iterations)."""
    if result.n_iter < 1:
        return math.inf
    history = _history(result)
    return abs(float(history[-1] - history[-2])) / result.n_samples


def _not_converged_message(result: EMResult, max_iter: int, tol) -> str:
    return (
        f"{_SK_NOT_CONVERGED} bayesgmm: EM stopped after {result.n_iter} iterations "
        f"(max_iter={max_iter}) with the mean objective still changing by "
        f"{_last_change(result):.3g} per iteration (tol={tol:g})."
    )


_DRAW_CHUNK = 1 << 16


def _draw_size(n: int) -> int:
    """Draws made for ``n`` samples: the next power of two, or multiple of 65536 above it."""
    if n <= _DRAW_CHUNK:
        return 1 << (n - 1).bit_length()
    return -(-n // _DRAW_CHUNK) * _DRAW_CHUNK


def _check_max_iter(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"max_iter must be an integer >= 0 (0 returns the initialisation); got {value!r}."
        )
    return int(value)


def _seed(random_state) -> int:
    """An int seed: ``random_state`` itself if it is one, else drawn from it."""
    if random_state is None or isinstance(random_state, np.random.RandomState):
        return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    try:
        return check_seed(random_state, name="random_state")
    except TypeError as err:
        raise TypeError(
            f"{err} (scikit-learn's convention: None, an int or a numpy.random.RandomState)"
        ) from None


@x64
def _key(seed: int):
    return jax.random.key(seed)


# ------------------------------------------------------ starting values ---
_init_params_jit = jax.jit(
    _em_core.init_params, static_argnames=("n_components", "method", "structure")
)


@functools.partial(jax.jit, static_argnames="structure")
def _m_step_jit(X, w, resp, prior, reg_covar, *, structure):
    stats = _em_core.stats_from_responsibilities(X, w, resp)
    return _em_core.m_step(stats, structure, prior, reg_covar)


def _standardized(prep: _Prepared, n_components: int, prior):
    """The data as EM sees them: standardised, in blocks, weights of mean one without a prior."""
    data, w = prep.data, prep.w
    N, D = data.shape
    std = Standardizer.from_stats(column_stats(data, w))
    n_blocks, B = em_block_layout(N, n_components, D)
    if prior is None:  # the scale of the weights does not change an ML start
        scale = float(w.mean())
        w = w / (scale if np.isfinite(scale) and scale > 0 else float(w.max()))
    ws = np.zeros(n_blocks * B, data.dtype)
    ws[:N] = w
    return std, std.blocks(data, n_blocks, B), jnp.asarray(ws.reshape(n_blocks, B))


@x64
def _first_start(prep: _Prepared, method: str, seed: int) -> GMMParams:
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
def _m_step_params(prep: _Prepared, resp, *, prior, reg_covar) -> GMMParams:
    """One M-step from responsibilities ``resp`` (N, K), in the user's units."""
    N, K = resp.shape
    std, Xs, ws = _standardized(prep, K, prior)
    n_blocks, B = Xs.shape[:2]
    padded = np.zeros((n_blocks * B, K), prep.data.dtype)
    padded[:N] = resp
    params = _m_step_jit(
        Xs,
        ws,
        jnp.asarray(padded.reshape(n_blocks, B, K)),
        std.prior_in(prior),
        np.asarray(reg_covar / std.scale**2, prep.data.dtype),
        structure=prep.structure,
    )
    return std.params_out(params)


def _whole_data_covariance(prep: _Prepared) -> np.ndarray:
    """The covariance of a one-component fit of the structure (``reg_covar``, at least 1e-6)."""
    ones = np.ones((prep.data.shape[0], 1), prep.data.dtype)
    one = _m_step_params(prep, ones, prior=None, reg_covar=prep.reg_covar or 1e-6)
    return np.asarray(one.covariances)[0]


@x64
def _evaluate(prep: _Prepared, params: GMMParams) -> EMResult:
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


@x64
def _inverse_and_factor(mat):
    """For SPD ``mat`` (..., D, D): ``U = L^{-T}`` (``mat = L L^T``) and ``mat^{-1} = U U^T``.

    One Cholesky factorisation and one triangular solve; entries are NaN where
    ``mat`` is not positive definite.
    """
    factor = _linalg.precision_cholesky(_linalg.cholesky(jnp.asarray(mat)))
    inverse = _linalg.symmetrize(factor @ jnp.swapaxes(factor, -1, -2))
    return np.asarray(factor), np.asarray(inverse)


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


def _check_weights_init(weights, K):
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


def _check_means_init(means, K, D):
    m = _as_float_array("means_init", means)
    _check_shape(m, (K, D), "means", f"means_init must have shape {(K, D)} (K, D)")
    _check_finite(m, "means_init")
    return m


def _covariances_from_precisions(precisions, structure, K, D):
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
    _, covariances = _inverse_and_factor(full)
    if not np.isfinite(covariances).all():
        raise ValueError(
            f"'{structure} precision' should be {sk_requirement}: precisions_init must be "
            "positive definite (positive for 'diag' and 'spherical')."
        )
    return covariances
