"""The fitted mixture itself: 1-D densities with a posterior band, 2-D contours and ellipses."""

from __future__ import annotations

import numpy as np

from bayesgmm._core._precision import x64
from bayesgmm.diagnostics._checks import posterior_mean, thin_draws
from bayesgmm.plots._common import (
    DATA_COLOUR,
    EM_COLOUR,
    HISTOGRAM_COLOUR,
    POSTERIOR_COLOUR,
    _axes,
    _check_features,
    _colour,
    _data,
    _ellipse,
    _estimates,
    _feature_names,
    _labelled,
    _marginal,
    _shape,
    estimates_first,
)


def _density(params, points: np.ndarray) -> np.ndarray:
    """Mixture density of ``params`` (any batch shape) at ``points`` (G, d), as float64."""
    return np.exp(np.asarray(params.log_prob(points), dtype=np.float64))


# --------------------------------------------------------------- density 1d ---
@estimates_first(data=True)
@x64
def plot_density_1d(
    X,
    em=None,
    post=None,
    *,
    feature: int = 0,
    feature_names=None,
    ax=None,
    n_draws: int = 200,
    band_prob: float = 0.94,
    grid_size: int = 400,
    bins="auto",
    components: bool = True,
    relabel: bool = True,
):
    """Data histogram, EM mixture density, posterior mean density and pointwise band.

    The posterior curves are computed on a grid for ``n_draws`` thinned draws
    at once (``GMMParams.log_prob`` over the batch of draws); the band is the
    central ``band_prob`` pointwise interval of the density over those draws.
    Densities need no relabelling. The EM density is black, the posterior grey,
    and the components dashed in their colours (see :func:`component_colours`).

    Parameters
    ----------
    X : array-like of shape (N, D)
    em : EMResult or GMMParams, optional
    post : Posterior, optional
        At least one of ``em`` and ``post``.
    feature : int
        For ``D > 1``, the feature whose marginal density is drawn.
    feature_names : sequence of str, optional
        Names of the D features for the axis label (default: ``feature d``, or
        the columns of a DataFrame ``X``).
    ax : matplotlib Axes, optional
    n_draws : int
        Posterior draws used for the mean and the band.
    band_prob : float
    grid_size : int
    bins : int or str
        Histogram bins (``numpy.histogram_bin_edges``).
    components : bool
        Also draw the weighted components ``w_k N(x | mu_k, s_k^2)`` (dashed):
        EM's, or without ``em`` their posterior mean over relabelled draws.
    relabel : bool
        Match the posterior's labels to EM's (or relabel it) for the components.

    Returns
    -------
    matplotlib Axes
    """
    em_p, post = _estimates(em, post, "plot_density_1d")
    _, D = _shape(em_p, post)
    (f,) = _check_features(feature, D, 1)
    names = _feature_names(feature_names, D, X, em, post)
    x = _data(X, D)[:, f]
    span = x.max() - x.min() if x.size > 1 else 1.0
    span = span if span > 0 else 1.0
    grid = np.linspace(x.min() - 0.15 * span, x.max() + 0.15 * span, int(grid_size))

    ax = _axes(ax)
    ax.hist(
        x,
        bins=bins,
        density=True,
        facecolor=HISTOGRAM_COLOUR,
        edgecolor=DATA_COLOUR,
        linewidth=0.8,
        label="data",
    )
    if post is not None:
        draws = _marginal(thin_draws(post.params, n_draws), [f])
        dens = _density(draws, grid[:, None])  # (n, G)
        low, high = np.quantile(dens, [(1 - band_prob) / 2, (1 + band_prob) / 2], axis=0)
        ax.fill_between(
            grid,
            low,
            high,
            color=POSTERIOR_COLOUR,
            alpha=0.4,
            linewidth=0,
            label=f"posterior {band_prob:.0%} band ({dens.shape[0]} draws)",
        )
        ax.plot(
            grid, dens.mean(axis=0), color=POSTERIOR_COLOUR, lw=2.2, label="posterior mean density"
        )
    if em_p is not None:
        em_dens = _density(_marginal(em_p, [f]), grid[:, None])
        ax.plot(grid, em_dens, color=EM_COLOUR, lw=1.4, label="EM density")
    if components:
        em_p, post = _labelled(post, em_p, relabel)
        if em_p is not None:
            src, label = _marginal(em_p, [f]).to_numpy(), "EM components"
            w, mu = src["weights"][None], src["means"][None, :, 0]
            sd = np.sqrt(src["covariances"][None, :, 0, 0])
        else:
            src = _marginal(thin_draws(post.params, n_draws), [f]).to_numpy()
            label = "posterior components"
            w, mu = src["weights"], src["means"][..., 0]
            sd = np.sqrt(src["covariances"][..., 0, 0])
        z = (grid[:, None, None] - mu) / sd  # (G, n, K)
        comp = (w * np.exp(-0.5 * z**2) / (sd * np.sqrt(2 * np.pi))).mean(axis=1)  # (G, K)
        for k in range(comp.shape[1]):
            ax.plot(
                grid,
                comp[:, k],
                color=_colour(k),
                lw=1.2,
                ls="--",
                label=f"{label} (colours)" if k == 0 else None,
            )
    ax.set_xlabel(names[f])
    ax.set_ylabel("density")
    what = " and ".join(s for s, p in (("EM", em_p), ("posterior", post)) if p is not None)
    ax.set_title(f"Mixture density: {what}")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize="small")
    return ax


