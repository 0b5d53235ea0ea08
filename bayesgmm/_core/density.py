"""Log densities, responsibilities and sampling of a Gaussian mixture, as functions.

The same operations as the methods of :class:`~bayesgmm.GMMParams`
(``params.log_prob(X)`` is ``density.log_prob(params, X)``), for code that
prefers functions. The maths lives in :mod:`bayesgmm._core._mixture`; each
function works on one set of parameters and is lifted over leading batch axes
(``(chain, draw)`` for posterior draws) with ``jax.vmap``.
"""

from __future__ import annotations

import jax

from bayesgmm._core._mixture import component_log_prob
from bayesgmm._core.params import GMMParams

__all__ = [
    "component_log_prob",
    "log_prob",
    "log_prob_components",
    "responsibilities",
    "sample",
]


def _check(params) -> GMMParams:
    if not isinstance(params, GMMParams):
        raise TypeError(f"expected GMMParams; got {type(params).__name__}.")
    return params


def log_prob_components(params: GMMParams, X) -> jax.Array:
    """Joint log density ``log w_k + log N(x_n | mu_k, Sigma_k)``.

    Parameters
    ----------
    params : GMMParams with batch shape ``S``
    X : array-like of shape (N, D)

    Returns
    -------
    array of shape S + (N, K)
    """
    return _check(params).log_prob_components(X)


def log_prob(params: GMMParams, X) -> jax.Array:
    """Mixture log density of each row, ``logsumexp_k (log w_k + log N(x_n | k))``.

    Parameters
    ----------
    params : GMMParams with batch shape ``S``
    X : array-like of shape (N, D)

    Returns
    -------
    array of shape S + (N,)
    """
    return _check(params).log_prob(X)


def responsibilities(params: GMMParams, X) -> jax.Array:
    """Membership probabilities ``P(z_n = k | x_n)``, computed in log space.

    Parameters
    ----------
    params : GMMParams with batch shape ``S``
    X : array-like of shape (N, D)

    Returns
    -------
    array of shape S + (N, K)
    """
    return _check(params).responsibilities(X)


def sample(key: jax.Array, params: GMMParams, n_samples: int) -> tuple[jax.Array, jax.Array]:
    """Draw ``n_samples`` rows (and their component labels) from the mixture.

    Parameters
    ----------
    key : jax.random key
    params : GMMParams with batch shape ``S``
        Each set of parameters in the batch draws its own data set.
    n_samples : int

    Returns
    -------
    X : array of shape S + (n_samples, D)
    labels : int array of shape S + (n_samples,)
    """
    return _check(params).sample(key, n_samples)
