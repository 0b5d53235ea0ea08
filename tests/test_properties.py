"""Property-based tests of EM's guarantees (hypothesis).

Shapes are fixed within each test so that JAX compiles once; hypothesis varies
the data values, the starting parameters, the weights and the transforms.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import bayesgmm as bg
from bayesgmm import GMMParams

N, D, K = 40, 2, 3
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples in every CI run
)
TYPES = ["full", "tied", "diag", "spherical"]
# tol=0 runs exactly max_iter iterations on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::bayesgmm.ConvergenceWarning")


@st.composite
def problems(draw):
    """Random data (clusters of random spread) and random starting parameters."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=draw(st.floats(0.5, 8.0)), size=(K, D))
    X = centres[rng.integers(0, K, N)] + rng.normal(size=(N, D)) * draw(st.floats(0.1, 3.0))
    weights = rng.dirichlet(np.ones(K) * 2)
    means = X[rng.choice(N, K, replace=False)] + rng.normal(scale=0.1, size=(K, D))
    A = rng.normal(size=(K, D, D))
    covs = A @ np.swapaxes(A, 1, 2) + np.eye(D) * draw(st.floats(0.05, 3.0))
    return X, GMMParams(weights, means, covs), rng


def _in_family(params, covariance_type):
    import jax

    with jax.enable_x64(True):
        covs = bg.covariance.get(covariance_type).project(params.covariances)
    return GMMParams(params.weights, params.means, np.asarray(covs))


def check_valid(params):
    w, m, c = params.to_numpy().values()
    assert np.isfinite(w).all() and np.isfinite(m).all() and np.isfinite(c).all()
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(c, np.swapaxes(c, 1, 2), rtol=0, atol=1e-12 * np.abs(c).max())
    assert np.linalg.eigvalsh(c).min() > 0


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.filterwarnings("ignore:reg_covar=0 without a prior")
@SETTINGS
@given(problem=problems())
def test_log_likelihood_monotone_and_params_valid(covariance_type, problem):
    # EM's guarantee is exact for the unregularised M-step; reg_covar > 0 makes
    # the M-step slightly sub-optimal, so it is switched off here.
    X, init, _ = problem
    try:
        em = bg.fit_em(
            X,
            K,
            covariance_type=covariance_type,
            init=_in_family(init, covariance_type),
            reg_covar=0.0,
            tol=0.0,
            max_iter=30,
        )
    except ValueError as err:  # a clear error, never NaN: the documented outcome
        assert "broke down" in str(err)
        assume(False)
    # Without regularisation a component can collapse onto <= D points: the ML
    # likelihood is then unbounded and the iterates are rounding noise (MAP-EM,
    # tested below, removes this). The guarantee is checked on well-posed fits.
    eig = np.linalg.eigvalsh(np.asarray(em.params.covariances))
    assume(eig.min() > 1e-8 * eig.max())
    assert np.diff(em.history).min() >= -1e-9 * np.abs(em.history).max()
    check_valid(em.params)


@pytest.mark.parametrize("covariance_type", TYPES)
@SETTINGS
@given(problem=problems())
def test_log_posterior_monotone_under_map(covariance_type, problem):
    X, init, _ = problem
    prior = bg.Prior.default(X, K)
    em = bg.fit_em(
        X,
        K,
        covariance_type=covariance_type,
        prior=prior,
        init=_in_family(init, covariance_type),
        tol=0.0,
        max_iter=30,
    )
    hist = em.history_log_posterior
    assert np.diff(hist).min() >= -1e-9 * np.abs(hist).max()
    check_valid(em.params)


@SETTINGS
@given(problem=problems())
def test_row_order_does_not_matter(problem):
    X, init, rng = problem
    perm = rng.permutation(N)
    a = bg.fit_em(X, K, init=init, tol=1e-8, max_iter=60)
    b = bg.fit_em(X[perm], K, init=init, tol=1e-8, max_iter=60)
    assert a.n_iter == b.n_iter
    np.testing.assert_allclose(b.log_likelihood, a.log_likelihood, rtol=1e-10)
    np.testing.assert_allclose(
        np.asarray(b.params.means), np.asarray(a.params.means), rtol=1e-7, atol=1e-9
    )


@SETTINGS
@given(
    problem=problems(),
    scale=st.floats(1e-3, 1e3),
    shift=st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)),
)
def test_affine_equivariance(problem, scale, shift):
    X, init, _ = problem
    b = np.asarray(shift)
    moved = GMMParams(
        init.weights, np.asarray(init.means) * scale + b, np.asarray(init.covariances) * scale**2
    )
    r1 = bg.fit_em(X, K, init=init, reg_covar=1e-6, tol=0.0, max_iter=20)
    r2 = bg.fit_em(X * scale + b, K, init=moved, reg_covar=1e-6 * scale**2, tol=0.0, max_iter=20)
    np.testing.assert_allclose(
        np.asarray(r2.params.weights), np.asarray(r1.params.weights), rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(
        np.asarray(r2.params.means),
        np.asarray(r1.params.means) * scale + b,
        rtol=1e-6,
        atol=1e-6 * scale,
    )
    np.testing.assert_allclose(
        np.asarray(r2.params.covariances),
        np.asarray(r1.params.covariances) * scale**2,
        rtol=1e-5,
        atol=1e-8 * scale**2,
    )
    expected = r1.log_likelihood - N * D * np.log(scale)
    assert r2.log_likelihood == pytest.approx(expected, rel=1e-7, abs=1e-6)


@SETTINGS
@given(problem=problems(), data=st.data())
def test_duplicated_rows_equal_weight_two(problem, data):
    X, init, _ = problem
    dup = data.draw(st.lists(st.integers(0, N - 1), min_size=1, max_size=N, unique=True))
    w = np.ones(N)
    w[dup] = 2.0
    X_dup = np.concatenate([X, X[dup]])
    a = bg.fit_em(X, K, sample_weight=w, init=init, tol=0.0, max_iter=15)
    b = bg.fit_em(X_dup, K, init=init, tol=0.0, max_iter=15)
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-9)
    np.testing.assert_allclose(
        np.asarray(a.params.covariances), np.asarray(b.params.covariances), rtol=1e-7, atol=1e-10
    )
