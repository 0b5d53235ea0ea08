"""The scikit-learn estimator: API checks, agreement with fit_em and with scikit-learn."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import mixture as skmixture
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import bayesgmm as bg
from bayesgmm import GaussianMixture

TYPES = ("full", "tied", "diag", "spherical")

# scikit-learn estimator checks this estimator is allowed to fail, with the reason.
# Empty: every check passes. (check_array_api_input skips itself unless the
# environment sets SCIPY_ARRAY_API; that is scikit-learn's skip, not ours.)
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@pytest.fixture(scope="module")
def faithful():
    return bg.datasets.load_faithful()


@pytest.fixture(scope="module")
def fitted(faithful):
    """One fit shared by the tests that only read it (JAX compiles once per shape)."""
    return GaussianMixture(2, random_state=0).fit(faithful)


def _blobs(n_per=40, seed=0):
    """Three well separated 2-D clusters, rows shuffled (so unshuffled K-fold is fair)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    X = np.concatenate([c + rng.normal(size=(n_per, 2)) for c in centers])
    labels = np.repeat(np.arange(3), n_per)
    order = rng.permutation(len(X))
    return X[order], labels[order]


# ------------------------------------------------------ estimator checks ---
@pytest.mark.slow
@parametrize_with_checks(
    [GaussianMixture()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------- same as fit_em ---
@pytest.mark.parametrize("covariance_type", TYPES)
def test_same_parameters_as_fit_em(faithful, covariance_type):
    X = faithful
    K, D = 3, X.shape[1]
    w = np.random.default_rng(1).integers(1, 4, size=X.shape[0]).astype(float)
    settings = {"covariance_type": covariance_type, "n_init": 2, "tol": 1e-4}
    gm = GaussianMixture(K, random_state=0, **settings).fit(X, sample_weight=w)
    em = bg.fit_em(X, K, seed=0, sample_weight=w, **settings)

    p = em.params.to_numpy()
    assert_allclose(gm.weights_, p["weights"], rtol=1e-12)
    assert_allclose(gm.means_, p["means"], rtol=1e-12)
    assert_allclose(gm.params_.covariances, p["covariances"], rtol=1e-12)
    assert gm.n_iter_ == em.n_iter and gm.converged_ == em.converged
    assert gm.lower_bound_ == pytest.approx(em.log_likelihood / w.sum(), rel=1e-12)

    # scikit-learn's compact shapes, read off the full matrices independently.
    cov = p["covariances"]
    expected = {
        "full": cov,
        "tied": cov[0],
        "diag": np.diagonal(cov, axis1=1, axis2=2),
        "spherical": cov[:, 0, 0],
    }[covariance_type]
    shapes = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}
    for name in ("covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, name).shape == shapes[covariance_type], name
        assert isinstance(getattr(gm, name), np.ndarray)
    assert_allclose(gm.covariances_, expected, rtol=1e-12)
    if covariance_type in ("full", "tied"):
        eye = np.broadcast_to(np.eye(D), gm.covariances_.shape)
        assert_allclose(gm.precisions_ @ gm.covariances_, eye, atol=1e-9)
        chol = gm.precisions_cholesky_
        assert_allclose(chol, np.triu(chol))
        assert_allclose(chol @ np.swapaxes(chol, -1, -2), gm.precisions_, rtol=1e-10)
    else:
        assert_allclose(gm.precisions_ * gm.covariances_, 1.0, rtol=1e-12)
        assert_allclose(gm.precisions_cholesky_**2, gm.precisions_, rtol=1e-12)


def test_weighted_score_and_lower_bound(faithful, fitted):
    X = faithful
    assert fitted.lower_bound_ == pytest.approx(fitted.score(X), rel=1e-10)
    w = np.arange(X.shape[0]) % 3
    repeated = np.repeat(X, w, axis=0)
    assert fitted.score(X, sample_weight=w) == pytest.approx(fitted.score(repeated), rel=1e-12)


# ------------------------------------------------ same as scikit-learn ---
_MEANS0 = np.array([[2.0, 55.0], [3.5, 70.0], [4.5, 82.0]])
_COVS0 = np.array(
    [[[0.10, 0.4], [0.4, 30.0]], [[0.30, 0.8], [0.8, 40.0]], [[0.15, 0.5], [0.5, 35.0]]]
)
_WEIGHTS0 = np.array([0.3, 0.2, 0.5])


def _precisions0(covariance_type):
    """Starting precisions in scikit-learn's shape (tests may use inv; the library may not)."""
    variances = np.diagonal(_COVS0, axis1=1, axis2=2)
    return {
        "full": np.linalg.inv(_COVS0),
        "tied": np.linalg.inv(_COVS0.mean(axis=0)),
        "diag": 1.0 / variances,
        "spherical": 1.0 / variances.mean(axis=1),
    }[covariance_type]


@pytest.mark.parametrize("covariance_type", TYPES)
def test_agrees_with_sklearn_from_same_start(faithful, covariance_type):
    X = faithful
    kwargs = {
        "covariance_type": covariance_type,
        "weights_init": _WEIGHTS0,
        "means_init": _MEANS0,
        "precisions_init": _precisions0(covariance_type),
        "tol": 0.0,  # never converged: both run exactly max_iter iterations
        "max_iter": 40,
        "reg_covar": 1e-6,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        ours = GaussianMixture(3, random_state=0, **kwargs).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn's ConvergenceWarning
        ref = skmixture.GaussianMixture(3, random_state=0, **kwargs).fit(X)

    assert ours.n_iter_ == ref.n_iter_ == 40
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(ours, name).shape == getattr(ref, name).shape, name
        assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-6, err_msg=name)
    assert ours.score(X) == pytest.approx(ref.score(X), rel=1e-10)
    assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-9)
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-8)
    assert ours.bic(X) == pytest.approx(ref.bic(X), rel=1e-10)
    assert ours.aic(X) == pytest.approx(ref.aic(X), rel=1e-10)


