"""Model comparison across K and covariance structure.

EM side: BIC, AIC and ICL of every variant (lower is better). Bayesian side:
PSIS-LOO and WAIC through ArviZ (higher ELPD is better) of NUTS runs started
from MAP-EM under the same prior, with ``arviz.compare`` stacking weights and
Pareto-k warnings. Variants come from :mod:`bayesgmm.specs`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesgmm._validation import check_data, check_seed
from bayesgmm.em import EMResult, fit_em
from bayesgmm.specs import ModelSpec, Variant, load_spec

__all__ = ["CRITERIA", "ComparisonResult", "compare_models", "plot_model_comparison"]

# criterion -> (column, lower is better)
CRITERIA = {
    "bic": ("bic", True),
    "aic": ("aic", True),
    "icl": ("icl", True),
    "loo": ("elpd_loo", False),
    "waic": ("elpd_waic", False),
}


@dataclass
class ComparisonResult:
    """What :func:`compare_models` ran: the ranked table and every fit.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per variant, ranked by ``criterion``.
    em : dict of str to EMResult
    posteriors : dict of str to Posterior
        Only variants with NUTS enabled.
    criterion : str
    """

    table: pd.DataFrame
    em: dict[str, EMResult] = field(default_factory=dict)
    posteriors: dict = field(default_factory=dict)
    inference_data: dict = field(default_factory=dict)
    criterion: str = "bic"


def _as_specs(specs) -> list[ModelSpec]:
    if isinstance(specs, ModelSpec | str) or hasattr(specs, "__fspath__"):
        specs = [specs]
    out = [s if isinstance(s, ModelSpec) else load_spec(s) for s in specs]
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"specification names must be unique; got {names}")
    return out


def _fit_variant_em(X, w, v: Variant, seed: int) -> EMResult:
    settings = dict(v.spec.em)
    use_map = settings.pop("map", False)
    prior = v.spec.build_prior(X, v.n_components, w) if use_map else None
    return fit_em(
        X,
        v.n_components,
        covariance_type=v.spec.covariance_type,
        prior=prior,
        sample_weight=w,
        seed=seed,
        **settings,
    )


def _fit_variant_nuts(X, w, v: Variant, seed: int, progress_bar: bool):
    from bayesgmm.bayes import sample_posterior

    prior = v.spec.build_prior(X, v.n_components, w)
    em_settings = {k: val for k, val in v.spec.em.items() if k != "map"}
    em_settings.pop("reg_covar", None)  # MAP-EM: the prior regularises
    start = fit_em(
        X,
        v.n_components,
        covariance_type=v.spec.covariance_type,
        prior=prior,
        sample_weight=w,
        seed=seed,
        **em_settings,
    )
    nuts = {k: val for k, val in v.spec.nuts.items() if k != "enabled"}
    kwargs = {}
    if v.spec.model:
        kwargs["model"] = _load_custom_model(v.spec)
    return sample_posterior(
        X,
        v.n_components,
        prior=prior,
        covariance_type=v.spec.covariance_type,
        sample_weight=w,
        init=start,
        seed=seed,
        progress_bar=progress_bar,
        **nuts,
        **kwargs,
    )


def _load_custom_model(spec: ModelSpec) -> Callable:
    import importlib.util

    path = spec.model["file"]
    module_spec = importlib.util.spec_from_file_location(f"bayesgmm_custom_{spec.name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    fn = getattr(module, spec.model["function"], None)
    if not callable(fn):
        raise ValueError(
            f"{spec.source}: model.function: {path} has no function {spec.model['function']!r}"
        )
    return fn


def compare_models(
    X,
    specs: Sequence[ModelSpec | str] | ModelSpec | str,
    *,
    criterion: str = "bic",
    sample_weight=None,
    nuts: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    progress_bar: bool = False,
) -> ComparisonResult:
    """Fit every variant of ``specs`` and rank them.

    Each variant is fitted by EM (its ``[em]`` settings; MAP-EM when
    ``em.map = true``), then, when ``nuts`` is True and the specification does
    not disable it, by NUTS started from MAP-EM under the specification's
    prior. PSIS-LOO and WAIC come from ArviZ on the pointwise log-likelihood.

    Each NUTS variant's row also says whether its numbers can be trusted:
    ``n_pareto_k_bad`` counts observations whose Pareto k exceeds ArviZ's
    threshold (``min(1 - 1 / log10(draws), 0.7)``: 0.67 for 1,000 draws);
    ``rhat_max`` and ``ess_bulk_min`` are the worst R-hat and bulk ESS of
    label-invariant quantities (the total log-likelihood and the log density
    at a few points, :func:`bayesgmm.relabel.invariant_diagnostics`), so label
    switching does not inflate them (with one chain, R-hat compares its two
    halves); ``divergences`` counts divergent transitions. A ``UserWarning``
    names each variant with bad Pareto k, and each whose chains have not mixed
    (R-hat above 1.01 or bulk ESS below 100 per chain, the thresholds of
    Vehtari et al. 2021).

    Parameters
    ----------
    X : array-like of shape (N, D)
    specs : ModelSpec, path, or a sequence of them
    criterion : {"bic", "aic", "icl", "loo", "waic"}
        Ranking: lower is better for the information criteria, higher ELPD for
        ``loo``/``waic`` (which need ``nuts=True``).
    sample_weight : array-like of shape (N,), optional
    nuts : bool
        Run the Bayesian side.
    seed : int
    progress : callable, optional
        Called with a line of text before each fit (the CLI prints it).
    progress_bar : bool
        NumPyro's progress bar for each NUTS run.

    Returns
    -------
    ComparisonResult
        ``.table`` is the ranked DataFrame; ``.em`` and ``.posteriors`` the fits.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}; got {criterion!r}.")
    if CRITERIA[criterion][0].startswith("elpd") and not nuts:
        raise ValueError(f"criterion={criterion!r} needs the NUTS runs; pass nuts=True.")
    seed = check_seed(seed)
    data = check_data(X, dtype=np.dtype(np.float64))
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    specs = _as_specs(specs)
    variants = [v for s in specs for v in s.variants()]
    too_big = [v.name for v in variants if v.n_components > data.shape[0]]
    if too_big:
        raise ValueError(
            f"variants {too_big} have more components than the {data.shape[0]} rows of X; "
            "lower n_components in their specifications."
        )
    say = progress or (lambda _msg: None)
    result = ComparisonResult(table=pd.DataFrame(), criterion=criterion)
    rows = []
    for i, v in enumerate(variants, 1):
        say(f"[{i}/{len(variants)}] EM   {v.name}")
        em = _fit_variant_em(data, w, v, seed)
        result.em[v.name] = em
        row = {
            "model": v.name,
            "spec": v.spec.name,
            "covariance_type": v.spec.covariance_type,
            "n_components": v.n_components,
            "n_parameters": em.n_parameters,
            "log_likelihood": em.log_likelihood,
            "bic": em.bic,
            "aic": em.aic,
            "icl": em.icl,
            "converged": em.converged,
            "n_iter": em.n_iter,
            # a component whose covariance reg_covar sets: its BIC/AIC/ICL are not the data's
            "degenerate": bool(em.degenerate_components),
        }
        if nuts and v.spec.nuts.get("enabled", True):
            say(f"[{i}/{len(variants)}] NUTS {v.name}")
            post = _fit_variant_nuts(data, w, v, seed, progress_bar)
            result.posteriors[v.name] = post
            row.update(_bayes_row(v.name, post, result))
        rows.append(row)
    table = pd.DataFrame(rows)
    if result.inference_data:
        table = _add_stacking_weights(table, result.inference_data)
    result.table = _rank(table, criterion)
    return result


