"""Checks and reshapes shared by the diagnostics: what an estimate or a posterior must be."""

from __future__ import annotations

import jax
import numpy as np

from bayesgmm._core.params import GMMParams
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.em._fit import EMResult
from bayesgmm.em._vb import VBResult

__all__ = [
    "check_chain_draw",
    "check_params",
    "check_posterior",
    "check_reference",
    "point_params",
    "posterior_mean",
    "thin_draws",
]


# ------------------------------------------------------------------ helpers ---
def check_params(params, name: str = "params") -> GMMParams:
    if not isinstance(params, GMMParams):
        raise TypeError(f"{name} must be GMMParams; got {type(params).__name__}.")
    return params


def check_chain_draw(params: GMMParams, what: str) -> tuple[int, int]:
    batch = params.batch_shape
    if len(batch) != 2:
        raise ValueError(
            f"{what} needs params with batch axes (chain, draw); got batch shape {batch}. "
            "Reshape the draws to (n_chains, n_draws, ...) first (one chain is (1, n_draws))."
        )
    if batch[1] < 4:
        raise ValueError(f"{what} needs at least 4 draws per chain; got {batch[1]}.")
    return batch


# ------------------------------------------------------------------ helpers ---
def point_params(em) -> GMMParams:
    """The unbatched GMMParams of an EMResult, a VBResult (its posterior mean) or GMMParams."""
    if isinstance(em, EMResult | VBResult):
        return em.params
    if isinstance(em, GMMParams):
        if em.batch_shape:
            raise ValueError(
                f"em must be a single estimate (no batch axes); got GMMParams with batch shape "
                f"{em.batch_shape}. Pass an EMResult, its .params, or post.params[c, s]."
            )
        return em
    raise TypeError(
        f"em must be an EMResult or GMMParams (or a VBResult); got {type(em).__name__}."
    )


def check_posterior(post, em: GMMParams | None = None) -> Posterior:
    if not isinstance(post, Posterior):
        raise TypeError(f"post must be a bayesgmm Posterior; got {type(post).__name__}.")
    if len(post.params.batch_shape) != 2:
        raise ValueError(
            f"post.params must have batch axes (chain, draw); got {post.params.batch_shape}."
        )
    if em is not None and (em.n_components, em.n_features) != (post.n_components, post.n_features):
        raise ValueError(
            f"the EM estimate has K={em.n_components}, D={em.n_features} but the posterior has "
            f"K={post.n_components}, D={post.n_features}; compare fits of the same model."
        )
    return post


def posterior_mean(params: GMMParams) -> GMMParams:
    """Mean of each parameter over all draws: a valid unbatched GMMParams."""
    nb = len(params.batch_shape)
    axes = tuple(range(nb))
    w, m, c = (
        np.asarray(leaf, dtype=np.float64).mean(axis=axes) for leaf in jax.tree.leaves(params)
    )
    return GMMParams(weights=w / w.sum(), means=m, covariances=0.5 * (c + np.swapaxes(c, -1, -2)))


def thin_draws(params: GMMParams, n_draws: int) -> GMMParams:
    """About ``n_draws`` draws evenly spaced over all chains, as batch shape ``(n,)``.

    Parameters
    ----------
    params : GMMParams with batch shape S
    n_draws : int

    Returns
    -------
    GMMParams with batch shape (min(n_draws, prod(S)),)
    """
    flat = params.flatten_batch()
    M = flat.batch_shape[0]
    if n_draws >= M:
        return flat
    idx = np.unique(np.linspace(0, M - 1, int(n_draws)).round().astype(np.int64))
    return flat[idx]


def check_reference(reference, params: GMMParams) -> GMMParams:
    reference = check_params(reference, "reference")
    if reference.batch_shape:
        raise ValueError(
            f"reference must be a single set of parameters (no batch axes); got batch shape "
            f"{reference.batch_shape}. Pass e.g. an EM result's params or params[chain, draw]."
        )
    if (reference.n_components, reference.n_features) != (params.n_components, params.n_features):
        raise ValueError(
            f"reference has K={reference.n_components}, D={reference.n_features} but the draws "
            f"have K={params.n_components}, D={params.n_features}; relabel against a reference "
            "of the same model."
        )
    return reference.astype(params.dtype)
