"""Label switching: permute, relabel (hungarian, Stephens) and label-invariant diagnostics.

Draws are synthetic: jittered copies of known parameters whose labels are then
permuted at random (per draw, or per chain), so the right answer is known.
"""

import itertools

import arviz as az
import jax
import numpy as np
import pytest
import xarray as xr
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal

import bayesgmm as bg
from bayesgmm import Posterior
from bayesgmm._core import _blocks
from bayesgmm.diagnostics import _relabel as rl
from bayesgmm.diagnostics import (
    co_clustering,
    density_on_grid,
    invariant_diagnostics,
    log_likelihood_draws,
    permute,
    relabel,
)

C, S, K, D = 4, 200, 4, 2


def make_draws(truth, shape, seed):
    """Jittered copies of ``truth`` with batch ``shape`` (no label switching)."""
    rng = np.random.default_rng(seed)
    K, D = truth.n_components, truth.n_features
    w = rng.dirichlet(np.asarray(truth.weights) * 400, size=shape)
    m = np.asarray(truth.means) + 0.1 * rng.standard_normal((*shape, K, D))
    B = np.eye(D) + 0.05 * rng.standard_normal((*shape, K, D, D))
    c = np.einsum("...ij,...jk,...lk->...il", B, np.asarray(truth.covariances), B)
    return bg.GMMParams(weights=w, means=m, covariances=0.5 * (c + np.swapaxes(c, -1, -2)))


def random_permutations(rng, shape, K):
    return np.argsort(rng.random((*shape, K)), axis=-1)


def rhat_max(values, dims):
    ds = xr.Dataset({"x": (("chain", "draw", *dims), np.asarray(values))})
    return float(az.rhat(ds)["x"].max())


@pytest.fixture(scope="module")
def truth():
    return bg.datasets.true_params_four_gaussians_2d()


@pytest.fixture(scope="module")
def X():
    return bg.datasets.make_four_gaussians_2d(300, seed=1)


@pytest.fixture(scope="module")
def draws(truth):
    return make_draws(truth, (C, S), seed=0)


@pytest.fixture(scope="module")
def planted():
    """One random permutation per draw (a few stay the identity)."""
    return random_permutations(np.random.default_rng(1), (C, S), K)


@pytest.fixture(scope="module")
def switched(draws, planted):
    return permute(draws, planted)


@pytest.fixture(scope="module")
def chain_planted():
    """Each chain stuck in its own labelling: one permutation per chain."""
    perms = np.array([[0, 1, 2, 3], [1, 0, 3, 2], [3, 2, 1, 0], [2, 3, 0, 1]])
    return np.repeat(perms[:, None, :], S, axis=1)


@pytest.fixture(scope="module")
def chain_switched(draws, chain_planted):
    return permute(draws, chain_planted)


# ------------------------------------------------------------------ permute ---
def test_permute_matches_explicit_indexing(draws, planted):
    out = permute(draws, planted)
    assert out.batch_shape == (C, S)
    for c, s in [(0, 0), (1, 17), (3, 199)]:
        p = planted[c, s]
        np.testing.assert_array_equal(out.weights[c, s], np.asarray(draws.weights[c, s])[p])
        np.testing.assert_array_equal(out.means[c, s], np.asarray(draws.means[c, s])[p])
        np.testing.assert_array_equal(
            out.covariances[c, s], np.asarray(draws.covariances[c, s])[p]
        )


def test_permute_inverse_round_trip(draws, planted):
    back = permute(permute(draws, planted), np.argsort(planted, axis=-1))
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(draws), strict=True):
        np.testing.assert_array_equal(a, b)


def test_permute_unbatched_keeps_dtype(truth):
    out = permute(truth, [2, 0, 3, 1])
    assert out.batch_shape == () and out.dtype == np.float64
    np.testing.assert_array_equal(out.means, np.asarray(truth.means)[[2, 0, 3, 1]])


