"""The NumPyro model, NUTS and the posterior mode (bayesgmm.bayes).

The model must be the MAP-EM model: its log joint density at a MAP-EM estimate
is ``EMResult.log_posterior`` and an optimiser run on it lands on the MAP-EM
estimate. Sampling tests use small data and few draws; the statistical
coverage test is marked slow.
"""

import subprocess
import sys
import textwrap
import warnings

import arviz as az
import jax
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density
from scipy.optimize import linear_sum_assignment

import bayesgmm as bg
from bayesgmm import GMMParams
from bayesgmm import covariance as cov_registry
from bayesgmm.bayes import _map as bayes_mode
from bayesgmm.bayes import _sample as bayes
from bayesgmm.bayes import _sites as sites
from bayesgmm.diagnostics import _membership as membership

TYPES = ["full", "tied", "diag", "spherical"]
COV_SITE = {
    "full": "covariances",
    "tied": "covariance",
    "diag": "variances",
    "spherical": "variances",
}


# ----------------------------------------------------------------- helpers ---
@pytest.fixture(scope="module")
def blobs():
    return bg.datasets.make_four_gaussians_2d(300, seed=1)


def map_em(X, K, covariance_type, prior, **kw):
    """MAP-EM run to machine precision: a fixed 500 iterations (tol=0).

    A tolerance on the objective stops EM while the parameters are still about
    sqrt(tol) away from the mode; running on makes them exact. On every data
    set, K and structure of this module, 500 iterations (of 5 restarts) give
    the parameters of 3000 iterations to 4e-16 relative (300 to 7e-15), far
    inside the checks' rtol of 1e-5 (parameters) and 1e-8 (log densities), at
    a sixth of the cost (~0.6 s against ~4 s). An EM slower to converge can
    only make ``find_map``'s comparison fail, never pass.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        return bg.fit_em(
            X,
            K,
            covariance_type=covariance_type,
            prior=prior,
            tol=0.0,
            max_iter=500,
            n_init=5,
            **kw,
        )


def bound_model(X, K, prior, covariance_type, sample_weight=None):
    with jax.enable_x64(True):
        return sites.bind(
            np.asarray(X, float).reshape(len(X), -1),
            K,
            prior,
            cov_registry.get(covariance_type),
            sample_weight,
        )


def sites_of(params, covariance_type):
    name = COV_SITE[covariance_type]
    with jax.enable_x64(True):
        return sites.params_to_sites(
            params, cov_registry.get(covariance_type), ("weights", "means", name)
        )


def numpyro_log_density(model, sites):
    """NumPyro's own ``log_density`` of the model at ``sites`` (compiled)."""
    with jax.enable_x64(True):
        return float(jax.jit(lambda s: log_density(model, (), {}, s)[0])(sites))


def perturbed(params, covariance_type):
    """A start well away from ``params`` but inside its basin and its family."""
    K = params.n_components
    with jax.enable_x64(True):
        structure = cov_registry.get(covariance_type)
        covs = np.asarray(structure.project(np.asarray(params.covariances) * 1.3))
    return GMMParams(
        0.8 * np.asarray(params.weights) + 0.2 / K,
        np.asarray(params.means) + 0.2,
        covs,
    )


