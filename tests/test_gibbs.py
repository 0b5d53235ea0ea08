"""The blocked Gibbs sampler (sample_posterior(method="gibbs")) against references.

- K = 1: every sweep is an independent draw from the closed-form posterior
  (``test_exact_posterior``'s, itself checked against SciPy and numerical
  integration): means and sds within 4 Monte Carlo standard errors, and not
  within them for the posterior of another prior.
- NUTS on the same data and prior (slow): every weight, mean and covariance
  entry's posterior mean and sd agree within 4 combined Monte Carlo standard
  errors after relabelling.
- Simulation-based calibration for all four structures, and SBC rejecting a
  sampler with a planted bug in the conjugate update.
- The Posterior it returns works with relabel, ArviZ and the comparison tools;
  weights other than 0/1 and NUTS settings are refused.
"""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_exact_posterior import exact_posterior, free_entries, make_prior, within_mcse
from test_sbc import make_prior as sbc_prior

import bayesgmm as bg
from bayesgmm._core import _conjugate
from bayesgmm._core._precision import x64

TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    cov = np.array([[1.5, -0.6], [-0.6, 0.8]])
    return rng.multivariate_normal([1.0, -2.0], cov, size=20)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_one_component_matches_the_exact_posterior(data, covariance_type):
    prior = make_prior()
    post = bg.sample_posterior(
        data,
        1,
        prior=prior,
        covariance_type=covariance_type,
        method="gibbs",
        num_chains=2,
        num_warmup=10,
        num_samples=2000,
        seed=4,
    )
    assert post.sampler == "gibbs" and post.params.means.shape == (2, 2000, 1, 2)
    means = post.params.means[:, :, 0]
    cov = post.params.covariances[:, :, 0]
    entries = free_entries(covariance_type, 2)
    cov_draws = np.stack([cov[..., i, j] for i, j in entries], axis=-1)

    def errors(exact):
        mean_err = within_mcse(means, exact["mean_mean"], np.sqrt(exact["mean_var"]))
        cov_err = within_mcse(
            cov_draws,
            np.array([exact["cov_mean"][e] for e in entries]),
            np.sqrt([exact["cov_var"][e] for e in entries]),
        )
        return np.concatenate([*mean_err, *cov_err])

    assert errors(exact_posterior(data, prior, covariance_type)).max() < 4.0
    wrong = errors(exact_posterior(data, make_prior(dof=2 + 3.0 + 3.0), covariance_type))
    assert wrong.max() > 6.0


def _flat(post):
    """(chain, draw, n) draws of every weight, mean and free covariance entry, and names."""
    p = post.params
    K, D = p.n_components, p.n_features
    cols, names = [], []
    for k in range(K):
        cols.append(p.weights[..., k])
        names.append(f"w[{k}]")
        for d in range(D):
            cols.append(p.means[..., k, d])
            names.append(f"mu[{k},{d}]")
        for i, j in free_entries(post.covariance_type, D):
            cols.append(p.covariances[..., k, i, j])
            names.append(f"cov[{k},{i},{j}]")
    return np.stack(cols, axis=-1), names


def _z_between(a, b):
    """|difference| / combined MCSE of the means and of the sds of two sets of draws."""
    out = []
    for stat, method in ((lambda x: x.mean((0, 1)), "mean"), (lambda x: x.std((0, 1)), "sd")):
        se = [az.mcse(az.convert_to_dataset(x), method=method)["x"].values for x in (a, b)]
        out.append(np.abs(stat(a) - stat(b)) / np.sqrt(se[0] ** 2 + se[1] ** 2))
    return np.concatenate(out)