@pytest.mark.parametrize(
    "perm, match",
    [
        ([0, 1, 2], "shape S"),
        ([0, 0, 1, 2], "permutation of 0..3"),
        ([0.5, 1, 2, 3], "integers"),
    ],
)
def test_permute_rejects_bad_permutations(truth, perm, match):
    with pytest.raises(ValueError, match=match):
        permute(truth, perm)


def test_permute_rejects_non_params():
    with pytest.raises(TypeError, match="GMMParams"):
        permute({"weights": [1.0]}, [0])


# -------------------------------------------------------------- the KL cost ---
def _sym_kl_numpy(w, m, S, v, n, T):
    """Independent reference with explicit inverses and determinants."""
    d = m.size

    def kl(m0, S0, m1, S1):
        S1i = np.linalg.inv(S1)
        dm = m1 - m0
        return 0.5 * (
            np.trace(S1i @ S0) + dm @ S1i @ dm - d + np.log(np.linalg.det(S1) / np.linalg.det(S0))
        )

    return (w - v) * np.log(w / v) + w * kl(m, S, n, T) + v * kl(n, T, m, S)


def test_cost_is_symmetrised_weighted_kl(draws, truth):
    one = draws[2, 5]
    with jax.enable_x64(True):
        cost = np.asarray(rl._sym_kl_cost(one.flatten_batch(), truth))[0]
    a = one.to_numpy()
    b = truth.to_numpy()
    expected = np.array(
        [
            [
                _sym_kl_numpy(
                    a["weights"][i],
                    a["means"][i],
                    a["covariances"][i],
                    b["weights"][j],
                    b["means"][j],
                    b["covariances"][j],
                )
                for j in range(K)
            ]
            for i in range(K)
        ]
    )
    np.testing.assert_allclose(cost, expected, rtol=1e-10, atol=1e-12)
    with jax.enable_x64(True):
        self_cost = np.asarray(rl._sym_kl_cost(truth.flatten_batch(), truth))[0]
    np.testing.assert_allclose(np.diag(self_cost), 0.0, atol=1e-12)
    np.testing.assert_allclose(self_cost, self_cost.T, rtol=1e-12)
    assert (self_cost[~np.eye(K, dtype=bool)] > 1.0).all()


