"""A scikit-learn compatible estimator over :func:`bayesgmm.fit_em`.

:class:`GaussianMixture` is a stateful shell: it validates input the
scikit-learn way, translates scikit-learn's conventions (``random_state``,
``*_init`` arguments, compact covariance shapes) to and from the library's, and
stores the fitted :class:`~bayesgmm.GMMParams`. All the maths lives in
:mod:`bayesgmm.em`, :mod:`bayesgmm.density` and the covariance registry.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesgmm._core import _linalg
from bayesgmm._core import covariance as _cov
from bayesgmm._core._precision import x64
from bayesgmm._core._validation import (
    check_n_components,
    check_sample_weight,
    check_seed,
)
from bayesgmm._core._warnings import ConvergenceWarning, DataWarning
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.em._fit import fit_em

__all__ = ["GaussianMixture"]

_DTYPES = (np.float64, np.float32)


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM or MAP-EM, usable wherever scikit-learn's is.

    A thin shell over :func:`bayesgmm.fit_em`: same model, same parameters,
    same results, with scikit-learn's interface (``fit``/``predict``/``score``,
    pipelines, grid searches, ``clone``, pickling) and its fitted attributes in
    its shapes. The full-matrix :class:`~bayesgmm.GMMParams` (``params_``) and
    the :class:`~bayesgmm.EMResult` (``result_``) are kept alongside, so a fit
    made here can be compared with posterior draws like any other.

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
        Most EM iterations; a :class:`~bayesgmm.ConvergenceWarning` is raised
        when they are used up.
    n_init : int, default=1
        Restarts, run one after another in one program; the best final objective wins.
        Ignored (one start) when any of the ``*_init`` arguments is given.
    init_params : {"kmeans++", "kmeans", "random", "random_from_data"}, default="kmeans++"
        How initial responsibilities are drawn (see :func:`~bayesgmm.fit_em`).
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
        - without it: means, and the missing weights or covariances, come from
          one EM iteration started by ``init_params`` (seeded by ``random_state``).

    prior : None, "default" or Prior, default=None
        ``None`` fits by maximum likelihood. A :class:`~bayesgmm.Prior` (built
        for this ``n_components`` and the data's number of features) fits by
        MAP-EM; ``"default"`` builds ``Prior.default(X, n_components,
        sample_weight=sample_weight)`` from the training data at fit time.
    random_state : None, int or numpy.random.RandomState, optional
        Seed of the initialisation and of :meth:`sample`. An int (in
        ``[0, 2**63)``) is used as the JAX seed; otherwise an int seed is drawn
        from ``check_random_state(random_state)``.
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
        evaluated at the returned parameters.
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
        n_samples = X.shape[0]
        K = check_n_components(self.n_components, n_samples)
        structure = _cov.get(self.covariance_type)
        seed = _seed(self.random_state)
        prior = self._resolve_prior(X, K, sample_weight)
        init = self._initial_params(X, K, structure.name, sample_weight, seed, prior)
        result = fit_em(
            X,
            K,
            covariance_type=structure.name,
            prior=prior,
            sample_weight=sample_weight,
            init=init,
            n_init=self.n_init,
            tol=self.tol,
            max_iter=self.max_iter,
            reg_covar=self.reg_covar,
            seed=seed,
            dtype=self.dtype,
        )
        self._store(result, structure)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each row of ``X``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.fit(X, y, sample_weight=sample_weight).predict(X)

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

    def _initial_params(self, X, K, structure, sample_weight, seed, prior):
        """``init_params`` unchanged, or starting GMMParams built from the ``*_init``."""
        if self.weights_init is None and self.means_init is None and self.precisions_init is None:
            return self.init_params
        D = X.shape[1]
        weights = None if self.weights_init is None else _check_weights_init(self.weights_init, K)
        means = None if self.means_init is None else _check_means_init(self.means_init, K, D)
        covariances = (
            None
            if self.precisions_init is None
            else _covariances_from_precisions(self.precisions_init, structure, K, D)
        )
        common = {"sample_weight": sample_weight, "max_iter": 1, "dtype": self.dtype}
        with warnings.catch_warnings():
            # The one-off fits below are starting values only; the main fit warns.
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", DataWarning)
            if means is None:
                start = fit_em(
                    X,
                    K,
                    covariance_type=structure,
                    prior=prior,
                    init=self.init_params,
                    reg_covar=self.reg_covar,
                    seed=seed,
                    **common,
                ).params.to_numpy()
                means = start["means"]
                weights = start["weights"] if weights is None else weights
                covariances = start["covariances"] if covariances is None else covariances
            else:
                weights = np.full(K, 1.0 / K) if weights is None else weights
                if covariances is None:
                    whole = fit_em(
                        X, 1, covariance_type=structure, reg_covar=self.reg_covar or None, **common
                    ).params.to_numpy()["covariances"]
                    covariances = np.broadcast_to(whole, (K, D, D))
        return GMMParams(weights=weights, means=means, covariances=covariances)

    def _store(self, result, structure):
        params = result.params
        self.params_ = params
        self.result_ = result
        self.weights_ = np.array(params.weights)
        self.means_ = np.array(params.means)
        prec_chol, prec = _inverse_and_factor(params.covariances)
        self.covariances_ = np.array(structure.to_sklearn(np.asarray(params.covariances)))
        self.precisions_ = np.array(structure.to_sklearn(prec))
        self.precisions_cholesky_ = np.array(structure.to_sklearn(prec_chol))
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        objective = result.log_likelihood if result.log_posterior is None else result.log_posterior
        self.lower_bound_ = float(objective / result.n_samples)

    # ------------------------------------------------------------- predict ---
    def _check_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=list(_DTYPES), reset=False)

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
        return np.asarray(self.params_.log_prob(X))

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
        return np.asarray(self.params_.responsibilities(X))

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
        same draws on every call, as in scikit-learn).

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            The component each row was drawn from.
        """
        check_is_fitted(self)
        key = _key(_seed(self.random_state))
        X, labels = self.params_.sample(key, n_samples)
        return np.asarray(X), np.asarray(labels, dtype=np.int64)

    # ---------------------------------------------------- model selection ---
    def _n_parameters(self):
        return self.result_.n_parameters

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


