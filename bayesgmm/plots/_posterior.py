"""Posterior summaries: parameter intervals per group, membership (un)certainty."""

from __future__ import annotations

import numpy as np

from bayesgmm._core._precision import x64
from bayesgmm.diagnostics._em_vs_posterior import em_vs_posterior
from bayesgmm.diagnostics._estimates import sort_estimates
from bayesgmm.diagnostics._membership import posterior_membership
from bayesgmm.plots._common import (
    EM_COLOUR,
    _axes,
    _check_features,
    _colour,
    _data,
    _estimates,
    _feature_names,
    _labelled,
    _shape,
    _to_rgba,
    estimates_first,
)


def _group_title(parameter: str, index: str, names: list[str]) -> str:
    """``"mean (waiting)"``, ``"variance (eruptions)"``, ``"covariance (a, b)"``..."""
    if not index:
        return parameter
    idx = [int(i) for i in index.split(",")]
    if parameter == "covariance" and idx[0] == idx[1]:
        return f"variance ({names[idx[0]]})"
    return f"{parameter} ({', '.join(names[i] for i in idx)})"


def _entry_label(parameter: str, k: int, index: str, names: list[str]) -> str:
    """``"weight 0"``, ``"mean 1 (waiting)"``, ``"covariance 0 (eruptions, waiting)"``..."""
    head, sep, tail = _group_title(parameter, index, names).partition(" (")
    return f"{head} {k}{sep}{tail}"


def _legend(fig_or_ax, handles, own_figure: bool):
    """The legend below the panels in a figure of our own, else inside the (first) axis."""
    if own_figure:
        ncols = len(handles) if len(handles) <= 4 else -(-len(handles) // 2)  # two rows
        fig_or_ax.figure.legend(
            handles=handles, loc="outside lower center", ncols=ncols, frameon=False
        )
    else:
        fig_or_ax.legend(handles=handles, frameon=False, fontsize="small")


# --------------------------------------------------------------- parameters ---
def plot_parameters(
    *estimates,
    em=None,
    post=None,
    vb=None,
    labels=None,
    ax=None,
    axes=None,
    hdi_prob: float = 0.94,
    parameters=("weight", "mean", "covariance"),
    standardize: bool | None = None,
    feature_names=None,
    table=None,
    relabel: bool = True,
):
    """HDIs of each posterior (and VB fit) per parameter entry, with the EM value marked.

    ``plot_parameters(em, post)`` for one posterior; any number of estimates,
    in any order, to put them side by side:
    ``plot_parameters(em, post_nuts, post_gibbs, vb)``.

    Built from :func:`bayesgmm.em_vs_posterior` (pass ``table`` to reuse one).
    Each entry gets one row per interval estimate, one under the other: its HDI
    as a line and its mean as a marker in the component's colour, the first
    posterior's (the reference's) thickest, with a dot; the others thinner,
    with squares, triangles... (named in the legend: ``"NUTS"``, ``"Gibbs"``,
    ``"VB"``). The EM value is a black diamond on the reference's row, hollow
    when inside its HDI and filled when outside.

    By default every group of entries on one scale gets its own panel: the
    weights, the means of each feature, each covariance entry (variance of a
    feature, covariance of a pair), each sd and correlation, with one row per
    component. With ``standardize=True``, or when one ``ax`` is given, all
    entries share one axis as ``(value - reference mean) / reference sd``
    (``standardize=False`` with an ``ax``: raw values on one axis).

    Parameters
    ----------
    *estimates : EMResult, GMMParams, Posterior or VBResult
        One point estimate to mark (an EMResult or GMMParams; with neither, a
        VBResult given first, its variational posterior mean) and any number
        of Posteriors (NUTS, Gibbs) and VBResults to draw; optional beside
        ``table`` (then only the point estimate is needed, for the names).
    em, post, vb : optional
        The earlier keywords: the point estimate, a Posterior, a VBResult.
    labels : sequence of str, optional
        Names of the Posteriors and VBResults in the order given, for the
        legend (default ``"NUTS"``/``"Gibbs"``/``"VB"``, a lone posterior
        ``"posterior"``); see :func:`bayesgmm.em_vs_posterior`.
    ax : matplotlib Axes, optional
        Draw all entries on this one axis (standardised unless
        ``standardize=False``).
    axes : array of matplotlib Axes, optional
        One per panel (row-major; extra ones are hidden).
    hdi_prob : float
    parameters : sequence of str
        Which kinds of entry: among ``"weight"``, ``"mean"``, ``"covariance"``,
        ``"sd"``, ``"correlation"``.
    standardize : bool, optional
        One axis of standardised values (True), panels (None, the default,
        without ``ax``).
    feature_names : sequence of str, optional
        Names of the features in the panel titles (default ``feature d``).
    table : pandas.DataFrame, optional
        Output of ``em_vs_posterior(em, post, ...)``; its estimates are drawn.
    relabel : bool

    Returns
    -------
    ndarray of matplotlib Axes (panels), or matplotlib Axes (one axis)
    """
    est = sort_estimates(
        estimates,
        em=em,
        post=post,
        vb=vb,
        labels=labels,
        what="plot_parameters",
        need_intervals=table is None,
    )
    if table is None:
        table = em_vs_posterior(
            *(e.source for e in est.intervals),
            em=est.point_source,
            labels=[e.label for e in est.intervals],
            hdi_prob=hdi_prob,
            relabel=relabel,
        )
    hdi_prob = float(table.attrs.get("hdi_prob", hdi_prob))
    series = _series(table)
    rows = table[table.parameter.isin(list(parameters))].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"no entries of kinds {tuple(parameters)!r} in the table.")
    D = est.point.n_features
    sources = (e.source for e in est.intervals)
    names = _feature_names(feature_names, D, None, est.point_source, *sources)
    one_axis = bool(standardize) or (ax is not None and axes is None)
    if one_axis:
        return _parameters_one_axis(rows, series, ax, hdi_prob, standardize is not False, names)
    return _parameters_panels(rows, series, axes, hdi_prob, names)