def test_cost_is_affine_invariant(draws, truth):
    A = np.array([[3.0, 1.0], [0.0, 0.2]])
    b = np.array([10.0, -5.0])

    def affine(p):
        return bg.GMMParams(
            weights=np.asarray(p.weights),
            means=np.asarray(p.means) @ A.T + b,
            covariances=A @ np.asarray(p.covariances) @ A.T,
        )

    with jax.enable_x64(True):
        before = np.asarray(rl._sym_kl_cost(draws[0, :20].flatten_batch(), truth))
        after = np.asarray(rl._sym_kl_cost(affine(draws[0, :20]).flatten_batch(), affine(truth)))
    np.testing.assert_allclose(before, after, rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------- assignment ---
@pytest.mark.parametrize("k", [3, 5, 7])
def test_assign_is_optimal(k, monkeypatch):
    rng = np.random.default_rng(k)
    cost = rng.random((40, k, k))
    got = rl._assign(cost)
    for m in range(40):
        rows, cols = linear_sum_assignment(cost[m])
        best = cost[m, rows, cols].sum()
        np.testing.assert_allclose(cost[m, got[m], np.arange(k)].sum(), best, rtol=1e-12)
    # the two code paths (all K! permutations at once, one assignment per draw) agree
    monkeypatch.setattr(rl, "_BRUTE_FORCE_MAX_K", 0)
    per_draw = rl._assign(cost)
    monkeypatch.setattr(rl, "_BRUTE_FORCE_MAX_K", 8)
    monkeypatch.setattr(_blocks, "DRAW_BLOCK_ELEMENTS", 5000)  # several blocks of draws
    np.testing.assert_array_equal(rl._assign(cost), per_draw)
    np.testing.assert_array_equal(per_draw, got)


def test_assign_brute_force_prefers_identity_on_ties():
    cost = np.zeros((3, 4, 4))
    np.testing.assert_array_equal(rl._assign(cost), np.tile(np.arange(4), (3, 1)))


def test_assign_rejects_non_finite_costs():
    cost = np.zeros((2, 3, 3))
    cost[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        rl._assign(cost)


# ---------------------------------------------------------- relabel: hungarian ---
def test_hungarian_recovers_planted_permutations(switched, planted, draws, truth):
    res = relabel(switched, reference=truth)
    np.testing.assert_array_equal(res.permutations, np.argsort(planted, axis=-1))
    expected_fraction = float((planted != np.arange(K)).any(axis=-1).mean())
    assert res.fraction_permuted == pytest.approx(expected_fraction)
    assert 0.9 < res.fraction_permuted < 1.0  # a few planted identities stay put
    for a, b in zip(jax.tree.leaves(res.params), jax.tree.leaves(draws), strict=True):
        np.testing.assert_array_equal(a, b)
    assert res.n_iter == 0 and res.reference is not None


def test_hungarian_on_aligned_draws_changes_nothing(draws, truth):
    res = relabel(draws, reference=truth)
    assert res.fraction_permuted == 0.0
    np.testing.assert_array_equal(res.permutations, np.broadcast_to(np.arange(K), (C, S, K)))


def test_pivot_aligns_up_to_one_global_permutation(switched, planted, X):
    res = relabel(switched, X=X)  # no reference: the highest log-likelihood draw
    # composed with the planted permutation, every draw lands on the same labelling
    composed = np.take_along_axis(planted, res.permutations, axis=-1)
    assert (composed == composed[0, 0]).all()
    ll = log_likelihood_draws(switched, X)
    c, s = np.unravel_index(np.argmax(ll), ll.shape)
    np.testing.assert_array_equal(res.permutations[c, s], np.arange(K))
    np.testing.assert_array_equal(res.reference.means, switched.means[c, s])


def test_relabel_restores_rhat_of_means(chain_switched, chain_planted, truth):
    assert rhat_max(chain_switched.means, ("component", "feature")) > 1.5
    res = relabel(chain_switched, reference=truth)
    assert res.fraction_permuted == pytest.approx(0.75)  # chain 0 kept the identity
    np.testing.assert_array_equal(res.permutations, np.argsort(chain_planted, axis=-1))
    assert rhat_max(res.params.means, ("component", "feature")) < 1.01
    assert rhat_max(res.params.weights, ("component",)) < 1.01


def test_relabel_unbatched_params(truth):
    res = relabel(permute(truth, [3, 1, 0, 2]), reference=truth)
    np.testing.assert_array_equal(res.permutations, np.argsort([3, 1, 0, 2]))
    assert res.fraction_permuted == 1.0
    np.testing.assert_array_equal(res.params.means, truth.means)


# ----------------------------------------------------------- relabel: Stephens ---
def test_stephens_agrees_with_hungarian(switched, planted, truth, X):
    hung = relabel(switched, reference=truth)
    steph = relabel(switched, reference=truth, method="stephens", X=X)
    np.testing.assert_array_equal(steph.permutations, hung.permutations)
    assert steph.n_iter >= 1 and steph.fraction_permuted == hung.fraction_permuted


def test_stephens_from_a_bad_start_finds_the_alignment(switched, planted, X):
    # Start Stephens from the identity (no alignment at all): its KL iterations must
    # still bring every draw onto one labelling.
    flat = switched.flatten_batch()
    with jax.enable_x64(True):
        perm, n_iter = rl._stephens(flat, X, np.tile(np.arange(K), (C * S, 1)), 100)
    composed = np.take_along_axis(planted.reshape(-1, K), perm, axis=-1)
    assert (composed == composed[0]).all()
    assert n_iter >= 2


def test_stephens_without_reference_uses_pivot(switched, X):
    steph = relabel(switched, method="stephens", X=X)
    hung = relabel(switched, X=X)
    np.testing.assert_array_equal(steph.permutations, hung.permutations)


# ---------------------------------------------------------- relabel: errors ---
def test_relabel_errors(switched, truth, X):
    with pytest.raises(ValueError, match="pass X="):
        relabel(switched, reference=truth, method="stephens")
    with pytest.raises(ValueError, match="method must be one of"):
        relabel(switched, reference=truth, method="kmeans")
    with pytest.raises(ValueError, match=r"reference=\.\.\. or X="):
        relabel(switched)
    with pytest.raises(ValueError, match="no batch axes"):
        relabel(switched, reference=switched[0])
    three = bg.GMMParams(
        weights=np.full(3, 1 / 3),
        means=np.zeros((3, 2)),
        covariances=np.tile(np.eye(2), (3, 1, 1)),
    )
    with pytest.raises(ValueError, match="K=3, D=2 but the draws have K=4"):
        relabel(switched, reference=three)
    with pytest.raises(ValueError, match="features"):
        relabel(switched, X=X[:, :1])
    with pytest.raises(TypeError, match="reference must be GMMParams"):
        relabel(switched, reference=np.zeros(3))


def test_posterior_relabel_uses_its_reference(chain_switched, chain_planted, truth, X):
    post = Posterior(
        params=chain_switched,
        X=X,
        sample_weight=np.ones(len(X)),
        prior=bg.Prior.default(X, K),
        covariance_type="full",
        reference=truth,
        reference_kind="MAP-EM",
    )
    out = post.relabel()
    assert out.relabel_method == "hungarian" and out.fraction_permuted == pytest.approx(0.75)
    np.testing.assert_array_equal(out.permutations, np.argsort(chain_planted, axis=-1))
    assert post.permutations is None  # the original is untouched


# ------------------------------------------------- label-invariant quantities ---
def test_log_likelihood_draws_against_scipy(switched, draws, X):
    ll = log_likelihood_draws(switched, X)
    assert ll.shape == (C, S)
    np.testing.assert_allclose(ll, log_likelihood_draws(draws, X), rtol=1e-12)
    p = draws[1, 3].to_numpy()
    dens = sum(
        p["weights"][k] * multivariate_normal(p["means"][k], p["covariances"][k]).pdf(X)
        for k in range(K)
    )
    assert ll[1, 3] == pytest.approx(np.log(dens).sum(), rel=1e-10)


def test_log_likelihood_draws_sample_weight_is_replication(draws, X):
    w = np.zeros(len(X))
    w[:10] = 2.0
    weighted = log_likelihood_draws(draws[0, :5], X, sample_weight=w)
    duplicated = log_likelihood_draws(draws[0, :5], np.concatenate([X[:10], X[:10]]))
    np.testing.assert_allclose(weighted, duplicated, rtol=1e-12)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        log_likelihood_draws(draws, X, sample_weight=np.ones(3))


def test_density_on_grid(switched, draws):
    grid = np.array([[0.0, 0.0], [-4.0, -3.0], [4.0, 4.0]])
    out = density_on_grid(switched, grid)
    assert out.shape == (C, S, 3)
    np.testing.assert_allclose(out, density_on_grid(draws, grid), rtol=1e-12)
    p = draws[0, 0].to_numpy()
    ref = np.log(
        sum(
            p["weights"][k] * multivariate_normal(p["means"][k], p["covariances"][k]).pdf(grid)
            for k in range(K)
        )
    )
    np.testing.assert_allclose(out[0, 0], ref, rtol=1e-10)
    with pytest.raises(ValueError, match="grid has 3 features"):
        density_on_grid(switched, np.zeros((2, 3)))


def test_co_clustering(switched, draws, truth):
    Xs, labels = bg.datasets.make_four_gaussians_2d(120, seed=3, return_labels=True)
    P = co_clustering(switched, Xs)
    assert P.shape == (120, 120)
    np.testing.assert_array_equal(P, P.T)
    np.testing.assert_array_equal(np.diag(P), 1.0)
    assert P.min() >= 0.0 and P.max() <= 1.0
    np.testing.assert_allclose(P, co_clustering(draws, Xs), atol=1e-12)  # label-invariant
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(120, dtype=bool)
    assert P[same & off].mean() > 0.9
    assert P[~same].mean() < 0.05
    # closed form for one draw: R R^T off the diagonal
    R = np.asarray(truth.responsibilities(Xs))
    single = co_clustering(truth, Xs)
    np.testing.assert_allclose(single[off], (R @ R.T)[off], rtol=1e-10, atol=1e-14)


def test_co_clustering_refuses_large_n(draws, X):
    with pytest.raises(ValueError, match="max_samples=100"):
        co_clustering(draws, X, max_samples=100)


def test_invariant_diagnostics_fine_on_switched_draws(switched, chain_switched, X, truth):
    # chains in different labellings: R-hat of the means is useless, not the invariants
    assert rhat_max(chain_switched.means, ("component", "feature")) > 1.5
    df = invariant_diagnostics(chain_switched, X)
    assert (df["r_hat"] < 1.02).all()
    np.testing.assert_allclose(df.to_numpy(), invariant_diagnostics(switched, X).to_numpy())
    assert list(df.columns) == ["mean", "sd", "r_hat", "ess_bulk", "ess_tail"]
    assert df.index[0] == "log_likelihood" and len(df) >= 2
    assert (df["r_hat"] < 1.02).all()
    assert (df["ess_bulk"] > 400).all()
    ref = invariant_diagnostics(switched, X, reference=truth)
    assert len(ref) == 1 + K and ref.index[1].startswith("log_density[x=(-4, -3)")
    np.testing.assert_allclose(
        ref.loc["log_likelihood", "mean"], log_likelihood_draws(switched, X).mean()
    )
    grid = invariant_diagnostics(switched, X, grid=[[0.0, 0.0]])
    assert len(grid) == 2


def test_invariant_diagnostics_detects_a_stuck_chain(draws, truth, X):
    # one chain in a worse mode (means pulled away): the invariant R-hat must notice
    means = np.asarray(draws.means).copy()
    means[0] += 1.5
    bad = bg.GMMParams(draws.weights, means, draws.covariances)
    df = invariant_diagnostics(bad, X)
    assert df.loc["log_likelihood", "r_hat"] > 1.5


def test_invariant_diagnostics_one_chain_compares_its_halves(draws, truth, X):
    # ArviZ's R-hat is NaN for one chain; here the chain's two halves are compared instead
    steady = draws[:1]  # (1, S): stationary jittered draws
    df = invariant_diagnostics(steady, X)
    assert df["r_hat"].notna().all() and (df["r_hat"] < 1.02).all()
    # one chain that moves to a worse mode half-way: its halves disagree
    means = np.asarray(steady.means).copy()
    means[0, S // 2 :] += 1.5
    drifting = bg.GMMParams(steady.weights, means, steady.covariances)
    assert invariant_diagnostics(drifting, X).loc["log_likelihood", "r_hat"] > 1.5
    # an odd number of draws drops the last one from R-hat only: ESS uses every draw
    odd = invariant_diagnostics(steady[:, :-1], X)
    assert odd["r_hat"].notna().all() and (odd["ess_bulk"] > 0).all()


def test_invariant_diagnostics_needs_chain_draw(draws, X):
    with pytest.raises(ValueError, match=r"batch axes \(chain, draw\)"):
        invariant_diagnostics(draws[0], X)
    with pytest.raises(ValueError, match="at least 4 draws"):
        invariant_diagnostics(draws[:, :2], X)


def test_all_permutations_table():
    table = rl._all_permutations(3)
    assert sorted(map(tuple, table)) == sorted(itertools.permutations(range(3)))
    assert tuple(table[0]) == (0, 1, 2)