def hungarian_to(truth_means, draw_means):
    """Per-draw permutation of components matching ``truth_means`` (Euclidean)."""
    perms = []
    for m in draw_means:
        cost = ((m[:, None, :] - truth_means[None, :, :]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        perm = np.empty(len(cols), int)
        perm[cols] = rows
        perms.append(perm)
    return np.array(perms)


# ------------------------------------------------------------------- model ---
@pytest.mark.parametrize("covariance_type", TYPES)
def test_model_sites_plates_and_pointwise_likelihood(blobs, covariance_type):
    K = 3
    prior = bg.Prior.default(blobs, K)
    model = bound_model(blobs, K, prior, covariance_type)
    em = map_em(blobs, K, covariance_type, prior)

    found = {}

    def structure_of_trace():
        tr = handlers.trace(handlers.seed(model, 0)).get_trace()
        for name, site in tr.items():
            found[name] = (
                site["type"],
                site.get("is_observed", False),
                site["type"] == "sample" and site["fn"].support.is_discrete,
            )
        return 0

    def values(sites):
        tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=sites)).get_trace()
        return tr["covariances"]["value"], tr["obs"]["fn"].log_prob(tr["obs"]["value"])

    with jax.enable_x64(True):
        jax.eval_shape(structure_of_trace)
        covariances, pointwise = jax.jit(values)(sites_of(em.params, covariance_type))
    latent = {n for n, (t, obs, _) in found.items() if t == "sample" and not obs}
    assert latent == {"weights", "means", COV_SITE[covariance_type]}
    assert found["obs"][:2] == ("sample", True)
    expected = "sample" if covariance_type == "full" else "deterministic"
    assert found["covariances"][0] == expected
    np.testing.assert_allclose(covariances, em.params.covariances, rtol=1e-12)
    # plates, and no discrete site left for NUTS
    assert {n for n, (t, _, _) in found.items() if t == "plate"} == {"component", "obs_id"}
    assert not any(discrete for _, _, discrete in found.values())
    # pointwise log-likelihood: one value per row, the mixture log density
    assert pointwise.shape == (len(blobs),)
    np.testing.assert_allclose(pointwise, em.params.log_prob(blobs), rtol=1e-12)


@pytest.mark.parametrize(
    ("offset", "unit", "spread"),
    [(0.0, 1.0, 1.0), (1e6, 1.0, 1.0), (1e3, 1.0, 1e-2), (-3.0, 1e-3, 0.1), (5.0, 1e4, 1e-2)],
    ids=["plain", "far_from_origin", "tight_clusters", "tiny_units", "large_units"],
)
def test_expanded_mixture_density_matches_direct_whitening(offset, unit, spread):
    """The quadratic-feature GEMM gives the direct form's values and gradients.

    Data far from the origin, in tiny or huge units and with clusters much
    tighter than the data's spread are where an expanded quadratic form
    cancels; the rows are standardised first, so it must still agree.
    """
    from bayesgmm.bayes import _model as bayes_model

    rng = np.random.default_rng(3)
    K, D, N = 4, 5, 400
    with jax.enable_x64(True):
        centres = rng.normal(scale=5.0, size=(K, D))
        A = rng.normal(size=(K, D, D)) * spread
        covs = A @ np.swapaxes(A, -1, -2) + spread**2 * np.eye(D)
        labels = rng.integers(K, size=N)
        eps = np.einsum("nde,ne->nd", np.linalg.cholesky(covs)[labels], rng.normal(size=(N, D)))
        X = jax.numpy.asarray((centres[labels] + eps) * unit + offset)
        args = (
            jax.numpy.log(jax.numpy.asarray(rng.dirichlet(np.ones(K)))),
            jax.numpy.asarray(centres * unit + offset),
            jax.numpy.asarray(np.linalg.cholesky(covs) * unit),
        )

        def total(fn):
            return jax.jit(
                jax.value_and_grad(
                    lambda *a: jax.scipy.special.logsumexp(fn(*a, X), axis=-1).sum(),
                    argnums=(0, 1, 2),
                )
            )(*args)

        direct, g_direct = total(bayes_model._direct_joint)
        expanded, g_expanded = total(bayes_model._expanded_joint)
        pointwise = bayes_model._mixture_log_prob(*args, X)
        reference = jax.scipy.special.logsumexp(bayes_model._direct_joint(*args, X), axis=-1)
    np.testing.assert_allclose(expanded, direct, rtol=1e-10)
    for a, b in zip(g_expanded, g_direct, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * np.abs(b).max())
    # rounding of the expansion ~ 5e-16 (data spread / narrowest cluster sd)^2: here up
    # to ~1e-10 per row (tight_clusters); the direct form's own error is ~1e-13
    np.testing.assert_allclose(pointwise, reference, rtol=0, atol=1e-8)
    assert bayes_model._use_expanded(N, D, K, np.float64)  # the path the last check ran