def _series(table) -> list[tuple[str, tuple[str, str, str]]]:
    """``(label, (low, high, mean) columns)`` of each estimate in the table, reference first."""
    pairs = table.attrs.get("estimates")
    if pairs is None:  # a table without its attrs: the posterior's columns, and VB's if there
        pairs = (("posterior", ""),) + ((("VB", "vb"),) if "vb_mean" in table.columns else ())
    out = []
    for label, prefix in pairs:
        cols = (f"{prefix}_hdi_low", f"{prefix}_hdi_high", f"{prefix}_mean") if prefix else _REF
        if set(cols) <= set(table.columns):
            out.append((label, cols))
    return out


_REF = ("hdi_low", "hdi_high", "post_mean")
_MARKERS = ("o", "s", "^", "v", "P", "X", "*", "h")


def _style(i: int) -> dict:
    """How estimate ``i`` is drawn: the reference thick with dots, the others thinner."""
    return {
        "lw": 2.2 if i == 0 else 1.3,
        "marker": _MARKERS[i % len(_MARKERS)],
        "s": 22 if i == 0 else 16,
        "alpha": 1.0 if i == 0 else 0.8,
    }


def _offsets(n: int) -> np.ndarray:
    """Heights of the n estimates' rows around an entry's height, the reference on top."""
    step = min(0.28, 0.8 / n)
    return (n - 1) * step / 2 - step * np.arange(n)


def _forest(ax, rows, y, series, standardize: bool):
    """Each estimate's HDI lines and mean markers, and the EM diamonds, of ``rows`` at ``y``."""
    inside = rows.inside.to_numpy(dtype=bool)
    colours = [_colour(int(k)) for k in rows.component]
    dy = _offsets(len(series))
    for i, (_, cols) in enumerate(series):
        low, high, mean = _values(rows, standardize, cols).T
        style = _style(i)
        kw = {"alpha": style["alpha"]} if i else {}
        ax.hlines(y + dy[i], low, high, colors=colours, lw=style["lw"], zorder=2, **kw)
        ax.scatter(
            mean, y + dy[i], color=colours, marker=style["marker"], s=style["s"], zorder=3, **kw
        )
        if i == 0:  # the point estimate on the reference's row (its collection comes third)
            em_v = _values(rows, standardize, ("em",))[:, 0]
            ax.scatter(
                em_v,
                y + dy[0],
                marker="D",
                s=30,
                facecolors=[EM_COLOUR if not o else "none" for o in inside],
                edgecolors=EM_COLOUR,
                linewidths=1.3,
                zorder=4,
            )
    return int((~inside).sum())


