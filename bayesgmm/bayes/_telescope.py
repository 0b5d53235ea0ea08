"""Sparse finite mixtures and the telescoping sampler: the posterior of the number of clusters.

One Gibbs sweep of every chain, on a fixed allocation of ``k_max`` components
of which the first ``K`` are *active* (``K = k_max`` throughout for a sparse
finite mixture, Malsiner-Walli, Frühwirth-Schnatter & Grün 2016; ``K`` drawn
for a prior on K, Frühwirth-Schnatter, Malsiner-Walli & Grün 2021):

1. ``z | weights, theta``: every row's component, as in the blocked Gibbs
   sampler (:mod:`bayesgmm.bayes._gibbs`); inactive components have weight 0
   and are never chosen. ``K+`` is the number of non-empty components.
   Then (``split_merge``, on by default) two split-merge Metropolis-Hastings
   moves on the partition given ``K`` and ``e0``, the weights and the
   parameters integrated out (:mod:`bayesgmm.bayes._split_merge`): they
   merge a cluster held by two components, or split one held by one, which
   row-by-row assignments cannot do at large N. (Not with the hierarchical
   component prior, whose means are not conjugate: see ``Prior.sparse``.)
2. The labels are permuted so that the non-empty components come first (the
   prior is symmetric, so this changes nothing in the target); the counts,
   sums and scatter matrices are permuted with them.
3. ``K | partition, e0`` (prior on K only), with ``K = K+..k_max``:
   ``p(K | C, e0) ∝ p(K) K! / (K - K+)! Gamma(K e0) / Gamma(N + K e0)``.
4. ``e0 | partition, K`` (Gamma hyperprior only): five Metropolis-Hastings
   steps of a random walk on ``log e0`` (sd 1), target
   ``p(e0) Gamma(K e0) / Gamma(N + K e0) prod_{N_k > 0} Gamma(N_k + e0) / Gamma(e0)``.
   Conditioning on the partition (the weights integrated out) is what the
   telescope package does; the 2016 paper conditioned on the weights.
5. ``theta | partition``: every component from its conjugate posterior
   (:func:`bayesgmm._core._conjugate.posterior`, shared with VB and Gibbs);
   an empty component's posterior is its prior, so empty components are
   drawn from the prior. With means independent of the covariances
   (``SparsePrior.mean_covariance``) ``Sigma_k | mu_k`` then ``mu_k | Sigma_k``
   instead (:func:`bayesgmm.bayes._component_prior.draw_independent_means`).
6. ``Psi | non-empty covariances`` and the empty components again from the
   prior at the new ``Psi``, when the scale has a hyperprior
   (``SparsePrior.scale_prior``, :func:`bayesgmm.bayes._component_prior.scale_step`).
7. ``weights ~ Dirichlet_K(e0 + N_1, ..., e0 + N_K)`` on the active
   components, 0 on the others.

Everything stays in one compiled ``lax.scan`` over sweeps with chains
vectorised; ``K`` is a per-chain integer and a mask, never a shape. With
``beta`` < 1 the likelihood is tempered in steps 1 and 5 (counts for steps
3, 4 and 6 untempered); ``beta = 0`` samples the prior exactly, which the tests use
to check the sampler against :func:`bayesgmm._core._sparse.prior_n_clusters`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from bayesgmm._core import _conjugate, _devices, _exported, _linalg
from bayesgmm._core import covariance as _cov
from bayesgmm._core._precision import x64
from bayesgmm._core._pytree import unchecked_replace
from bayesgmm._core._threads import single_threaded_blas
from bayesgmm._core._validation import column_stats
from bayesgmm._core.params import GMMParams
from bayesgmm.bayes import _split_merge
from bayesgmm.bayes._assign import assign_chains, gibbs_block_layout, rows_last
from bayesgmm.bayes._component_prior import draw_independent_means, scale_step
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.bayes._sweeps import kept_sweeps, sample_slots
from bayesgmm.em._standardize import Standardizer

__all__ = ["flat_weights", "run_sparse", "sample_sparse_validated", "sparse_draws"]

_MH_STEPS = 5
_MH_SD = 1.0


def _log_post_e0(e0, K, counts, n):
    """``log p(partition | K, e0)`` as a function of ``e0`` (terms free of e0 dropped)."""
    filled = counts > 0
    per = jnp.where(filled, gammaln(counts + e0) - gammaln(e0), 0.0)
    return gammaln(K * e0) - gammaln(n + K * e0) + per.sum()


def _hyper(key, counts, K, e0, log_pk, e0_ab, k_random: bool, e0_random: bool):
    """Steps 3-4 for one chain: ``K | partition, e0`` then ``e0 | partition, K``."""
    key_k, key_e = jax.random.split(key)
    k_max = counts.shape[0]
    n = counts.sum()
    kplus = (counts > 0).sum()
    dt = counts.dtype
    if k_random:
        Ks = jnp.arange(1, k_max + 1, dtype=dt)
        ok = Ks >= kplus
        falling = gammaln(Ks + 1) - gammaln(jnp.where(ok, Ks - kplus, 0.0) + 1)
        logw = log_pk + falling + gammaln(Ks * e0) - gammaln(n + Ks * e0)
        logw = jnp.where(ok, logw, -jnp.inf)
        K = (jax.random.categorical(key_k, logw) + 1).astype(K.dtype)
    acc = jnp.zeros((), dt)
    if e0_random:
        shape, rate = e0_ab[0], e0_ab[1]
        Kf = K.astype(dt)

        def target(x):
            return _log_post_e0(x, Kf, counts, n) + (shape - 1.0) * jnp.log(x) - rate * x

        def mh(i, carry):
            e0, acc = carry
            k1, k2 = jax.random.split(jax.random.fold_in(key_e, i))
            prop = e0 * jnp.exp(_MH_SD * jax.random.normal(k1, (), dt))
            log_r = target(prop) - target(e0) + jnp.log(prop) - jnp.log(e0)
            take = jnp.log(jax.random.uniform(k2, (), dt)) < log_r
            return jnp.where(take, prop, e0), acc + take.astype(dt) / _MH_STEPS

        e0, acc = jax.lax.fori_loop(0, _MH_STEPS, mh, (e0, acc))
    return K, e0, acc


def _sweep(key, state, X, w, n_used, prior, log_pk, e0_ab, hyper, beta, cfg):
    """One sweep of every chain; ``state = (params, K, e0, psi)`` with a leading chain axis.

    ``psi`` (C, D, D) is each chain's Inverse-Wishart scale (constant without a
    hyperprior); ``hyper = (a, G, B0^{-1})`` the scale's Wishart prior and the
    independent means' prior precision (unused unless ``cfg`` says so).
    """
    structure, per_chain_data, k_random, e0_random, random_scale, independent, n_moves = cfg
    params, K, e0, psi = state
    key_z, key_h, key_w, key_theta = jax.random.split(key, 4)
    key_psi = jax.random.fold_in(key, 4)  # a stream of its own; the others as without it
    chol = _linalg.cholesky(params.covariances)
    prec = _linalg.precision_cholesky(chol)
    logdet = _linalg.logdet_from_cholesky(chol)
    C, k_max = params.weights.shape
    fam = _cov.get(structure).conjugate
    counts, sums, outer, log_lik, *labels = assign_chains(
        key_z,
        params.means,
        prec,
        logdet,
        jnp.log(params.weights),
        X,
        w,
        n_used,
        per_chain_data=per_chain_data,
        beta=beta,
        labels=n_moves > 0,
    )
    split_merge = jnp.zeros(C, counts.dtype)
    if n_moves:  # step 1b: split-merge moves on the partition (weights, theta integrated out)
        (counts, sums, outer), split_merge = _split_merge.moves(
            jax.random.fold_in(key, 5), labels[0], X, w, (counts, sums, outer), K, e0,
            prior, beta, fam, n_moves=n_moves, per_chain_data=per_chain_data,
        )  # fmt: skip
    # non-empty components first (stable, so the filled ones keep their order)
    order = jnp.argsort(counts == 0, axis=-1, stable=True)
    counts = jnp.take_along_axis(counts, order, axis=-1)
    sums = jnp.take_along_axis(sums, order[..., None], axis=-2)
    outer = jnp.take_along_axis(outer, order[..., None, None], axis=-3)
    k_e0 = functools.partial(_hyper, k_random=k_random, e0_random=e0_random)
    K, e0, acc = jax.vmap(k_e0, in_axes=(0, 0, 0, 0, None, None))(
        jax.random.split(key_h, C), counts, K, e0, log_pk, e0_ab
    )
    prior = unchecked_replace(prior, scale=psi[:, None])  # one scale per chain
    stats = (beta * counts, beta * sums, beta * outer)
    b0_inv = hyper[2] if independent else None
    if independent:
        means = jnp.take_along_axis(params.means, order[..., None], axis=-2)
        theta = draw_independent_means(key_theta, prior, b0_inv, means, *stats, fam)
    else:
        theta = _conjugate.sample(key_theta, _conjugate.posterior(prior, *stats, fam), fam)
    if random_scale:
        psi, theta = scale_step(key_psi, theta, counts, prior, hyper[:2], b0_inv, fam)
    active = jnp.arange(k_max) < K[:, None]
    log_g = jax.random.loggamma(key_w, e0[:, None] + counts, dtype=counts.dtype)
    log_g = jnp.where(active, log_g, -jnp.inf)
    weights = jnp.exp(log_g - jax.nn.logsumexp(log_g, axis=-1, keepdims=True))
    params = GMMParams._unchecked(weights, theta.means, theta.covariances)
    return (params, K, e0, psi), (counts, log_lik, acc, split_merge)


def run_sparse(
    key,
    params0: GMMParams,
    K0,
    e00,
    X,
    w,
    n_used,
    prior,
    log_pk,
    e0_ab,
    hyper,
    beta,
    num_warmup,
    num_samples,
    *,
    structure: str,
    slots: int,
    per_chain_data: bool = False,
    k_random: bool = False,
    e0_random: bool = False,
    random_scale: bool = False,
    independent: bool = False,
    split_merge: int = 0,
):
    """Sparse / telescoping chains from ``params0`` (batch (C,)); draws with axes (C, S, ...).

    Parameters
    ----------
    key : jax.random key
    params0 : GMMParams with batch shape (C,)
        Starting parameters of all ``k_max`` components.
    K0 : int array of shape (C,)
        Starting numbers of active components (the first ``K0`` are active).
    e00 : array of shape (C,)
        Starting Dirichlet concentrations.
    X, w, n_used
        Data blocks as in :func:`bayesgmm.bayes._gibbs.run_gibbs`.
    prior : Prior
        The component prior for ``k_max`` components (its weight concentration is unused).
    log_pk : array of shape (k_max,)
        ``log p(K = 1..k_max)``.
    e0_ab : array of shape (2,)
        Shape and rate of the Gamma prior of ``e0`` (used with ``e0_random``).
    hyper : (a, G, B0_inv)
        Scalar ``a`` and (D, D) ``G`` of the scale's prior ``Psi ~ Wishart(a,
        G^{-1})`` (used with ``random_scale``); (D, D) ``B0^{-1}`` of independent
        means (used with ``independent``).
    beta : float
        Likelihood temperature (1 for the posterior, 0 for the prior).
    num_warmup, num_samples : int (may be traced)
        Draws kept after ``num_warmup`` sweeps, in one loop
        (:mod:`bayesgmm.bayes._sweeps`).
    structure : str
    slots : int
        Draws the program has room for (the draws and statistics below have
        ``slots`` where ``S`` is written; the first ``num_samples`` are the run's).
    per_chain_data, k_random, e0_random, random_scale, independent : bool
    split_merge : int
        Split-merge proposals per sweep (:mod:`bayesgmm.bayes._split_merge`); 0
        for none. Only with the conjugate component prior (neither
        ``random_scale`` nor ``independent``).

    Returns
    -------
    (GMMParams, dict)
        Draws with batch shape (C, num_samples); per draw ``cluster_sizes``
        (C, S, k_max) (the counts of the assignments the draw was made from,
        in the draw's labels), ``n_components`` K, ``e0``, ``e0_accept``
        (the fraction of accepted Metropolis-Hastings proposals) and
        ``log_likelihood_start`` and ``split_merge_accept`` (the fraction
        of the sweep's split-merge proposals accepted), each (C, S); with ``random_scale`` also
        ``prior_scale`` (C, S, D, D), the draws of ``Psi``.
    """
    if split_merge and (random_scale or independent):
        raise ValueError("split-merge moves need the conjugate component prior")
    cfg = (structure, per_chain_data, k_random, e0_random, random_scale, independent, split_merge)
    args = (X, w, n_used, prior, log_pk, e0_ab, hyper, beta, cfg)

    def sweep(key, state):
        state, out = _sweep(key, state, *args)
        return state, (state, *out)

    C = K0.shape[0]
    psi0 = jnp.broadcast_to(prior.scale, (C, *prior.scale.shape))
    states, counts, log_lik, acc, sm = kept_sweeps(
        sweep,
        key,
        (params0, K0, e00, psi0),
        num_warmup=num_warmup,
        num_samples=num_samples,
        slots=slots,
    )
    params, K, e0, psi = states
    draws = jax.tree.map(lambda leaf: jnp.swapaxes(leaf, 0, 1), params)
    stats = {
        "cluster_sizes": jnp.swapaxes(counts, 0, 1),
        "n_clusters": (counts > 0).sum(-1).T,
        "n_components": K.T,
        "e0": e0.T,
        "e0_accept": acc.T,
        "log_likelihood_start": log_lik.T,
        "split_merge_accept": sm.T,
    }
    if random_scale:
        stats["prior_scale"] = jnp.swapaxes(psi, 0, 1)
    return draws, stats


_SPARSE_STATS = (
    "cluster_sizes",
    "n_clusters",
    "n_components",
    "e0",
    "e0_accept",
    "log_likelihood_start",
    "split_merge_accept",
)


def _sparse_out(kwargs):
    names = _SPARSE_STATS + (("prior_scale",) if kwargs.get("random_scale") else ())
    return jax.tree.structure((GMMParams._unchecked(0, 0, 0), dict.fromkeys(names, 0)))


#: :func:`run_sparse` compiled, and kept on disk as its export (a fresh process
#: does not trace it: :mod:`bayesgmm._core._exported`).
run_sparse_jit = _exported.jit(
    run_sparse,
    "sparse",
    (
        "structure",
        "slots",
        "per_chain_data",
        "k_random",
        "e0_random",
        "random_scale",
        "independent",
        "split_merge",
    ),
    _sparse_out,
)


@x64
def sparse_draws(
    key,
    starts: GMMParams,
    data: np.ndarray,
    w: np.ndarray,
    sparse,
    *,
    structure: str,
    num_warmup: int,
    num_samples: int,
    beta: float = 1.0,
    block_size: int | None = None,
):
    """Draws in the user's units: standardise, run the compiled chains, map back.

    ``data`` (N, D) and ``w`` (N,) validated, weights 0 or 1; ``starts`` one
    GMMParams per chain (batch (C,)); ``sparse`` a SparsePrior whose base
    prior is checked for ``k_max`` and D. Returns ``(draws, stats)`` as
    :func:`run_sparse`, as NumPy arrays.
    """
    N, D = data.shape
    C = starts.weights.shape[0]
    k_max = starts.n_components
    dt = data.dtype
    with single_threaded_blas():
        std = Standardizer.from_stats(column_stats(data, w))
        n_blocks, n_used, B = gibbs_block_layout(N, D, block_size, n_outputs=C * k_max)
        Xs = rows_last(std.blocks(data, n_blocks, B))
        ws = np.concatenate([w, np.zeros(n_blocks * B - N, dt)]).reshape(n_blocks, B)
        Xs, ws = _devices.place_rows(Xs, ws)
        e0_ab = np.asarray(sparse.e0_prior if sparse.e0_prior is not None else (1.0, 1.0), dt)
        draws, stats = run_sparse_jit(
            key,
            std.params_in(starts),
            np.full(C, k_max, np.int32),
            np.full(C, sparse.e0, dt),
            Xs,
            ws,
            np.asarray(n_used, np.int32),
            std.prior_in(sparse.base),
            np.asarray(sparse.log_pk, dt),
            e0_ab,
            _hyper_in(sparse, std, D, dt),
            np.asarray(beta, dt),
            np.asarray(num_warmup, np.int32),
            np.asarray(num_samples, np.int32),
            structure=structure,
            slots=sample_slots(num_samples),
            k_random=sparse.has_k_prior,
            e0_random=sparse.e0_prior is not None,
            random_scale=sparse.scale_prior is not None,
            independent=sparse.mean_covariance is not None,
            split_merge=_split_merge.MOVES_PER_SWEEP if sparse.split_merge else 0,
        )
    draws, stats = jax.tree.map(lambda a: np.asarray(a)[:, :num_samples], (draws, stats))
    draws = std.params_out(draws)
    stats["cluster_sizes"] = np.rint(stats["cluster_sizes"]).astype(np.int64)
    stats["n_clusters"] = stats["n_clusters"].astype(np.int64)
    stats["n_components"] = stats["n_components"].astype(np.int64)
    stats["log_likelihood_start"] = stats["log_likelihood_start"] - float(w.sum()) * D * np.log(
        std.scale
    )
    if "prior_scale" in stats:
        stats["prior_scale"] = stats["prior_scale"] * std.scale**2
    return GMMParams._unchecked(*(np.asarray(leaf) for leaf in jax.tree.leaves(draws))), stats


def _hyper_in(sparse, std: Standardizer, D: int, dt):
    """``(a, G, B0^{-1})`` in the standardised units (``x / s``): ``Psi / s^2`` has
    rate ``G s^2``, ``B0 / s^2`` precision ``B0^{-1} s^2``; identities where unused."""
    eye = np.eye(D, dtype=dt)
    a, rate = (1.0, eye) if sparse.scale_prior is None else sparse.scale_prior
    b0_inv = eye if sparse.mean_covariance is None else np.linalg.inv(sparse.mean_covariance)
    s2 = std.scale**2
    return (np.asarray(a, dt), np.asarray(rate * s2, dt), np.asarray(b0_inv * s2, dt))


def flat_weights(prior):
    """``prior`` with a flat Dirichlet on the weights: for the chains' starting points
    (MAP-EM and the k-means++ start's M-step need a concentration of at least 1)."""
    alpha = np.ones_like(np.asarray(prior.weight_concentration))
    return unchecked_replace(prior, weight_concentration=jax.device_put(alpha))


def sample_sparse_validated(
    data: np.ndarray,
    w: np.ndarray,
    *,
    structure,
    sparse,
    key,
    starts: GMMParams,
    reference: GMMParams | None,
    reference_kind: str | None,
    num_warmup: int,
    num_samples: int,
) -> Posterior:
    """:func:`bayesgmm.sample_posterior` with a SparsePrior on validated inputs."""
    one_dim = data.shape[1] == 1 and structure.name in ("diag", "spherical")
    hierarchical = sparse.scale_prior is not None or sparse.mean_covariance is not None
    if hierarchical and structure.name != "full" and not one_dim:
        raise ValueError(
            "a SparsePrior with scale_prior or mean_covariance (the telescope papers' "
            f"hierarchical prior) needs covariance_type='full'; got {structure.name!r}."
        )
    draws, stats = sparse_draws(
        key,
        starts,
        data,
        w,
        sparse,
        structure=structure.name,
        num_warmup=num_warmup,
        num_samples=num_samples,
    )
    return Posterior.from_draws(
        draws.weights,
        draws.means,
        draws.covariances,
        X=data,
        sample_weight=w,
        prior=sparse.base,
        covariance_type=structure.name,
        reference=reference,
        reference_kind=reference_kind,
        sample_stats=stats,
        sampler="gibbs",
        cluster_prior=sparse,
    )
