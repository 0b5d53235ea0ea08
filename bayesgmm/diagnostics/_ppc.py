"""Posterior predictive checks: replicated data sets from posterior draws.

Each of ``n_draws`` thinned posterior draws generates one data set of the size
of ``X`` (``GMMParams.sample`` on batched parameters); simple statistics of the
replicates are compared with the data, with posterior predictive p-values.
"""

from __future__ import annotations

import jax
import numpy as np

from bayesgmm._core._blocks import rows_per_block
from bayesgmm._core._precision import x64
from bayesgmm._core._warnings import warn
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._checks import check_posterior, thin_draws

__all__ = ["PPC_STATISTICS", "ppc_replicates", "ppc_statistics"]

_QUANTILES = {"q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95}
PPC_STATISTICS = ("mean", "sd", "skewness", "min", "max", *_QUANTILES)


def _statistics(Y: np.ndarray) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Summary statistics of data sets ``Y`` of shape B + (N, D), on the last axis.

    Returns the ``(statistic, feature)`` names and an array of shape B + (P,):
    every statistic of :data:`PPC_STATISTICS` per feature, then the correlation
    of every pair of features.
    """
    N, D = Y.shape[-2:]
    mean = Y.mean(axis=-2)
    centred = Y - mean[..., None, :]
    sd = np.sqrt((centred**2).sum(axis=-2) / max(N - 1, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = (centred**3).mean(axis=-2) / (centred**2).mean(axis=-2) ** 1.5
    quant = np.moveaxis(np.quantile(Y, list(_QUANTILES.values()), axis=-2), 0, -2)
    per_feature = [mean, sd, skew, Y.min(axis=-2), Y.max(axis=-2)]
    per_feature += [quant[..., i, :] for i in range(len(_QUANTILES))]
    names = [(stat, str(d)) for stat in PPC_STATISTICS for d in range(D)]
    values = [np.stack(per_feature, axis=-2).reshape((*Y.shape[:-2], -1))]
    if D > 1:
        iu = np.triu_indices(D, 1)
        cov = np.einsum("...ni,...nj->...ij", centred, centred) / max(N - 1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = cov[..., iu[0], iu[1]] / (sd[..., iu[0]] * sd[..., iu[1]])
        names += [("correlation", f"{i},{j}") for i, j in zip(*iu, strict=True)]
        values.append(corr)
    return names, np.concatenate(values, axis=-1)


@x64
def ppc_replicates(X, post: Posterior, *, n_draws: int = 200, seed: int = 0):
    """Observed and replicated statistics for posterior predictive checks.

    For each of ``n_draws`` thinned posterior draws one replicated data set of
    ``N`` rows is drawn (``GMMParams.sample`` over the batch of draws) and
    summarised by the statistics of :data:`PPC_STATISTICS` per feature and
    the correlation of each pair of features.

    Parameters
    ----------
    X : array-like of shape (N, D), or None for ``post.X``
    post : Posterior
    n_draws : int
    seed : int

    Returns
    -------
    names : list of (statistic, feature) tuples, length P
    observed : ndarray of shape (P,)
    replicated : ndarray of shape (n, P)
    """
    from bayesgmm._core._validation import check_data, check_positive_int, check_seed

    post = check_posterior(post)
    n_draws = check_positive_int("n_draws", n_draws)
    seed = check_seed(seed) or 0
    data = check_data(post.X if X is None else X, dtype=np.float64, n_features=post.n_features)
    N = data.shape[0]
    weight = np.asarray(post.sample_weight)
    if weight.shape == (N,) and not np.all(weight == 1):
        warn(
            "the posterior used sample weights; the posterior predictive check compares "
            "unweighted statistics of X with replicated data sets of N rows.",
            UserWarning,
        )
    draws = thin_draws(post.params, n_draws)
    names, observed = _statistics(data)
    block = rows_per_block(N * post.n_features)
    keys = jax.random.split(jax.random.key(seed), -(-draws.batch_shape[0] // block))
    replicated = []
    for b, start in enumerate(range(0, draws.batch_shape[0], block)):  # bounds draws x N x D
        Y, _ = draws[start : start + block].sample(keys[b], N)
        replicated.append(_statistics(np.asarray(Y, dtype=np.float64))[1])
    return names, observed, np.concatenate(replicated, axis=0)


def ppc_statistics(X, post: Posterior, n_draws: int = 200, seed: int = 0, *, prob: float = 0.94):
    """Posterior predictive checks of simple statistics, with posterior predictive p-values.

    Parameters
    ----------
    X : array-like of shape (N, D), or None for ``post.X``
        The observed data.
    post : Posterior
    n_draws : int
        Replicated data sets, one per thinned posterior draw.
    seed : int
    prob : float
        Mass of the central interval of the replicated statistic.

    Returns
    -------
    pandas.DataFrame
        One row per statistic and feature (``feature`` ``"d"``, or ``"i,j"`` for
        correlations): ``observed``, ``rep_mean``, ``rep_sd``, ``rep_low`` and
        ``rep_high`` (central ``prob`` interval of the replicated statistic),
        ``p_value`` = ``P(T(X_rep) >= T(X))`` (ties count half) and
        ``p_two_sided`` = ``2 min(p, 1 - p)``. A p-value near 0 or 1 marks a
        feature of the data that the model does not reproduce.
    """
    import pandas as pd

    names, observed, rep = ppc_replicates(X, post, n_draws=n_draws, seed=seed)
    p = (rep > observed).mean(axis=0) + 0.5 * (rep == observed).mean(axis=0)
    low, high = np.quantile(rep, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    table = pd.DataFrame(
        {
            "statistic": [n[0] for n in names],
            "feature": [n[1] for n in names],
            "observed": observed,
            "rep_mean": rep.mean(axis=0),
            "rep_sd": rep.std(axis=0, ddof=1) if len(rep) > 1 else np.zeros(len(names)),
            "rep_low": low,
            "rep_high": high,
            "p_value": p,
            "p_two_sided": np.minimum(1.0, 2 * np.minimum(p, 1 - p)),
        }
    )
    table.attrs.update(n_draws=len(rep), seed=int(seed), prob=float(prob))
    return table