def _three_clusters(n=300, seed=5):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 4.5]])
    labels = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    return centers[labels] + rng.standard_normal((n, 2)) @ np.array([[1.0, 0.3], [0.0, 0.8]])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "K", "covariance_type"),
    [("faithful", 2, "full"), ("three", 3, "full")],
)
def test_gibbs_agrees_with_nuts(faithful, dataset, K, covariance_type):
    """Every entry's posterior mean and sd within 4 combined MCSEs of NUTS's.

    The z-scores are in Monte Carlo standard errors, so the threshold holds for
    any number of draws; 4 x 1,000 Gibbs draws (not 4 x 2,500) make the
    combined MCSE only 4-7% larger, NUTS's 4 x 500 draws dominating it
    (measured: largest |z| 2.1 -> 2.0 here, and 99 -> 92 and 107 -> 102 for
    the other prior's posterior, against the power check's 6).
    """
    X = faithful if dataset == "faithful" else _three_clusters()
    prior = bg.Prior.default(X, K)
    em = bg.fit_em(X, K, prior=prior, covariance_type=covariance_type, n_init=4)
    common = dict(prior=prior, covariance_type=covariance_type, init=em, num_chains=4)
    gibbs = bg.sample_posterior(
        X, K, method="gibbs", num_warmup=200, num_samples=1000, seed=1, **common
    ).relabel()
    nuts = bg.sample_posterior(
        X, K, num_warmup=300, num_samples=500, seed=2, progress_bar=False, **common
    ).relabel()
    a, names = _flat(gibbs)
    b, _ = _flat(nuts)
    z = _z_between(a, b)
    assert z.max() < 4.0, dict(zip(names * 2, np.round(z, 2), strict=True))
    # the check has power: the draws of another prior's posterior are far off
    other = bg.sample_posterior(
        X,
        K,
        method="gibbs",
        num_warmup=200,
        num_samples=1000,
        seed=1,
        **{**common, "prior": bg.Prior.default(X, K, dof=X.shape[1] + 40.0)},
    ).relabel()
    assert _z_between(_flat(other)[0], b).max() > 6.0


SBC = dict(n_obs=25, num_warmup=100, num_samples=200, thin=2, n_bins=10, method="gibbs")


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", TYPES)
def test_sbc_ranks_are_uniform(covariance_type):
    """K=2, D=2, 200 replications of 100 thinned Gibbs draws: no group rejects."""
    res = bg.calibration.simulation_based_calibration(
        2, 2, covariance_type, prior=sbc_prior(2, 2), n_replications=200, seed=1, **SBC
    )
    assert res.n_draws == 100 and res.n_replications == 200
    assert res.min_p_value > 0.001, res.summary()


@pytest.fixture
def planted_bug(monkeypatch):
    """The conjugate update forgets the data in the means' precision (kappa_k = kappa).

    A plausible slip (the posterior of ``mu_k | Sigma_k`` written with the
    prior's ``Sigma_k / kappa``): the means scatter far too widely. The compiled
    programs are dropped before and after, so the sampler is traced with it.
    """
    right = _conjugate.posterior

    def wrong(prior, counts, sums, outer, fam):
        post = right(prior, counts, sums, outer, fam)
        return post._replace(mean_precision=post.mean_precision * 0 + prior.mean_precision)

    jax.clear_caches()
    monkeypatch.setattr(_conjugate, "posterior", wrong)
    yield
    monkeypatch.undo()
    jax.clear_caches()


def test_sbc_catches_a_planted_bug(planted_bug):
    res = bg.calibration.simulation_based_calibration(
        2, 2, "full", prior=sbc_prior(2, 2), n_replications=100, seed=2, **SBC
    )
    assert res.group_p_values["means"] < 1e-6, res.summary()


def test_posterior_works_downstream(faithful):
    prior = bg.Prior.default(faithful, 2)
    em = bg.fit_em(faithful, 2, prior=prior)
    post = bg.sample_posterior(
        faithful, 2, prior=prior, method="gibbs", init=em, num_chains=2, num_samples=200
    )
    assert "sampler='gibbs'" in repr(post)
    assert post.reference_kind == "MAP-EM"
    assert post.sample_stats["min_count"].shape == (2, 200)
    idata = post.relabel().to_arviz()
    assert set(idata.posterior["means"].dims) >= {"chain", "draw", "component", "feature"}
    table = bg.em_vs_posterior(em, post.relabel())
    assert len(table) > 0
    # the same seed gives the same draws; another seed other draws
    again = bg.sample_posterior(
        faithful, 2, prior=prior, method="gibbs", init=em, num_chains=2, num_samples=200
    )
    np.testing.assert_array_equal(again.params.means, post.params.means)
    other = bg.sample_posterior(
        faithful, 2, prior=prior, method="gibbs", init=em, num_chains=2, num_samples=200, seed=1
    )
    assert not np.array_equal(other.params.means, post.params.means)


