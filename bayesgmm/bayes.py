"""The Bayesian Gaussian mixture: a NumPyro model, NUTS, and its posterior mode.

:func:`gmm_model` is a plain NumPyro model with the *same* prior as MAP-EM
(one :class:`~bayesgmm.Prior`, the densities of :mod:`bayesgmm.covariance`):
Dirichlet weights, a Normal-Inverse-Wishart (or its diagonal / spherical /
tied version) per component, and the assignments marginalised with
``logsumexp``, so there are no discrete sites. :func:`sample_posterior` runs
NUTS on it and returns a :class:`~bayesgmm.posterior.Posterior` whose ``params``
are :class:`~bayesgmm.GMMParams` with ``(chain, draw)`` batch axes;
:func:`bayesgmm.mode.find_map` maximises the model's log joint density, which
lands on the MAP-EM estimate (the two share one model);
:func:`bayesgmm.membership.membership` summarises the per-draw membership
probabilities.

This module imports NumPyro; ``import bayesgmm`` does not import this module.
"""

from __future__ import annotations

import functools
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import constrain_fn, potential_energy

from bayesgmm import _em_core, _linalg, _memory_maps
from bayesgmm import covariance as _cov
from bayesgmm._precision import resolve_dtype, x64
from bayesgmm._validation import (
    check_fit_inputs,
    check_positive,
    check_positive_int,
    check_seed,
    warn_data_problems,
)
from bayesgmm.em import EMResult, fit_em
from bayesgmm.model import MixtureRows, gmm_model
from bayesgmm.params import GMMParams
from bayesgmm.posterior import Posterior
from bayesgmm.priors import Prior

__all__ = ["CHAIN_METHODS", "MixtureRows", "gmm_model", "sample_posterior"]

#: Chain methods accepted by :func:`sample_posterior`; the first is the default.
CHAIN_METHODS = ("vectorized", "sequential", "parallel")

# Warn when more than this fraction of post-warmup transitions diverged.
_DIVERGENCE_FRACTION = 0.001
_MIN_DRAWS_FOR_DIAGNOSTICS = 100
# Elements of the largest (draws x rows x K) block in :func:`membership`.
_SAMPLE_STATS = {
    "diverging": "diverging",
    "energy": "energy",
    "num_steps": "n_steps",
    "accept_prob": "accept_prob",
    "adapt_state.step_size": "step_size",
    "potential_energy": "potential_energy",
}


# ------------------------------------------------------ sites <-> GMMParams ---
def _bind(X, n_components, prior, structure, sample_weight, model=None):
    """The model (``gmm_model`` unless given) with its data bound: a function of no arguments."""
    return functools.partial(
        gmm_model if model is None else model,
        X=jnp.asarray(X),
        n_components=n_components,
        prior=prior,
        covariance_type=structure.name,
        sample_weight=None if sample_weight is None else jnp.asarray(sample_weight),
    )


def _check_custom_sites(model, structure) -> None:
    """A model must expose the shared sites of :func:`gmm_model` for its structure."""
    from numpyro import handlers

    with jax.enable_x64(True):
        trace = jax.eval_shape(
            lambda: {
                name: site["value"]
                for name, site in handlers.trace(handlers.seed(model, 0)).get_trace().items()
                if site["type"] in ("sample", "deterministic")
            }
        )
    reference = {"weights", "means", "covariances", "obs"}
    missing = sorted(reference - set(trace))
    if missing:
        raise ValueError(
            f"the model has no site(s) {missing}; a model for covariance_type="
            f"{structure.name!r} must declare the sites of bayesgmm.gmm_model: 'weights' (K,), "
            "'means' (K, D), the structure's covariance site, 'covariances' (K, D, D) and the "
            "observed 'obs' with a per-row log-probability."
        )


def _latent_transforms(model) -> dict:
    """``{site: biject_to(support)}`` for every latent site of a bound model.

    The model is traced abstractly (``jax.eval_shape``): nothing is computed.
    """
    found = {}

    def trace_supports():
        with handlers.block():
            tr = handlers.trace(handlers.seed(model, 0)).get_trace()
        for name, site in tr.items():
            if site["type"] == "sample" and not site["is_observed"]:
                found[name] = biject_to(site["fn"].support)
        return 0

    jax.eval_shape(trace_supports)
    return found


