"""Sampling the posterior of the NumPyro model with NUTS: :func:`sample_posterior`.

:func:`~bayesgmm.gmm_model` (``_model``) has the *same* prior as MAP-EM and
the assignments summed out. :func:`sample_posterior` validates once, finds
the chains' starting points (MAP-EM, a given estimate, or k-means++), maps
them to the model's unconstrained coordinates (``_sites``) and runs the one
NUTS engine (``_nuts``); it returns a :class:`~bayesgmm.Posterior` (``params``:
:class:`~bayesgmm.GMMParams` with ``(chain, draw)`` axes). :func:`sample_validated`
is the same on validated inputs, for the engines built on top (model comparison).

This module imports NumPyro; ``import bayesgmm`` does not import it.
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm._core import _memory_maps
from bayesgmm._core._blocks import MIN_ROWS, bucket
from bayesgmm._core._precision import x64
from bayesgmm._core._sparse import SparsePrior
from bayesgmm._core._validation import (
    check_feature_names,
    check_positive,
    check_positive_int,
    check_seed,
    warn_data_problems,
)
from bayesgmm._core._warnings import warn
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.bayes._gibbs import check_gibbs_weights, sample_gibbs_validated
from bayesgmm.bayes._model import gmm_model
from bayesgmm.bayes._nuts import CHAIN_METHODS, run_nuts
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.bayes._sites import (
    BoundModel,
    bind,
    check_custom_sites,
    check_init_params,
    clean_starts,
    latent_transforms,
    params_to_sites,
    prepare_inputs,
    raw_key,
    unconstrain,
    weights_or_none,
)
from bayesgmm.bayes._telescope import flat_weights, sample_sparse_validated
from bayesgmm.em import _core as _em_core
from bayesgmm.em._fit import MAX_ITER, TOL, EMResult, fit_validated

__all__ = ["sample_posterior", "sample_validated"]

#: The samplers of :func:`sample_posterior`; the first is the default.
METHODS = ("nuts", "gibbs")
# Warn when more than this fraction of post-warmup transitions diverged.
_DIVERGENCE_FRACTION = 0.001
_MIN_DRAWS_FOR_DIAGNOSTICS = 100
# Rows of the sampler's shape classes: a ladder of 16 steps per doubling.
_NUTS_STEPS = 16


# ------------------------------------------------------------------- MCMC ---
def _check_chain_method(chain_method, num_chains: int) -> str:
    if chain_method is None:
        return CHAIN_METHODS[0]
    if chain_method not in CHAIN_METHODS:
        raise ValueError(
            f"chain_method must be one of {CHAIN_METHODS} or None; got {chain_method!r}."
        )
    if chain_method == "parallel" and jax.local_device_count() < num_chains:
        warn(
            f"chain_method='parallel' needs {num_chains} devices but JAX sees "
            f"{jax.local_device_count()}; running the chains with 'vectorized' instead.",
            UserWarning,
        )
        return "vectorized"
    return chain_method


def _jitter(key, params: GMMParams, n_samples: float, num_chains: int) -> GMMParams:
    """``num_chains`` starts: chain 0 at ``params``, the others about a posterior sd away.

    Component ``k`` is treated as holding ``n_k = w_k n_samples`` rows: weights
    are drawn from ``Dirichlet(n_k + 1)``, means moved by ``L_k z / sqrt(n_k)``
    and covariances to ``(L_k A)(L_k A)^T`` with ``A`` lower triangular near
    the identity (:func:`clean_starts` then projects them onto the structure's
    family). Drawn on the host with NumPy, seeded from ``key``: a handful of
    random numbers, for which JAX's Dirichlet sampler would cost more than a
    second of compilation in every new process or shape.
    """
    rng = np.random.default_rng([*np.asarray(raw_key(key)).ravel().tolist(), 1])
    weights = np.asarray(params.weights, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    K, D = means.shape
    n_k = np.maximum(weights * n_samples, 1.0)
    new_weights = rng.dirichlet(n_k + 1.0, size=num_chains)  # (C, K)
    chol = np.linalg.cholesky(np.asarray(params.covariances, dtype=np.float64))
    z = rng.standard_normal((num_chains, K, D))
    new_means = means + np.einsum("kde,cke->ckd", chol, z) / np.sqrt(n_k)[:, None]
    e = rng.standard_normal((num_chains, K, D, D)) / np.sqrt(2.0 * n_k)[:, None, None]
    a = np.tril(e, -1) + np.exp(np.diagonal(e, axis1=-2, axis2=-1))[..., None] * np.eye(D)
    la = chol @ a
    cov = la @ np.swapaxes(la, -1, -2)
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    new_weights[0], new_means[0], cov[0] = weights, means, params.covariances
    dtype = params.means.dtype
    return GMMParams._unchecked(*(np.asarray(v, dtype) for v in (new_weights, new_means, cov)))


@functools.partial(jax.jit, static_argnames=("n_components", "structure"))
def _kmeanspp_starts(keys, data, w, prior, *, n_components: int, structure: str) -> GMMParams:
    """k-means++ and one MAP M-step per key: where EM would start.

    The data are arguments (a closure over them compiled anew on every call).
    """
    return jax.vmap(
        lambda key: _em_core.init_params(
            key,
            data[None],
            w[None],
            n_components=n_components,
            method="kmeans++",
            structure=structure,
            prior=prior,
            reg_covar=0.0,
        )
    )(keys)


def _starting_points(init, key, data, w, K, D, structure, prior, num_chains):
    """Reference point estimate, its kind, and one start per chain (batched GMMParams)."""
    reference, kind = None, None
    if isinstance(init, EMResult):
        reference = check_init_params(init.params, K, D, "init")
        kind = "MAP-EM" if init.prior is not None else "EM"
    elif isinstance(init, GMMParams):
        if init.batch_shape not in ((), (num_chains,)):
            raise ValueError(
                f"init must be a GMMParams without batch axes, or with one axis of length "
                f"num_chains={num_chains} (one start per chain); got batch shape "
                f"{init.batch_shape}."
            )
        check_init_params(init, K, D, "init")
        if init.batch_shape:
            starts = init.astype(data.dtype)
            return None, "init", clean_starts(starts, structure)
        reference, kind = init, "init"
    elif isinstance(init, str) and init == "em":
        em = fit_validated(
            data,
            w,
            K,
            structure=structure.name,
            prior=prior.check(K, D, for_map=True),
            init="kmeans++",
            n_init=max(num_chains, 4),
            tol=TOL,
            max_iter=MAX_ITER,
            reg_covar=0.0,
            key=key,
        )
        reference, kind = em.params, "MAP-EM"
    elif init is not None:
        raise ValueError(f"init must be None, 'em', an EMResult or a GMMParams; got {init!r}.")
    if reference is None:
        keys = jax.random.split(jax.random.fold_in(key, 1), num_chains)
        starts = _kmeanspp_starts(keys, data, w, prior, n_components=K, structure=structure.name)
    else:
        reference = reference.astype(data.dtype)
        starts = _jitter(key, reference, float(w.sum()), num_chains)
    return reference, kind, clean_starts(starts, structure)


@x64
def sample_posterior(
    X,
    n_components: int,
    *,
    prior: Prior | None = None,
    covariance_type: str = "full",
    sample_weight=None,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    init=None,
    seed: int | None = 0,
    key: jax.Array | None = None,
    chain_method: str | None = None,
    progress_bar: bool = True,
    target_accept_prob: float = 0.8,
    step_size: float | None = None,
    dtype=None,
    model=None,
    feature_names=None,
    method: str = "nuts",
) -> Posterior:
    """Sample the posterior of a Gaussian mixture with NUTS or a blocked Gibbs sampler.

    The model is :func:`gmm_model`: the prior MAP-EM uses, the assignments
    summed out. The draws come back as :class:`~bayesgmm.GMMParams` with
    ``(chain, draw)`` batch axes, side by side with the EM/MAP estimate the
    chains started from. ``method="gibbs"`` samples the same posterior by
    data augmentation (:mod:`bayesgmm.bayes._gibbs`): a sweep of one chain costs
    less than an EM iteration, so it reaches data sets far beyond NUTS.

    Parameters
    ----------
    X : array-like of shape (N, D)
        Data. A 1-D array is read as N values of one feature.
    n_components : int
    prior : Prior or SparsePrior, optional
        Default ``Prior.default(X, n_components)``. Must be built for this K and D.
        Unlike MAP-EM, any positive ``weight_concentration`` is accepted.
        A :meth:`Prior.sparse` prior (``method="gibbs"`` only) samples the
        number of clusters: a sparse finite mixture, or with a prior on K the
        telescoping sampler (:mod:`bayesgmm.bayes._telescope`); then
        ``n_components`` is ``k_max`` and the Posterior's
        :meth:`~Posterior.n_clusters`, :meth:`~Posterior.k_posterior` and
        :meth:`~Posterior.clustering` answer "how many clusters?".
    covariance_type : {"full", "tied", "diag", "spherical"}
    sample_weight : array-like of shape (N,), optional
        Replication weights: each row's log-likelihood is multiplied by its weight.
        ``method="gibbs"`` accepts weights of 0 and 1 only and raises
        ``ValueError`` otherwise (a row of weight 2 would need two assignments
        of its own; repeat the row instead).
    num_chains, num_warmup, num_samples : int
        Chains, warmup (adaptation) iterations and kept draws per chain; for
        Gibbs, sweeps discarded (``num_warmup=0`` is allowed) and sweeps kept.
        Fewer than 100 draws per chain warns: R-hat, ESS and HDIs are not reliable.
        ``num_warmup=0`` is refused unless ``step_size`` is given: without
        warmup nothing adapts the step size, and NumPyro's initial value (1)
        makes these chains reject nearly every proposal.
    init : None, "em", EMResult or GMMParams
        Where the chains start.

        - ``None``: each chain at its own k-means++ start followed by one MAP
          M-step (where EM would start), no reference estimate.
        - ``"em"``: MAP-EM with ``max(num_chains, 4)`` restarts; its estimate is
          the reference, chain 0 starts on it and the others at jittered
          copies (about one posterior standard deviation away, same labels).
        - an ``EMResult`` or unbatched ``GMMParams``: the same, from that
          estimate (covariances projected onto ``covariance_type``'s family).
        - a ``GMMParams`` with batch shape ``(num_chains,)``: one start per chain.
    seed : int, optional
        Seed of the sampler, an int in ``[0, 2**63)`` (None means 0); ignored
        when ``key`` is given.
    key : jax.random key, optional
    chain_method : {None, "vectorized", "sequential", "parallel"}
        How the chains run. The default (None) is ``"vectorized"``: all chains
        advance together in one compiled program (``jax.vmap``) on one device,
        which is fast on CPU for these small models and never hangs.
        ``"parallel"`` needs one JAX device per chain; on a CPU that means
        ``numpyro.set_host_device_count`` *before* JAX starts, which
        bayesgmm never calls, and it was seen to hang with N >= 3000 rows on a
        two-core machine; when fewer devices than chains exist it falls back to
        ``"vectorized"`` with a warning. ``"sequential"`` runs the chains one
        after another (one progress bar each).
    progress_bar : bool
    target_accept_prob : float
        NUTS target acceptance probability in (0, 1); raise it (0.9, 0.95)
        when there are divergences.
    step_size : float, optional
        NUTS step size (> 0). With ``num_warmup > 0`` the value adaptation
        starts from (default 1); with ``num_warmup=0`` the step size used
        throughout, with an identity mass matrix: required then (for example
        an earlier run's adapted ``post.sample_stats["step_size"][:, -1].min()``).
    dtype : {None, "float64", "float32"}
        float64 unless X is float32 or float32 is asked for.
    model : callable, optional
        A custom NumPyro model with :func:`gmm_model`'s signature
        ``model(X, n_components, prior, covariance_type, sample_weight)`` that
        declares the same latent sites for its covariance structure
        (``weights``, ``means`` and the structure's covariance site), the full
        ``covariances`` (K, D, D) and an observed ``obs`` whose log-probability
        is per row. A different likelihood or extra deterministic sites are
        fine; chains are started through the shared sites.
    feature_names : sequence of str, optional
        Names of the D columns, kept as ``Posterior.feature_names`` (the
        ``feature`` coordinates in ArviZ, the plots' labels); by default a
        DataFrame's string column labels, else those of an ``EMResult`` init.
    method : {"nuts", "gibbs"}
        ``"nuts"``: NumPyro's NUTS on the model with the assignments summed
        out. ``"gibbs"``: the blocked Gibbs sampler (assignments given the
        parameters, then weights and every component from their conjugate
        posteriors, the update :func:`bayesgmm.fit_vb` uses), chains
        vectorised, sweeps compiled. Gibbs takes none of the NUTS settings
        (``chain_method``, ``target_accept_prob``, ``step_size``, ``model``)
        and shows no progress bar; its ``sample_stats`` are ``min_count``
        (the smallest component count of the assignments each draw came
        from) and ``log_likelihood_start`` (the log-likelihood of the
        parameters the sweep started from).

    Returns
    -------
    Posterior
        ``params`` with weights (C, S, K), means (C, S, K, D), covariances
        (C, S, K, D, D); ``sample_stats`` (``diverging``, ``energy``,
        ``n_steps``, ``tree_depth``, ``accept_prob``, ``step_size``,
        ``potential_energy``), each (C, S); ``reference`` and
        ``reference_kind`` (``"MAP-EM"``, ``"EM"``, ``"init"`` for a given
        GMMParams, or None).

    Warns
    -----
    UserWarning
        When ``num_samples < 100``; when more than 0.1% of the post-warmup
        transitions diverged; when the chains' adapted step sizes differ by
        more than a factor of 10 (a chain that adapted while moving between
        modes). Each says what to try.

    Notes
    -----
    NUTS is NumPyro's functional kernel driven by :mod:`bayesgmm.bayes._nuts`,
    the engine that simulation-based calibration uses too: warmup adapts the
    step size and a diagonal mass matrix, as ``numpyro.infer.NUTS`` does. The
    data, weights and prior are arguments of its compiled programs, so a
    second call on data of the same shape (and the same K, structure, chains
    and settings) reuses the programs of the first. The chains start from
    per-chain values mapped to the model's sites and then to unconstrained
    coordinates, which NumPyro's ``init_to_value`` cannot express (one value
    for all chains).

    JAX keeps compiled programs for the life of the process, and on Linux
    each holds memory maps; a process may hold ``vm.max_map_count`` of them
    (65,530 by default) before XLA compilation crashes. So that a long loop
    over many data shapes cannot get there, this function clears JAX's
    caches, with a ``UserWarning``, when the process holds more than 70% of
    its limit; results are unchanged, functions compiled earlier compile again.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> from bayesgmm.bayes import sample_posterior
    >>> X = bg.datasets.load_faithful()
    >>> prior = bg.Prior.default(X, 2)
    >>> em = bg.fit_em(X, 2, prior=prior)
    >>> post = sample_posterior(X, 2, prior=prior, init=em, num_chains=2,
    ...                         num_warmup=200, num_samples=200, progress_bar=False)
    >>> post.params.weights.shape, post.params.covariances.shape
    ((2, 200, 2), (2, 200, 2, 2, 2))
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    sparse = None
    if isinstance(prior, SparsePrior):
        if method != "gibbs":
            raise ValueError(
                "a SparsePrior (Prior.sparse) is sampled by method='gibbs' only: the number of "
                "non-empty components is read from the sampled assignments, which NUTS sums out."
            )
        sparse, prior = prior, prior.base
    data, w, K, structure, prior = prepare_inputs(
        X, n_components, prior, covariance_type, sample_weight, dtype
    )
    names = check_feature_names(feature_names, X, data.shape[1])
    if names is None:
        names = init.feature_names if isinstance(init, EMResult) else None
    num_chains = check_positive_int("num_chains", num_chains)
    num_samples = check_positive_int("num_samples", num_samples)
    if (
        isinstance(num_warmup, bool)
        or not isinstance(num_warmup, numbers.Integral)
        or (num_warmup < 0)
    ):
        raise ValueError(f"num_warmup must be an integer >= 0; got {num_warmup!r}.")
    num_warmup = int(num_warmup)
    if method == "gibbs":
        nuts_only = {
            "chain_method": chain_method is not None,
            "target_accept_prob": target_accept_prob != 0.8,
            "step_size": step_size is not None,
            "model": model is not None,
        }
        given = [name for name, set_ in nuts_only.items() if set_]
        if given:
            raise ValueError(
                f"{', '.join(given)} are settings of NUTS; method='gibbs' takes none of them."
            )
        check_gibbs_weights(w)
        seed = check_seed(seed)
        if key is None:
            key = jax.random.key(0 if seed is None else seed)
        warn_data_problems(data, w, K)
        key_init, key_run = jax.random.split(key)
        # starts with a flat Dirichlet: MAP-EM needs weight_concentration >= 1
        start_prior = prior if sparse is None else flat_weights(prior)
        reference, kind, starts = _starting_points(
            init, key_init, data, w, K, data.shape[1], structure, start_prior, num_chains
        )
        if sparse is not None:
            post = sample_sparse_validated(
                data,
                w,
                structure=structure,
                sparse=replace(sparse, base=prior),
                key=key_run,
                starts=starts,
                reference=reference,
                reference_kind=kind,
                num_warmup=num_warmup,
                num_samples=num_samples,
            )
            return post if names is None else post.replace(feature_names=names)
        post = sample_gibbs_validated(
            data,
            w,
            structure=structure,
            prior=prior,
            key=key_run,
            starts=starts,
            reference=reference,
            reference_kind=kind,
            num_warmup=num_warmup,
            num_samples=num_samples,
        )
        return post if names is None else post.replace(feature_names=names)
    if isinstance(target_accept_prob, bool) or not isinstance(target_accept_prob, numbers.Real):
        raise TypeError(f"target_accept_prob must be a number; got {target_accept_prob!r}.")
    if not 0.0 < float(target_accept_prob) < 1.0:
        raise ValueError(f"target_accept_prob must lie in (0, 1); got {target_accept_prob!r}.")
    if step_size is not None:
        step_size = check_positive("step_size", step_size)
    elif num_warmup == 0:
        raise ValueError(
            "num_warmup=0 leaves NUTS without adaptation: it would sample with NumPyro's "
            "initial step size (1) and an identity mass matrix, at which these models "
            "reject nearly every proposal and the chains stay at their starting points. "
            "Pass num_warmup > 0 (the default is 1000; use a few hundred at least), or, to "
            "sample without warmup, an explicit step_size (e.g. the adapted "
            "post.sample_stats['step_size'][:, -1].min() of an earlier run)."
        )
    chain_method = _check_chain_method(chain_method, num_chains)
    seed = check_seed(seed)
    if key is None:
        key = jax.random.key(0 if seed is None else seed)
    warn_data_problems(data, w, K)
    if num_samples < _MIN_DRAWS_FOR_DIAGNOSTICS:
        warn(
            f"num_samples={num_samples} draws per chain are too few for reliable R-hat, ESS "
            f"and HDIs; use at least {_MIN_DRAWS_FOR_DIAGNOSTICS} (the default is 1000).",
            UserWarning,
        )

    if model is not None and not callable(model):
        raise TypeError(f"model must be a NumPyro model function; got {type(model).__name__}.")
    post = sample_validated(
        data,
        w,
        K,
        structure=structure,
        prior=prior,
        key=key,
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_samples=num_samples,
        init=init,
        chain_method=chain_method,
        progress_bar=progress_bar,
        target_accept_prob=float(target_accept_prob),
        model=model,
        step_size=step_size,
    )
    return post if names is None else post.replace(feature_names=names)


@x64
def sample_validated(
    data: np.ndarray,
    w: np.ndarray,
    K: int,
    *,
    structure,
    prior: Prior,
    key,
    num_chains: int,
    num_warmup: int,
    num_samples: int,
    init,
    chain_method: str,
    progress_bar: bool,
    target_accept_prob: float,
    model=None,
    step_size: float | None = None,
) -> Posterior:
    """:func:`sample_posterior` on validated inputs: no checks of the data, no data warnings.

    ``structure`` is the registry entry, ``prior`` checked for K and D in the
    data's dtype, ``key`` a JAX key; the sampler's own warnings (divergences,
    step sizes) are still raised.
    """
    D = data.shape[1]
    key_init, key_mcmc = jax.random.split(key)
    reference, kind, starts = _starting_points(
        init, key_init, data, w, K, D, structure, prior, num_chains
    )
    model = gmm_model if model is None else model
    bound = bind(data, K, prior, structure, weights_or_none(w), model)
    check_custom_sites(bound, structure)
    transforms = latent_transforms(bound)
    sites = params_to_sites(starts, structure, transforms)
    unconstrained = unconstrain(transforms, sites, key=(model, structure.name, tuple(transforms)))
    unconstrained = {name: np.asarray(value) for name, value in unconstrained.items()}
    if not all(np.isfinite(v).all() for v in unconstrained.values()):
        raise ValueError(
            "the starting parameters are not valid for the model (a weight of zero, or a "
            "covariance that is not positive definite); pass another init."
        )
    unconstrained = {name: np.asarray(value, data.dtype) for name, value in unconstrained.items()}
    _memory_maps.release_if_near_limit()
    run = run_nuts(
        BoundModel(model, K, structure.name),
        _model_args(data, w, prior, padded=model is gmm_model),
        unconstrained,
        raw_key(key_mcmc),
        num_warmup=num_warmup,
        num_samples=num_samples,
        target_accept_prob=float(target_accept_prob),
        chain_method=chain_method,
        progress_bar=progress_bar,
        step_size=step_size,
        double=data.dtype == np.float64,
        cache_name=f"gmm_model/{K}/{structure.name}" if model is gmm_model else None,
    )
    stats = run.stats
    _warn_divergences(stats, target_accept_prob)
    _warn_step_sizes(stats)
    return Posterior.from_draws(
        run.sites["weights"],
        run.sites["means"],
        run.sites["covariances"],
        X=data,
        sample_weight=w,
        prior=prior,
        covariance_type=structure.name,
        reference=reference,
        reference_kind=kind,
        sample_stats=stats,
    )


def _model_args(data: np.ndarray, w: np.ndarray, prior: Prior, *, padded: bool) -> tuple:
    """``(X, prior, sample_weight)`` for the NUTS engine, rows padded to their shape class.

    The built-in model drops zero-weight rows exactly (a mask), so the data
    are padded with zero-weight copies of the first row up to
    ``bucket(N, steps=16)`` rows (at most 4.4% more): every data set of a
    shape class runs the same compiled sampler. The log density is the same
    sum with terms in another order, equal to rounding; the draws of a chain
    follow it closely but, NUTS being chaotic, not bit for bit. A custom model
    gets the data as they are.
    """
    if not padded:
        return jnp.asarray(data), prior, weights_or_none(w)
    N = data.shape[0]
    rows = bucket(N, MIN_ROWS, steps=_NUTS_STEPS)
    pad = rows - N
    X = np.concatenate([data, np.repeat(data[:1], pad, axis=0)]) if pad else data
    weights = np.concatenate([w, np.zeros(pad, w.dtype)]) if pad else w
    return jax.device_put(X), prior, jax.device_put(weights)


def _warn_step_sizes(stats) -> None:
    step = stats.get("step_size")
    if step is None or step.shape[0] < 2:
        return
    final = step[:, -1]
    ratio = float(final.max() / final.min())
    if ratio > 10.0:
        warn(
            f"the chains adapted step sizes that differ by a factor of {ratio:.0f} "
            f"({np.array2string(final, precision=3)}): some chains probably spent the "
            "warmup moving from a poor start towards (another) mode, and sample slowly. "
            "Compare the chains (R-hat after relabelling); start them from init='em', or "
            "use a longer num_warmup.",
            UserWarning,
        )


def _warn_divergences(stats, target_accept_prob) -> None:
    div = stats.get("diverging")
    if div is None:
        return
    n_div, total = int(np.sum(div)), int(np.size(div))
    if n_div > _DIVERGENCE_FRACTION * total:
        warn(
            f"{n_div} of {total} post-warmup transitions diverged ({n_div / total:.1%}); "
            "the draws may be biased. Try a higher target_accept_prob (now "
            f"{float(target_accept_prob):g}; 0.9 or 0.95), a longer num_warmup, init='em', "
            "fewer components (an empty component follows its prior), or a more "
            "informative prior.",
            UserWarning,
        )