def test_vb_is_a_third_estimate_in_the_comparison_tools(faithful):
    """em_vs_posterior(..., vb=) and plot_parameters(..., vb=): VB beside EM and the draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prior = bg.Prior.default(faithful, 2)
    em = bg.fit_em(faithful, 2, prior=prior)
    post = bg.sample_posterior(
        faithful, 2, prior=prior, method="gibbs", init=em, num_chains=2, num_samples=1000
    )
    # VB's labels are the other way round from the posterior's: matching must undo it
    vb = bg.fit_vb(faithful, 2, prior=prior, init=_swap(em.params))
    table = bg.em_vs_posterior(em, post, vb=vb)
    means = table[table.parameter == "mean"]
    # well separated clusters: VB is close to the exact posterior, entry by entry
    assert (np.abs(means.vb_mean - means.post_mean) < 0.5 * means.post_sd).all()
    assert means.vb_sd_ratio.between(0.7, 1.3).all(), means.vb_sd_ratio
    assert (table.vb_hdi_low < table.vb_hdi_high).all()
    # a VBResult is a point estimate too (its posterior mean)
    as_point = bg.em_vs_posterior(vb, post)
    np.testing.assert_allclose(
        np.sort(as_point[as_point.parameter == "weight"].em), np.sort(vb.params.weights)
    )
    axes = bg.plots.plot_parameters(em, post, vb=vb)
    fig = axes.ravel()[0].figure
    labels = [t.get_text() for t in fig.legends[0].get_texts()] if fig.legends else []
    labels += [t.get_text() for a in axes.ravel() if a.get_legend() for t in a.get_legend().texts]
    assert any(label.startswith("VB mean") for label in labels), labels
    plain = bg.plots.plot_parameters(em, post)
    n_lines = [sum(len(a.collections) for a in ax.ravel()) for ax in (axes, plain)]
    assert n_lines[0] > n_lines[1]
    plt.close("all")


def _swap(params):
    return bg.GMMParams(params.weights[::-1], params.means[::-1], params.covariances[::-1])


def test_refusals(faithful):
    w = np.ones(len(faithful))
    w[0] = 2.0
    with pytest.raises(ValueError, match="weights of 0 or 1"):
        bg.sample_posterior(faithful, 2, method="gibbs", sample_weight=w)
    with pytest.raises(ValueError, match="step_size"):
        bg.sample_posterior(faithful, 2, method="gibbs", step_size=0.1)
    with pytest.raises(ValueError, match="method must be one of"):
        bg.sample_posterior(faithful, 2, method="hmc")


def _assign_inputs(seed=0, C=3, K=4, D=3, n_blocks=5, B=70):
    """Random blocked data with weights 0/1 and C chains of K components (one of weight 0)."""
    from bayesgmm._core import _linalg

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_blocks, B, D))
    w = (rng.uniform(size=(n_blocks, B)) > 0.2).astype(float)
    means = rng.standard_normal((C, K, D))
    A = rng.standard_normal((C, K, D, D))
    cov = A @ np.swapaxes(A, -1, -2) + 0.3 * np.eye(D)
    chol = _linalg.cholesky(cov)
    prec = _linalg.precision_cholesky(chol)
    logdet = _linalg.logdet_from_cholesky(chol)
    log_w = np.log(rng.dirichlet(np.ones(K), size=C))
    log_w[1, 2] = -np.inf
    return X, w, means, prec, logdet, log_w


@x64  # the low-level kernel, without the public entry points' float64 switch
def test_assignment_statistics_are_those_of_the_drawn_labels():
    """The one-hot statistics from the feature GEMM against NumPy sums over the labels."""
    from bayesgmm.bayes._assign import assign_chains, rows_last

    X, w, means, prec, logdet, log_w = _assign_inputs()
    n_used = 4  # the last block is padding: never read
    counts, sums, outer, log_lik, z = jax.jit(lambda *a: assign_chains(*a, n_used, labels=True))(
        jax.random.key(1), means, prec, logdet, log_w, rows_last(X), w
    )
    z = np.asarray(z)
    xs, ws = X[:n_used].reshape(-1, X.shape[-1]), w[:n_used].reshape(-1)
    K = means.shape[1]
    for c in range(means.shape[0]):
        onehot = (z[c, :n_used].reshape(-1)[:, None] == np.arange(K)) * ws[:, None]
        np.testing.assert_allclose(counts[c], onehot.sum(0), rtol=1e-12)
        np.testing.assert_allclose(sums[c], onehot.T @ xs, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            outer[c], np.einsum("nk,nd,ne->kde", onehot, xs, xs), rtol=1e-12, atol=1e-12
        )
        # log-likelihood of the parameters, over the weighted rows
        from scipy.stats import multivariate_normal

        cov = np.linalg.inv(np.einsum("kde,kfe->kdf", prec[c], prec[c]))
        dens = np.stack(
            [
                np.exp(log_w[c, k]) * multivariate_normal(means[c, k], cov[k]).pdf(xs)
                for k in range(K)
            ]
        )
        np.testing.assert_allclose(log_lik[c], np.sum(ws * np.log(dens.sum(0))), rtol=1e-10)
    assert not np.any((z[1, :n_used] == 2) & (w[:n_used] > 0))  # a weight of 0 is never drawn
    assert np.all(z[:, n_used:] == 0)


@x64  # the low-level kernel, without the public entry points' float64 switch
def test_assignment_log_densities_match_the_whitened_ones():
    """The quadratic-form log densities equal component_log_prob's whitened residuals."""
    from bayesgmm._core._mixture import component_log_prob
    from bayesgmm._core._quadratic import coefficients, quadratic_features

    X, _, means, prec, logdet, log_w = _assign_inputs(seed=3)
    coef = coefficients(means, prec, logdet, log_w)
    f = quadratic_features(X[0].T)  # the block rows last
    got = np.einsum("ckf,fb->cbk", coef, f)
    want = np.stack(
        [component_log_prob(X[0], means[c], prec[c], logdet[c]) + log_w[c] for c in range(3)]
    )
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-11)
    assert np.all(got[~finite] <= -1e299)