# --------------------------------------------------------------- density 2d ---
@estimates_first(data=True)
@x64
def plot_density_2d(
    X,
    em=None,
    post=None,
    *,
    features=(0, 1),
    feature_names=None,
    ax=None,
    levels=(0.5, 0.75, 0.9, 0.95),
    n_draws: int = 100,
    grid_size: int = 120,
    points: bool = True,
    relabel: bool = True,
):
    """Contours of the mixture density over the data (mclust's density plot).

    The EM density is drawn in black, the posterior mean density (over
    ``n_draws`` thinned draws; label-invariant) in dashed grey, on the same
    levels, so their shapes compare directly. The levels are highest-density
    contours of the data: the contour marked ``90%`` holds 90% of the points
    inside it under the EM density (the posterior mean density without
    ``em``). Component means are marked by crosses in their colours.

    Parameters
    ----------
    X : array-like of shape (N, D), D >= 2
    em : EMResult or GMMParams, optional
    post : Posterior, optional
        At least one of ``em`` and ``post``.
    features : (int, int)
        The two features; the densities are the exact marginal mixtures.
    feature_names : sequence of str, optional
    ax : matplotlib Axes, optional
    levels : sequence of float in (0, 1)
        Fractions of the points inside each contour.
    n_draws, grid_size : int
    points : bool
        Draw the data points.
    relabel : bool
        Match labels before marking the posterior's component means (no ``em``).

    Returns
    -------
    matplotlib Axes
        The contour sets are among ``ax.collections``, with gid ``"EM density"``
        and ``"posterior mean density"``.
    """
    from matplotlib.lines import Line2D

    em_p, post = _estimates(em, post, "plot_density_2d")
    K, D = _shape(em_p, post)
    if D < 2:
        raise ValueError(
            "plot_density_2d needs D >= 2 features; for 1-D data use plot_density_1d."
        )
    feats = _check_features(features, D, 2)
    names = _feature_names(feature_names, D, X, em, post)
    probs = np.sort(np.asarray(levels, dtype=np.float64))[::-1]  # widest contour first
    if probs.size == 0 or not np.all((probs > 0) & (probs < 1)):
        raise ValueError(f"levels must be fractions in (0, 1); got {levels!r}.")
    data = _data(X, D)[:, list(feats)]

    lo, hi = data.min(axis=0), data.max(axis=0)
    pad = 0.1 * np.where(hi > lo, hi - lo, 1.0)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], int(grid_size))
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], int(grid_size))
    xx, yy = np.meshgrid(gx, gy)
    cells = np.column_stack([xx.ravel(), yy.ravel()])
    surfaces = {}
    if em_p is not None:
        em_m = _marginal(em_p, feats)
        surfaces["EM"] = (_density(em_m, cells), _density(em_m, data))
    n_used = 0
    if post is not None:
        draws = _marginal(thin_draws(post.params, n_draws), feats)
        n_used = draws.batch_shape[0]
        surfaces["posterior"] = (
            _density(draws, cells).mean(axis=0),
            _density(draws, data).mean(axis=0),
        )
    # Thresholds from the first density (EM when given): the level of probability p
    # is the (1 - p) quantile of that density at the data points.
    at_points = next(iter(surfaces.values()))[1]
    thresholds = np.quantile(at_points, 1 - probs)  # increasing, as contour wants

    ax = _axes(ax)
    if points:
        ax.scatter(data[:, 0], data[:, 1], s=8, color=DATA_COLOUR, linewidths=0, zorder=1)
    sets = []
    handles = []
    styles = {"EM": (EM_COLOUR, "solid", 1.3), "posterior": (POSTERIOR_COLOUR, "dashed", 1.6)}
    for name, (z, _) in surfaces.items():
        colour, ls, lw = styles[name]
        cs = ax.contour(
            xx,
            yy,
            z.reshape(xx.shape),
            levels=thresholds,
            colors=colour,
            linestyles=ls,
            linewidths=lw,
            zorder=2,
        )
        cs.set_gid(f"{name} density" if name == "EM" else "posterior mean density")
        sets.append(cs)
        label = "EM density" if name == "EM" else f"posterior mean density ({n_used} draws)"
        handles.append(Line2D([], [], color=colour, ls=ls, lw=lw, label=label))
    first = sets[0]
    ax.clabel(
        first,
        fmt=dict(zip(first.levels, [f"{p:.0%}" for p in probs], strict=True)),
        fontsize="x-small",
    )
    if em_p is not None:
        means = _marginal(em_p, feats).to_numpy()["means"]
        who = "EM"
    else:
        _, post_l = _labelled(post, None, relabel)
        means = posterior_mean(_marginal(post_l.params, feats)).to_numpy()["means"]
        who = "posterior"
    ax.scatter(
        means[:, 0],
        means[:, 1],
        marker="X",
        s=70,
        c=[_colour(k) for k in range(K)],
        edgecolors="white",
        linewidths=1,
        zorder=4,
    )
    handles.append(
        Line2D([], [], ls="none", marker="X", color="0.3", label=f"{who} component means")
    )
    ax.legend(handles=handles, fontsize="small", framealpha=0.85)
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_xlabel(names[feats[0]])
    ax.set_ylabel(names[feats[1]])
    ax.set_title(
        "Mixture density (contours hold "
        + ", ".join(f"{p:.0%}" for p in probs[::-1])
        + " of the points)",
        fontsize="medium",
    )
    return ax


