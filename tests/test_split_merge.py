"""Split-merge moves of the sparse sampler (bayesgmm.bayes._split_merge).

The marginal likelihood is checked against SciPy densities (Chib's identity at
random parameters); the move alone is checked against the exact posterior of
the partition, enumerated over every labelled allocation of six rows; the
whole sampler with the moves on against the exact p(K+ | data) and p(K | data)
of a tiny data set; and at a size where the plain sampler stalls, that it
finds the four clusters.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from scipy.special import gammaln

import bayesgmm as bg
from bayesgmm._core import _conjugate
from bayesgmm._core import covariance as _cov
from bayesgmm._core._precision import x64
from bayesgmm.bayes import _split_merge

STRUCTURES = ["full", "diag", "spherical", "tied"]


def _stats(X, z, k_max):
    onehot = (z[..., None] == np.arange(k_max)).astype(float)
    return (
        onehot.sum(-2),
        np.einsum("...nk,nd->...kd", onehot, X),
        np.einsum("...nk,nd,ne->...kde", onehot, X, X),
    )


def _chib(X, z, prior, structure, rng):
    """``log p(X | z)`` as ``log p(X | theta) + log p(theta) - log p(theta | X)``, random theta.

    Posterior hyperparameters computed here in NumPy from the model's
    definition, densities from SciPy; the identity holds at every theta only
    if the posterior is the right one.
    """
    m0, kappa = np.asarray(prior.mean), float(prior.mean_precision)
    nu, psi = float(prior.dof), np.asarray(prior.scale)
    D = X.shape[1]
    labels = np.unique(z)
    post = []
    for k in labels:
        Xk = X[z == k]
        n, xbar = len(Xk), Xk.mean(0)
        kn = kappa + n
        mn = (kappa * m0 + n * xbar) / kn
        S = (Xk - xbar).T @ (Xk - xbar) + kappa * n / kn * np.outer(xbar - m0, xbar - m0)
        post.append((n, kn, mn, S))
    mus = [mn + rng.normal(scale=0.3, size=D) for _, _, mn, _ in post]
    log_lik = log_prior = log_post = 0.0
    if structure in ("full", "tied"):
        if structure == "full":
            covs = [(psi + S) / (nu + n + D + 1) * rng.uniform(0.7, 1.4) for n, _, _, S in post]
            for (n, _, _, S), cov in zip(post, covs, strict=True):
                log_prior += st.invwishart(nu, psi).logpdf(cov)
                log_post -= st.invwishart(nu + n, psi + S).logpdf(cov)
        else:
            n_all, S_all = sum(p[0] for p in post), sum(p[3] for p in post)
            cov = (psi + S_all) / (nu + n_all + D + 1) * rng.uniform(0.7, 1.4)
            covs = [cov] * len(post)
            log_prior += st.invwishart(nu, psi).logpdf(cov)
            log_post -= st.invwishart(nu + n_all, psi + S_all).logpdf(cov)
    elif structure == "diag":
        covs = []
        for n, _, _, S in post:
            an, bn = (nu + n) / 2, np.diag(psi + S) / 2
            var = bn / (an + 1) * rng.uniform(0.7, 1.4, size=D)
            covs.append(np.diag(var))
            log_prior += st.invgamma(nu / 2, scale=np.diag(psi) / 2).logpdf(var).sum()
            log_post -= st.invgamma(an, scale=bn).logpdf(var).sum()
    else:
        covs = []
        for n, _, _, S in post:
            a0, b0 = nu * D / 2, np.trace(psi) / 2
            an, bn = a0 + n * D / 2, b0 + np.trace(S) / 2
            var = bn / (an + 1) * rng.uniform(0.7, 1.4)
            covs.append(var * np.eye(D))
            log_prior += st.invgamma(a0, scale=b0).logpdf(var)
            log_post -= st.invgamma(an, scale=bn).logpdf(var)
    for k, (_, kn, mn, _), mu, cov in zip(labels, post, mus, covs, strict=True):
        log_lik += st.multivariate_normal(mu, cov).logpdf(X[z == k]).sum()
        log_prior += st.multivariate_normal(m0, cov / kappa).logpdf(mu)
        log_post -= st.multivariate_normal(mn, cov / kn).logpdf(mu)
    return log_lik + log_prior + log_post


@pytest.mark.parametrize("structure", STRUCTURES)
def test_log_evidence_is_the_marginal_likelihood(structure):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=(7, 3)), rng.normal(3.0, 0.5, size=(5, 3))])
    prior = bg.Prior.default(X, 3)
    z = np.array([0] * 7 + [2] * 5)
    z[[1, 8]] = 2, 0
    fam = _cov.get(structure).conjugate
    with jax.enable_x64(True):
        got = float(_conjugate.log_evidence(prior, *map(jnp.asarray, _stats(X, z, 3)), fam))
    for _ in range(3):  # the identity must hold wherever theta is
        assert got == pytest.approx(_chib(X, z, prior, structure, rng), rel=1e-10, abs=1e-9)
    # an empty component adds nothing; another partition has another evidence
    other = np.where(np.arange(12) < 6, 0, 2)
    with jax.enable_x64(True):
        moved = float(_conjugate.log_evidence(prior, *map(jnp.asarray, _stats(X, other, 3)), fam))
    assert abs(moved - got) > 0.1


def test_stage_plan_covers_the_rows_in_growing_stages():
    for n in (1, 2, 7, 100, 11_466, 100_000):
        plan = _split_merge.stage_plan(n)
        sizes = np.concatenate([[w] * k for w, k in plan])
        ends = np.cumsum(sizes)
        assert n <= ends[-1] and (len(ends) == 1 or ends[-2] < n)  # no stage past the rows
        assert sizes[0] == max(1, -(-n // 2048))
        # from the second class on, a stage adds at most half the positions before it
        assert (sizes[8:] <= 0.5 * (ends[8:] - sizes[8:])).all()
    assert _split_merge.stage_plan(8) == ((1, 8),)  # single rows: sequential allocation
    assert len(_split_merge.stage_plan(100_000)) == 5


def _exact(X, prior, K, e0, beta, fam):
    """Every labelled allocation of the rows to K components and ``log p(z | K, e0, X)``."""
    N = X.shape[0]
    Z = np.array(list(itertools.product(range(K), repeat=N)))
    counts, sums, outer = _stats(X, Z, prior.n_components)
    with jax.enable_x64(True):
        ev = _conjugate.log_evidence(prior, beta * counts, beta * sums, beta * outer, fam)
    logp = (gammaln(counts + e0) - gammaln(e0)).sum(-1) + np.asarray(ev)
    return Z, np.exp(logp - logp.max()) / np.exp(logp - logp.max()).sum()


def _partition_key(Z):
    """Each allocation's (unlabelled) partition, relabelled in order of first appearance."""
    out = np.empty_like(Z)
    for r, z in enumerate(Z):
        seen = {}
        out[r] = [seen.setdefault(v, len(seen)) for v in z]
    return [tuple(v) for v in out]