def test_mixture_density_path_by_dtype_and_size():
    """float32 and large feature matrices keep the direct whitening."""
    from bayesgmm.bayes import _model as bayes_model

    assert not bayes_model._use_expanded(100, 5, 4, np.float32)
    assert bayes_model._use_expanded(10_000, 5, 4, np.float64)  # 20 features <= D K = 20
    assert bayes_model._use_expanded(1_000, 50, 2, np.float64)  # 1,325 features, 10 MiB
    assert not bayes_model._use_expanded(1_000_000, 50, 16, np.float64)  # 1,325 > 800, 10 GiB


@pytest.mark.parametrize("covariance_type", TYPES)
def test_log_density_is_em_log_posterior(blobs, covariance_type):
    """NumPyro's log joint at the MAP-EM estimate is EMResult.log_posterior."""
    K = 4
    prior = bg.Prior.default(blobs, K)
    em = map_em(blobs, K, covariance_type, prior)
    model = bound_model(blobs, K, prior, covariance_type)
    lp = numpyro_log_density(model, sites_of(em.params, covariance_type))
    assert lp == pytest.approx(em.log_posterior, rel=1e-8)
    lj = bayes_mode.log_joint(em.params, blobs, prior, covariance_type)
    assert lj == pytest.approx(em.log_posterior, rel=1e-8)


def test_log_density_with_sample_weight_is_em_log_posterior(blobs):
    rng = np.random.default_rng(0)
    w = rng.integers(0, 4, len(blobs)).astype(float)
    prior = bg.Prior.default(blobs, 4, sample_weight=w)
    em = map_em(blobs, 4, "full", prior, sample_weight=w)
    lj = bayes_mode.log_joint(em.params, blobs, prior, "full", sample_weight=w)
    assert lj == pytest.approx(em.log_posterior, rel=1e-8)


def test_integer_weights_equal_duplicated_rows(blobs):
    """A weight of w is w copies of the row (0 removes it): same log density."""
    rng = np.random.default_rng(1)
    w = rng.integers(0, 4, len(blobs))
    assert (w == 0).any()
    duplicated = np.repeat(blobs, w, axis=0)
    prior = bg.Prior.default(blobs, 4)
    params = bg.datasets.true_params_four_gaussians_2d()
    for covariance_type in ("full", "diag"):
        with jax.enable_x64(True):
            p = GMMParams(
                params.weights,
                params.means,
                cov_registry.get(covariance_type).project(params.covariances),
            )
        sites = sites_of(p, covariance_type)
        weighted = numpyro_log_density(
            bound_model(blobs, 4, prior, covariance_type, w.astype(float)), sites
        )
        copies = numpyro_log_density(bound_model(duplicated, 4, prior, covariance_type), sites)
        assert weighted == pytest.approx(copies, rel=1e-12)
        assert bayes_mode.log_joint(
            p, blobs, prior, covariance_type, sample_weight=w
        ) == pytest.approx(copies, rel=1e-12)


def test_log_joint_rejects_params_outside_family(blobs):
    prior = bg.Prior.default(blobs, 4)
    truth = bg.datasets.true_params_four_gaussians_2d()
    with pytest.raises(ValueError, match="not in the 'diag' covariance family"):
        bayes_mode.log_joint(truth, blobs, prior, "diag")


# -------------------------------------------------------------------- MAP ---
@pytest.mark.parametrize("covariance_type", TYPES)
def test_find_map_lands_on_map_em(blobs, covariance_type):
    """Optimising NumPyro's log joint from a perturbed start reaches the MAP-EM estimate."""
    K = 4
    prior = bg.Prior.default(blobs, K)
    em = map_em(blobs, K, covariance_type, prior)
    start = perturbed(em.params, covariance_type)
    assert not np.allclose(start.means, em.params.means, rtol=1e-2)
    mode = bayes_mode.find_map(blobs, K, prior, covariance_type, init=start)
    for name in ("weights", "means", "covariances"):
        got, want = np.asarray(getattr(mode, name)), np.asarray(getattr(em.params, name))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8 * np.abs(want).max())
    assert bayes_mode.log_joint(mode, blobs, prior, covariance_type) >= em.log_posterior - 1e-7


