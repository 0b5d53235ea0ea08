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