# Convergence thresholds of Vehtari et al. (2021), "Rank-normalization, folding, and
# localization: an improved R-hat": R-hat below 1.01, bulk ESS above 100 per chain.
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100


def _bayes_row(name: str, post, result: ComparisonResult) -> dict:
    import arviz as az

    from bayesgmm.relabel import invariant_diagnostics

    idata = post.to_arviz()
    result.inference_data[name] = idata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reported below, once, in our words
        loo = az.loo(idata, pointwise=True)
        waic = az.waic(idata)
        mixing = invariant_diagnostics(
            post.params, post.X, sample_weight=post.sample_weight, reference=post.reference
        )
    k = np.asarray(loo.pareto_k)
    good_k = float(loo.good_k)  # ArviZ's: min(1 - 1 / log10(draws), 0.7)
    n_bad = int((k > good_k).sum())
    if n_bad:
        warnings.warn(
            f"{name}: {n_bad} of {k.size} observations have Pareto k > {good_k:.2f}, so "
            "PSIS-LOO is unreliable for this variant; compare with WAIC, run longer chains, "
            "or treat its ELPD with caution.",
            UserWarning,
            stacklevel=4,
        )
    rhat, ess = float(mixing["r_hat"].max()), float(mixing["ess_bulk"].min())
    n_chains = post.params.batch_shape[0]
    if not (rhat <= RHAT_MAX and ess >= ESS_PER_CHAIN_MIN * n_chains):  # NaN counts as unmixed
        warnings.warn(
            f"{name}: the chains have not mixed (label-invariant R-hat up to {rhat:.3f}, "
            f"bulk ESS down to {ess:.0f}; want R-hat < {RHAT_MAX} and ESS > "
            f"{ESS_PER_CHAIN_MIN * n_chains} for {n_chains} chain(s)), so its ELPD and "
            "stacking weight are not to be trusted; run more draws, or drop the variant "
            "(often a K with an empty or duplicated component).",
            UserWarning,
            stacklevel=4,
        )
    return {
        "elpd_loo": float(loo.elpd_loo),
        "se_loo": float(loo.se),
        "p_loo": float(loo.p_loo),
        "n_pareto_k_bad": n_bad,
        "elpd_waic": float(waic.elpd_waic),
        "se_waic": float(waic.se),
        "rhat_max": rhat,
        "ess_bulk_min": ess,
        "divergences": post.num_divergences,
    }


def _add_stacking_weights(table: pd.DataFrame, idatas: dict) -> pd.DataFrame:
    import arviz as az

    if len(idatas) < 2:
        table["loo_weight"] = np.where(table["model"].isin(list(idatas)), 1.0, np.nan)
        return table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = az.compare(idatas, ic="loo")
    table["loo_weight"] = table["model"].map(cmp["weight"].to_dict())
    return table


def _rank(table: pd.DataFrame, criterion: str) -> pd.DataFrame:
    column, lower_better = CRITERIA[criterion]
    if column not in table:
        raise ValueError(f"criterion {criterion!r} needs column {column!r}, which no run made")
    table = table.sort_values(column, ascending=lower_better, na_position="last")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def to_markdown(table: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""

    def fmt(v):
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else format(v, floatfmt)
        return str(v)

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join([header, rule, *body])


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
