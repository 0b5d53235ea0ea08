"""Model comparison plots: BIC over K per covariance structure, ELPD with standard errors."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plot_model_comparison"]


def plot_model_comparison(table: pd.DataFrame, *, axes=None):
    """BIC across K per covariance structure, and ELPD (LOO) with standard errors.

    Parameters
    ----------
    table : DataFrame from :func:`compare_models`
    axes : sequence of two matplotlib Axes, optional

    Returns
    -------
    array of Axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    has_loo = "elpd_loo" in table and table["elpd_loo"].notna().any()
    if axes is None:
        _, axes = plt.subplots(1, 2 if has_loo else 1, figsize=(11 if has_loo else 6, 4))
    axes = np.atleast_1d(axes)
    for spec, group in table.sort_values("n_components").groupby("spec", sort=False):
        axes[0].plot(group["n_components"], group["bic"], marker="o", label=spec)
        if has_loo:
            axes[1].errorbar(
                group["n_components"],
                group["elpd_loo"],
                yerr=group["se_loo"],
                marker="o",
                capsize=3,
                label=spec,
            )
    axes[0].set(
        xlabel="number of components K",
        ylabel="BIC (lower is better)",
        title="EM: BIC by K and structure",
    )
    axes[0].legend()
    if has_loo:
        axes[1].set(
            xlabel="number of components K",
            ylabel="ELPD (PSIS-LOO, higher is better)",
            title="NUTS: ELPD ± SE by K and structure",
        )
        axes[1].legend()
    for ax in axes[: 2 if has_loo else 1]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # K is a whole number
    return axes


def plot_k_posterior(post, *, ax=None, prior: bool = True):
    """Bars of ``p(K+ | data)`` (and ``p(K | data)`` with a prior on K), prior as markers.

    Parameters
    ----------
    post : Posterior or pandas.DataFrame
        Sampled under :meth:`bayesgmm.Prior.sparse`, or its
        :meth:`~bayesgmm.Posterior.k_posterior` table.
    ax : matplotlib Axes, optional
    prior : bool
        Mark the prior probabilities (``prior p(K+)``, ``prior p(K)``).

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    table = post if isinstance(post, pd.DataFrame) else post.k_posterior()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    k = np.asarray(table.index)
    has_k = "p(K|data)" in table
    width = 0.4 if has_k else 0.8
    shift = width / 2 if has_k else 0.0
    ax.bar(k - shift, table["p(K+|data)"], width, color="C3", label="p(K+ | data)")
    if has_k:
        ax.bar(k + shift, table["p(K|data)"], width, color="0.6", label="p(K | data)")
    if prior and "prior p(K+)" in table:
        ax.plot(k - shift, table["prior p(K+)"], "v", color="C3", mfc="none", label="prior p(K+)")
    if prior and "prior p(K)" in table:
        ax.plot(k + shift, table["prior p(K)"], "v", color="0.3", mfc="none", label="prior p(K)")
    ax.set_xticks(k)
    ax.set_xlabel("number of clusters K+ (components K)")
    ax.set_ylabel("probability")
    ax.legend(frameon=False)
    return ax
