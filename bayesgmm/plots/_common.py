"""Helpers shared by the plots: palette, argument order, names, marginals, ellipses, labels."""

from __future__ import annotations

import functools

import numpy as np

from bayesgmm._core._validation import check_data
from bayesgmm._core._warnings import warn
from bayesgmm._core.params import GMMParams
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._checks import check_posterior, point_params
from bayesgmm.diagnostics._matching import match_labels

# ------------------------------------------------------------------ palette ---
# Component k has COMPONENT_COLOURS[k % 9] in every plot. Matplotlib's tab10
# without its grey, written out so that a style sheet or ArviZ's rcParams do
# not change it; grey and black are left for what is not a component.
COMPONENT_COLOURS = (
    "#1f77b4",  # blue
    "#ff7f0e",  # orange
    "#2ca02c",  # green
    "#d62728",  # red
    "#9467bd",  # purple
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#bcbd22",  # olive
    "#17becf",  # cyan
)
EM_COLOUR = "#000000"  # the EM/MAP estimate as a whole (density, contours, reference lines)
POSTERIOR_COLOUR = "#6e6e6e"  # the posterior as a whole (mean density, bands, replicates)
OBSERVED_COLOUR = "#000000"  # observed data in predictive checks
DATA_COLOUR = "#b4b4b4"  # data points and histogram edges behind the fits
HISTOGRAM_COLOUR = "#f0f0f0"  # histogram bars: paler than any posterior band


def component_colours(n_components: int) -> list[str]:
    """The colour of each of ``n_components`` components, the same in every plot.

    Component ``k`` gets ``COMPONENT_COLOURS[k % 9]`` (matplotlib's tab10 without
    its grey). Black and grey are kept for the mixture as a whole: black for the
    EM estimate (and observed data in predictive checks), grey for the posterior.

    Parameters
    ----------
    n_components : int

    Returns
    -------
    list of str
        Hex colours, one per component.
    """
    return [_colour(k) for k in range(int(n_components))]


def _colour(k: int) -> str:
    return COMPONENT_COLOURS[int(k) % len(COMPONENT_COLOURS)]


# ----------------------------------------------------------- argument order ---
def estimates_first(*, data: bool):
    """Decorator: accept the earlier orders, where ``post`` came before ``em``.

    Every plot takes ``(X, em, post)`` (``(em, post)`` when it draws no data).
    ``plot_assignments(X, post, em=...)``, ``plot_ppc(X, post)`` and
    ``plot_trace(post, em=...)`` put the posterior in ``em``'s place: a
    :class:`Posterior` found there is moved to ``post`` with a ``FutureWarning``.
    """

    def deco(func):
        slot = 1 if data else 0
        new = f"{func.__name__}({'X, ' if data else ''}em, post)"

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if len(args) > slot and isinstance(args[slot], Posterior):
                if len(args) > slot + 1 or "post" in kwargs:
                    raise TypeError(
                        f"{func.__name__} got a Posterior where em goes and a post as well; "
                        f"the order is {new}."
                    )
                warn(
                    f"passing the posterior in em's place is the old argument order of "
                    f"{func.__name__}; it is now {new}: pass post=post (or em first). "
                    "The old order will stop working in a future release.",
                    FutureWarning,
                )
                kwargs["post"] = args[slot]
                args = args[:slot]
            return func(*args, **kwargs)

        return wrapper

    return deco


def _estimates(em, post, what: str, *, need_post: bool = False):
    """Checked ``(em params or None, posterior or None)``: at least one of them."""
    em_p = None if em is None else point_params(em)
    if post is not None:
        post = check_posterior(post, em_p)
    elif need_post:
        raise TypeError(f"{what} needs a posterior: pass post=...")
    if em_p is None and post is None:
        raise TypeError(f"{what} needs an estimate: pass em=..., post=... or both.")
    return em_p, post


def _shape(em_p, post) -> tuple[int, int]:
    """``(K, D)`` of whichever estimate is there."""
    src = post if em_p is None else em_p
    return src.n_components, src.n_features


# -------------------------------------------------------------------- names ---
def _feature_names(feature_names, D: int, X=None, *fitted) -> list[str]:
    """Axis names of the D features.

    ``feature_names`` if given, else a DataFrame's columns, else the
    ``feature_names`` an ``EMResult`` or ``Posterior`` in ``fitted`` carries,
    else ``feature d``.
    """
    if feature_names is None:
        columns = getattr(X, "columns", None)
        if columns is not None and len(columns) == D:
            return [str(c) for c in columns]
        for result in fitted:
            names = getattr(result, "feature_names", None)
            if names is not None and len(names) == D:
                return list(names)
        return [f"feature {d}" for d in range(D)]
    if isinstance(feature_names, str):
        feature_names = [feature_names]
    names = [str(n) for n in feature_names]
    if len(names) != D:
        raise ValueError(f"feature_names must name the {D} features; got {len(names)} names.")
    return names


# ------------------------------------------------------------------ helpers ---
def _axes(ax, figsize=(6.4, 4.8)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


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


def _labelled(post: Posterior | None, em: GMMParams | None, relabel: bool):
    """Posterior (and EM) with matched labels: EM's labelling when EM is given.

    A posterior relabelled already keeps its labels and EM is aligned to it, so
    component k has one colour in every plot of the same pair of estimates.
    """
    if post is None:
        return em, post
    if em is not None:
        em, post, _ = match_labels(em, post, relabel)
    elif relabel and post.relabel_method is None and post.n_components > 1:
        post = post.relabel()  # against post.reference, or the highest-likelihood draw
    return em, post


def _to_rgba(colour):
    from matplotlib.colors import to_rgba

    return to_rgba(colour)


def _kde(values: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian kernel density of each row of ``values`` (..., N) on ``grid`` (G,)."""
    values = np.asarray(values, dtype=np.float64)
    u = (grid[:, None] - values[..., None, :]) / bandwidth  # (..., G, N)
    return np.exp(-0.5 * u**2).sum(axis=-1) / (values.shape[-1] * bandwidth * np.sqrt(2 * np.pi))


def _bandwidth(x: np.ndarray) -> float:
    """Silverman's rule of thumb, with a floor for constant data."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(ddof=1) if x.size > 1 else 0.0
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25])) if x.size > 1 else 0.0
    spread = min(sd, iqr / 1.349) if iqr > 0 else sd
    if not spread > 0:
        spread = max(abs(float(x.mean())), 1.0) * 1e-3 if x.size else 1.0
    return float(0.9 * spread * x.size ** (-0.2))