def test_find_map_default_start_and_1d_data():
    X = bg.datasets.make_two_gaussians_1d(200, seed=3)
    prior = bg.Prior.default(X, 2)
    em = map_em(X, 2, "full", prior)
    mode = bayes_mode.find_map(X, 2, prior)  # starts from fit_em(..., prior=prior)
    assert mode.means.shape == (2, 1)
    np.testing.assert_allclose(mode.means, em.params.means, rtol=1e-5)


# ------------------------------------------------------------------- NUTS ---
@pytest.fixture(scope="module")
def faithful_post(faithful):
    prior = bg.Prior.default(faithful, 2)
    em = bg.fit_em(faithful, 2, prior=prior, n_init=3)
    post = bayes.sample_posterior(
        faithful,
        2,
        prior=prior,
        init=em,
        num_chains=2,
        num_warmup=200,
        num_samples=150,
        seed=0,
        progress_bar=False,
    )
    return post, em


def test_posterior_shapes_dtypes_and_stats(faithful_post, faithful):
    post, em = faithful_post
    C, S, K, D = 2, 150, 2, 2
    p = post.params
    assert p.batch_shape == (C, S)
    assert p.weights.shape == (C, S, K)
    assert p.means.shape == (C, S, K, D)
    assert p.covariances.shape == (C, S, K, D, D)
    assert p.dtype == np.float64  # although the test session runs JAX in float32
    assert not jax.config.jax_enable_x64
    np.testing.assert_allclose(np.asarray(p.weights).sum(-1), 1.0, rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(np.asarray(p.covariances)) > 0)
    for name in ("diverging", "energy", "n_steps", "tree_depth", "accept_prob", "step_size"):
        assert post.sample_stats[name].shape == (C, S), name
    assert post.sample_stats["diverging"].dtype == bool
    assert post.num_chains == C and post.num_draws == S
    assert post.reference_kind == "MAP-EM"
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(post.reference, name), getattr(em.params, name))
    assert post.covariance_type == "full" and post.prior.n_components == K
    np.testing.assert_array_equal(post.X, faithful)
    assert post.X is not faithful
    np.testing.assert_array_equal(post.sample_weight, np.ones(len(faithful)))
    assert set(post.sample_stats) >= {"diverging", "step_size", "n_steps", "accept_prob"}
    assert "divergences=" in repr(post)
    # Well-separated clusters: the posterior sits on the MAP-EM estimate.
    post_mean = np.asarray(p.means).mean(axis=(0, 1))
    sd = np.asarray(p.means).std(axis=(0, 1))
    assert np.all(np.abs(post_mean - np.asarray(em.params.means)) < 4 * sd)
    assert post.num_divergences == 0


