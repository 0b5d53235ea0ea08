"""The posterior mode of the NumPyro model, found by optimisation.

:func:`log_joint` is NumPyro's log density of :func:`bayesgmm.gmm_model`
at given parameters; :func:`find_map` maximises it (in the sites' own
coordinates, no change-of-variables term) and lands on the MAP-EM estimate:
the proof that MAP-EM and the Bayesian model share one model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import log_density

from bayesgmm._core import _linalg
from bayesgmm._core._precision import x64
from bayesgmm._core._validation import check_positive_int
from bayesgmm._core._warnings import warn
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.bayes._sites import (
    bind,
    check_in_family,
    check_init_params,
    clean_starts,
    latent_transforms,
    params_to_sites,
    prepare_inputs,
    sites_to_params,
    unconstrain,
    weights_or_none,
)
from bayesgmm.em._fit import MAX_ITER, TOL, EMResult, fit_validated

__all__ = ["find_map", "log_joint"]


@x64
def log_joint(params: GMMParams, X, prior: Prior, covariance_type="full", sample_weight=None):
    """Log joint density of :func:`gmm_model` at ``params``, via NumPyro's ``log_density``.

    The density of the sites in their own coordinates (weights, means,
    covariance matrices or variances), without any change-of-variables term:
    at a MAP-EM estimate it equals ``EMResult.log_posterior``.

    Parameters
    ----------
    params : GMMParams
        Unbatched, with covariances in ``covariance_type``'s family.
    X : array-like of shape (N, D)
    prior : Prior
    covariance_type : str
    sample_weight : array-like of shape (N,), optional

    Returns
    -------
    float
    """
    if not isinstance(params, GMMParams) or params.batch_shape:
        raise ValueError("params must be an unbatched GMMParams.")
    data, w, K, structure, prior = prepare_inputs(
        X, params.n_components, prior, covariance_type, sample_weight, params.dtype
    )
    check_init_params(params, K, data.shape[1], "params")
    check_in_family(params, structure)
    model = bind(data, K, prior, structure, weights_or_none(w))
    sites = params_to_sites(params, structure, latent_transforms(model))
    return float(jax.jit(lambda v: log_density(model, (), {}, v)[0])(sites))


# -------------------------------------------------------------------- MAP ---
@x64
def find_map(
    X,
    n_components: int,
    prior: Prior | None = None,
    covariance_type: str = "full",
    init=None,
    sample_weight=None,
    *,
    max_iter: int = 1000,
    dtype=None,
) -> GMMParams:
    """The mode of :func:`gmm_model`'s posterior, by optimising its log joint density.

    The objective is NumPyro's log density of the sites in their own
    coordinates (no Jacobian of the unconstraining transforms), so the mode is
    the one MAP-EM finds: with respect to the weights, the means and the
    covariance entries (or variances). It is optimised over unconstrained
    coordinates (``numpyro.distributions.transforms.biject_to`` of each site's
    support) by BFGS, then polished with Newton steps.

    Parameters
    ----------
    X : array-like of shape (N, D)
    n_components : int
    prior : Prior, optional
        Default ``Prior.default(X, n_components)``.
    covariance_type : {"full", "tied", "diag", "spherical"}
    init : EMResult or GMMParams, optional
        Starting point (covariances projected onto the family); default a
        MAP-EM fit with ``fit_em(..., prior=prior)``.
    sample_weight : array-like of shape (N,), optional
    max_iter : int
        Most BFGS iterations.
    dtype : {None, "float64", "float32"}

    Returns
    -------
    GMMParams

    Examples
    --------
    >>> import numpy as np, bayesgmm as bg
    >>> from bayesgmm import find_map
    >>> X = bg.datasets.load_faithful()
    >>> prior = bg.Prior.default(X, 2)
    >>> em = bg.fit_em(X, 2, prior=prior, tol=1e-10, max_iter=1000)
    >>> mode = find_map(X, 2, prior, init=em)
    >>> bool(np.allclose(mode.means, em.params.means, rtol=1e-5))
    True
    """
    data, w, K, structure, prior = prepare_inputs(
        X, n_components, prior, covariance_type, sample_weight, dtype
    )
    D = data.shape[1]
    max_iter = check_positive_int("max_iter", max_iter)
    if init is None:
        start = fit_validated(
            data,
            w,
            K,
            structure=structure.name,
            prior=prior.check(K, D, for_map=True),
            init="kmeans++",
            n_init=1,
            tol=TOL,
            max_iter=MAX_ITER,
            reg_covar=0.0,
            key=jax.random.key(0),
        ).params
    elif isinstance(init, EMResult):
        start = init.params
    elif isinstance(init, GMMParams) and not init.batch_shape:
        start = init
    else:
        raise ValueError(
            f"init must be None, an EMResult or an unbatched GMMParams; got {init!r}."
        )
    start = check_init_params(start, K, D, "init").astype(data.dtype)
    start = clean_starts(start, structure)

    model = bind(data, K, prior, structure, weights_or_none(w))
    transforms = latent_transforms(model)
    sites0 = params_to_sites(start, structure, transforms)
    u0, unravel = ravel_pytree(unconstrain(transforms, sites0))
    total = float(w.sum())

    def objective(u):
        sites = {name: transforms[name](value) for name, value in unravel(u).items()}
        return -log_density(model, (), {}, sites)[0] / total

    u = _minimize(objective, u0, max_iter)
    sites = {name: transforms[name](value) for name, value in unravel(u).items()}
    out = sites_to_params(model, sites)
    return GMMParams(
        weights=out.weights, means=out.means, covariances=_linalg.symmetrize(out.covariances)
    )


def _minimize(objective, u0, max_iter: int):
    """Minimise ``objective`` (mean negative log density per unit of weight) by BFGS.

    SciPy's BFGS drives a compiled ``value_and_grad``: one small compilation
    (JAX's own ``jax.scipy.optimize.minimize`` compiles its line search into
    the program, several times slower to build for the same answer). A second
    run from where the first stopped resets the curvature estimate.
    """
    value_and_grad = jax.jit(jax.value_and_grad(objective))
    dtype = u0.dtype

    def fun(x):
        value, grad = value_and_grad(jnp.asarray(x, dtype))
        return float(value), np.asarray(grad, np.float64)

    x = np.asarray(u0, np.float64)
    for _ in range(2):
        result = scipy.optimize.minimize(
            fun, x, jac=True, method="BFGS", options={"maxiter": max_iter, "gtol": 1e-10}
        )
        if np.all(np.isfinite(result.x)) and result.fun <= fun(x)[0]:
            x = result.x
        grad_norm = float(np.max(np.abs(fun(x)[1])))
        if grad_norm < 1e-9:
            break
    if not grad_norm < 1e-6:
        warn(
            f"find_map stopped with gradient norm {grad_norm:.3g}; the optimiser may not "
            "have reached the mode. Start closer (init=fit_em(...)) or raise max_iter.",
            UserWarning,
        )
    return jnp.asarray(x, dtype)