@x64  # the low-level kernel, without the public entry points' float64 switch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_block_uniforms_are_uniform_and_apart_across_blocks_and_sweeps(dtype):
    """Each block's uniforms come from its own counter run: no value repeats across
    2,000 blocks of one sweep or between two sweeps' keys, and they pass a KS test."""
    from scipy import stats

    from bayesgmm.bayes._assign import _block_uniforms

    shape = (2, 248)

    def sweep(key):
        words = jax.random.bits(key, (2,), np.uint32)
        # a loop, as in the sampler (vmap would batch RngBitGenerator's key instead)
        return jax.lax.map(lambda i: _block_uniforms(words, i, shape, dtype), np.arange(2000))

    u = np.asarray(jax.jit(sweep)(jax.random.key(3)))
    v = np.asarray(jax.jit(sweep)(jax.random.key(4)))
    assert u.dtype == dtype and u.shape == (2000, *shape)
    assert 0.0 <= u.min() and u.max() < 1.0
    flat = u.reshape(-1)
    # float64: 53 random bits, so any repeat means two blocks read the same counters;
    # float32 has 2^24 values, where ~2^19.9 draws repeat by chance (birthday bound)
    repeats = flat.size - np.unique(flat).size
    assert repeats == 0 if dtype == np.float64 else repeats < 3 * flat.size**2 / 2**25
    if dtype == np.float64:
        assert np.intersect1d(flat, v.reshape(-1)).size == 0
    bound = 4 / np.sqrt(flat.size)
    assert abs(np.corrcoef(flat, v.reshape(-1))[0, 1]) < bound  # another sweep's key
    assert stats.kstest(flat, "uniform").pvalue > 1e-3
    # neighbouring blocks are uncorrelated (what a shared or shifted counter would break)
    r = np.corrcoef(u[:-1].reshape(1999, -1).ravel(), u[1:].reshape(1999, -1).ravel())[0, 1]
    assert abs(r) < bound