@x64
def _run_moves(X, w, prior, K, e0, beta, fam, *, chains, steps, plan, seed=0):
    """Chains of split-merge moves alone, from random allocations; every step's labels."""
    k_max = prior.n_components
    z0 = np.random.default_rng(seed).integers(0, K, size=(chains, X.shape[0]))
    stats0 = jax.tree.map(jnp.asarray, _stats(X[w > 0], z0[:, w > 0], k_max))
    z0 = jnp.asarray(z0, jnp.int32)
    X, w = jnp.asarray(X), jnp.asarray(w)

    def chain(key, z, stats):
        def step(carry, key):
            z, stats = carry
            z, stats, _ = _split_merge.chain_moves(
                key, z, X, w, stats, K, e0, prior, beta, fam, n_moves=1, plan=plan
            )
            return (z, stats), z

        return jax.lax.scan(step, (z, stats), jax.random.split(key, steps))[1]

    keys = jax.random.split(jax.random.key(seed), chains)
    return np.asarray(jax.jit(jax.vmap(chain))(keys, z0, stats0))


@pytest.mark.slow
@pytest.mark.parametrize(
    "structure,K,k_max,beta,plan",
    [
        ("full", 3, 3, 1.0, None),
        ("diag", 3, 4, 1.0, ((2, 4),)),
        ("spherical", 3, 3, 0.5, ((8, 1),)),
        ("tied", 3, 3, 1.0, ((1, 2), (3, 2))),
        ("full", 3, 3, 0.0, ((2, 4),)),
    ],
)
def test_moves_alone_sample_the_exact_partition_posterior(structure, K, k_max, beta, plan):
    """Six rows (two padding rows, weight 0), K = 3 active components: 729 allocations.

    The moves alone form an irreducible chain on them; its frequencies must
    be the enumerated ``p(z | K, e0, X)``, both over the 203 partitions and
    over the labelled allocations. Stages of single rows, of two rows, one
    stage, and two classes of stages. 500,000 correlated draws: the
    total-variation distances seen were 0.013-0.026 (labelled) and
    0.003-0.017 (partitions); dropping the proposal probability, the count of
    empty labels or the Dirichlet-multinomial's ``e0`` from the ratio moved
    the partition distribution by 0.11 to 0.26.
    """
    rng = np.random.default_rng(4)
    X = np.concatenate(
        [rng.normal(-0.7, 0.5, (3, 2)), rng.normal(0.7, 0.5, (3, 2)), np.zeros((2, 2))]
    )
    w = np.array([1.0] * 6 + [0.0] * 2)
    X[6:] = 50.0  # padding far away: must never matter
    prior = bg.Prior.sparse(X[:6], k_max=k_max, e0=0.3).base
    fam = _cov.get(structure).conjugate
    Z, p = _exact(X[:6], prior, K, 0.3, beta, fam)
    zs = _run_moves(X, w, prior, K, 0.3, beta, fam, chains=1000, steps=700, plan=plan)
    zs = zs[:, 200:, :6].reshape(-1, 6)
    assert zs.max() < K  # the inactive component stays empty
    # labelled allocations
    idx = (zs * K ** np.arange(5, -1, -1)).sum(-1)
    freq = np.bincount(idx, minlength=K**6) / idx.size
    ref_idx = (Z * K ** np.arange(5, -1, -1)).sum(-1)
    assert 0.5 * np.abs(freq[ref_idx] - p).sum() < 0.05
    # partitions
    keys = _partition_key(Z)
    exact, seen = {}, {}
    for key, pk in zip(keys, p, strict=True):
        exact[key] = exact.get(key, 0.0) + pk
    for key, count in zip(*np.unique(idx, return_counts=True), strict=True):
        part = keys[int(np.nonzero(ref_idx == key)[0][0])]
        seen[part] = seen.get(part, 0.0) + count / idx.size
    tv = 0.5 * sum(abs(exact[k] - seen.get(k, 0.0)) for k in exact)
    assert tv < 0.03


