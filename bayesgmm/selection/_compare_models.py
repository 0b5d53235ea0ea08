"""Model comparison across K and covariance structure.

EM side: BIC, AIC and ICL of every variant (lower is better). Bayesian side:
PSIS-LOO and WAIC through ArviZ (higher ELPD is better) of NUTS runs started
from MAP-EM under the same prior, with ``arviz.compare`` stacking weights and
Pareto-k warnings; and, for a specification with a ``[clusters]`` table, the
posterior of the number of clusters ``p(K+ | data)`` from one sparse Gibbs run
(:meth:`bayesgmm.Prior.sparse`), read off at every variant's K. Variants come
from :mod:`bayesgmm.selection`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import jax
import numpy as np
import pandas as pd

from bayesgmm._core._precision import x64
from bayesgmm._core._validation import (
    check_data,
    check_feature_names,
    check_sample_weight,
    check_seed,
    column_stats,
    warn_data_problems,
    warn_reg_covar_scale,
)
from bayesgmm._core._warnings import warn
from bayesgmm.em._fit import EMResult, check_em_settings, fit_validated
from bayesgmm.selection._specs import ModelSpec, SpecError, Variant, load_spec

__all__ = ["CRITERIA", "ComparisonResult", "compare_models", "to_markdown"]

# criterion -> (column, lower is better)
CRITERIA = {
    "bic": ("bic", True),
    "aic": ("aic", True),
    "icl": ("icl", True),
    "loo": ("elpd_loo", False),
    "waic": ("elpd_waic", False),
    "kplus": ("p_kplus", False),
}
_BAYESIAN = ("elpd_loo", "elpd_waic", "p_kplus")


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
    clusters : dict of str to Posterior
        The sparse Gibbs run of each specification with a ``[clusters]``
        table, by specification name (``.k_posterior()`` gives its table).
    """

    table: pd.DataFrame
    em: dict[str, EMResult] = field(default_factory=dict)
    posteriors: dict = field(default_factory=dict)
    inference_data: dict = field(default_factory=dict)
    criterion: str = "bic"
    clusters: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """The table to read: the columns that decide first, rounded.

        Rank, model, the ranking criterion and each model's distance from the
        best (``delta``), then the other criteria, then the checks that say
        whether a row can be trusted (non-convergence, degenerate components,
        R-hat, ESS, divergences, bad Pareto k). ``.table`` keeps every column
        at full precision.
        """
        table = self.table
        if table.empty:
            return table.copy()
        column, lower_better = CRITERIA[self.criterion]
        best = table[column].min() if lower_better else table[column].max()
        delta = (table[column] - best).abs()
        first = ["rank", "model", column]
        rest = [
            c
            for c in (
                "bic",
                "aic",
                "icl",
                "elpd_loo",
                "se_loo",
                "elpd_waic",
                "p_kplus",
                "kplus_mode",
                "n_parameters",
            )
            if c in table and c not in first
        ]
        checks = [
            c
            for c in (
                "converged",
                "degenerate",
                "rhat_max",
                "ess_bulk_min",
                "divergences",
                "n_pareto_k_bad",
            )
            if c in table
        ]
        out = table[first].copy()
        out.insert(3, "delta", delta)
        out = pd.concat([out, table[rest + checks]], axis=1)
        decimals = {c: 1 for c in out.columns if out[c].dtype.kind == "f"}
        decimals.update({c: 3 for c in ("p_kplus",) if c in out})
        decimals.update({c: 3 for c in ("rhat_max",) if c in out})
        decimals.update({c: 0 for c in ("ess_bulk_min",) if c in out})
        return out.round(decimals)

    def _heading(self) -> str:
        column, lower_better = CRITERIA[self.criterion]
        better = "lower" if lower_better else "higher"
        return (
            f"Model comparison by {self.criterion} ({column}, {better} is better; delta is the "
            f"distance from the best), {len(self.table)} model(s); every column: .table"
        )

    def __repr__(self) -> str:
        with pd.option_context("display.width", 200, "display.max_columns", None):
            return f"{self._heading()}\n{self.summary().to_string(index=False)}"

    def _repr_html_(self) -> str:
        html = self.summary().to_html(index=False)
        return f"<p>{self._heading()}</p>{html}"


