"""Components whose covariance the data do not determine: the check after every EM fit."""

from __future__ import annotations

import numpy as np

from bayesgmm._core._warnings import DataWarning, warn
from bayesgmm._core.params import GMMParams

__all__ = ["degenerate_components"]


# Effective points a covariance structure needs per component for a non-singular
# estimate (tied pools all components: only the variance test applies to it).
_POINTS_NEEDED = {"full": lambda D: D + 1, "diag": lambda D: 2, "spherical": lambda D: 2}


def degenerate_components(
    params: GMMParams, structure: str, prior, reg_covar: float, n_used: int
) -> tuple[int, ...]:
    """Components whose covariance the data do not determine; warns naming them.

    A component is degenerate when the data's own variance in some direction
    (the smallest eigenvalue of its covariance less ``reg_covar``) is at most
    ``reg_covar``, or below the rounding level of the covariance, or when,
    without a prior, it holds fewer effective points (weight times ``n_used``,
    the rows with positive sample weight; duplicating a row adds none) than
    the structure needs. Under MAP-EM the prior keeps covariances proper and
    only the variance test applies.
    """
    cov = np.asarray(params.covariances, dtype=np.float64)
    K, D = cov.shape[0], cov.shape[-1]
    eig = np.linalg.eigvalsh(cov)
    rounding = D * np.finfo(params.dtype).eps * eig[:, -1]
    own = eig[:, 0] - reg_covar
    by_variance = own <= np.maximum(reg_covar, rounding)
    points = np.asarray(params.weights, dtype=np.float64) * n_used
    needed = _POINTS_NEEDED.get(structure) if prior is None else None
    by_count = points < needed(D) if needed is not None else np.zeros(K, bool)
    bad = np.flatnonzero(by_variance | by_count)
    if not bad.size:
        return ()
    reasons = []
    for k in bad:
        why = []
        if by_count[k]:
            why.append(
                f"{points[k]:.3g} effective points, fewer than the {needed(D)} a "
                f"{structure!r} covariance in D={D} needs"
            )
        if by_variance[k]:
            why.append(
                f"smallest variance {eig[k, 0]:.3g}, set by reg_covar={reg_covar:g}"
                if reg_covar > 0 and own[k] <= reg_covar
                else f"a numerically singular covariance (smallest variance {eig[k, 0]:.3g})"
            )
        reasons.append(f"component {k}: {' and '.join(why)}")
    warn(
        f"degenerate component(s) {bad.tolist()} of the K={K} fit: "
        + "; ".join(reasons)
        + ". Their covariance is not determined by the data, so the log-likelihood (and "
        "BIC, AIC, ICL) describe reg_covar rather than the data. Use fewer components, a "
        "simpler covariance_type ('diag' or 'spherical'), a prior, or more data.",
        DataWarning,
    )
    return tuple(int(k) for k in bad)
