"""Helpers shared by the plots: axes, colours, marginals, ellipses, matched labels."""

from __future__ import annotations

import numpy as np

from bayesgmm._core._validation import check_data
from bayesgmm._core.params import GMMParams
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._matching import match_labels


# ------------------------------------------------------------------ helpers ---
def _axes(ax, figsize=(6.4, 4.8)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _colour(k: int) -> str:
    return f"C{k % 10}"


def _marginal(params: GMMParams, features) -> GMMParams:
    """The exact marginal mixture of the selected features (any batch shape)."""
    idx = np.asarray(features, dtype=np.int64)
    return GMMParams._unchecked(
        params.weights,
        params.means[..., idx],
        params.covariances[..., idx[:, None], idx[None, :]],
    )


def _check_features(features, D: int, n: int) -> tuple[int, ...]:
    feats = tuple(int(f) for f in np.atleast_1d(features))
    if len(feats) != n or len(set(feats)) != n or not all(0 <= f < D for f in feats):
        raise ValueError(
            f"features must be {n} distinct feature indices in 0..{D - 1}; got {features!r}."
        )
    return feats


def _feature_label(f: int, D: int) -> str:
    return "x" if D == 1 else f"feature {f}"


def _data(X, D: int) -> np.ndarray:
    return check_data(X, dtype=np.float64, n_features=D)


def _ellipse(mean, cov, radius: float, **kwargs):
    """A matplotlib Ellipse for ``{x : (x - m)^T C^{-1} (x - m) = radius^2}`` (2 x 2 C)."""
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(np.asarray(cov, dtype=np.float64))  # for drawing only
    vals = np.maximum(vals, 0.0)
    angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))  # direction of the major axis
    return Ellipse(
        xy=np.asarray(mean, dtype=np.float64),
        width=2 * radius * np.sqrt(vals[1]),
        height=2 * radius * np.sqrt(vals[0]),
        angle=angle,
        **kwargs,
    )


def _labelled(post: Posterior, em: GMMParams | None, relabel: bool):
    """Posterior (and EM) with matched labels: EM's labelling when EM is given."""
    if em is not None:
        em, post, _ = match_labels(em, post, relabel)
    elif relabel and post.relabel_method is None and post.n_components > 1:
        post = post.relabel()  # against post.reference, or the highest-likelihood draw
    return em, post


def _to_rgba(colour):
    from matplotlib.colors import to_rgba

    return to_rgba(colour)
