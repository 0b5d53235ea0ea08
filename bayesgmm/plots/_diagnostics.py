"""Sampler diagnostics: trace plots and posterior predictive checks."""

from __future__ import annotations

import jax
import numpy as np

from bayesgmm._core._blocks import rows_per_block
from bayesgmm._core._precision import x64
from bayesgmm._core.params import GMMParams
from bayesgmm.diagnostics._checks import thin_draws
from bayesgmm.diagnostics._ppc import _statistics, ppc_replicates
from bayesgmm.plots._common import (
    OBSERVED_COLOUR,
    POSTERIOR_COLOUR,
    _bandwidth,
    _colour,
    _data,
    _estimates,
    _feature_names,
    _kde,
    _labelled,
    _shape,
    estimates_first,
)

_CHAIN_STYLES = ("-", "--", ":", "-.")


# -------------------------------------------------------------------- trace ---
def _trace_rows(params: GMMParams, em: GMMParams | None, var_names, names, compact: bool):
    """``(title, series (C, S, K), EM values (K,) or None, components)`` per row."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.to_numpy().items()}
    e = None if em is None else {k: np.asarray(v, np.float64) for k, v in em.to_numpy().items()}
    K, D = params.n_components, params.n_features
    rows = []
    for name in var_names:
        if name == "weights":
            rows.append(("weight", p["weights"], None if e is None else e["weights"]))
        elif name == "means":
            for d in range(D):
                em_v = None if e is None else e["means"][:, d]
                rows.append((f"mean ({names[d]})", p["means"][..., d], em_v))
        elif name == "covariances":
            for i, j in zip(*np.triu_indices(D), strict=True):
                title = (
                    f"variance ({names[i]})" if i == j else f"covariance ({names[i]}, {names[j]})"
                )
                em_v = None if e is None else e["covariances"][:, i, j]
                rows.append((title, p["covariances"][..., i, j], em_v))
        else:
            raise ValueError(
                f"unknown var_name {name!r}; choose from 'weights', 'means', 'covariances'."
            )
    if compact:
        return [(t, s, v, list(range(K))) for t, s, v in rows]
    return [(f"{t}, component {k}", s, v, [k]) for t, s, v in rows for k in range(K)]


@estimates_first(data=False)
@x64
def plot_trace(
    em=None,
    post=None,
    *,
    var_names=("weights", "means", "covariances"),
    relabel: bool = True,
    compact: bool = True,
    feature_names=None,
    axes=None,
    figsize=None,
):
    """Trace plot of the relabelled posterior: one row per parameter and feature.

    Rows: the weights, the mean of each feature, each covariance entry
    (variance of a feature, covariance of a pair), so that every panel holds
    values on one scale. Left: the kernel density of each component's draws
    per chain (chains by line style); right: the draws against their index.
    Components have their colours (see :func:`component_colours`), the same
    as in the other plots; EM's values are dashed lines in the component's colour.

    Parameters
    ----------
    em : EMResult or GMMParams, optional
        Draws are relabelled against it (else against ``post.reference``), and
        its values are drawn as reference lines.
    post : Posterior
    var_names : sequence of str
        Among ``"weights"``, ``"means"``, ``"covariances"``.
    relabel : bool
        Relabel first if the posterior has not been relabelled.
    compact : bool
        All components in one row (True) or one row per component.
    feature_names : sequence of str, optional
        Names of the features in the panel titles (default ``feature d``).
    axes : array of matplotlib Axes of shape (rows, 2), optional
    figsize : (float, float), optional

    Returns
    -------
    ndarray of matplotlib Axes, shape (rows, 2)
    """
    import matplotlib.patheffects as pe
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D

    em_p, post = _estimates(em, post, "plot_trace", need_post=True)
    halo = [pe.withStroke(linewidth=3.2, foreground="white")]
    ax_v, ax_h = Axes.axvline, Axes.axhline
    _, D = _shape(em_p, post)
    names = _feature_names(feature_names, D, None, em, post)
    em_p, post = _labelled(post, em_p, relabel)
    rows = _trace_rows(post.params, em_p, var_names, names, compact)
    C, S = post.num_chains, post.num_draws
    own_figure = axes is None
    if own_figure:
        _, axes = plt.subplots(
            len(rows),
            2,
            figsize=figsize or (10, 1.7 * len(rows) + 0.8),
            squeeze=False,
            layout="constrained",
            gridspec_kw={"width_ratios": (1, 2)},
        )
    axes = np.asarray(axes, dtype=object).reshape(len(rows), 2)
    for (title, series, em_v, comps), (left, right) in zip(rows, axes, strict=True):
        lo, hi = series[..., comps].min(), series[..., comps].max()
        pad = 0.1 * (hi - lo) if hi > lo else max(abs(lo), 1.0) * 1e-3
        grid = np.linspace(lo - pad, hi + pad, 200)
        for k in comps:
            colour = _colour(k)
            for c in range(C):
                ls = _CHAIN_STYLES[c % len(_CHAIN_STYLES)]
                x = series[c, :, k]
                left.plot(grid, _kde(x, grid, _bandwidth(x)), color=colour, ls=ls, lw=1.0)
                right.plot(np.arange(S), x, color=colour, lw=0.5, alpha=0.55)
            if em_v is not None:  # EM's value of component k: dashed in its colour, haloed
                for ax, line in ((left, ax_v), (right, ax_h)):
                    line(ax, em_v[k], color=colour, ls="--", lw=1.6, path_effects=halo)
        left.set_title(title, fontsize="medium")
        right.set_title(title, fontsize="medium")
        left.set_yticks([])
        left.set_ylim(bottom=0)
        right.set_xlim(0, S - 1)
        for ax in (left, right):
            ax.tick_params(labelsize="small")
    axes[-1, 1].set_xlabel("draw")
    if own_figure:
        fig = axes[0, 0].figure
        what = "relabelled posterior" if post.relabel_method else "posterior (not relabelled)"
        fig.suptitle(
            f"Trace of the {what}" + (" (dashed: EM)" if em_p is not None else ""),
            fontsize="medium",
        )
        handles = [
            Line2D([], [], color="0.3", ls=_CHAIN_STYLES[c % 4], label=f"chain {c}")
            for c in range(C)
        ]
        handles += [
            Line2D([], [], color=_colour(k), lw=2, label=f"component {k}")
            for k in range(post.n_components)
        ]
        if em_p is not None:
            handles.append(Line2D([], [], color="0.2", ls="--", lw=1.6, label="EM"))
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 8),
            frameon=False,
            fontsize="small",
        )
    return axes


# ---------------------------------------------------------------------- ppc ---
def _replicated_data(params: GMMParams, N: int, seed: int):
    """Data sets of N rows from each set of ``params`` (batch shape (n,)), in blocks."""
    n = params.batch_shape[0]
    block = rows_per_block(N * params.n_features)
    keys = jax.random.split(jax.random.key(seed), -(-n // block))
    for b, start in enumerate(range(0, n, block)):  # bounds draws x N x D
        Y, _ = params[start : start + block].sample(keys[b], N)
        yield np.asarray(Y, dtype=np.float64)


def _repeated(params: GMMParams, n: int) -> GMMParams:
    """``n`` copies of an unbatched estimate, as batch shape (n,)."""
    w, m, c = (np.broadcast_to(np.asarray(a), (n, *np.shape(a))) for a in jax.tree.leaves(params))
    return GMMParams._unchecked(w, m, c)


@estimates_first(data=True)
@x64
def plot_ppc(
    X=None,
    em=None,
    post=None,
    *,
    kind: str = "statistics",
    statistics=("mean", "sd", "skewness", "q05", "median", "q95"),
    features=None,
    feature_names=None,
    n_draws: int | None = None,
    seed: int = 0,
    axes=None,
):
    """Predictive check: replicated data sets against the observed data.

    For ``n_draws`` thinned posterior draws a data set of ``N`` rows is drawn
    from each (with ``em`` only: ``n_draws`` data sets from the EM estimate,
    a parametric-bootstrap check of the point estimate).

    - ``kind="statistics"``: each panel is the histogram (grey) of one
      replicated statistic (see :func:`bayesgmm.ppc_statistics`) with the
      observed value as a black line and the predictive p-value
      ``P(T(X_rep) >= T(X))`` in the title.
    - ``kind="density"``: one panel per feature, the kernel density of the
      observed data (black, with a rug) over those of the replicated data sets
      (grey), all with the observed data's bandwidth (Silverman's rule).

    Parameters
    ----------
    X : array-like of shape (N, D), or None for ``post.X``
    em : EMResult or GMMParams, optional
        Replicate from EM when no ``post`` is given.
    post : Posterior, optional
    kind : {"statistics", "density"}
    statistics : sequence of str
        For ``kind="statistics"``: among :data:`bayesgmm.diagnostics.PPC_STATISTICS`,
        and ``"correlation"`` (one panel per pair of selected features) for ``D >= 2``.
    features : sequence of int, optional
        Default: the first (up to) three features.
    feature_names : sequence of str, optional
    n_draws : int, optional
        Replicated data sets: 200 for statistics, 50 for densities.
    seed : int
    axes : array of matplotlib Axes, optional
        One per panel; statistics: rows = features (correlations in a last row).

    Returns
    -------
    ndarray of matplotlib Axes, shape (rows, columns)
    """
    import matplotlib.pyplot as plt

    if kind not in ("statistics", "density"):
        raise ValueError(f"kind must be 'statistics' or 'density'; got {kind!r}.")
    em_p, post = _estimates(em, post, "plot_ppc")
    _, D = _shape(em_p, post)
    names = _feature_names(feature_names, D, X, em, post)
    feats = tuple(range(min(D, 3))) if features is None else tuple(int(f) for f in features)
    if not all(0 <= f < D for f in feats) or not feats:
        raise ValueError(f"features must be indices in 0..{D - 1}; got {features!r}.")
    n_draws = (200 if kind == "statistics" else 50) if n_draws is None else int(n_draws)
    if X is None and post is None:
        raise TypeError("plot_ppc needs X when there is no posterior to take it from.")
    data = _data(post.X if X is None else X, D)
    source = thin_draws(post.params, n_draws) if post is not None else _repeated(em_p, n_draws)
    who = "posterior draws" if post is not None else "the EM estimate"
    label = "Posterior" if post is not None else "EM (parametric bootstrap)"

    if kind == "density":
        panels = [[f] for f in feats]
        n_rows, n_cols = 1, len(feats)
    else:
        per_feature = [s for s in statistics if s != "correlation"]
        panels = [[(s, str(f)) for s in per_feature] for f in feats]
        if "correlation" in statistics and len(feats) > 1:
            pairs = [(a, b) for i, a in enumerate(feats) for b in feats[i + 1 :]]
            panels.append([("correlation", f"{min(a, b)},{max(a, b)}") for a, b in pairs])
        panels = [row for row in panels if row]
        n_rows, n_cols = len(panels), max(len(row) for row in panels)
    if axes is None:
        size = (max(6.4, 4.2 * n_cols), 3.6) if kind == "density" else (2.6 * n_cols, 2.2 * n_rows)
        _, axes = plt.subplots(n_rows, n_cols, figsize=size, squeeze=False, layout="constrained")
    axes = np.asarray(axes, dtype=object).reshape(n_rows, n_cols)

    if kind == "density":
        n_rep = _ppc_density(axes[0], data, source, feats, names, seed, who)
        title = f"{label} predictive check: densities of {n_rep} replicated data sets"
    else:
        n_rep = _ppc_statistics(axes, panels, data, post, source, names, n_draws, seed)
        title = f"{label} predictive check: {n_rep} replicated data sets (black: observed)"
    axes[0, 0].figure.suptitle(title, fontsize="medium")
    return axes


def _ppc_statistics(axes, panels, data, post, source, names, n_draws, seed):
    if post is not None:  # the same replicates as bayesgmm.ppc_statistics
        stat_names, observed, rep = ppc_replicates(data, post, n_draws=n_draws, seed=seed)
    else:
        stat_names, observed = _statistics(data)
        rep = np.concatenate(
            [_statistics(Y)[1] for Y in _replicated_data(source, data.shape[0], seed)]
        )
    lookup = {name: i for i, name in enumerate(stat_names)}
    for row in panels:
        for stat, feat in row:
            if (stat, feat) not in lookup:
                raise ValueError(
                    f"unknown statistic {stat!r}; choose from "
                    f"{sorted({n[0] for n in stat_names})}."
                )
    for r, row in enumerate(panels):
        for c in range(axes.shape[1]):
            ax = axes[r, c]
            if c >= len(row):
                ax.set_visible(False)
                continue
            stat, feat = row[c]
            i = lookup[(stat, feat)]
            p = float((rep[:, i] > observed[i]).mean() + 0.5 * (rep[:, i] == observed[i]).mean())
            ax.hist(rep[:, i], bins=20, color=POSTERIOR_COLOUR, alpha=0.6, edgecolor="white")
            ax.axvline(observed[i], color=OBSERVED_COLOUR, lw=2)
            where = ", ".join(names[int(f)] for f in feat.split(","))
            ax.set_title(f"{stat}({where})  p={p:.2f}", fontsize="small")
            ax.set_yticks([])
            ax.tick_params(labelsize="x-small")
    return rep.shape[0]


def _ppc_density(row_axes, data, source, feats, names, seed, who):
    N = data.shape[0]
    Y = np.concatenate(list(_replicated_data(source, N, seed)))  # (n, N, D)
    for ax, f in zip(row_axes, feats, strict=True):
        x = data[:, f]
        h = _bandwidth(x)
        lo = min(x.min(), np.quantile(Y[..., f], 0.005)) - 3 * h
        hi = max(x.max(), np.quantile(Y[..., f], 0.995)) + 3 * h
        grid = np.linspace(lo, hi, 300)
        for m in range(Y.shape[0]):  # one replicate at a time bounds G x N
            ax.plot(
                grid,
                _kde(Y[m, :, f], grid, h),
                color=POSTERIOR_COLOUR,
                lw=0.7,
                alpha=0.35,
                label=f"replicated ({Y.shape[0]}, from {who})" if m == 0 else None,
            )
        ax.plot(grid, _kde(x, grid, h), color=OBSERVED_COLOUR, lw=2.0, label="observed")
        ax.plot(x, np.zeros_like(x), "|", color=OBSERVED_COLOUR, ms=8, alpha=0.5, clip_on=False)
        ax.set_xlim(lo, hi)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(names[f])
        ax.set_ylabel("density")
        ax.set_title(names[f], fontsize="medium")
        ax.legend(frameon=False, fontsize="small")
    return Y.shape[0]