def _legend_handles(hdi_prob, series):
    from matplotlib.lines import Line2D

    handles = []
    for i, (label, _) in enumerate(series):
        style = _style(i)
        handles.append(
            Line2D(
                [],
                [],
                color="0.4",
                lw=style["lw"],
                marker=style["marker"],
                ms=4 if i == 0 else 3.5,
                alpha=style["alpha"],
                label=f"{label} mean, {hdi_prob:.0%} HDI",
            )
        )
    which = "HDI" if len(series) == 1 else f"{series[0][0]} HDI"
    handles += [
        Line2D(
            [], [], ls="none", marker="D", mfc="none", mec=EM_COLOUR, label=f"EM inside {which}"
        ),
        Line2D(
            [],
            [],
            ls="none",
            marker="D",
            mfc=EM_COLOUR,
            mec=EM_COLOUR,
            label=f"EM outside {which}",
        ),
    ]
    return handles


def _title(hdi_prob, series, n_out: int, n: int) -> str:
    if len(series) == 1:
        who = series[0][0]
        who = who[:1].upper() + who[1:]
        return f"{who} {hdi_prob:.0%} HDIs and EM values ({n_out} of {n} EM outside)"
    labels = ", ".join(label for label, _ in series)
    return (
        f"{hdi_prob:.0%} HDIs ({labels}) and EM values "
        f"({n_out} of {n} EM outside the {series[0][0]} HDI)"
    )