def _as_specs(specs) -> list[ModelSpec]:
    if isinstance(specs, ModelSpec | str) or hasattr(specs, "__fspath__"):
        specs = [specs]
    out = [s if isinstance(s, ModelSpec) else load_spec(s) for s in specs]
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"specification names must be unique; got {names}")
    return out


def _fit_em(data, w, v: Variant, seed: int, prior=None, drop_reg_covar=False) -> EMResult:
    """EM (or MAP-EM under ``prior``) of one variant on validated data."""
    settings = {k: val for k, val in v.spec.em.items() if k != "map"}
    if drop_reg_covar:
        settings.pop("reg_covar", None)  # MAP-EM: the prior regularises
    checked = check_em_settings(
        data, v.n_components, covariance_type=v.spec.covariance_type, prior=prior, **settings
    )
    stats = column_stats(data, w)
    warn_reg_covar_scale(data, w, checked["reg_covar"], stats)
    return fit_validated(data, w, v.n_components, key=jax.random.key(seed), stats=stats, **checked)


def _fit_variant_em(data, w, v: Variant, seed: int) -> EMResult:
    use_map = v.spec.em.get("map", False)
    prior = v.spec.prior_for(data, w, v.n_components) if use_map else None
    return _fit_em(data, w, v, seed, prior)


def _fit_variant_nuts(data, w, v: Variant, seed: int, progress_bar: bool, models=None):
    from bayesgmm._core import covariance as _cov
    from bayesgmm.bayes._nuts import CHAIN_METHODS
    from bayesgmm.bayes._sample import sample_validated

    prior = v.spec.prior_for(data, w, v.n_components)
    start = _fit_em(data, w, v, seed, prior, drop_reg_covar=True)
    nuts = {k: val for k, val in v.spec.nuts.items() if k != "enabled"}
    return sample_validated(
        data,
        w,
        v.n_components,
        structure=_cov.get(v.spec.covariance_type),
        prior=prior,
        key=jax.random.key(seed),
        num_chains=int(nuts.get("num_chains", 4)),
        num_warmup=int(nuts.get("num_warmup", 1000)),
        num_samples=int(nuts.get("num_samples", 1000)),
        init=start,
        chain_method=CHAIN_METHODS[0],
        progress_bar=progress_bar,
        target_accept_prob=float(nuts.get("target_accept_prob", 0.8)),
        model=((models or {}).get(v.spec.name) or _load_custom_model(v.spec))
        if v.spec.model
        else None,
    )


