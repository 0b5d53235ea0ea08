"""Posterior membership probabilities ``P(z_n = k | x_n, data)``.

The assignments are summed out of the model, so each draw's responsibilities
come in closed form (``GMMParams.responsibilities``); these functions summarise
them over draws, in blocks to bound memory. Components are taken by their
labels: relabel the posterior first.
"""

from __future__ import annotations

import jax
import numpy as np

from bayesgmm import density
from bayesgmm._precision import x64
from bayesgmm._validation import check_data
from bayesgmm.params import GMMParams
from bayesgmm.posterior import Posterior

__all__ = ["membership", "posterior_membership"]

# Elements of the largest (draws x rows x K) block of responsibilities held at once.
_BLOCK_ELEMENTS = 1 << 22


def _hdi(samples: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Narrowest interval holding ``prob`` of the draws along axis 0 (as ArviZ's ``hdi``)."""
    x = np.sort(samples, axis=0)
    n = x.shape[0]
    inc = int(np.floor(prob * n))
    n_intervals = n - inc
    widths = x[inc:] - x[:n_intervals]
    start = np.argmin(widths, axis=0)[None]
    return (
        np.take_along_axis(x, start, axis=0)[0],
        np.take_along_axis(x, start + inc, axis=0)[0],
    )


@x64
def membership(
    post: Posterior, X=None, *, hdi_prob: float = 0.94
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior membership probabilities ``P(z_n = k | x_n, data)`` with their spread.

    For every draw the responsibilities are computed in closed form (the
    assignments were summed out of the model), then summarised across all
    chains and draws. Components are taken by their labels: relabel the
    posterior first (``post.relabel()``) if labels switch between draws.

    Parameters
    ----------
    post : Posterior
    X : array-like of shape (N, D), optional
        Rows to classify; default the data the posterior conditions on.
    hdi_prob : float
        Mass of the highest-density interval (default 0.94, as ArviZ).

    Returns
    -------
    mean : ndarray of shape (N, K)
        Posterior mean membership probabilities; rows sum to one.
    hdi_low, hdi_high : ndarray of shape (N, K)
        Bounds of the ``hdi_prob`` highest-density interval of each probability.
    """
    if not isinstance(post, Posterior):
        raise TypeError(f"post must be a bayesgmm Posterior; got {type(post).__name__}.")
    if not 0.0 < float(hdi_prob) < 1.0:
        raise ValueError(f"hdi_prob must lie in (0, 1); got {hdi_prob!r}.")
    params = post.params
    data = post.X if X is None else X
    data = check_data(data, dtype=params.dtype, n_features=params.n_features)
    flat = jax.tree.map(lambda leaf: leaf.reshape((-1, *leaf.shape[2:])), params)
    n_draws, K = flat.weights.shape
    N = data.shape[0]
    block = max(1, min(N, _BLOCK_ELEMENTS // max(1, n_draws * K)))
    mean = np.empty((N, K), data.dtype)
    low = np.empty((N, K), data.dtype)
    high = np.empty((N, K), data.dtype)
    for start in range(0, N, block):
        rows = data[start : start + block]
        pad = block - rows.shape[0]  # pad the last block: one compiled shape
        padded = np.concatenate([rows, np.repeat(rows[-1:], pad, axis=0)]) if pad else rows
        resp = np.asarray(density.responsibilities(flat, padded))[:, : rows.shape[0]]
        mean[start : start + rows.shape[0]] = resp.mean(axis=0)
        lo, hi = _hdi(resp, float(hdi_prob))
        low[start : start + rows.shape[0]] = lo
        high[start : start + rows.shape[0]] = hi
    return mean, low, high


@x64
def posterior_membership(params: GMMParams, X) -> np.ndarray:
    """Posterior mean membership probabilities ``E[P(z_n = k | x_n, theta) | data]``.

    Averaged over all draws, computed in blocks of draws to bound memory. The
    draws must be relabelled (the average is over labels ``k``).

    Parameters
    ----------
    params : GMMParams with batch shape S
    X : array-like of shape (N, D)

    Returns
    -------
    ndarray of shape (N, K)
        Rows sum to one.
    """
    data = check_data(X, dtype=params.dtype, n_features=params.n_features)
    nb = len(params.batch_shape)
    if not nb:
        return np.asarray(params.responsibilities(data), dtype=np.float64)
    flat = jax.tree.map(lambda leaf: leaf.reshape((-1, *leaf.shape[nb:])), params)
    M = flat.batch_shape[0]
    N, K = data.shape[0], params.n_components
    block = max(1, _BLOCK_ELEMENTS // (N * K))
    out = np.zeros((N, K))
    for start in range(0, M, block):  # blocks of draws bound the (draws, N, K) memory
        out += np.asarray(flat[start : start + block].responsibilities(data)).sum(axis=0)
    return out / M
