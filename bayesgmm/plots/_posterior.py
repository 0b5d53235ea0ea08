"""Posterior summaries: a forest of parameter intervals, membership uncertainty."""

from __future__ import annotations

import numpy as np

from bayesgmm._core._precision import x64
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._checks import check_posterior, point_params
from bayesgmm.diagnostics._em_vs_posterior import em_vs_posterior
from bayesgmm.diagnostics._membership import posterior_membership
from bayesgmm.plots._common import (
    _axes,
    _check_features,
    _colour,
    _data,
    _feature_label,
    _labelled,
    _to_rgba,
)


# --------------------------------------------------------------- parameters ---
def plot_parameters(
    em,
    post: Posterior | None = None,
    *,
    ax=None,
    hdi_prob: float = 0.94,
    parameters=("weight", "mean", "covariance"),
    standardize: bool = False,
    table=None,
    relabel: bool = True,
):
    """Forest of posterior HDIs per parameter entry, with the EM value marked.

    Built from :func:`bayesgmm.em_vs_posterior` (pass ``table`` to reuse one).
    Each row: the HDI as a line, the posterior mean as a dot in the
    component's colour, the EM value as a diamond, black when inside the HDI
    and red when outside.

    Parameters
    ----------
    em : EMResult or GMMParams
    post : Posterior, optional if ``table`` is given
    ax : matplotlib Axes, optional
    hdi_prob : float
    parameters : sequence of str
        Which kinds of entry: among ``"weight"``, ``"mean"``, ``"covariance"``,
        ``"sd"``, ``"correlation"``.
    standardize : bool
        Plot ``(value - posterior mean) / posterior sd`` so that entries on very
        different scales share one axis (the EM diamond is then at ``z``).
    table : pandas.DataFrame, optional
        Output of ``em_vs_posterior(em, post)``.
    relabel : bool

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.lines import Line2D

    if table is None:
        if post is None:
            raise ValueError("plot_parameters needs post (or table=em_vs_posterior(em, post)).")
        table = em_vs_posterior(em, post, hdi_prob=hdi_prob, relabel=relabel)
    hdi_prob = float(table.attrs.get("hdi_prob", hdi_prob))
    rows = table[table.parameter.isin(list(parameters))].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"no entries of kinds {tuple(parameters)!r} in the table.")
    values = rows[["hdi_low", "hdi_high", "post_mean", "em"]].to_numpy(dtype=np.float64)
    if standardize:
        mean = rows.post_mean.to_numpy()[:, None]
        sd = rows.post_sd.to_numpy()[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(sd > 0, (values - mean) / sd, 0.0)
    low, high, mean, em_v = values.T
    inside = rows.inside.to_numpy(dtype=bool)
    n = len(rows)
    y = np.arange(n)[::-1]  # first row on top

    ax = _axes(ax, figsize=(6.4, 1.4 + 0.26 * n))
    colours = [_colour(int(k)) for k in rows.component]
    ax.hlines(y, low, high, colors=colours, lw=2.2, zorder=2)
    ax.scatter(mean, y, color=colours, s=22, zorder=3)
    ax.scatter(
        em_v,
        y,
        marker="D",
        s=30,
        facecolors="none",
        edgecolors=np.where(inside, "k", "red").tolist(),
        linewidths=1.5,
        zorder=4,
    )
    group = rows.parameter.astype(str).to_numpy()
    for i in np.flatnonzero(group[1:] != group[:-1]):  # separators between kinds
        ax.axhline(y[i] - 0.5, color="0.85", lw=0.8, zorder=1)
    if standardize:
        ax.axvline(0.0, color="0.6", lw=0.8, ls=":", zorder=1)
    ax.set_yticks(y, rows.name.tolist())
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("(value - posterior mean) / posterior sd" if standardize else "value")
    n_out = int((~inside).sum())
    ax.set_title(f"Posterior {hdi_prob:.0%} HDIs and EM values ({n_out} of {n} EM outside)")
    handles = [
        Line2D(
            [],
            [],
            color="0.4",
            lw=2.2,
            marker="o",
            ms=4,
            label=f"posterior mean, {hdi_prob:.0%} HDI",
        ),
        Line2D([], [], ls="none", marker="D", mfc="none", mec="k", label="EM (inside)"),
        Line2D([], [], ls="none", marker="D", mfc="none", mec="red", label="EM (outside)"),
    ]
    ax.legend(handles=handles, frameon=False, fontsize="small", loc="best")
    return ax


# -------------------------------------------------------------- assignments ---
@x64
def plot_assignments(
    X,
    post: Posterior,
    *,
    em=None,
    features=(0, 1),
    ax=None,
    threshold: float = 0.8,
    relabel: bool = True,
):
    """Points coloured by posterior modal cluster, uncertain memberships standing out.

    The membership of each point is its posterior mean membership probability
    (averaged over all relabelled draws); its cluster is the argmax. Points are
    the more opaque and the larger the less certain they are, and points with
    largest membership below ``threshold`` get a black edge. For 1-D data
    (or ``features=(i,)``) the y axis is the largest membership probability.

    Parameters
    ----------
    X : array-like of shape (N, D)
    post : Posterior
    em : EMResult or GMMParams, optional
        When given, clusters are labelled (and coloured) as EM's components.
    features : (int, int) or (int,)
    ax : matplotlib Axes, optional
    threshold : float
    relabel : bool

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.lines import Line2D

    post = check_posterior(post)
    em_p = None if em is None else point_params(em)
    _, post = _labelled(post, em_p, relabel)
    D, K = post.n_features, post.n_components
    feats = (0,) if D == 1 else _check_features(features, D, len(np.atleast_1d(features)))
    data = _data(X, D)
    resp = posterior_membership(post.params, data)
    labels = resp.argmax(axis=1)
    top = resp.max(axis=1)
    u = np.clip((1 - top) / (1 - 1 / K), 0, 1) if K > 1 else np.zeros_like(top)
    uncertain = top < threshold
    order = np.argsort(u, kind="stable")  # uncertain points drawn last, on top
    colours = np.array([_colour(k) for k in labels], dtype=object)
    rgba = np.array([_to_rgba(c) for c in colours])
    rgba[:, 3] = 0.3 + 0.7 * u

    ax = _axes(ax)
    xs = data[:, feats[0]]
    ys = top if len(feats) == 1 else data[:, feats[1]]
    ax.scatter(
        xs[order],
        ys[order],
        s=(10 + 70 * u)[order],
        c=rgba[order],
        edgecolors=np.where(uncertain, "k", "none")[order].tolist(),
        linewidths=0.8,
    )
    ax.set_xlabel(_feature_label(feats[0], D))
    if len(feats) == 1:
        ax.axhline(threshold, color="0.5", lw=0.8, ls=":")
        ax.set_ylabel("largest posterior membership probability")
    else:
        ax.set_ylabel(_feature_label(feats[1], D))
    ax.set_title("Posterior cluster assignments (size, opacity: uncertainty)")
    counts = np.bincount(labels, minlength=K)
    handles = [
        Line2D([], [], ls="none", marker="o", color=_colour(k), label=f"cluster {k} ({counts[k]})")
        for k in range(K)
    ]
    handles.append(
        Line2D(
            [],
            [],
            ls="none",
            marker="o",
            mfc="0.7",
            mec="k",
            ms=8,
            label=f"uncertain: max p < {threshold:g} ({int(uncertain.sum())})",
        )
    )
    ax.legend(handles=handles, frameon=False, fontsize="small")
    return ax