def _interactive() -> bool:
    """A person is watching: stderr is a terminal, or the code runs in a Jupyter kernel."""
    import sys

    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _print_line(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def _custom_model(spec: ModelSpec, models: dict | None):
    """The spec's custom model (imported once before the first fit), or None."""
    if not spec.model:
        return None
    return (models or {}).get(spec.name) or _load_custom_model(spec)


def _load_custom_model(spec: ModelSpec) -> Callable:
    """Import ``spec``'s model file (this runs its code) and return its model function.

    Any error, on import or later when the model runs, is a ``SpecError``
    naming the specification, the file and the function.
    """
    import functools
    import importlib.util

    path = spec.model_file()
    name = spec.model["function"]
    where = f"{spec.source}: model: {path}"
    try:
        module_spec = importlib.util.spec_from_file_location(f"bayesgmm_custom_{spec.name}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as err:
        raise SpecError(f"{where} failed to import: {type(err).__name__}: {err}") from err
    fn = getattr(module, name, None)
    if not callable(fn):
        raise SpecError(f"{where} has no function {name!r}")

    @functools.wraps(fn)
    def model(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise SpecError(f"{where}: {name}() raised {type(err).__name__}: {err}") from err

    return model


def _check_custom_models(specs, nuts: bool, allow_code: bool) -> dict[str, Callable]:
    """Refuse, before any fit, specifications that would run code without ``allow_code``;
    with it, import their models now so that a broken file fails first, not last."""
    running = [s for s in specs if s.model and nuts and s.nuts.get("enabled", True)]
    if running and not allow_code:
        spec = running[0]
        raise SpecError(
            f"{spec.source}: model: this specification runs the Python code in "
            f"{spec.model['file']!r} (function {spec.model['function']!r}), with your "
            "permissions; read that file, and if you trust it pass allow_code=True "
            "(bayesgmm compare --allow-code)"
        )
    return {s.name: _load_custom_model(s) for s in running}


@x64
def compare_models(
    X,
    specs: Sequence[ModelSpec | str] | ModelSpec | str,
    *,
    criterion: str = "bic",
    sample_weight=None,
    nuts: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | bool | None = None,
    progress_bar: bool | None = None,
    allow_code: bool = False,
    feature_names=None,
) -> ComparisonResult:
    """Fit every variant of ``specs`` and rank them.

    Each variant is fitted by EM (its ``[em]`` settings; MAP-EM when
    ``em.map = true``), then, when ``nuts`` is True and the specification does
    not disable it, by NUTS started from MAP-EM under the specification's
    prior. PSIS-LOO and WAIC come from ArviZ on the pointwise log-likelihood.

    A specification with a ``[clusters]`` table (:mod:`bayesgmm.selection`)
    is also sampled once, when ``nuts`` is True, under its
    :meth:`~bayesgmm.Prior.sparse` prior by the Gibbs sampler (the telescoping
    sampler with a ``k_prior``), and each of its variants' rows gets
    ``p_kplus``, the posterior probability ``p(K+ = K | data)`` that the data
    hold exactly that variant's number of clusters, beside ``kplus_mode``, the
    most probable number of clusters, and ``p_kplus_mode``, its probability
    (the same on every row of the specification; ``.clusters`` holds the run).
    Rows of other specifications have NaN there.

    Each NUTS variant's row also says whether its numbers can be trusted:
    ``n_pareto_k_bad`` counts observations whose Pareto k exceeds ArviZ's
    threshold (``min(1 - 1 / log10(draws), 0.7)``: 0.67 for 1,000 draws);
    ``rhat_max`` and ``ess_bulk_min`` are the worst R-hat and bulk ESS of
    label-invariant quantities (the total log-likelihood and the log density
    at a few points, :func:`bayesgmm.diagnostics.invariant_diagnostics`), so label
    switching does not inflate them (with one chain, R-hat compares its two
    halves); ``divergences`` counts divergent transitions. A ``UserWarning``
    names each variant with bad Pareto k, and each whose chains have not mixed
    (R-hat above 1.01 or bulk ESS below 100 per chain, the thresholds of
    Vehtari et al. 2021).

    Parameters
    ----------
    X : array-like of shape (N, D)
    specs : ModelSpec, path, or a sequence of them
    criterion : {"bic", "aic", "icl", "loo", "waic", "kplus"}
        Ranking: lower is better for the information criteria, higher ELPD for
        ``loo``/``waic``, higher ``p_kplus`` for ``kplus`` (these three need
        ``nuts=True``).
    sample_weight : array-like of shape (N,), optional
    nuts : bool
        Run the Bayesian side (NUTS, and the ``[clusters]`` runs).
    seed : int
    progress : callable or bool, optional
        Called with a line of text before each fit (the CLI prints it). The
        default (None) prints the lines to stderr in a terminal or a notebook
        and stays quiet otherwise; False is always quiet.
    progress_bar : bool, optional
        A progress bar for each NUTS run; by default in a terminal or a notebook.
    allow_code : bool
        Run the custom models of specifications with a ``[model]`` table.
        Such a table imports and executes a Python file, so it is refused
        (``SpecError``, before any fit) unless this is True. Pass it only for
        specifications whose model file you have read and trust.
    feature_names : sequence of str, optional
        Names of the D columns, carried by every EM fit and posterior (and so
        the files the command line writes); by default a DataFrame's string
        column labels.

    Returns
    -------
    ComparisonResult
        ``.table`` is the ranked DataFrame; ``.em`` and ``.posteriors`` the fits.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}; got {criterion!r}.")
    if CRITERIA[criterion][0] in _BAYESIAN and not nuts:
        runs = "the [clusters] Gibbs runs" if criterion == "kplus" else "the NUTS runs"
        raise ValueError(f"criterion={criterion!r} needs {runs}; pass nuts=True.")
    seed = check_seed(seed)
    data = check_data(X, dtype=np.dtype(np.float64))
    names = check_feature_names(feature_names, X, data.shape[1])
    w = check_sample_weight(sample_weight, data.shape[0], data.dtype)
    specs = _as_specs(specs)
    variants = [v for s in specs for v in s.variants()]
    too_big = [v.name for v in variants if v.n_components > data.shape[0]]
    if too_big:
        raise ValueError(
            f"variants {too_big} have more components than the {data.shape[0]} rows of X; "
            "lower n_components in their specifications."
        )
    sparse_priors = {}
    for s in specs if nuts else ():
        if s.runs_clusters:
            try:
                sparse_priors[s.name] = s.sparse_prior_for(data, w)
            except ValueError as err:
                raise ValueError(f"{s.name}: [clusters]: {err}") from None
    for v in variants:  # priors fail here (e.g. a scale that overflows), not after other fits
        if not (v.spec.em.get("map") or (nuts and v.spec.nuts.get("enabled", True))):
            continue  # maximum-likelihood EM only: no prior is built
        try:
            v.spec.prior_for(data, w, v.n_components)
        except SpecError:
            raise
        except ValueError as err:
            raise ValueError(f"{v.name}: {err}") from None
    models = _check_custom_models(specs, nuts, allow_code)
    interactive = _interactive()
    if progress is None:
        progress = _print_line if interactive else False
    say = progress or (lambda _msg: None)
    if progress_bar is None:
        progress_bar = interactive
    result = ComparisonResult(table=pd.DataFrame(), criterion=criterion)
    rows = []
    for i, v in enumerate(variants, 1):
        say(f"[{i}/{len(variants)}] EM   {v.name}")
        warn_data_problems(data, w, v.n_components)
        em = _fit_variant_em(data, w, v, seed)
        if names is not None:
            em = replace(em, feature_names=names)
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
            post = _fit_variant_nuts(data, w, v, seed, progress_bar, models)
            if names is not None:
                post = post.replace(feature_names=names)
            result.posteriors[v.name] = post
            row.update(_bayes_row(v.name, post, result))
        rows.append(row)
    for j, s in enumerate(specs):
        if s.name in sparse_priors:
            say(f"[clusters {j + 1}/{len(specs)}] Gibbs {s.name}")
            post = _fit_clusters(data, w, s, sparse_priors[s.name], seed)
            result.clusters[s.name] = post if names is None else post.replace(feature_names=names)
            _add_cluster_columns(rows, s, post)
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

    from bayesgmm.diagnostics._invariant import invariant_diagnostics

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
        warn(
            f"{name}: {n_bad} of {k.size} observations have Pareto k > {good_k:.2f}, so "
            "PSIS-LOO is unreliable for this variant; compare with WAIC, run longer chains, "
            "or treat its ELPD with caution.",
            UserWarning,
        )
    rhat, ess = float(mixing["r_hat"].max()), float(mixing["ess_bulk"].min())
    n_chains = post.params.batch_shape[0]
    if not (rhat <= RHAT_MAX and ess >= ESS_PER_CHAIN_MIN * n_chains):  # NaN counts as unmixed
        warn(
            f"{name}: the chains have not mixed (label-invariant R-hat up to {rhat:.3f}, "
            f"bulk ESS down to {ess:.0f}; want R-hat < {RHAT_MAX} and ESS > "
            f"{ESS_PER_CHAIN_MIN * n_chains} for {n_chains} chain(s)), so its ELPD and "
            "stacking weight are not to be trusted; run more draws, or drop the variant "
            "(often a K with an empty or duplicated component).",
            UserWarning,
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


def _fit_clusters(data, w, spec, sparse, seed: int):
    """The specification's sparse Gibbs run (the number of clusters)."""
    from bayesgmm.bayes._sample import sample_posterior

    c = spec.clusters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the data's warnings were given with the EM fits
        return sample_posterior(
            data,
            sparse.k_max,
            prior=sparse,
            covariance_type=spec.covariance_type,
            sample_weight=w,
            method="gibbs",
            num_chains=int(c.get("num_chains", 2)),
            num_warmup=int(c.get("num_warmup", 500)),
            num_samples=int(c.get("num_samples", 500)),
            seed=seed,
        )


def _add_cluster_columns(rows: list[dict], spec, post) -> None:
    """``p_kplus`` (at each row's K), ``kplus_mode`` and ``p_kplus_mode`` on ``spec``'s rows."""
    p = post.k_posterior()["p(K+|data)"]
    mode = int(p.idxmax())
    for row in rows:
        if row["spec"] == spec.name:
            row["p_kplus"] = float(p.get(row["n_components"], 0.0))
            row["kplus_mode"] = mode
            row["p_kplus_mode"] = float(p[mode])


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