def test_membership(faithful_post):
    post, em = faithful_post
    mean, low, high = membership.membership(post)
    N = post.X.shape[0]
    assert mean.shape == low.shape == high.shape == (N, 2)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, rtol=1e-10)
    assert np.all((0 <= low) & (low <= high) & (high <= 1))
    # the same as averaging each draw's closed-form responsibilities, and
    # ArviZ's HDI of those draws (the mean of a skewed probability near 0 or 1
    # may lie outside its HDI, so that is not asserted)
    with jax.enable_x64(True):
        resp = np.asarray(post.params.responsibilities(post.X))
    np.testing.assert_allclose(mean, resp.mean(axis=(0, 1)), rtol=1e-10, atol=1e-14)
    ref_hdi = az.hdi(resp, hdi_prob=0.94)
    np.testing.assert_allclose(low, ref_hdi[..., 0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(high, ref_hdi[..., 1], rtol=1e-12, atol=1e-15)
    # the MAP-EM memberships are typically inside the posterior interval
    ref = em.predict_proba(post.X)
    inside = (ref >= low - 1e-9) & (ref <= high + 1e-9)
    assert inside.mean() > 0.8, inside.mean()
    # new rows, and a narrower interval
    m2, lo2, hi2 = membership.membership(post, post.X[:5], hdi_prob=0.5)
    np.testing.assert_allclose(m2, mean[:5])
    assert np.all(hi2 - lo2 <= high[:5] - low[:5] + 1e-12)
    # the same through the posterior's method
    for a, b in zip(post.membership(post.X[:5], hdi_prob=0.5), (m2, lo2, hi2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_old_module_names_are_deprecated_aliases_of_diagnostics():
    """``bg.relabel`` and ``bg.membership`` (modules before 0.1.0) still work, with a warning."""
    with pytest.warns(FutureWarning, match="bayesgmm.diagnostics"):
        assert bg.relabel.relabel is bg.diagnostics.relabel
    with pytest.warns(FutureWarning, match="bayesgmm.diagnostics"):
        assert bg.membership.membership is bg.diagnostics.membership


def test_one_dimensional_data_and_few_draws_warning():
    X = bg.datasets.make_two_gaussians_1d(150, seed=0)
    with pytest.warns(UserWarning, match="too few for reliable") as caught:
        post = bayes.sample_posterior(
            X, 2, init="em", num_chains=2, num_warmup=150, num_samples=60, progress_bar=False
        )
    # the warning points at the caller's line, not at bayesgmm's wrappers
    assert {w.filename for w in caught if "too few" in str(w.message)} == {__file__}
    assert post.params.means.shape == (2, 60, 2, 1)
    assert post.reference_kind == "MAP-EM"
    truth = bg.datasets.true_params_two_gaussians_1d()
    means = np.sort(np.asarray(post.params.means).mean(axis=(0, 1))[:, 0])
    np.testing.assert_allclose(means, np.asarray(truth.means)[:, 0], atol=0.6)


def test_large_data_does_not_hang():
    """N = 3000 with the default chain method finishes (parallel was seen to hang)."""
    code = textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("ignore")
        import bayesgmm as bg
        from bayesgmm.bayes import sample_posterior
        X = bg.datasets.make_four_gaussians_2d(3000, seed=2)
        post = sample_posterior(X, 4, init="em", num_chains=2, num_warmup=60,
                                num_samples=20, progress_bar=False)
        print(post.params.weights.shape)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=500, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(2, 20, 4)" in out.stdout


def test_starting_points():
    X = bg.datasets.make_four_gaussians_2d(200, seed=0)
    prior = bg.Prior.default(X, 4)
    s = cov_registry.get("diag")
    w = np.ones(len(X))
    with jax.enable_x64(True):
        ref, kind, starts = bayes._starting_points(
            None, jax.random.key(0), X, w, 4, 2, s, prior, 3
        )
        assert ref is None and kind is None
        assert starts.batch_shape == (3,)
        assert not np.allclose(starts.means[0], starts.means[1])  # own k-means++ per chain
        # diag family, valid weights
        cov = np.asarray(starts.covariances)
        np.testing.assert_array_equal(cov[..., 0, 1], 0.0)
        np.testing.assert_allclose(np.asarray(starts.weights).sum(-1), 1.0)
        truth = bg.datasets.true_params_four_gaussians_2d()
        ref, kind, starts = bayes._starting_points(
            truth, jax.random.key(0), X, w, 4, 2, s, prior, 3
        )
        assert kind == "init"
        np.testing.assert_array_equal(ref.means, truth.means)
        np.testing.assert_allclose(starts.means[0], truth.means)  # chain 0 on the reference
        assert not np.allclose(starts.means[1], truth.means)  # the others jittered
        # jitter is about a posterior standard deviation: small
        assert np.abs(np.asarray(starts.means) - np.asarray(truth.means)).max() < 1.5
        # the jitter follows the key: the same key gives the same starts, another key others
        again = bayes._starting_points(truth, jax.random.key(0), X, w, 4, 2, s, prior, 3)[2]
        other = bayes._starting_points(truth, jax.random.key(1), X, w, 4, 2, s, prior, 3)[2]
        for name in ("weights", "means", "covariances"):
            np.testing.assert_array_equal(getattr(again, name), getattr(starts, name))
            assert not np.allclose(getattr(other, name)[1:], getattr(starts, name)[1:]), name


def test_warnings_for_divergences_and_step_sizes():
    stats = {"diverging": np.zeros((4, 1000), bool)}
    stats["diverging"][0, :10] = True
    with pytest.warns(UserWarning, match=r"10 of 4000 .*target_accept_prob"):
        bayes._warn_divergences(stats, 0.8)
    stats["diverging"][0, 1:] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bayes._warn_divergences(stats, 0.8)  # one in 4000 is not "many"
        bayes._warn_step_sizes({"step_size": np.full((4, 10), 0.5)})
    with pytest.warns(UserWarning, match="step sizes that differ"):
        bayes._warn_step_sizes({"step_size": np.array([[0.5], [0.5], [0.01], [0.5]])})


def test_sampler_warnings_point_at_the_caller(monkeypatch):
    """Warnings raised after sampling name the line that called sample_posterior."""

    # every transition "diverged": the statistics the engine returned, replaced
    real = bayes.run_nuts

    def diverging_everywhere(*args, **kwargs):
        run = real(*args, **kwargs)
        return run._replace(stats={**run.stats, "diverging": np.ones((1, 5), bool)})

    monkeypatch.setattr(bayes, "run_nuts", diverging_everywhere)
    with pytest.warns(UserWarning) as caught:
        bayes.sample_posterior(
            np.linspace(0, 1, 30),
            1,
            num_chains=1,
            num_warmup=5,
            num_samples=5,
            progress_bar=False,
        )
    assert __file__ in {w.filename for w in caught if "diverged" in str(w.message)}


def test_sampler_releases_compiled_programs_near_the_map_limit(monkeypatch):
    """Near vm.max_map_count, sample_posterior clears JAX's caches and says so.

    Each NUTS run leaves about 1,400 memory maps that only jax.clear_caches()
    frees; past the kernel's limit XLA crashed (the test suite did, once).
    """
    from bayesgmm._core import _memory_maps

    used = _memory_maps.map_count()
    assert used is not None and used > 100  # Linux: /proc/self/maps readable
    cleared = []
    real_clear = jax.clear_caches
    monkeypatch.setattr(jax, "clear_caches", lambda: cleared.append(1) or real_clear())
    X = np.linspace(0, 1, 30)
    kw = dict(num_chains=1, num_warmup=20, num_samples=100, progress_bar=False)

    monkeypatch.setattr(_memory_maps, "max_map_count", lambda: 10 * used)  # far from it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bayes.sample_posterior(X, 1, **kw)
    assert cleared == []

    monkeypatch.setattr(_memory_maps, "max_map_count", lambda: used + 10)  # nearly there
    with pytest.warns(UserWarning, match="vm.max_map_count") as caught:
        post = bayes.sample_posterior(X, 1, **kw)
    assert cleared == [1]
    assert __file__ in {w.filename for w in caught if "max_map_count" in str(w.message)}
    assert np.isfinite(np.asarray(post.params.means)).all()


# -------------------------------------------------------------- bad input ---
def test_bad_input(blobs):
    prior3 = bg.Prior.default(blobs, 3)
    with pytest.raises(ValueError, match="built for K=3"):
        bayes.sample_posterior(blobs, 4, prior=prior3, progress_bar=False)
    with pytest.raises(ValueError, match="built for K=3"):
        bayes_mode.find_map(blobs, 4, prior3)
    prior1d = bg.Prior.default(blobs[:, 0], 4)
    with pytest.raises(ValueError, match="D=1"):
        bayes.sample_posterior(blobs, 4, prior=prior1d, progress_bar=False)
    with pytest.raises(TypeError, match=r"bayesgmm\.Prior"):
        bayes.sample_posterior(blobs, 4, prior={"dof": 3}, progress_bar=False)
    em3 = bg.fit_em(blobs, 3)
    with pytest.raises(ValueError, match="init has K=3"):
        bayes.sample_posterior(blobs, 4, init=em3, progress_bar=False)
    with pytest.raises(ValueError, match="init has K=3"):
        bayes_mode.find_map(blobs, 4, init=em3)
    with pytest.raises(ValueError, match="init must be"):
        bayes.sample_posterior(blobs, 4, init="kmeans", progress_bar=False)
    with pytest.raises(ValueError, match="batch shape"):
        truth = bg.datasets.true_params_four_gaussians_2d()
        batched = jax.tree.map(lambda a: np.stack([a] * 3), truth)
        bayes.sample_posterior(blobs, 4, init=batched, num_chains=2, progress_bar=False)
    bad = blobs.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bayes.sample_posterior(bad, 4, progress_bar=False)
    with pytest.raises(ValueError, match="NaN"):
        bayes_mode.find_map(bad, 4)
    with pytest.raises(ValueError, match="3-D"):
        bayes.sample_posterior(blobs[None], 4, progress_bar=False)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        bayes.sample_posterior(blobs[:3], 4, progress_bar=False)
    with pytest.raises(ValueError, match="sample_weight"):
        bayes.sample_posterior(blobs, 4, sample_weight=np.ones(5), progress_bar=False)
    with pytest.raises(ValueError, match="covariance_type"):
        bayes.sample_posterior(blobs, 4, covariance_type="banana", progress_bar=False)
    with pytest.raises(ValueError, match="num_chains"):
        bayes.sample_posterior(blobs, 4, num_chains=0, progress_bar=False)
    with pytest.raises(ValueError, match="num_warmup"):
        bayes.sample_posterior(blobs, 4, num_warmup=-1, progress_bar=False)
    with pytest.raises(ValueError, match="target_accept_prob"):
        bayes.sample_posterior(blobs, 4, target_accept_prob=1.0, progress_bar=False)
    with pytest.raises(ValueError, match="chain_method"):
        bayes.sample_posterior(blobs, 4, chain_method="threads", progress_bar=False)
    with pytest.raises(TypeError, match="Posterior"):
        membership.membership(em3)


def test_parallel_chain_method_falls_back_without_devices():
    assert bayes._check_chain_method(None, 4) == "vectorized"
    if jax.local_device_count() < 4:
        with pytest.warns(UserWarning, match="falls back|instead"):
            assert bayes._check_chain_method("parallel", 4) == "vectorized"
    assert bayes._check_chain_method("sequential", 4) == "sequential"


def test_import_bayesgmm_stays_light():
    code = "import sys, bayesgmm; bayesgmm.covariance.get('full'); print('numpyro' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------- statistics ---
@pytest.mark.slow
def test_coverage_of_true_parameters():
    """True weights, means and covariances lie in the 94% HDI for most entries."""
    truth = bg.datasets.true_params_four_gaussians_2d()
    t_means = np.asarray(truth.means)
    inside = []
    for seed in range(3):
        X = bg.datasets.make_four_gaussians_2d(400, seed=10 + seed)
        post = bayes.sample_posterior(
            X,
            4,
            init="em",
            num_chains=2,
            num_warmup=400,
            num_samples=400,
            seed=seed,
            progress_bar=False,
        )
        flat = jax.tree.map(lambda a: np.asarray(a).reshape(-1, *a.shape[2:]), post.params)
        perm = hungarian_to(t_means, flat.means)
        take = np.arange(len(perm))[:, None]
        draws = {
            "weights": flat.weights[take, perm],
            "means": flat.means[take, perm],
            "covariances": flat.covariances[take, perm][..., [0, 0, 1], [0, 1, 1]],
        }
        true = {
            "weights": np.asarray(truth.weights),
            "means": t_means,
            "covariances": np.asarray(truth.covariances)[..., [0, 0, 1], [0, 1, 1]],
        }
        for name, d in draws.items():
            interval = az.hdi(d[None], hdi_prob=0.94)
            low, high = interval[..., 0], interval[..., 1]
            inside.append(((true[name] >= low) & (true[name] <= high)).ravel())
    inside = np.concatenate(inside)
    assert inside.size == 3 * (4 + 8 + 12)
    assert inside.mean() >= 0.85, inside.mean()


@pytest.mark.slow
def test_custom_model_with_tempered_likelihood_is_wider(blobs):
    """A custom model (models/custom) runs through sample_posterior; tempering widens it."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "models" / "custom" / "tempered_model.py"
    spec = importlib.util.spec_from_file_location("tempered_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    X = blobs[:150]
    prior = bg.Prior.default(X, 4)
    em = bg.fit_em(X, 4, prior=prior, n_init=3)
    kw = dict(
        prior=prior, init=em, num_chains=1, num_warmup=200, num_samples=300, progress_bar=False
    )
    plain = bg.sample_posterior(X, 4, **kw).relabel()
    tempered = bg.sample_posterior(X, 4, model=module.model, **kw).relabel()
    sd_plain = np.asarray(plain.params.means).std(axis=(0, 1)).mean()
    sd_temp = np.asarray(tempered.params.means).std(axis=(0, 1)).mean()
    assert sd_temp > 1.2 * sd_plain  # about sqrt(2) wider in theory


def test_custom_model_without_shared_sites_is_rejected(blobs):
    import numpyro
    import numpyro.distributions as dist

    def bad(X, n_components, prior, covariance_type="full", sample_weight=None):
        numpyro.sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match=r"no site\(s\) \['covariances', 'means', 'obs'"):
        bg.sample_posterior(blobs[:50], 2, model=bad, num_samples=10, num_warmup=10)


def _max_rhat(params: GMMParams) -> dict[str, float]:
    """Largest split R-hat (ArviZ, rank-normalised) over the entries of each parameter."""
    arrays = {
        "weights": np.asarray(params.weights),
        "means": np.asarray(params.means),
        "covariances": np.asarray(params.covariances),
    }
    return {
        name: float(az.rhat(az.convert_to_dataset({name: a}))[name].max())
        for name, a in arrays.items()
    }


@pytest.mark.slow
def test_chains_from_random_starts_switch_labels_and_relabelling_fixes_rhat():
    """Real NUTS: chains from their own k-means++ starts land on different labellings.

    Before relabelling the means' R-hat is far above 1.1 (the chains disagree
    about which component is which); after relabelling every entry of the
    weights, means and covariances has R-hat below 1.01, with both methods.
    """
    rng = np.random.default_rng(3)
    centres = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]])
    X = np.concatenate([c + rng.standard_normal((60, 2)) for c in centres])
    post = bg.sample_posterior(
        X, 3, init=None, num_chains=4, num_warmup=300, num_samples=500, seed=4, progress_bar=False
    )
    before = _max_rhat(post.params)
    assert before["means"] > 1.1, before
    for method in ("hungarian", "stephens"):
        aligned = post.relabel(method=method)
        assert aligned.fraction_permuted > 0.2, (method, aligned.fraction_permuted)
        after = _max_rhat(aligned.params)
        assert max(after.values()) < 1.01, (method, after)
        # the aligned components are the true clusters, each in one place
        mean_of_means = np.asarray(aligned.params.means).mean(axis=(0, 1))
        rows, cols = linear_sum_assignment(((mean_of_means[:, None] - centres[None]) ** 2).sum(-1))
        assert np.abs(mean_of_means[rows] - centres[cols]).max() < 0.5
