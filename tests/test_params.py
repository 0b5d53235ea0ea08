import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import bayesgmm as bg
from bayesgmm import GMMParams


def random_params(rng, K=3, D=2, batch=()):
    w = rng.dirichlet(np.ones(K), size=batch)
    m = rng.normal(size=(*batch, K, D)) * 3
    A = rng.normal(size=(*batch, K, D, D))
    c = A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(D)
    return GMMParams(w, m, c)


def scipy_log_prob(p, X):
    w, m, c = (np.asarray(a) for a in (p.weights, p.means, p.covariances))
    dens = sum(w[k] * stats.multivariate_normal(m[k], c[k]).pdf(X) for k in range(len(w)))
    return np.log(dens)


def test_repr_and_shapes(rng):
    p = random_params(rng, K=3, D=2)
    assert repr(p) == "GMMParams(weights (3,), means (3, 2), covariances (3, 2, 2), dtype=float64)"
    assert (p.n_components, p.n_features, p.batch_shape) == (3, 2, ())


@pytest.mark.parametrize("D", [1, 2, 5])
def test_log_prob_matches_scipy(rng, D):
    p = random_params(rng, K=4, D=D)
    X = rng.normal(size=(50, D)) * 3
    np.testing.assert_allclose(np.asarray(p.log_prob(X)), scipy_log_prob(p, X), rtol=1e-10)


def test_responsibilities_match_scipy(rng):
    p = random_params(rng, K=3, D=2)
    X = rng.normal(size=(40, 2)) * 3
    w, m, c = p.to_numpy().values()
    joint = np.stack([w[k] * stats.multivariate_normal(m[k], c[k]).pdf(X) for k in range(3)], 1)
    r = np.asarray(p.responsibilities(X))
    np.testing.assert_allclose(r, joint / joint.sum(1, keepdims=True), rtol=1e-9, atol=1e-14)


def test_far_outlier_gives_finite_log_prob_and_responsibilities(rng):
    p = random_params(rng, K=3, D=2)
    X = np.array([[1e4, -1e4]])
    assert np.isfinite(np.asarray(p.log_prob(X))).all()
    r = np.asarray(p.responsibilities(X))
    assert np.isfinite(r).all() and np.isclose(r.sum(), 1.0)


def test_batched_params_equal_loop_over_draws(rng):
    p = random_params(rng, K=3, D=2, batch=(2, 5))
    X = rng.normal(size=(30, 2))
    lp = np.asarray(p.log_prob(X))
    assert lp.shape == (2, 5, 30)
    for c in range(2):
        for s in range(5):
            np.testing.assert_allclose(lp[c, s], scipy_log_prob(p[c, s], X), rtol=1e-10)
    assert p.responsibilities(X).shape == (2, 5, 30, 3)


def test_pytree_jit_vmap_and_tree_map(rng):
    p = random_params(rng, K=2, D=3, batch=(4,))
    leaves = jax.tree.leaves(p)
    assert len(leaves) == 3
    with jax.enable_x64(True):
        doubled = jax.tree.map(lambda x: 2 * x, p)  # no validation on pytree operations
    np.testing.assert_allclose(np.asarray(doubled.means), 2 * np.asarray(p.means))
    from bayesgmm._core._mixture import joint_log_prob as _joint_log_prob

    with jax.enable_x64(True):
        X = jnp.asarray(rng.normal(size=(10, 3)))
        jitted = jax.jit(
            jax.vmap(lambda q: jax.scipy.special.logsumexp(_joint_log_prob(q, X), -1))
        )
        out = jitted(p)
    np.testing.assert_allclose(np.asarray(out), np.asarray(p.log_prob(X)), rtol=1e-12)


def test_sample_moments_match_params(rng):
    p = bg.datasets.true_params_four_gaussians_2d()
    X, labels = p.sample(jax.random.key(3), 40_000)
    X, labels = np.asarray(X), np.asarray(labels)
    assert X.shape == (40_000, 2) and labels.shape == (40_000,)
    freq = np.bincount(labels, minlength=4) / len(labels)
    np.testing.assert_allclose(freq, np.asarray(p.weights), atol=0.01)
    for k in range(4):
        np.testing.assert_allclose(X[labels == k].mean(0), np.asarray(p.means[k]), atol=0.06)
        np.testing.assert_allclose(
            np.cov(X[labels == k].T), np.asarray(p.covariances[k]), atol=0.08
        )


