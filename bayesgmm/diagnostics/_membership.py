"""Posterior membership probabilities ``P(z_n = k | x_n, data)``.

The assignments are summed out of the model, so each draw's responsibilities
come in closed form (``GMMParams.responsibilities``); these functions summarise
them over draws, in blocks to bound memory. Components are taken by their
labels: relabel the posterior first.
"""

from __future__ import annotations

import numpy as np

from bayesgmm._core._blocks import rows_per_block
from bayesgmm._core._precision import x64
from bayesgmm._core._validation import check_data
from bayesgmm._core.params import GMMParams
from bayesgmm.bayes._posterior import Posterior

__all__ = ["membership", "posterior_membership"]


def _summarise(params: GMMParams, data: np.ndarray, hdi_prob: float | None):
    """Mean (and ``hdi_prob`` HDI) over all draws of each row's responsibilities.

    Rows are taken in blocks so that a block's (draws, rows, K) array stays
    within the draw-block budget; the last block is padded to the block's
    size, so one compiled shape serves every block.
    """
    flat = params.flatten_batch()
    n_draws, K = flat.weights.shape
    N = data.shape[0]
    block = min(N, rows_per_block(n_draws * K))
    mean = np.empty((N, K), data.dtype)
    low = np.empty((N, K), data.dtype) if hdi_prob is not None else None
    high = np.empty((N, K), data.dtype) if hdi_prob is not None else None
    if hdi_prob is not None:
        import arviz as az
    for start in range(0, N, block):
        rows = data[start : start + block]
        n = rows.shape[0]
        pad = block - n
        padded = np.concatenate([rows, np.repeat(rows[-1:], pad, axis=0)]) if pad else rows
        resp = np.asarray(flat.responsibilities(padded))[:, :n]  # (draws, n, K)
        mean[start : start + n] = resp.mean(axis=0)
        if hdi_prob is not None:
            interval = np.asarray(az.hdi(resp[None], hdi_prob=hdi_prob))  # (n, K, 2)
            low[start : start + n] = interval[..., 0]
            high[start : start + n] = interval[..., 1]
    return mean, low, high


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
        Mass of the highest-density interval (default 0.94, as ArviZ), from
        ``arviz.hdi``.

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
    data = check_data(post.X if X is None else X, dtype=params.dtype, n_features=params.n_features)
    return _summarise(params, data, float(hdi_prob))


@x64
def posterior_membership(params: GMMParams, X) -> np.ndarray:
    """Posterior mean membership probabilities ``E[P(z_n = k | x_n, theta) | data]``.

    Averaged over all draws, in blocks of rows to bound memory. The draws must
    be relabelled (the average is over labels ``k``).

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
    return np.asarray(_summarise(params, data, None)[0], dtype=np.float64)
