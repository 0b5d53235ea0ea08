"""A scikit-learn compatible estimator over :func:`bayesgmm.fit_em`.

:class:`GaussianMixture` is a stateful shell: it validates input the
scikit-learn way, translates scikit-learn's conventions (``random_state``,
``*_init`` arguments, ``warm_start``, ``max_iter=0``, compact covariance
shapes, its messages) to and from the library's, and stores the fitted
:class:`~bayesgmm.GMMParams`. All the maths lives in :mod:`bayesgmm.em`,
:mod:`bayesgmm.density` and the covariance registry.
"""

from __future__ import annotations

import math
import numbers
import time

import jax
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from bayesgmm._core import covariance as _cov
from bayesgmm._core._precision import x64
from bayesgmm._core._validation import (
    check_n_components,
    check_positive_int,
    check_sample_weight,
    check_seed,
)
from bayesgmm._core._warnings import ConvergenceWarning, warn
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.em import _estimator_fit as _fit
from bayesgmm.em._fit import n_parameters
from bayesgmm.em._init import INIT_METHODS

__all__ = ["GaussianMixture"]

_DTYPES = (np.float64, np.float32)

# scikit-learn's spelling of an initialisation -> the library's name for it.
_INIT_ALIASES = {"k-means++": "kmeans++"}


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
        Restarts, run one after another in one program; the best final objective
        wins. The first restart is the one ``n_init=1`` runs; it is also run
        alone (a program of another shape can round differently) and taken when
        it ends higher than the best of the others, so more restarts never end lower
        (``lower_bound_``, ``score``) than one with the same int ``random_state``.
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
        The same quantity after each iteration of the returned fit, from EM's
        own totals (length ``n_iter_``; the last entry is ``lower_bound_`` up
        to rounding).
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
        max_iter = _fit.check_max_iter(self.max_iter)
        self._check_verbose()
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        seed = _seed(self.random_state)
        prior = self._resolve_prior(X, K, sample_weight)
        settings = self._settings(prior, sample_weight)
        started = time.perf_counter()
        inits = (self.weights_init, self.means_init, self.precisions_init)
        try:
            if warm:
                result = _fit.fit_warm(
                    self.result_,
                    X,
                    K,
                    max_iter=max_iter,
                    tol=self.tol,
                    settings=settings,
                    prepare=lambda: _fit.prepare(X, K, settings, n_init=1, quiet=False),
                )
            elif max_iter == 0 or self._has_inits():
                prep = _fit.prepare(X, K, settings, n_init=self.n_init, quiet=max_iter > 0)
                start = _fit.with_inits(prep, *inits, lambda: _fit.first_start(prep, method, seed))
                if max_iter == 0:
                    result = _fit.evaluate_start(prep, start)
                else:
                    result = _fit.fit_em_quiet(X, K, init=start, max_iter=max_iter, **settings)
            else:
                result = _fit.fit_restarts(
                    X,
                    K,
                    method=method,
                    seed=seed,
                    max_iter=max_iter,
                    n_init=self.n_init,
                    settings=settings,
                )
        except ValueError as err:
            if str(err).startswith("EM broke down"):
                raise ValueError(f"{_fit.SK_ILL_DEFINED} bayesgmm: {err}") from err
            raise
        self._store(result, X, sample_weight)
        if not self.converged_ and max_iter > 0:
            warn(_fit.not_converged_message(result, max_iter, self.tol), ConvergenceWarning)
        if self.verbose:
            _fit.print_report(
                result,
                self.lower_bound_,
                self.lower_bounds_,
                warm=warm,
                elapsed=time.perf_counter() - started,
                verbose=self.verbose,
                interval=self.verbose_interval,
            )
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

    def _settings(self, prior, sample_weight):
        """The keyword arguments of :func:`~bayesgmm.fit_em` every fit passes."""
        return {
            "covariance_type": self.covariance_type,
            "prior": prior,
            "sample_weight": sample_weight,
            "tol": self.tol,
            "reg_covar": self.reg_covar,
            "dtype": self.dtype,
        }

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

    def _store(self, result, X, sample_weight):
        self.result_ = result
        self._set_params_attributes(result.params)
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.lower_bound_ = _fit.mean_objective(result, X, sample_weight)
        self.lower_bounds_ = [float(v) / result.n_samples for v in _fit.history(result)[1:]]

    def _set_params_attributes(self, params):
        """``params_`` and scikit-learn's fitted attributes in its shapes."""
        structure = _cov.get(self.covariance_type)
        self.params_ = params
        self.weights_ = np.array(params.weights)
        self.means_ = np.array(params.means)
        prec_chol, prec = _fit.inverse_and_factor(params.covariances)
        self.covariances_ = np.array(structure.to_sklearn(np.asarray(params.covariances)))
        self.precisions_ = np.array(structure.to_sklearn(prec))
        self.precisions_cholesky_ = np.array(structure.to_sklearn(prec_chol))

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
        settings = self._settings(self._resolve_prior(X, K, None), None)
        prep = _fit.prepare(X, K, settings, n_init=1, quiet=False)
        params = _fit.with_inits(
            prep,
            self.weights_init,
            self.means_init,
            self.precisions_init,
            lambda: _fit.m_step_params(prep, resp, prior=prep.prior, reg_covar=prep.reg_covar),
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
        return _fit.log_prob(self._fitted_params(), X)

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
        X, labels = params.sample(key, _fit.draw_size(n))
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