def test_sample_batched_gives_independent_data(rng):
    p = random_params(rng, K=2, D=2, batch=(3,))
    X, labels = p.sample(jax.random.key(0), 7)
    assert X.shape == (3, 7, 2) and labels.shape == (3, 7)
    assert not np.allclose(np.asarray(X[0]), np.asarray(X[1]))


def test_float64_even_when_user_disabled_x64(rng):
    assert not jax.config.jax_enable_x64
    p = random_params(rng)
    assert p.dtype == np.float64
    assert p.log_prob(np.zeros((2, 2))).dtype == jnp.float64
    assert not jax.config.jax_enable_x64  # our context did not leak


def test_results_are_numpy_so_user_arithmetic_keeps_float64(faithful):
    """With 64-bit types off in the session, JAX arithmetic on a float64 JAX array
    runs in float32; results are NumPy arrays, so a user's sum stays float64."""
    assert not jax.config.jax_enable_x64
    em = bg.fit_em(faithful, 2)
    post = bg.sample_posterior(
        faithful, 2, init=em, num_chains=1, num_warmup=20, num_samples=100, progress_bar=False
    )
    for params in (em.params, post.params, post.reference, post.relabel().params):
        for leaf in (params.weights, params.means, params.covariances):
            assert isinstance(leaf, np.ndarray) and leaf.dtype == np.float64
    for value in (em.params.log_prob(faithful), em.log_prob(faithful), em.predict_proba(faithful)):
        assert isinstance(value, np.ndarray)
        assert value.sum().dtype == np.float64
    assert em.params.log_prob(faithful).sum() == pytest.approx(em.log_likelihood, rel=1e-12)
    X, labels = em.params.sample(jax.random.key(0), 5)
    assert isinstance(X, np.ndarray) and X.dtype == np.float64 and isinstance(labels, np.ndarray)


def test_given_arrays_are_copied(rng):
    weights = np.array([0.5, 0.5])
    p = bg.GMMParams(weights, np.zeros((2, 1)), np.ones((2, 1, 1)))
    weights[0] = 0.9
    assert p.weights[0] == 0.5


def test_float32_when_asked(rng):
    p = random_params(rng).astype("float32")
    assert p.log_prob(np.zeros((2, 2))).dtype == jnp.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            dict(weights=[0.5, 0.6], means=[[0.0], [1.0]], covariances=[[[1.0]], [[1.0]]]),
            "sum to 1",
        ),
        (
            dict(weights=[1.5, -0.5], means=[[0.0], [1.0]], covariances=[[[1.0]], [[1.0]]]),
            "non-negative",
        ),
        (
            dict(weights=[0.5, 0.5], means=[[0.0]], covariances=[[[1.0]], [[1.0]]]),
            "means must have shape",
        ),
        (
            dict(weights=[1.0], means=[[0.0, 0.0]], covariances=[[[1.0, 0.5], [0.4, 1.0]]]),
            "not symmetric",
        ),
        (
            dict(weights=[1.0], means=[[0.0, 0.0]], covariances=[[[1.0, 2.0], [2.0, 1.0]]]),
            "positive definite",
        ),
        (dict(weights=[1.0], means=[[np.nan]], covariances=[[[1.0]]]), "NaN"),
        (
            dict(weights=[1.0], means=[[0.0, 0.0]], covariances=[[1.0, 0.0], [0.0, 1.0]]),
            "covariances must",
        ),
    ],
)
def test_construction_rejects_bad_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GMMParams(**kwargs)


def test_log_prob_rejects_wrong_feature_count(rng):
    p = random_params(rng, D=2)
    with pytest.raises(ValueError, match="3 features, but the model has 2"):
        p.log_prob(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="1-D"):
        p.log_prob(np.zeros(2))


def test_getitem_selects_draws(rng):
    p = random_params(rng, K=2, D=2, batch=(3, 4))
    assert p[1].batch_shape == (4,)
    assert p[1, 2].batch_shape == ()
    with pytest.raises(IndexError):
        p[0, 0, 0]
    with pytest.raises(IndexError):
        p[0, 0][0]


def test_pickle_keeps_float64_with_x64_off(rng):
    import pickle

    p = random_params(rng)
    prior = bg.Prior.default(rng.normal(size=(30, 2)), 3)
    assert not jax.config.jax_enable_x64
    q, prior2 = pickle.loads(pickle.dumps((p, prior)))
    assert q.dtype == np.float64 and prior2.scale.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(q.covariances), np.asarray(p.covariances))
    np.testing.assert_array_equal(np.asarray(prior2.scale), np.asarray(prior.scale))