def _exact_k(y, sparse):
    """Exact ``p(K+ | y)`` and ``p(K | y)`` of a sparse / telescoping mixture, by enumeration."""
    prior, e0, N = sparse.base, sparse.e0, y.shape[0]
    fam = _cov.get("full").conjugate
    p_kplus, p_k = np.zeros(sparse.k_max), np.zeros(sparse.k_max)
    log_terms = []
    for K in range(1, sparse.k_max + 1):
        Z = np.array(list(itertools.product(range(K), repeat=N)))
        counts, sums, outer = _stats(y, Z, sparse.k_max)
        with jax.enable_x64(True):
            ev = np.asarray(_conjugate.log_evidence(prior, counts, sums, outer, fam))
        logp = (
            sparse.log_pk[K - 1]
            + gammaln(K * e0)
            - gammaln(N + K * e0)
            + (gammaln(counts + e0) - gammaln(e0)).sum(-1)
            + ev
        )
        kplus = (counts > 0).sum(-1)
        log_terms.append((K, logp, kplus))
    top = max(lp.max() for _, lp, _ in log_terms if np.isfinite(lp).any())
    for K, logp, kplus in log_terms:
        w = np.exp(logp - top)
        p_k[K - 1] = w.sum()
        np.add.at(p_kplus, kplus - 1, w)
    return p_kplus / p_kplus.sum(), p_k / p_k.sum()


@pytest.mark.slow
@pytest.mark.parametrize("k_prior", [None, "uniform"], ids=["sparse", "telescoping"])
def test_sampler_with_moves_gives_the_exact_number_of_clusters(k_prior):
    """Six values, K_max = 3: p(K+ | y) (and p(K | y)) against all 3^6 allocations per K.

    The whole sweep (assignments, split-merge moves, K, weights, parameters)
    with 8 chains x 3,000 sweeps: total-variation distances seen 0.002-0.009
    (0.002-0.013 without the moves); with the count of empty labels or ``e0``
    dropped from the moves' ratio they were 0.07-0.14.
    """
    y = np.array([-1.3, -0.9, -0.6, 0.5, 0.8, 1.4])
    sparse = bg.Prior.sparse(y, k_max=3, e0=0.5, k_prior=k_prior)
    assert sparse.split_merge
    post = bg.sample_posterior(
        y, 3, prior=sparse, method="gibbs", num_chains=8, num_warmup=200, num_samples=3000, seed=2
    )
    p_kplus, p_k = _exact_k(y[:, None], sparse)
    assert p_kplus.min() > 0.05  # a question with more than one answer
    kp = post.n_clusters().ravel()
    assert 0.5 * np.abs(np.bincount(kp, minlength=4)[1:] / kp.size - p_kplus).sum() < 0.03
    if k_prior is not None:
        k = post.sample_stats["n_components"].ravel()
        assert 0.5 * np.abs(np.bincount(k, minlength=4)[1:] / k.size - p_k).sum() < 0.03
    assert post.sample_stats["split_merge_accept"].mean() > 0.05


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_four_gaussians_at_3000_rows(seed):
    """Where the plain sampler stalls (p(K+ = 4) 0.37-0.51 at this size and length,
    a true cluster held by two components) the moves find the four clusters."""
    X = bg.datasets.make_four_gaussians_2d(3000, seed=seed)
    prior = bg.Prior.sparse(X, k_max=10, e0=0.01)
    post = bg.sample_posterior(
        X,
        10,
        prior=prior,
        method="gibbs",
        num_chains=4,
        num_warmup=300,
        num_samples=300,
        seed=seed,
    )
    assert post.k_posterior().loc[4, "p(K+|data)"] > 0.9


def test_split_merge_needs_the_conjugate_component_prior():
    """On by default, off under the hierarchical options, refused when asked for with them."""
    import bayesgmm as bg

    X = bg.datasets.make_four_gaussians_2d(200, seed=0)
    assert bg.Prior.sparse(X, 5).split_merge
    assert not bg.Prior.sparse(X, 5, split_merge=False).split_merge
    assert not bg.Prior.sparse(X, 5, scale_prior="mw2016").split_merge
    assert not bg.Prior.sparse(X, 5, mean_covariance="range").split_merge
    with pytest.raises(ValueError, match="conjugate component prior"):
        bg.Prior.sparse(X, 5, scale_prior="mw2016", split_merge=True)
