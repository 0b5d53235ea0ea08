"""The fitted mixture itself: 1-D densities with a posterior band, 2-D ellipses."""

from __future__ import annotations

import numpy as np

from bayesgmm._core._precision import x64
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._checks import check_posterior, point_params, thin_draws
from bayesgmm.plots._common import (
    _axes,
    _check_features,
    _colour,
    _data,
    _ellipse,
    _feature_label,
    _labelled,
    _marginal,
)


# ------------------------------------------------------------------ density ---
@x64
def plot_density_1d(
    X,
    em,
    post: Posterior,
    *,
    feature: int = 0,
    ax=None,
    n_draws: int = 200,
    band_prob: float = 0.94,
    grid_size: int = 400,
    bins="auto",
    components: bool = True,
):
    """Data histogram, EM mixture density, posterior mean density and pointwise band.

    The posterior curves are computed on a grid for ``n_draws`` thinned draws
    at once (``GMMParams.log_prob`` over the batch of draws); the band is the
    central ``band_prob`` pointwise interval of the density over those draws.
    Densities need no relabelling.

    Parameters
    ----------
    X : array-like of shape (N, D)
    em : EMResult or GMMParams
    post : Posterior
    feature : int
        For ``D > 1``, the feature whose marginal density is drawn.
    ax : matplotlib Axes, optional
    n_draws : int
        Posterior draws used for the mean and the band.
    band_prob : float
    grid_size : int
    bins : int or str
        Histogram bins (``numpy.histogram_bin_edges``).
    components : bool
        Also draw the weighted EM components ``w_k N(x | mu_k, s_k^2)`` (dashed).

    Returns
    -------
    matplotlib Axes
    """
    em_p = point_params(em)
    post = check_posterior(post, em_p)
    D = post.n_features
    (f,) = _check_features(feature, D, 1)
    x = _data(X, D)[:, f]
    em_m = _marginal(em_p, [f])
    draws = _marginal(thin_draws(post.params, n_draws), [f])
    span = x.max() - x.min() if x.size > 1 else 1.0
    grid = np.linspace(x.min() - 0.15 * span, x.max() + 0.15 * span, int(grid_size))
    dens = np.exp(np.asarray(draws.log_prob(grid[:, None]), dtype=np.float64))  # (n, G)
    low, high = np.quantile(dens, [(1 - band_prob) / 2, (1 + band_prob) / 2], axis=0)

    ax = _axes(ax)
    ax.hist(x, bins=bins, density=True, color="0.82", edgecolor="white", label="data")
    ax.fill_between(
        grid,
        low,
        high,
        color="C0",
        alpha=0.3,
        linewidth=0,
        label=f"posterior {band_prob:.0%} band ({dens.shape[0]} draws)",
    )
    ax.plot(grid, dens.mean(axis=0), color="C0", lw=2, label="posterior mean density")
    em_dens = np.exp(np.asarray(em_m.log_prob(grid[:, None]), dtype=np.float64))
    ax.plot(grid, em_dens, color="k", lw=1.6, ls="-", label="EM density")
    if components:
        w = np.asarray(em_m.weights)
        mu = np.asarray(em_m.means)[:, 0]
        sd = np.sqrt(np.asarray(em_m.covariances)[:, 0, 0])
        comp = w * np.exp(-0.5 * ((grid[:, None] - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        for k in range(comp.shape[1]):
            ax.plot(
                grid,
                comp[:, k],
                color=_colour(k),
                lw=1.2,
                ls="--",
                label="EM components" if k == 0 else None,
            )
    ax.set_xlabel(_feature_label(f, D))
    ax.set_ylabel("density")
    ax.set_title("Mixture density: EM and posterior")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize="small")
    return ax


# ----------------------------------------------------------------- ellipses ---
@x64
def plot_ellipses(
    X,
    em,
    post: Posterior,
    *,
    features=(0, 1),
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
    The axes' limits frame the data and the EM ellipses (draws outside them,
    e.g. of a nearly empty component, are cut off); change them with
    ``ax.set_xlim``/``ax.set_ylim``.

    Parameters
    ----------
    X : array-like of shape (N, D), D >= 2
    em : EMResult or GMMParams
    post : Posterior
    features : (int, int)
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

    em_p = point_params(em)
    post = check_posterior(post, em_p)
    D, K = post.n_features, post.n_components
    if D < 2:
        raise ValueError("plot_ellipses needs D >= 2 features; for 1-D data use plot_density_1d.")
    feats = _check_features(features, D, 2)
    data = _data(X, D)[:, list(feats)]
    em_p, post = _labelled(post, em_p, relabel)
    em_m = _marginal(em_p, feats).to_numpy()
    draws = _marginal(thin_draws(post.params, n_draws), feats).to_numpy()
    radius = float(np.sqrt(chi2.ppf(level, 2)))

    ax = _axes(ax)
    ax.scatter(data[:, 0], data[:, 1], s=6, color="0.6", alpha=0.6, linewidths=0, zorder=1)
    for m in range(draws["means"].shape[0]):
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
                    em_m["means"][k],
                    em_m["covariances"][k],
                    radius,
                    fill=False,
                    edgecolor=colour,
                    lw=lw,
                    zorder=3,
                )
            )
    ax.scatter(
        em_m["means"][:, 0],
        em_m["means"][:, 1],
        marker="X",
        s=70,
        c=[_colour(k) for k in range(K)],
        edgecolors="white",
        linewidths=1,
        zorder=4,
    )
    # The window holds the data and the EM ellipses; a posterior draw of a nearly
    # empty component can wander far away and would otherwise shrink the data.
    half = radius * np.sqrt(np.diagonal(em_m["covariances"], axis1=-2, axis2=-1))
    lo = np.minimum(data.min(axis=0), (em_m["means"] - half).min(axis=0))
    hi = np.maximum(data.max(axis=0), (em_m["means"] + half).max(axis=0))
    pad = 0.05 * np.where(hi > lo, hi - lo, 1.0)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    handles = [
        Line2D([], [], color="k", lw=2.2, label=f"EM ({level:.0%} ellipse, X = mean)"),
        Line2D(
            [], [], color="k", lw=0.8, alpha=0.3, label=f"posterior, {len(draws['means'])} draws"
        ),
    ]
    handles += [Line2D([], [], color=_colour(k), lw=2.2, label=f"component {k}") for k in range(K)]
    ax.legend(handles=handles, fontsize="small", framealpha=0.85)
    ax.set_xlabel(_feature_label(feats[0], D))
    ax.set_ylabel(_feature_label(feats[1], D))
    ax.set_title("Component ellipses: EM over posterior draws")
    return ax