@x64  # the low-level kernel, without the public entry points' float64 switch
def test_assignment_draws_follow_the_responsibilities():
    """Label frequencies over 20,000 keys against the responsibilities (4 binomial sds)."""
    from bayesgmm._core._mixture import component_log_prob
    from bayesgmm.bayes._assign import assign_chains, rows_last

    X, w, means, prec, logdet, log_w = _assign_inputs(seed=4)
    Xj, wj = jax.numpy.asarray(rows_last(X)), jax.numpy.ones(w.shape)
    draw = jax.jit(
        jax.vmap(lambda k: assign_chains(k, means, prec, logdet, log_w, Xj, wj, 1, labels=True)[4])
    )
    n = 20_000
    z = np.asarray(draw(jax.random.split(jax.random.key(5), n)))[:, :, 0, :6]  # (n, C, rows)
    K = means.shape[1]
    lp = np.stack(
        [component_log_prob(X[0, :6], means[c], prec[c], logdet[c]) + log_w[c] for c in range(3)]
    )
    p = np.exp(lp - lp.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)  # (C, rows, K)
    freq = np.stack([(z == k).mean(0) for k in range(K)], axis=-1)
    sd = np.sqrt(p * (1 - p) / n) + 1e-12
    assert np.max(np.abs(freq - p) / sd) < 4.5
    # and the same frequencies are far from those of another chain's parameters
    assert np.max(np.abs(freq - p[::-1]) / sd) > 10


def _two_loop_reference(sweep, key, state, num_warmup, num_samples, thin):
    """The loops the samplers ran before bayesgmm.bayes._sweeps: a warm-up scan, then
    a scan of the kept draws with the ``thin`` sweeps of each unrolled."""

    def warm(carry, _):
        key, state = carry
        key, sub = jax.random.split(key)
        return (key, sweep(sub, state)[0]), None

    def kept(carry, _):
        key, state = carry
        for _ in range(thin):
            key, sub = jax.random.split(key)
            state, out = sweep(sub, state)
        return (key, state), out

    carry, _ = jax.lax.scan(warm, (key, state), None, length=num_warmup)
    return jax.lax.scan(kept, carry, None, length=num_samples)[1]


def test_one_loop_of_sweeps_keeps_the_draws_of_separate_loops_in_one_program():
    """kept_sweeps: the draws of warm-up and thinning as separate loops, exactly, and
    one compiled program for every number of warm-up sweeps, thinning and number of
    draws up to its slots (a run's draws are the first of a longer run's)."""
    from bayesgmm.bayes._sweeps import kept_sweeps

    def sweep(key, state):  # a random walk whose output depends on every sweep
        state = state + jax.random.normal(key, state.shape)
        return state, (state, jnp.sum(state**2))

    @jax.jit
    def run(key, warmup, n, thin):
        start = jnp.zeros(3)
        return kept_sweeps(sweep, key, start, num_warmup=warmup, num_samples=n, slots=6, thin=thin)

    key = jax.random.key(0)
    for warmup, n, thin in [(0, 4, 1), (5, 4, 1), (3, 6, 2), (7, 4, 3), (7, 1, 3)]:
        got = run(key, warmup, n, thin)
        want = _two_loop_reference(sweep, key, jnp.zeros(3), warmup, n, thin)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(g[:n], w)
            assert not np.any(g[n:])  # the slots past the draws stay empty
    assert run._cache_size() == 1
    # a draw is not the sweep after it: thinning and warm-up change what is kept
    assert not np.array_equal(run(key, 3, 4, 2)[0], run(key, 3, 4, 1)[0])
    assert not np.array_equal(run(key, 4, 4, 1)[0], run(key, 3, 4, 1)[0])
