"""ArviZ interchange: groups, dims, closed-form log-likelihood, netCDF and Posterior round trip."""

import arviz as az
import jax
import numpy as np
import pytest

import bayesgmm as bg
from bayesgmm import Posterior
from bayesgmm.diagnostics import (
    from_inference_data,
    log_likelihood_draws,
    permute,
    to_inference_data,
)

C, S, K, D, N = 4, 150, 4, 2, 200


def make_draws(truth, shape, seed):
    """Jittered copies of ``truth`` with batch ``shape`` (no label switching)."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.asarray(truth.weights) * 400, size=shape)
    m = np.asarray(truth.means) + 0.1 * rng.standard_normal((*shape, K, D))
    B = np.eye(D) + 0.05 * rng.standard_normal((*shape, K, D, D))
    c = np.einsum("...ij,...jk,...lk->...il", B, np.asarray(truth.covariances), B)
    return bg.GMMParams(weights=w, means=m, covariances=0.5 * (c + np.swapaxes(c, -1, -2)))


@pytest.fixture(scope="module")
def truth():
    return bg.datasets.true_params_four_gaussians_2d()


@pytest.fixture(scope="module")
def post(truth):
    """Chains stuck in different labellings, weighted data, NumPyro-style statistics."""
    rng = np.random.default_rng(7)
    X = bg.datasets.make_four_gaussians_2d(N, seed=2)
    perms = np.array([[0, 1, 2, 3], [1, 0, 3, 2], [3, 2, 1, 0], [2, 3, 0, 1]])
    params = permute(make_draws(truth, (C, S), seed=3), np.repeat(perms[:, None], S, axis=1))
    stats = {
        "diverging": rng.random((C, S)) < 0.01,
        "potential_energy": rng.normal(900.0, 3.0, (C, S)),
        "accept_prob": rng.uniform(0.7, 1.0, (C, S)),
        "tree_depth": rng.integers(2, 5, (C, S)),
        "step_size": np.full((C, S), 0.3),
    }
    return Posterior(
        params=params,
        X=X,
        sample_weight=rng.integers(1, 3, N).astype(np.float64),
        prior=bg.Prior.default(X, K),
        covariance_type="full",
        reference=truth,
        reference_kind="MAP-EM",
        sample_stats=stats,
    )


@pytest.fixture(scope="module")
def idata(post):
    return to_inference_data(post)


@pytest.fixture(scope="module")
def relabelled(post):
    return post.relabel()


def head(post: Posterior, n: int) -> Posterior:
    """The first ``n`` draws of every chain, with their statistics and permutations."""
    return post.replace(
        params=post.params[:, :n],
        sample_stats={k: np.asarray(v)[:, :n] for k, v in post.sample_stats.items()},
        permutations=None if post.permutations is None else post.permutations[:, :n],
    )


def assert_params_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_posteriors_equal(a: Posterior, b: Posterior):
    assert_params_equal(a.params, b.params)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.sample_weight, b.sample_weight)
    assert (a.reference is None) == (b.reference is None)
    if a.reference is not None:
        assert_params_equal(a.reference, b.reference)
    assert_params_equal(a.prior, b.prior)
    assert a.sample_stats.keys() == b.sample_stats.keys()
    for key, value in a.sample_stats.items():
        np.testing.assert_array_equal(value, b.sample_stats[key])
        assert np.asarray(value).dtype == np.asarray(b.sample_stats[key]).dtype
    if a.permutations is None:
        assert b.permutations is None
    else:
        np.testing.assert_array_equal(a.permutations, b.permutations)
    for name in (
        "covariance_type",
        "reference_kind",
        "relabel_method",
        "fraction_permuted",
        "sampler",
    ):
        assert getattr(a, name) == getattr(b, name), name


# --------------------------------------------------------------- structure ---
def test_groups_and_dims(idata, post):
    assert set(idata.groups()) == {
        "posterior",
        "sample_stats",
        "log_likelihood",
        "observed_data",
        "constant_data",
        "point_estimate",
        "prior_hyperparameters",
    }
    p = idata.posterior
    assert p["weights"].dims == ("chain", "draw", "component")
    assert p["means"].dims == ("chain", "draw", "component", "feature")
    assert p["covariances"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    assert p.sizes == {"chain": C, "draw": S, "component": K, "feature": D, "feature_bis": D}
    np.testing.assert_array_equal(p["component"], np.arange(K))
    np.testing.assert_array_equal(p["feature_bis"], np.arange(D))
    np.testing.assert_array_equal(p["means"], post.params.means)
    assert idata.observed_data["obs"].dims == ("obs_id", "feature")
    np.testing.assert_array_equal(idata.observed_data["obs"], post.X)
    np.testing.assert_array_equal(idata.constant_data["sample_weight"], post.sample_weight)
    assert p.attrs["covariance_type"] == "full"
    assert p.attrs["reference_kind"] == "MAP-EM"
    assert "relabel_method" not in p.attrs  # not relabelled yet


def test_point_estimate_group(idata, truth):
    pe = idata["point_estimate"]
    assert pe["means"].dims == ("component", "feature")
    assert pe["covariances"].dims == ("component", "feature", "feature_bis")
    np.testing.assert_array_equal(pe["weights"], truth.weights)
    np.testing.assert_array_equal(pe["covariances"], truth.covariances)
    assert pe.attrs["reference_kind"] == "MAP-EM"


def test_prior_hyperparameters_group(idata, post):
    hp = idata["prior_hyperparameters"]
    np.testing.assert_array_equal(hp["scale"], post.prior.scale)
    assert hp["scale"].dims == ("feature", "feature_bis")
    assert float(hp["dof"]) == float(post.prior.dof)


def test_sample_stats_use_arviz_names(idata, post):
    ss = idata.sample_stats
    assert set(ss.data_vars) == {"diverging", "lp", "acceptance_rate", "tree_depth", "step_size"}
    np.testing.assert_array_equal(ss["lp"], -post.sample_stats["potential_energy"])
    np.testing.assert_array_equal(ss["acceptance_rate"], post.sample_stats["accept_prob"])
    assert ss["diverging"].dtype == bool and ss["diverging"].dims == ("chain", "draw")


def test_pointwise_log_likelihood_is_weighted(idata, post):
    ll = idata.log_likelihood["obs"]
    assert ll.dims == ("chain", "draw", "obs_id") and ll.shape == (C, S, N)
    expected = np.asarray(post.params.log_prob(post.X)) * post.sample_weight
    np.testing.assert_allclose(ll, expected, rtol=1e-12)
    total = log_likelihood_draws(post.params, post.X, post.sample_weight)
    np.testing.assert_allclose(ll.sum("obs_id"), total, rtol=1e-10)


def test_posterior_predictive_on_request(post, idata):
    assert "posterior_predictive" not in idata.groups()
    small = head(post, 20)
    a = to_inference_data(small, posterior_predictive=True, seed=3)
    b = to_inference_data(small, posterior_predictive=True, seed=3)
    c = to_inference_data(small, posterior_predictive=True, seed=4)
    pp = a.posterior_predictive["obs"]
    assert pp.dims == ("chain", "draw", "obs_id", "feature") and pp.shape == (C, 20, N, D)
    np.testing.assert_array_equal(pp, b.posterior_predictive["obs"])
    assert not np.array_equal(pp, c.posterior_predictive["obs"])
    mixture_mean = np.asarray(post.reference.weights) @ np.asarray(post.reference.means)
    np.testing.assert_allclose(pp.mean(("chain", "draw", "obs_id")), mixture_mean, atol=0.15)


def test_feature_names(post):
    out = to_inference_data(head(post, 10), feature_names=["x", "y"])
    assert list(out.posterior["feature"].values) == ["x", "y"]
    assert list(out.posterior["feature_bis"].values) == ["x", "y"]
    assert list(out.observed_data["feature"].values) == ["x", "y"]
    with pytest.raises(ValueError, match="2 distinct names"):
        to_inference_data(post, feature_names=["x"])
    with pytest.raises(ValueError, match="2 distinct names"):
        to_inference_data(post, feature_names=["x", "x"])


# ------------------------------------------------------------ ArviZ itself ---
def test_summary_rhat_before_and_after_relabelling(idata, relabelled):
    before = az.summary(idata, round_to="none")
    assert before["r_hat"].max() > 1.5  # chains in different labellings
    after_idata = to_inference_data(relabelled)
    after = az.summary(after_idata, round_to="none")
    assert len(after) == K + K * D + K * D * D
    assert after["r_hat"].max() < 1.01
    attrs = after_idata.posterior.attrs
    assert attrs["relabel_method"] == "hungarian"
    assert attrs["fraction_permuted"] == pytest.approx(0.75)
    perm = after_idata.sample_stats["relabel_permutation"]
    assert perm.dims == ("chain", "draw", "component")
    np.testing.assert_array_equal(perm, relabelled.permutations)


# The synthetic draws are not an exact posterior, so a few rows of weight 2 get a
# high Pareto k; the point here is that PSIS-LOO and WAIC run on the pointwise group.
@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")
@pytest.mark.filterwarnings("ignore:For one or more samples the posterior variance:UserWarning")
def test_loo_and_waic(idata):
    loo = az.loo(idata, pointwise=True)
    assert np.isfinite(loo["elpd_loo"]) and loo["n_data_points"] == N
    assert (loo["pareto_k"].values < 0.7).mean() > 0.95
    # WAIC against its closed form (ArviZ's p_waic uses the ddof=0 variance)
    ll = idata.log_likelihood["obs"].values.reshape(C * S, N)
    lppd = np.log(np.exp(ll - ll.max(0)).mean(0)) + ll.max(0)
    expected = (lppd - ll.var(axis=0)).sum()
    waic = az.waic(idata)
    assert waic["elpd_waic"] == pytest.approx(expected, rel=1e-10)


def test_no_warning_for_custom_groups(post, recwarn):
    to_inference_data(head(post, 10))
    assert not [w for w in recwarn if "group" in str(w.message).lower()]


# ---------------------------------------------------------------- netCDF ---
def test_netcdf_round_trip_keeps_everything(relabelled, tmp_path):
    small = head(relabelled, 20)
    out = to_inference_data(small, posterior_predictive=True)
    path = out.to_netcdf(str(tmp_path / "post.nc"))
    back = az.from_netcdf(path)
    assert set(back.groups()) == set(out.groups())
    for group in out.groups():
        a, b = out[group], back[group]
        assert set(a.data_vars) == set(b.data_vars), group
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values)
            assert a[name].dims == b[name].dims
            assert a[name].dtype == b[name].dtype, (group, name)
        for coord in a.coords:
            np.testing.assert_array_equal(a[coord].values, b[coord].values)
        assert a.attrs == b.attrs, group


def test_posterior_round_trip_through_netcdf(relabelled, tmp_path):
    path = to_inference_data(relabelled).to_netcdf(str(tmp_path / "post.nc"))
    back = from_inference_data(az.from_netcdf(path))
    assert isinstance(back, Posterior)
    assert_posteriors_equal(relabelled, back)
    assert repr(back) == repr(relabelled)


def test_posterior_round_trip_without_reference_or_relabelling(post, tmp_path):
    bare = head(post, 10).replace(
        reference=None,
        reference_kind=None,
        sample_stats={},
        sample_weight=np.ones(N),
    )
    idata = to_inference_data(bare, feature_names=["eruptions", "waiting"])
    assert "point_estimate" not in idata.groups()
    assert idata.posterior.attrs["has_point_estimate"] == 0
    path = idata.to_netcdf(str(tmp_path / "bare.nc"))
    assert_posteriors_equal(bare, from_inference_data(az.from_netcdf(path)))


def test_posterior_to_arviz_method(post):
    small = head(post, 20)
    out = small.to_arviz(posterior_predictive=True, seed=1)
    assert "posterior_predictive" in out.groups()
    assert_posteriors_equal(small, from_inference_data(out))


# ---------------------------------------------------------------- errors ---
def test_errors(post):
    with pytest.raises(TypeError, match="Posterior"):
        to_inference_data(post.params)
    with pytest.raises(TypeError, match="InferenceData"):
        from_inference_data(post)
    foreign = az.from_dict(posterior={"weights": np.ones((2, 10, 3)) / 3})
    with pytest.raises(ValueError, match="covariance_type"):
        from_inference_data(foreign)
    with pytest.raises(ValueError, match="no 'posterior' group"):
        from_inference_data(az.InferenceData())
    with pytest.raises(ValueError, match="sample_stats"):
        to_inference_data(post.replace(sample_stats={"lp": np.zeros(3)}))
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        to_inference_data(post.replace(sample_weight=np.ones(3)))


# ------------------------------------------------- number of clusters ---
@pytest.mark.parametrize(
    "kw",
    [
        dict(e0=0.05),
        dict(
            e0=0.5,
            e0_prior=(2.0, 4.0),
            k_prior="poisson(2)",
            scale_prior="mw2016",
            mean_covariance="range",
        ),
    ],
    ids=["sparse-fixed-K", "telescope-hierarchical"],
)
def test_sparse_posterior_round_trip_keeps_the_number_of_clusters(kw, tmp_path):
    """A saved and reloaded sparse run still answers n_clusters() and k_posterior()."""
    X = bg.datasets.make_four_gaussians_2d(60, seed=1)
    sparse = bg.Prior.sparse(X, k_max=5, **kw)
    post = bg.sample_posterior(
        X, 5, prior=sparse, method="gibbs", num_chains=2, num_warmup=5, num_samples=6, seed=0
    )
    path = post.to_arviz().to_netcdf(str(tmp_path / "sparse.nc"))
    back = from_inference_data(az.from_netcdf(path))
    assert_posteriors_equal(post, back)
    assert back.sampler == "gibbs"
    np.testing.assert_array_equal(back.n_clusters(), post.n_clusters())
    table, table_back = post.k_posterior(), back.k_posterior()
    assert list(table_back.columns) == list(table.columns)
    np.testing.assert_allclose(table_back.to_numpy(), table.to_numpy())
    cp, cb = post.cluster_prior, back.cluster_prior
    assert repr(cb) == repr(cp)
    np.testing.assert_array_equal(cb.log_pk, cp.log_pk)  # -inf where p(K) = 0
    assert (cb.e0, cb.e0_prior, cb.k_prior_name) == (cp.e0, cp.e0_prior, cp.k_prior_name)
    if cp.scale_prior is None:
        assert cb.scale_prior is None and cb.mean_covariance is None
    else:
        assert cb.scale_prior[0] == cp.scale_prior[0]
        np.testing.assert_array_equal(cb.scale_prior[1], cp.scale_prior[1])
        np.testing.assert_array_equal(cb.mean_covariance, cp.mean_covariance)
        assert back.sample_stats["prior_scale"].shape == (2, 6, 2, 2)
    assert back.cluster_prior.base is back.prior
    # without the group the copy is an ordinary posterior
    idata = post.to_arviz()
    del idata["cluster_prior"]
    plain = from_inference_data(idata)
    assert plain.cluster_prior is None and plain.k_posterior().shape[1] == 1
