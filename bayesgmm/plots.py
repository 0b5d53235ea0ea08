"""Plots of an EM/MAP estimate against posterior draws (matplotlib).

Every function takes an optional ``ax`` (or ``axes``) and returns what it drew
on, so plots compose into a user's own figures. Components keep one colour
everywhere (``C0``, ``C1``, ... in EM's labelling, or the posterior's once
relabelled), so the ellipses, the assignments and the parameter forest of one
fit read together.

- :func:`plot_density_1d`: data histogram, EM density, posterior mean density
  and a pointwise band over posterior draws (label-invariant).
- :func:`plot_ellipses`: EM ellipses, bold, over faint ellipses of posterior draws.
- :func:`plot_parameters`: forest of posterior HDIs with EM values marked.
- :func:`plot_assignments`: points coloured by posterior modal cluster, uncertain
  memberships standing out.
- :func:`plot_trace`: ArviZ trace plot of the relabelled posterior.
- :func:`plot_ppc`: posterior predictive check of simple statistics.

For data with more than two features, choose what to show with ``feature=i``
(1-D) or ``features=(i, j)`` (2-D): the plots use the exact marginal mixture
of those features (weights, the selected means and covariance block).
"""

from __future__ import annotations

import warnings

import numpy as np

from bayesgmm._precision import x64
from bayesgmm._validation import check_data
from bayesgmm.compare import (
    _check_posterior,
    _em_params,
    _match,
    compare,
)
from bayesgmm.membership import posterior_membership
from bayesgmm.params import GMMParams
from bayesgmm.posterior import Posterior
from bayesgmm.ppc import _thin, ppc_replicates

__all__ = [
    "plot_assignments",
    "plot_density_1d",
    "plot_ellipses",
    "plot_parameters",
    "plot_ppc",
    "plot_trace",
]


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
        em, post, _ = _match(em, post, relabel)
    elif relabel and post.relabel_method is None and post.n_components > 1:
        post = post.relabel()  # against post.reference, or the highest-likelihood draw
    return em, post


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
    em_p = _em_params(em)
    post = _check_posterior(post, em_p)
    D = post.n_features
    (f,) = _check_features(feature, D, 1)
    x = _data(X, D)[:, f]
    em_m = _marginal(em_p, [f])
    draws = _marginal(_thin(post.params, n_draws), [f])
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
    2.45 for 95%). Components are matched as in :func:`bayesgmm.compare.compare`
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

    em_p = _em_params(em)
    post = _check_posterior(post, em_p)
    D, K = post.n_features, post.n_components
    if D < 2:
        raise ValueError("plot_ellipses needs D >= 2 features; for 1-D data use plot_density_1d.")
    feats = _check_features(features, D, 2)
    data = _data(X, D)[:, list(feats)]
    em_p, post = _labelled(post, em_p, relabel)
    em_m = _marginal(em_p, feats).to_numpy()
    draws = _marginal(_thin(post.params, n_draws), feats).to_numpy()
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

    Built from :func:`bayesgmm.compare.compare` (pass ``table`` to reuse one).
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
        Output of ``compare(em, post)``.
    relabel : bool

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.lines import Line2D

    if table is None:
        if post is None:
            raise ValueError("plot_parameters needs post (or table=compare(em, post)).")
        table = compare(em, post, hdi_prob=hdi_prob, relabel=relabel)
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

    post = _check_posterior(post)
    em_p = None if em is None else _em_params(em)
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


def _to_rgba(colour):
    from matplotlib.colors import to_rgba

    return to_rgba(colour)


# -------------------------------------------------------------------- trace ---
def plot_trace(
    post: Posterior,
    *,
    em=None,
    var_names=("weights", "means", "covariances"),
    relabel: bool = True,
    **kwargs,
):
    """ArviZ trace plot (``arviz.plot_trace``) of the relabelled posterior.

    Parameters
    ----------
    post : Posterior
    em : EMResult or GMMParams, optional
        Draws are relabelled against it (else against ``post.reference``), and
        its values are drawn as reference lines.
    var_names : sequence of str
    relabel : bool
        Relabel first if the posterior has not been relabelled.
    **kwargs
        Passed on to ``arviz.plot_trace`` (``axes``, ``compact``, ``figsize``...).

    Returns
    -------
    ndarray of matplotlib Axes, shape (len(var_names), 2)
    """
    import arviz as az

    post = _check_posterior(post)
    em_p = None if em is None else _em_params(em)
    em_p, post = _labelled(post, em_p, relabel)
    idata = post.to_arviz()
    if em_p is not None and "lines" not in kwargs:
        kwargs["lines"] = _reference_lines(em_p, var_names)
    kwargs.setdefault("compact", True)
    kwargs.setdefault("legend", False)
    own_figure = kwargs.get("axes") is None
    with warnings.catch_warnings():  # ArviZ 0.23 against matplotlib >= 3.11: not the user's
        warnings.filterwarnings("ignore", message=".*alias_mapping.*", category=DeprecationWarning)
        axes = az.plot_trace(idata, var_names=list(var_names), **kwargs)
    for row in np.atleast_2d(axes):
        row[1].set_xlabel("draw")
    if own_figure:
        fig = np.ravel(axes)[0].figure
        what = "relabelled posterior" if post.relabel_method else "posterior (not relabelled)"
        fig.suptitle(f"Trace of the {what}" + (" (lines: EM)" if em_p is not None else ""))
        fig.set_layout_engine("constrained")
    return axes


