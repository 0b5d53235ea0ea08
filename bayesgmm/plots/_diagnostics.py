"""Sampler diagnostics: trace plots and posterior predictive checks."""

from __future__ import annotations

import warnings

import numpy as np

from bayesgmm._core.params import GMMParams
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._checks import check_posterior, point_params
from bayesgmm.diagnostics._ppc import ppc_replicates
from bayesgmm.plots._common import (
    _labelled,
)


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

    post = check_posterior(post)
    em_p = None if em is None else point_params(em)
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
    and summarised (see :func:`bayesgmm.ppc_statistics`). Each panel is
    the histogram of one replicated statistic with the observed value as a red
    line and the posterior predictive p-value ``P(T(X_rep) >= T(X))`` in the title.

    Parameters
    ----------
    X : array-like of shape (N, D), or None for ``post.X``
    post : Posterior
    statistics : sequence of str
        Among :data:`bayesgmm.diagnostics.PPC_STATISTICS`, and ``"correlation"``
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

    post = check_posterior(post)
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