def _values(rows, standardize: bool, columns):
    """The columns to draw, as values or standardised by the reference posterior."""
    values = rows[list(columns)].to_numpy(dtype=np.float64)
    if standardize:
        mean = rows.post_mean.to_numpy()[:, None]
        sd = rows.post_sd.to_numpy()[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(sd > 0, (values - mean) / sd, 0.0)
    return values


def _parameters_one_axis(rows, series, ax, hdi_prob, standardize, names):
    n = len(rows)
    y = np.arange(n)[::-1]  # first row on top
    ax = _axes(ax, figsize=(8.0, 1.6 + 0.26 * n * max(1.0, 0.6 * len(series))))
    n_out = _forest(ax, rows, y, series, standardize)
    group = rows.parameter.astype(str).to_numpy()
    for i in np.flatnonzero(group[1:] != group[:-1]):  # separators between kinds
        ax.axhline(y[i] - 0.5, color="0.85", lw=0.8, zorder=1)
    if standardize:
        ax.axvline(0.0, color="0.6", lw=0.8, ls=":", zorder=1)
    labels = [
        _entry_label(str(p), int(k), i, names)
        for p, k, i in zip(rows.parameter, rows.component, rows["index"], strict=True)
    ]
    ax.set_yticks(y, labels)
    for tick, k in zip(ax.get_yticklabels(), rows.component, strict=True):
        tick.set_color(_colour(int(k)))
    handles = _legend_handles(hdi_prob, series)
    ax.set_ylim(-0.7, n + 0.6 + 0.7 * (-(-len(handles) // 3) - 1))  # room for the legend
    ref = series[0][0] if len(series) > 1 else "posterior"
    ax.set_xlabel(f"(value - {ref} mean) / {ref} sd" if standardize else "value")
    ax.set_title(_title(hdi_prob, series, n_out, n), fontsize="medium")
    # on the axis, in a strip kept free above the rows: ax.get_legend() finds it
    ax.legend(
        handles=handles,
        frameon=False,
        fontsize="small",
        loc="upper center",
        ncols=3,
    )
    return ax


def _parameters_panels(rows, series, axes, hdi_prob, names):
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys(zip(rows.parameter.astype(str), rows["index"], strict=True)))
    n_panels = len(keys)
    n_cols = min(3, n_panels)
    n_rows = -(-n_panels // n_cols)
    K = int(rows.component.max()) + 1
    own_figure = axes is None
    if own_figure:
        per_row = 0.32 * max(1.0, 0.6 * len(series))
        _, axes = plt.subplots(
            n_rows,
            n_cols,
            figsize=(3.4 * n_cols, (0.9 + per_row * K) * n_rows + 0.9),
            squeeze=False,
            layout="constrained",
        )
    axes = np.asarray(axes, dtype=object)
    flat = axes.ravel()
    if flat.size < n_panels:
        raise ValueError(f"axes must hold {n_panels} panels; got {flat.size}.")
    n_out = 0
    for ax, (parameter, index) in zip(flat, keys, strict=False):
        sel = rows[(rows.parameter.astype(str) == parameter) & (rows["index"] == index)]
        y = -sel.component.to_numpy()  # component 0 on top
        n_out += _forest(ax, sel, y, series, False)
        ax.set_yticks(y, [f"{k}" for k in sel.component])
        for tick, k in zip(ax.get_yticklabels(), sel.component, strict=True):
            tick.set_color(_colour(int(k)))
        ax.set_ylim(y.min() - 0.6, y.max() + 0.6)
        ax.set_title(_group_title(parameter, index, names), fontsize="medium")
        ax.tick_params(labelsize="small")
        ax.grid(axis="x", color="0.92", lw=0.8)
        ax.set_axisbelow(True)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    for ax in flat[:n_panels:n_cols]:
        ax.set_ylabel("component")
    fig = flat[0].figure
    fig.suptitle(_title(hdi_prob, series, n_out, len(rows)), fontsize="medium")
    _legend(flat[0], _legend_handles(hdi_prob, series), own_figure)
    return axes


# -------------------------------------------------------------- assignments ---
@estimates_first(data=True)
@x64
def plot_assignments(
    X,
    em=None,
    post=None,
    *,
    features=(0, 1),
    feature_names=None,
    ax=None,
    threshold: float = 0.8,
    relabel: bool = True,
):
    """Classification and uncertainty: points coloured by cluster, uncertain ones standing out.

    With ``post``, the membership of each point is its posterior mean
    membership probability (averaged over all relabelled draws, labelled as
    EM's components when ``em`` is given); with ``em`` only, EM's
    responsibilities (mclust's classification and uncertainty plots in one).
    Its cluster is the argmax. Points are the more opaque and the larger the
    less certain they are, and points with largest membership below
    ``threshold`` get a black edge. For 1-D data (or ``features=(i,)``) the
    y axis is the largest membership probability.

    Parameters
    ----------
    X : array-like of shape (N, D)
    em : EMResult or GMMParams, optional
    post : Posterior, optional
        At least one of ``em`` and ``post``.
    features : (int, int) or (int,)
    feature_names : sequence of str, optional
    ax : matplotlib Axes, optional
    threshold : float
    relabel : bool

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.lines import Line2D

    em_p, post = _estimates(em, post, "plot_assignments")
    K, D = _shape(em_p, post)
    feats = (0,) if D == 1 else _check_features(features, D, len(np.atleast_1d(features)))
    names = _feature_names(feature_names, D, X, em, post)
    data = _data(X, D)
    if post is not None:
        _, post = _labelled(post, em_p, relabel)
        resp = posterior_membership(post.params, data)
        who = "Posterior"
    else:
        resp = np.asarray(em_p.responsibilities(data), dtype=np.float64)
        who = "EM"
    labels = resp.argmax(axis=1)
    top = resp.max(axis=1)
    u = np.clip((1 - top) / (1 - 1 / K), 0, 1) if K > 1 else np.zeros_like(top)
    uncertain = top < threshold
    order = np.argsort(u, kind="stable")  # uncertain points drawn last, on top
    rgba = np.array([_to_rgba(_colour(k)) for k in labels])
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
    ax.set_xlabel(names[feats[0]])
    if len(feats) == 1:
        ax.axhline(threshold, color="0.5", lw=0.8, ls=":")
        ax.set_ylabel(f"largest {who.lower()} membership probability")
    else:
        ax.set_ylabel(names[feats[1]])
    ax.set_title(f"{who} cluster assignments (size, opacity: uncertainty)")
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