def _reference_lines(params: GMMParams, var_names) -> list:
    """``arviz.plot_trace`` lines for the EM values.

    ArviZ matches a line to a panel by its selection: ``{}`` for a whole
    variable (``compact=True``), one coordinate per panel otherwise; both are
    listed and only the matching ones are drawn.
    """
    p = params.to_numpy()
    K, D = params.n_components, params.n_features
    lines = []
    for name in var_names:
        value = p.get(name)
        if value is None:
            continue
        if name == "covariances":
            iu = np.triu_indices(D)
            lines.append((name, {}, value[:, iu[0], iu[1]].ravel()))
            cells = [(k, i, j) for k in range(K) for i, j in zip(*iu, strict=True)]
            dims = ("component", "feature", "feature_bis")
        else:
            lines.append((name, {}, value.ravel()))
            cells = list(np.ndindex(value.shape))
            dims = ("component", "feature")[: value.ndim]
        lines += [(name, dict(zip(dims, cell, strict=True)), float(value[cell])) for cell in cells]
    return lines


# ---------------------------------------------------------------------- ppc ---
def plot_ppc(
    X,
    post: Posterior,
    *,
    statistics=("mean", "sd", "skewness", "q05", "median", "q95"),
    features=None,
    n_draws: int = 200,
    seed: int = 0,
    axes=None,
):
    """Posterior predictive check: replicated statistics against the observed ones.

    For ``n_draws`` thinned posterior draws a data set of ``N`` rows is drawn
    and summarised (see :func:`bayesgmm.ppc.ppc_statistics`). Each panel is
    the histogram of one replicated statistic with the observed value as a red
    line and the posterior predictive p-value ``P(T(X_rep) >= T(X))`` in the title.

    Parameters
    ----------
    X : array-like of shape (N, D), or None for ``post.X``
    post : Posterior
    statistics : sequence of str
        Among :data:`bayesgmm.compare.PPC_STATISTICS`, and ``"correlation"``
        (one panel per pair of selected features) for ``D >= 2``.
    features : sequence of int, optional
        Default: the first (up to) three features.
    n_draws, seed : int
    axes : array of matplotlib Axes, optional
        One per panel, rows = features (correlations in a last row).

    Returns
    -------
    ndarray of matplotlib Axes, shape (rows, columns)
    """
    import matplotlib.pyplot as plt

    post = _check_posterior(post)
    D = post.n_features
    feats = tuple(range(min(D, 3))) if features is None else tuple(int(f) for f in features)
    names, observed, rep = ppc_replicates(X, post, n_draws=n_draws, seed=seed)
    lookup = {name: i for i, name in enumerate(names)}
    per_feature = [s for s in statistics if s != "correlation"]
    for s in per_feature:
        if (s, "0") not in lookup:
            raise ValueError(
                f"unknown statistic {s!r}; choose from {sorted({n[0] for n in names})}."
            )
    panels = [[(s, str(f)) for s in per_feature] for f in feats]
    if "correlation" in statistics and len(feats) > 1:
        pairs = [(a, b) for i, a in enumerate(feats) for b in feats[i + 1 :]]
        panels.append([("correlation", f"{min(a, b)},{max(a, b)}") for a, b in pairs])
    n_rows, n_cols = len(panels), max(len(row) for row in panels)
    if axes is None:
        _, axes = plt.subplots(
            n_rows,
            n_cols,
            figsize=(2.6 * n_cols, 2.2 * n_rows),
            squeeze=False,
            layout="constrained",
        )
    axes = np.asarray(axes).reshape(n_rows, n_cols)
    for r, row in enumerate(panels):
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(row):
                ax.set_visible(False)
                continue
            stat, feat = row[c]
            i = lookup[(stat, feat)]
            p = float((rep[:, i] > observed[i]).mean() + 0.5 * (rep[:, i] == observed[i]).mean())
            ax.hist(rep[:, i], bins=20, color="C0", alpha=0.6, edgecolor="white")
            ax.axvline(observed[i], color="red", lw=2)
            where = f"x{feat}" if stat != "correlation" else f"x{feat.replace(',', ',x')}"
            ax.set_title(f"{stat}({where})  p={p:.2f}", fontsize="small")
            ax.set_yticks([])
            ax.tick_params(labelsize="x-small")
    fig = axes[0, 0].figure
    fig.suptitle(
        f"Posterior predictive check: {rep.shape[0]} replicated data sets (red: observed)",
        fontsize="medium",
    )
    return axes