# ------------------------------------------- scikit-learn machinery ---
def test_pipeline(faithful):
    pipe = Pipeline(
        [("scale", StandardScaler()), ("gmm", GaussianMixture(2, random_state=0))]
    ).fit(faithful)
    Z = pipe.named_steps["scale"].transform(faithful)
    gm = pipe.named_steps["gmm"]
    assert pipe.predict(faithful).shape == (faithful.shape[0],)
    assert pipe.score(faithful) == pytest.approx(gm.score(Z), rel=1e-12)
    # The two eruption regimes, in standardised units: means far apart.
    assert np.abs(gm.means_[0] - gm.means_[1]).min() > 1.0


def test_grid_search_picks_three_components():
    X, _ = _blobs()
    search = GridSearchCV(
        GaussianMixture(random_state=0), {"n_components": [1, 2, 3]}, cv=3, refit=False
    ).fit(X)
    assert search.best_params_ == {"n_components": 3}
    scores = search.cv_results_["mean_test_score"]
    assert scores[0] < scores[1] < scores[2]


def test_clone_and_pickle(faithful):
    prior = bg.Prior.default(faithful, 2)
    gm = GaussianMixture(2, tol=1e-4, prior=prior, random_state=3).fit(faithful)

    fresh = clone(gm)
    assert not hasattr(fresh, "params_")
    assert fresh.get_params()["tol"] == 1e-4
    assert fresh.get_params()["random_state"] == 3
    assert fresh.get_params()["prior"].n_components == 2

    back = pickle.loads(pickle.dumps(gm))  # unpickled with JAX's x64 mode off
    assert back.params_.dtype == np.float64
    assert back.prior.scale.dtype == np.float64
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bound_"):
        assert_array_equal(getattr(back, name), getattr(gm, name))
    assert_array_equal(back.score_samples(faithful), gm.score_samples(faithful))
    assert back.result_.log_posterior == gm.result_.log_posterior


def test_feature_names_from_dataframe(faithful):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(faithful, columns=["eruptions", "waiting"])
    gm = GaussianMixture(2, random_state=0).fit(df)
    assert list(gm.feature_names_in_) == ["eruptions", "waiting"]
    assert gm.n_features_in_ == 2
    assert_array_equal(gm.predict(df), gm.result_.predict(faithful))


def test_sample(fitted):
    gm = fitted
    X, y = gm.sample(4000)
    assert X.shape == (4000, 2) and y.shape == (4000,)
    assert set(np.unique(y)) <= {0, 1}
    assert_allclose(np.bincount(y, minlength=2) / 4000, gm.weights_, atol=0.03)
    assert_allclose(X.mean(axis=0), gm.weights_ @ gm.means_, rtol=0.02)
    again, _ = gm.sample(4000)
    assert_array_equal(X, again)  # an int random_state fixes the draws, as in sklearn
    with pytest.raises(ValueError, match="n_samples"):
        gm.sample(0)