# ----------------------------------------------------------------- ellipses ---
@estimates_first(data=True)
@x64
def plot_ellipses(
    X,
    em=None,
    post=None,
    *,
    features=(0, 1),
    feature_names=None,
    ax=None,
    n_draws: int = 50,
    level: float = 0.95,
    relabel: bool = True,
):
    """EM covariance ellipses, bold, over faint ellipses of posterior draws.

    Each ellipse holds ``level`` of its Gaussian's mass in the two chosen
    features (radius ``sqrt(chi2_2^{-1}(level))`` in Mahalanobis units, about
    2.45 for 95%). Components are matched as in :func:`bayesgmm.em_vs_posterior`
    and coloured alike, so a draw's ellipse shares its EM component's colour.
    Without ``em`` the bold ellipses are those of the posterior mean of the
    relabelled draws; without ``post`` only EM's are drawn.
    The axes' limits frame the data and the bold ellipses (draws outside them,
    e.g. of a nearly empty component, are cut off); change them with
    ``ax.set_xlim``/``ax.set_ylim``.

    Parameters
    ----------
    X : array-like of shape (N, D), D >= 2
    em : EMResult or GMMParams, optional
    post : Posterior, optional
        At least one of ``em`` and ``post``.
    features : (int, int)
    feature_names : sequence of str, optional
    ax : matplotlib Axes, optional
    n_draws : int
        Posterior draws whose ellipses are drawn (evenly thinned over chains).
    level : float
    relabel : bool

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.lines import Line2D
    from scipy.stats import chi2

    em_p, post = _estimates(em, post, "plot_ellipses")
    K, D = _shape(em_p, post)
    if D < 2:
        raise ValueError("plot_ellipses needs D >= 2 features; for 1-D data use plot_density_1d.")
    feats = _check_features(features, D, 2)
    names = _feature_names(feature_names, D, X, em, post)
    data = _data(X, D)[:, list(feats)]
    em_p, post = _labelled(post, em_p, relabel)
    if em_p is not None:
        bold, who = _marginal(em_p, feats).to_numpy(), "EM"
    else:
        bold, who = posterior_mean(_marginal(post.params, feats)).to_numpy(), "posterior mean"
    radius = float(np.sqrt(chi2.ppf(level, 2)))

    ax = _axes(ax)
    ax.scatter(data[:, 0], data[:, 1], s=6, color=DATA_COLOUR, linewidths=0, zorder=1)
    n_shown = 0
    if post is not None:
        draws = _marginal(thin_draws(post.params, n_draws), feats).to_numpy()
        n_shown = draws["means"].shape[0]
        for m in range(n_shown):
            for k in range(K):
                ax.add_patch(
                    _ellipse(
                        draws["means"][m, k],
                        draws["covariances"][m, k],
                        radius,
                        fill=False,
                        edgecolor=_colour(k),
                        alpha=0.15,
                        lw=0.8,
                        zorder=2,
                    )
                )
    for k in range(K):
        for lw, colour in ((4.0, "white"), (2.2, _colour(k))):  # white halo for contrast
            ax.add_patch(
                _ellipse(
                    bold["means"][k],
                    bold["covariances"][k],
                    radius,
                    fill=False,
                    edgecolor=colour,
                    lw=lw,
                    zorder=3,
                )
            )
    ax.scatter(
        bold["means"][:, 0],
        bold["means"][:, 1],
        marker="X",
        s=70,
        c=[_colour(k) for k in range(K)],
        edgecolors="white",
        linewidths=1,
        zorder=4,
    )
    # The window holds the data and the bold ellipses; a posterior draw of a nearly
    # empty component can wander far away and would otherwise shrink the data.
    half = radius * np.sqrt(np.diagonal(bold["covariances"], axis1=-2, axis2=-1))
    lo = np.minimum(data.min(axis=0), (bold["means"] - half).min(axis=0))
    hi = np.maximum(data.max(axis=0), (bold["means"] + half).max(axis=0))
    pad = 0.05 * np.where(hi > lo, hi - lo, 1.0)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    handles = [Line2D([], [], color="0.2", lw=2.2, label=f"{who} ({level:.0%} ellipse, X = mean)")]
    if n_shown:
        handles.append(
            Line2D([], [], color="0.2", lw=0.8, alpha=0.3, label=f"posterior, {n_shown} draws")
        )
    handles += [Line2D([], [], color=_colour(k), lw=2.2, label=f"component {k}") for k in range(K)]
    ax.legend(handles=handles, fontsize="small", framealpha=0.85)
    ax.set_xlabel(names[feats[0]])
    ax.set_ylabel(names[feats[1]])
    title = f"Component ellipses: {who}" + (" over posterior draws" if n_shown else "")
    ax.set_title(title)
    return ax