@x64
def _inverse_and_factor(mat):
    """For SPD ``mat`` (..., D, D): ``U = L^{-T}`` (``mat = L L^T``) and ``mat^{-1} = U U^T``.

    One Cholesky factorisation and one triangular solve; entries are NaN where
    ``mat`` is not positive definite.
    """
    factor = _linalg.precision_cholesky(_linalg.cholesky(jnp.asarray(mat)))
    inverse = _linalg.symmetrize(factor @ jnp.swapaxes(factor, -1, -2))
    return np.asarray(factor), np.asarray(inverse)


def _as_float_array(name, value, shape):
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _check_weights_init(weights, K):
    w = _as_float_array("weights_init", weights, (K,))
    if (w < 0).any() or abs(w.sum() - 1.0) > 1e-6:
        raise ValueError(
            f"weights_init must be non-negative and sum to 1; got {w} (sum {w.sum():.10g}). "
            "Normalise with w / w.sum()."
        )
    return w / w.sum()


def _check_means_init(means, K, D):
    return _as_float_array("means_init", means, (K, D))


def _covariances_from_precisions(precisions, structure, K, D):
    """Full ``(K, D, D)`` covariances from precisions in scikit-learn's shape."""
    struct = _cov.get(structure)
    shape = np.shape(struct.to_sklearn(np.broadcast_to(np.eye(D), (K, D, D))))
    arr = np.asarray(precisions)
    if arr.shape != shape:
        raise ValueError(
            f"precisions_init for covariance_type={structure!r} must have scikit-learn's shape "
            f"{shape} (K={K}, D={D}); got shape {arr.shape}."
        )
    full = struct.from_sklearn(_as_float_array("precisions_init", arr, shape), K, D)
    if not np.allclose(full, np.swapaxes(full, -1, -2)):
        raise ValueError("precisions_init must be symmetric; pass (P + P.T) / 2.")
    _, covariances = _inverse_and_factor(full)
    if not np.isfinite(covariances).all():
        raise ValueError(
            "precisions_init must be positive definite (positive for 'diag' and 'spherical')."
        )
    return covariances