def _unconstrain(transforms: dict, sites: dict) -> dict:
    """Unconstrained coordinates of (possibly batched) site values, compiled."""
    return jax.jit(lambda v: {name: t.inv(v[name]) for name, t in transforms.items()})(sites)


def _params_to_sites(params: GMMParams, structure, site_names) -> dict:
    """Latent site values of (possibly batched) ``params``.

    The covariance site of every structure holds its compact form
    ``structure.to_sklearn`` (see ``CovarianceStructure.numpyro_sample``).
    """
    (cov_site,) = (name for name in site_names if name not in ("weights", "means"))
    cov = np.asarray(params.covariances)
    return {
        "weights": jnp.asarray(params.weights),
        "means": jnp.asarray(params.means),
        cov_site: jnp.asarray(structure.to_sklearn(cov)),
    }


def _sites_to_params(model, sites: dict) -> GMMParams:
    """``GMMParams`` (unvalidated) from unbatched latent site values."""

    def params_of(sites):
        with handlers.block():
            tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=sites))
            tr = tr.get_trace()
        return GMMParams._unchecked(
            tr["weights"]["value"], tr["means"]["value"], tr["covariances"]["value"]
        )

    return jax.jit(params_of)(sites)


def _check_in_family(params: GMMParams, structure) -> None:
    cov = np.asarray(params.covariances)
    projected = np.asarray(structure.project(cov))
    if not np.allclose(projected, cov, rtol=1e-10, atol=0.0):
        raise ValueError(
            f"params are not in the {structure.name!r} covariance family; project them "
            f"with bayesgmm.covariance.get({structure.name!r}).project first."
        )


# -------------------------------------------------------------- validation ---
def _prepare(X, n_components, prior, covariance_type, sample_weight, dtype):
    """Validate like :func:`bayesgmm.fit_em`; returns data, weights, K, structure, prior."""
    dt = resolve_dtype(dtype, X)
    data, w, K = check_fit_inputs(X, n_components, sample_weight, dt)
    D = data.shape[1]
    structure = _cov.get(covariance_type)
    if prior is None:
        prior = Prior.default(data, K, sample_weight=w, dtype=dt)
    elif not isinstance(prior, Prior):
        raise TypeError(f"prior must be a bayesgmm.Prior or None; got {type(prior).__name__}.")
    prior = prior.check(K, D).astype(dt)
    return data, w, K, structure, prior


def _check_init_params(params: GMMParams, K: int, D: int, what: str) -> GMMParams:
    if params.n_components != K or params.n_features != D:
        raise ValueError(
            f"{what} has K={params.n_components}, D={params.n_features} but the model has "
            f"K={K}, D={D}; pass initial parameters of matching shape."
        )
    return params


def _weights_or_none(w: np.ndarray):
    return None if np.all(w == 1.0) else w


# ------------------------------------------------------------------- MCMC ---
def _check_chain_method(chain_method, num_chains: int) -> str:
    if chain_method is None:
        return CHAIN_METHODS[0]
    if chain_method not in CHAIN_METHODS:
        raise ValueError(
            f"chain_method must be one of {CHAIN_METHODS} or None; got {chain_method!r}."
        )
    if chain_method == "parallel" and jax.local_device_count() < num_chains:
        warnings.warn(
            f"chain_method='parallel' needs {num_chains} devices but JAX sees "
            f"{jax.local_device_count()}; running the chains with 'vectorized' instead.",
            UserWarning,
            stacklevel=4,  # helper <- sample_posterior <- @x64 wrapper <- the caller
        )
        return "vectorized"
    return chain_method


