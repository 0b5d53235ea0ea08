"""Between :class:`~bayesgmm.GMMParams` and the NumPyro model's sites, and the shared checks.

What every engine that runs the NumPyro model needs (NUTS in
:mod:`bayesgmm.bayes._sample`, the mode in :mod:`bayesgmm.bayes._map`,
simulation-based calibration in :mod:`bayesgmm.calibration`): the validated
inputs, the model with its data bound, the model's latent sites and their
unconstraining transforms, and the maps from parameters to sites and back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions.transforms import biject_to

from bayesgmm._core import covariance as _cov
from bayesgmm._core._precision import resolve_dtype
from bayesgmm._core._validation import check_fit_inputs
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior, default_prior
from bayesgmm.bayes._model import gmm_model

__all__ = [
    "BoundModel",
    "bind",
    "check_custom_sites",
    "check_in_family",
    "check_init_params",
    "clean_starts",
    "latent_transforms",
    "params_to_sites",
    "prepare_inputs",
    "raw_key",
    "sites_to_params",
    "unconstrain",
    "weights_or_none",
]


# ------------------------------------------------------ sites <-> GMMParams ---
@dataclass(frozen=True)
class BoundModel:
    """A model of :func:`gmm_model`'s signature with K and the structure fixed.

    Called as ``bound(X, prior, sample_weight)``: the data are arguments, so
    the NUTS engine compiles one program for every data set of a shape. Equal
    (and of equal hash) whenever its fields are, which is what lets the
    engine's cache find the programs of an earlier call.
    """

    model: Callable
    n_components: int
    covariance_type: str

    def __call__(self, X, prior, sample_weight=None):
        return self.model(X, self.n_components, prior, self.covariance_type, sample_weight)


def bind(X, n_components, prior, structure, sample_weight, model=None):
    """The model (``gmm_model`` unless given) with its data bound: a function of no arguments."""
    return functools.partial(
        gmm_model if model is None else model,
        X=jax.device_put(X),  # not jnp.asarray: no copying program per shape
        n_components=n_components,
        prior=prior,
        covariance_type=structure.name,
        sample_weight=None if sample_weight is None else jax.device_put(sample_weight),
    )


_BOUND_ARRAYS = ("X", "prior", "sample_weight")


def _abstractly(fn, model):
    """``fn(model)`` under ``jax.eval_shape``, the arrays :func:`bind` bound passed as arguments.

    As arguments they are abstract inside the trace, so NumPyro's checks of
    distribution parameters (which evaluate concrete values on the spot, each
    check a small program compiled per shape) see tracers and compute nothing.
    """
    if not isinstance(model, functools.partial):
        return jax.eval_shape(lambda: fn(model))
    arrays = {k: v for k, v in model.keywords.items() if k in _BOUND_ARRAYS and v is not None}

    def run(arrays):
        return fn(functools.partial(model.func, *model.args, **{**model.keywords, **arrays}))

    return jax.eval_shape(run, arrays)


def check_custom_sites(model, structure) -> None:
    """A model must expose the shared sites of :func:`gmm_model` for its structure."""
    with jax.enable_x64(True):
        trace = _abstractly(
            lambda m: {
                name: site["value"]
                for name, site in handlers.trace(handlers.seed(m, 0)).get_trace().items()
                if site["type"] in ("sample", "deterministic")
            },
            model,
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


def latent_transforms(model) -> dict:
    """``{site: biject_to(support)}`` for every latent site of a bound model.

    The model is traced abstractly (``jax.eval_shape``): nothing is computed.
    """
    found = {}

    def trace_supports(m):
        with handlers.block():
            tr = handlers.trace(handlers.seed(m, 0)).get_trace()
        for name, site in tr.items():
            if site["type"] == "sample" and not site["is_observed"]:
                found[name] = biject_to(site["fn"].support)
        return 0

    _abstractly(trace_supports, model)
    return found


#: One compiled inverse transform per (model function, structure): a site's
#: support, hence its transform, is fixed by the two (see :func:`unconstrain`).
_UNCONSTRAIN_PROGRAMS: dict = {}


def unconstrain(transforms: dict, sites: dict, key=None) -> dict:
    """Unconstrained coordinates of (possibly batched) site values.

    With ``key`` (hashable, naming what fixes the transforms: the model
    function and the structure) the inverse transforms run as one compiled
    program kept under that key, which a later call, or the disk cache of a
    later process, reuses; without it they run eagerly, primitive by
    primitive (a program per primitive and shape). When the key's model is
    :func:`gmm_model` (bayesgmm's own code, see :mod:`bayesgmm._core._exported`)
    the traced program is kept on disk as well: a fresh process does not trace it.
    """
    if key is None:
        return {name: t.inv(jnp.asarray(sites[name])) for name, t in transforms.items()}
    values = {name: np.asarray(sites[name]) for name in transforms}
    inverses = dict(transforms)

    def inverse(s):
        return {name: t.inv(s[name]) for name, t in inverses.items()}

    if key[0] is gmm_model:
        from bayesgmm._core import _exported

        program = _exported.program("unconstrain", ("gmm_model", *key[1:]), inverse, (values,))
        if program is not None:
            return program(values)
    program = _UNCONSTRAIN_PROGRAMS.get(key)
    if program is None:
        program = _UNCONSTRAIN_PROGRAMS[key] = jax.jit(inverse)
    return program(values)


def params_to_sites(params: GMMParams, structure, site_names) -> dict:
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


def sites_to_params(model, sites: dict) -> GMMParams:
    """``GMMParams`` (unvalidated) from unbatched latent site values."""

    def params_of(sites):
        with handlers.block():
            tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=sites))
            tr = tr.get_trace()
        return GMMParams._unchecked(
            tr["weights"]["value"], tr["means"]["value"], tr["covariances"]["value"]
        )

    return jax.jit(params_of)(sites)


def check_in_family(params: GMMParams, structure) -> None:
    cov = np.asarray(params.covariances)
    projected = np.asarray(structure.project(cov))
    if not np.allclose(projected, cov, rtol=1e-10, atol=0.0):
        raise ValueError(
            f"params are not in the {structure.name!r} covariance family; project them "
            f"with bayesgmm.covariance.get({structure.name!r}).project first."
        )


# -------------------------------------------------------------- validation ---
def prepare_inputs(X, n_components, prior, covariance_type, sample_weight, dtype):
    """Validate like :func:`bayesgmm.fit_em`; returns data, weights, K, structure, prior."""
    dt = resolve_dtype(dtype, X)
    data, w, K = check_fit_inputs(X, n_components, sample_weight, dt)
    D = data.shape[1]
    structure = _cov.get(covariance_type)
    if prior is None:
        prior = default_prior(data, w, K)
    elif not isinstance(prior, Prior):
        raise TypeError(f"prior must be a bayesgmm.Prior or None; got {type(prior).__name__}.")
    prior = prior.check(K, D).astype(dt)
    return data, w, K, structure, prior


def check_init_params(params: GMMParams, K: int, D: int, what: str) -> GMMParams:
    if params.n_components != K or params.n_features != D:
        raise ValueError(
            f"{what} has K={params.n_components}, D={params.n_features} but the model has "
            f"K={K}, D={D}; pass initial parameters of matching shape."
        )
    return params


def weights_or_none(w: np.ndarray):
    return None if np.all(w == 1.0) else w


@functools.partial(jax.jit, static_argnames="structure")
def clean_starts(starts: GMMParams, structure) -> GMMParams:
    """Keep starting weights off the boundary of the simplex; project covariances."""
    floor = 1e-8
    weights = jnp.maximum(starts.weights, floor)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return GMMParams._unchecked(weights, starts.means, structure.project(starts.covariances))


def raw_key(key):
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key