# --------------------------------------------------- partial *_init ---
def test_means_init_alone_keeps_component_order():
    X, _ = _blobs()
    order = np.array([[0.0, 8.0], [0.0, 0.0], [8.0, 0.0]])
    gm = GaussianMixture(3, means_init=order, random_state=0).fit(X)
    assert_allclose(gm.means_, order, atol=0.5)


@pytest.mark.parametrize("given", ["weights_init", "precisions_init"])
def test_weights_or_precisions_init_alone(given):
    X, _ = _blobs()
    value = {"weights_init": np.full(3, 1 / 3), "precisions_init": np.tile(np.eye(2), (3, 1, 1))}
    gm = GaussianMixture(3, random_state=0, **{given: value[given]})
    gm.fit(X)
    assert gm.converged_
    assert_allclose(np.sort(gm.weights_), np.full(3, 1 / 3), atol=0.05)


# ----------------------------------------------------------- MAP-EM ---
def test_default_prior_gives_map_em(faithful, fitted):
    X, ml = faithful, fitted
    gm = GaussianMixture(2, prior="default", random_state=0).fit(X)
    assert ml.result_.log_posterior is None
    assert gm.result_.log_posterior is not None
    assert gm.lower_bound_ == pytest.approx(gm.result_.log_posterior / X.shape[0], rel=1e-12)
    assert not np.allclose(gm.covariances_, ml.covariances_, rtol=1e-4)
    # "default" is Prior.default(X, K) built at fit time.
    em = bg.fit_em(X, 2, prior=bg.Prior.default(X, 2), seed=0, tol=gm.tol, max_iter=gm.max_iter)
    assert_allclose(gm.covariances_, np.asarray(em.params.covariances), rtol=1e-12)


# -------------------------------------------------------- bad input ---
def test_rejects_1d_input(faithful, fitted):
    # fit_em reads 1-D data as one feature; the estimator follows scikit-learn and refuses.
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        GaussianMixture().fit(faithful[:, 0])
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        fitted.predict(faithful[:, 0])


def test_rejects_nan(faithful):
    X = faithful[:20].copy()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        GaussianMixture().fit(X)


def test_rejects_too_many_components(faithful):
    with pytest.raises(ValueError, match=r"n_components=6 is larger than the number of samples"):
        GaussianMixture(6).fit(faithful[:5])


def test_rejects_wrong_feature_count(faithful, fitted):
    with pytest.raises(ValueError, match="X has 1 features, but GaussianMixture is expecting 2"):
        fitted.score_samples(faithful[:, :1])


@pytest.mark.parametrize(
    ("covariance_type", "precisions", "message"),
    [
        ("full", np.ones((2, 2)), r"'full' must have scikit-learn's shape \(2, 2, 2\)"),
        ("tied", np.ones((2, 2, 2)), r"'tied' must have scikit-learn's shape \(2, 2\)"),
        ("diag", np.ones(2), r"'diag' must have scikit-learn's shape \(2, 2\)"),
        ("spherical", np.ones((2, 2)), r"'spherical' must have scikit-learn's shape \(2,\)"),
        ("spherical", np.array([1.0, -1.0]), "must be positive definite"),
        ("full", np.array([[[1.0, 2.0], [2.0, 1.0]]] * 2), "must be positive definite"),
        ("tied", np.array([[1.0, 0.5], [0.0, 1.0]]), "must be symmetric"),
    ],
)
def test_rejects_bad_precisions_init(faithful, covariance_type, precisions, message):
    gm = GaussianMixture(2, covariance_type=covariance_type, precisions_init=precisions)
    with pytest.raises(ValueError, match=message):
        gm.fit(faithful)


def test_rejects_bad_weights_means_and_prior(faithful):
    with pytest.raises(ValueError, match="weights_init must be non-negative and sum to 1"):
        GaussianMixture(2, weights_init=[0.5, 0.6]).fit(faithful)
    with pytest.raises(ValueError, match=r"means_init must have shape \(2, 2\)"):
        GaussianMixture(2, means_init=np.zeros((3, 2))).fit(faithful)
    with pytest.raises(ValueError, match="prior must be None"):
        GaussianMixture(2, prior="flat").fit(faithful)
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        GaussianMixture(2, covariance_type="banded").fit(faithful)