def _jitter(key, params: GMMParams, n_samples: float, num_chains: int) -> GMMParams:
    """``num_chains`` starts: chain 0 at ``params``, the others about a posterior sd away.

    Component ``k`` is treated as holding ``n_k = w_k n_samples`` rows: weights
    are drawn from ``Dirichlet(n_k + 1)``, means moved by ``L_k z / sqrt(n_k)``
    and covariances to ``(L_k A)(L_k A)^T`` with ``A`` lower triangular near
    the identity (:func:`_clean_starts` then projects them onto the structure's
    family). Drawn on the host with NumPy, seeded from ``key``: a handful of
    random numbers, for which JAX's Dirichlet sampler would cost more than a
    second of compilation in every new process or shape.
    """
    rng = np.random.default_rng([*np.asarray(_as_raw_key(key)).ravel().tolist(), 1])
    weights = np.asarray(params.weights, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    K, D = means.shape
    n_k = np.maximum(weights * n_samples, 1.0)
    new_weights = rng.dirichlet(n_k + 1.0, size=num_chains)  # (C, K)
    chol = np.asarray(_linalg.cholesky(params.covariances), dtype=np.float64)
    z = rng.standard_normal((num_chains, K, D))
    new_means = means + np.einsum("kde,cke->ckd", chol, z) / np.sqrt(n_k)[:, None]
    e = rng.standard_normal((num_chains, K, D, D)) / np.sqrt(2.0 * n_k)[:, None, None]
    a = np.tril(e, -1) + np.exp(np.diagonal(e, axis1=-2, axis2=-1))[..., None] * np.eye(D)
    la = chol @ a
    cov = la @ np.swapaxes(la, -1, -2)
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    new_weights[0], new_means[0], cov[0] = weights, means, params.covariances
    dtype = params.means.dtype
    return GMMParams._unchecked(*(jnp.asarray(v, dtype) for v in (new_weights, new_means, cov)))


def _kmeanspp_start(key, data, w, K, structure, prior) -> GMMParams:
    """k-means++ responsibilities and one MAP M-step: where EM would start."""
    return _em_core.init_params(
        key,
        jnp.asarray(data)[None],
        jnp.asarray(w)[None],
        n_components=K,
        method="kmeans++",
        structure=structure.name,
        prior=prior,
        reg_covar=0.0,
    )


def _starting_points(init, key, data, w, K, D, structure, prior, num_chains):
    """Reference point estimate, its kind, and one start per chain (batched GMMParams)."""
    reference, kind = None, None
    if isinstance(init, EMResult):
        reference = _check_init_params(init.params, K, D, "init")
        kind = "MAP-EM" if init.prior is not None else "EM"
    elif isinstance(init, GMMParams):
        if init.batch_shape not in ((), (num_chains,)):
            raise ValueError(
                f"init must be a GMMParams without batch axes, or with one axis of length "
                f"num_chains={num_chains} (one start per chain); got batch shape "
                f"{init.batch_shape}."
            )
        _check_init_params(init, K, D, "init")
        if init.batch_shape:
            starts = init.astype(data.dtype)
            return None, "init", _clean_starts(starts, structure)
        reference, kind = init, "init"
    elif isinstance(init, str) and init == "em":
        em = fit_em(
            data,
            K,
            covariance_type=structure.name,
            prior=prior,
            sample_weight=w,
            n_init=max(num_chains, 4),
            key=key,
        )
        reference, kind = em.params, "MAP-EM"
    elif init is not None:
        raise ValueError(f"init must be None, 'em', an EMResult or a GMMParams; got {init!r}.")
    if reference is None:
        keys = jax.random.split(jax.random.fold_in(key, 1), num_chains)
        starts = jax.jit(jax.vmap(lambda k: _kmeanspp_start(k, data, w, K, structure, prior)))(
            keys
        )
    else:
        reference = reference.astype(data.dtype)
        starts = _jitter(key, reference, float(w.sum()), num_chains)
    return reference, kind, _clean_starts(starts, structure)


@functools.partial(jax.jit, static_argnames="structure")
def _clean_starts(starts: GMMParams, structure) -> GMMParams:
    """Keep starting weights off the boundary of the simplex; project covariances."""
    floor = 1e-8
    weights = jnp.maximum(starts.weights, floor)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return GMMParams._unchecked(weights, starts.means, structure.project(starts.covariances))


def _as_raw_key(key):
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def _sample_stats(mcmc) -> dict[str, np.ndarray]:
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {new: np.asarray(extra[old]) for old, new in _SAMPLE_STATS.items() if old in extra}
    if "n_steps" in stats:
        stats["tree_depth"] = np.log2(stats["n_steps"]).astype(np.int64) + 1
    return stats


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
) -> Posterior:
    """Sample the posterior of a Gaussian mixture with NUTS.

    The model is :func:`gmm_model`: the prior MAP-EM uses, the assignments
    summed out. The draws come back as :class:`~bayesgmm.GMMParams` with
    ``(chain, draw)`` batch axes, side by side with the EM/MAP estimate the
    chains started from.

    Parameters
    ----------
    X : array-like of shape (N, D)
        Data. A 1-D array is read as N values of one feature.
    n_components : int
    prior : Prior, optional
        Default ``Prior.default(X, n_components)``. Must be built for this K and D.
        Unlike MAP-EM, any positive ``weight_concentration`` is accepted.
    covariance_type : {"full", "tied", "diag", "spherical"}
    sample_weight : array-like of shape (N,), optional
        Replication weights: each row's log-likelihood is multiplied by its weight.
    num_chains, num_warmup, num_samples : int
        Chains, warmup (adaptation) iterations and kept draws per chain.
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

    Returns
    -------
    Posterior
        ``params`` with weights (C, S, K), means (C, S, K, D), covariances
        (C, S, K, D, D); ``sample_stats`` (``diverging``, ``energy``,
        ``n_steps``, ``tree_depth``, ``accept_prob``, ``step_size``,
        ``potential_energy``), each (C, S); ``reference`` and
        ``reference_kind`` (``"MAP-EM"``, ``"EM"``, ``"init"`` for a given
        GMMParams, or None); the raw NumPyro ``mcmc`` object.

    Warns
    -----
    UserWarning
        When ``num_samples < 100``; when more than 0.1% of the post-warmup
        transitions diverged; when the chains' adapted step sizes differ by
        more than a factor of 10 (a chain that adapted while moving between
        modes). Each says what to try.

    Notes
    -----
    NUTS runs on the model's potential energy compiled as one function, with
    the model's ``constrain_fn`` as the MCMC post-processing (see
    :func:`_run_nuts`): ``post.mcmc.get_samples()`` holds the sites of
    :func:`gmm_model` as usual, but ``post.mcmc.sampler.model`` is None. The
    chains start from per-chain values mapped to the model's sites and then
    to unconstrained coordinates (``init_params``), which NumPyro's
    ``init_to_value`` cannot express (one value for all chains).

    Every call compiles its own sampler (the data are part of the program),
    and JAX keeps compiled programs cached for the life of the process. On
    Linux each NUTS run adds about 1,400 memory maps that only
    ``jax.clear_caches()`` releases, and a process may hold
    ``vm.max_map_count`` of them (65,530 by default) before XLA compilation
    crashes. So that a long loop of calls cannot get there, this function
    clears JAX's caches, with a ``UserWarning``, when the process holds more
    than 70% of its limit (about every 30 calls at the default); results are
    unchanged, functions compiled earlier compile again.

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
    data, w, K, structure, prior = _prepare(
        X, n_components, prior, covariance_type, sample_weight, dtype
    )
    D = data.shape[1]
    num_chains = check_positive_int("num_chains", num_chains)
    num_samples = check_positive_int("num_samples", num_samples)
    if (
        isinstance(num_warmup, bool)
        or not isinstance(num_warmup, numbers.Integral)
        or (num_warmup < 0)
    ):
        raise ValueError(f"num_warmup must be an integer >= 0; got {num_warmup!r}.")
    num_warmup = int(num_warmup)
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
        warnings.warn(
            f"num_samples={num_samples} draws per chain are too few for reliable R-hat, ESS "
            f"and HDIs; use at least {_MIN_DRAWS_FOR_DIAGNOSTICS} (the default is 1000).",
            UserWarning,
            stacklevel=3,  # sample_posterior is wrapped by @x64
        )

    key_init, key_mcmc = jax.random.split(key)
    reference, kind, starts = _starting_points(
        init, key_init, data, w, K, D, structure, prior, num_chains
    )
    if model is not None and not callable(model):
        raise TypeError(f"model must be a NumPyro model function; got {type(model).__name__}.")
    model = _bind(data, K, prior, structure, _weights_or_none(w), model)
    _check_custom_sites(model, structure)
    transforms = _latent_transforms(model)
    sites = _params_to_sites(starts, structure, transforms)
    unconstrained = _unconstrain(transforms, sites)
    if not all(bool(jnp.isfinite(v).all()) for v in unconstrained.values()):
        raise ValueError(
            "the starting parameters are not valid for the model (a weight of zero, or a "
            "covariance that is not positive definite); pass another init."
        )
    unconstrained = {
        name: np.asarray(value[0] if num_chains == 1 else value, data.dtype)
        for name, value in unconstrained.items()
    }
    _memory_maps.release_if_near_limit(stacklevel=3)  # sample_posterior is wrapped by @x64
    mcmc = _run_nuts(
        model,
        unconstrained,
        _as_raw_key(key_mcmc),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=progress_bar,
        target_accept_prob=float(target_accept_prob),
        step_size=step_size,
        double=data.dtype == np.float64,
    )
    samples = mcmc.get_samples(group_by_chain=True)
    params = GMMParams(
        weights=samples["weights"],
        means=samples["means"],
        covariances=_linalg.symmetrize(samples["covariances"]),
    )
    stats = _sample_stats(mcmc)
    _warn_divergences(stats, target_accept_prob)
    _warn_step_sizes(stats)
    return Posterior(
        params=params,
        X=data,
        sample_weight=w,
        prior=prior,
        covariance_type=structure.name,
        reference=reference,
        reference_kind=kind,
        sample_stats=stats,
        mcmc=mcmc,
    )


def _run_nuts(
    model, init_params, key, *, double: bool, target_accept_prob, step_size=None, **mcmc_options
):
    """NUTS on the model's compiled potential, from unconstrained ``init_params``.

    The kernel gets the model's potential energy (NumPyro's ``potential_energy``:
    the negative log joint in unconstrained coordinates, Jacobians included)
    as one compiled function, and the MCMC object the model's ``constrain_fn``
    as its post-processing, so ``mcmc.get_samples()`` holds the sites and the
    deterministic ``"covariances"`` as usual. Built this way NumPyro's
    per-chain initialisation compiles a handful of programs instead of every
    primitive of the model one by one (tens of seconds on a small CPU).

    In float32 the sampler runs with 64-bit types off: NumPyro's step sizes
    would otherwise promote float32 states to float64 mid-trajectory.
    ``step_size`` (None: NumPyro's 1) starts the adaptation, or is used as is
    without warmup.
    """
    with jax.enable_x64(double):
        kernel = NUTS(
            potential_fn=jax.jit(functools.partial(potential_energy, model, (), {})),
            target_accept_prob=target_accept_prob,
            step_size=1.0 if step_size is None else step_size,
        )
        mcmc = MCMC(
            kernel,
            postprocess_fn=jax.jit(
                functools.partial(constrain_fn, model, (), {}, return_deterministic=True)
            ),
            **mcmc_options,
        )
        mcmc.run(key, init_params=init_params, extra_fields=tuple(_SAMPLE_STATS))
    return mcmc


def _warn_step_sizes(stats) -> None:
    step = stats.get("step_size")
    if step is None or step.shape[0] < 2:
        return
    final = step[:, -1]
    ratio = float(final.max() / final.min())
    if ratio > 10.0:
        warnings.warn(
            f"the chains adapted step sizes that differ by a factor of {ratio:.0f} "
            f"({np.array2string(final, precision=3)}): some chains probably spent the "
            "warmup moving from a poor start towards (another) mode, and sample slowly. "
            "Compare the chains (R-hat after relabelling); start them from init='em', or "
            "use a longer num_warmup.",
            UserWarning,
            stacklevel=4,  # helper <- sample_posterior <- @x64 wrapper <- the caller
        )


def _warn_divergences(stats, target_accept_prob) -> None:
    div = stats.get("diverging")
    if div is None:
        return
    n_div, total = int(np.sum(div)), int(np.size(div))
    if n_div > _DIVERGENCE_FRACTION * total:
        warnings.warn(
            f"{n_div} of {total} post-warmup transitions diverged ({n_div / total:.1%}); "
            "the draws may be biased. Try a higher target_accept_prob (now "
            f"{float(target_accept_prob):g}; 0.9 or 0.95), a longer num_warmup, init='em', "
            "fewer components (an empty component follows its prior), or a more "
            "informative prior.",
            UserWarning,
            stacklevel=4,  # helper <- sample_posterior <- @x64 wrapper <- the caller
        )
