"""EM against the posterior: "I fitted EM; how much should I trust it?"

Because an EM/MAP estimate and every posterior draw are the same
:class:`~bayesgmm.GMMParams`, they can be compared entry by entry:

- :func:`em_vs_posterior`: one row per parameter entry (weights, means, the unique
  covariance entries, and the derived standard deviations and correlations)
  with the EM value, the posterior mean, sd and HDI, whether EM lies inside
  the HDI, the standardised distance ``z = (em - mean) / sd``, and R-hat and
  bulk/tail ESS of the entry (ArviZ, on ``(chain, draw)`` arrays).
- :func:`em_vs_posterior_summary`: whole-model numbers that need no component matching
  or are matched once: EM's log-likelihood against the posterior distribution
  of the log-likelihood, adjusted Rand index between the EM hard labels and
  the posterior modal labels, and the difference in membership probabilities.
- :func:`report`: the text a person reads first, with ``OK``/``WARNING`` lines.

Matching components
-------------------
Mixture labels are arbitrary, so EM component ``k`` and posterior component
``k`` are matched before anything is compared (``relabel=True``, the default):

- a posterior that has **not** been relabelled yet is relabelled against the
  EM estimate (``post.relabel(reference=em_params)``, optimal assignment per
  draw): rows then use the EM labelling;
- a posterior that **has** been relabelled already (by any method, against any
  reference) keeps its labelling, and the EM components are aligned to it
  instead: the EM estimate is permuted by the optimal assignment of its
  components to the posterior mean (the same symmetrised-KL cost as
  :func:`bayesgmm.diagnostics.relabel`). Rows then use the posterior's labelling;
  ``attrs["em_permutation"]`` says which EM component became which
  (``aligned[k] = em[perm[k]]``). For a posterior relabelled against this very
  EM estimate the permutation is the identity.

With ``relabel=False`` nothing is matched: use it when both are known to be
labelled alike.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from bayesgmm._core._precision import x64
from bayesgmm._core._validation import check_positive
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._checks import check_posterior, point_params, posterior_mean
from bayesgmm.diagnostics._invariant import invariant_diagnostics, log_likelihood_draws
from bayesgmm.diagnostics._matching import match_labels
from bayesgmm.diagnostics._membership import posterior_membership
from bayesgmm.diagnostics._relabel import relabel as relabel_draws
from bayesgmm.em._vb import VBResult

__all__ = [
    "em_vs_posterior",
    "em_vs_posterior_summary",
    "report",
]

PARAMETERS = ("weight", "mean", "covariance", "sd", "correlation")
COLUMNS = (  # what a reader compares first; the entry's coordinates last
    "name",
    "em",
    "post_mean",
    "hdi_low",
    "hdi_high",
    "inside",
    "z",
    "post_sd",
    "r_hat",
    "ess_bulk",
    "ess_tail",
    "parameter",
    "component",
    "index",
    "feature",
)


# Elements of the largest (draws x N x K) block of responsibilities held at once.


def _prepare(em, post, hdi_prob, relabel: bool):
    """Checked, label-matched ``(em_params, posterior, match info)`` for a comparison."""
    em_p = point_params(em)
    post = check_posterior(post, em_p)
    hdi_prob = check_positive("hdi_prob", hdi_prob)
    if not hdi_prob < 1:
        raise ValueError(f"hdi_prob must lie in (0, 1); got {hdi_prob!r}.")
    return match_labels(em_p, post, relabel)


def _entries(weights, means, covariances):
    """All compared entries of (batched) parameters, stacked on the last axis.

    Parameters
    ----------
    weights : array of shape S + (K,)
    means : array of shape S + (K, D)
    covariances : array of shape S + (K, D, D)

    Returns
    -------
    values : array of shape S + (P,)
    meta : list of P tuples ``(parameter, component, index, name)``, only for S == ()
    """
    w = np.asarray(weights, dtype=np.float64)
    m = np.asarray(means, dtype=np.float64)
    c = np.asarray(covariances, dtype=np.float64)
    K, D = m.shape[-2:]
    iu = np.triu_indices(D)
    iu1 = np.triu_indices(D, 1)
    sd = np.sqrt(np.diagonal(c, axis1=-2, axis2=-1))  # S + (K, D)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = c[..., iu1[0], iu1[1]] / (sd[..., iu1[0]] * sd[..., iu1[1]])
    blocks = [
        w[..., None],
        m,
        c[..., iu[0], iu[1]],
        sd,
        corr,
    ]
    S = w.shape[:-1]
    values = np.concatenate([b.reshape((*S, -1)) for b in blocks], axis=-1)
    meta = []
    pairs = [f"{i},{j}" for i, j in zip(*iu, strict=True)]
    pairs1 = [f"{i},{j}" for i, j in zip(*iu1, strict=True)]
    singles = [str(d) for d in range(D)]
    for parameter, short, indices in (
        ("weight", "weights", [""]),
        ("mean", "means", singles),
        ("covariance", "covariances", pairs),
        ("sd", "sd", singles),
        ("correlation", "corr", pairs1),
    ):
        for k in range(K):
            for idx in indices:
                name = f"{short}[{k}]" if not idx else f"{short}[{k},{idx}]"
                meta.append((parameter, k, idx, name))
    return values, meta


def _vb_columns(vb, post: Posterior, hdi_prob: float, post_sd) -> dict[str, np.ndarray]:
    """VB's mean, sd and HDI of every entry, its components matched to the posterior's."""
    import arviz as az

    if not isinstance(vb, VBResult):
        raise TypeError(f"vb must be a VBResult (bayesgmm.fit_vb); got {type(vb).__name__}.")
    check_posterior(post, vb.params)
    perm = np.asarray(relabel_draws(vb.params, reference=posterior_mean(post.params)).permutations)
    draws = vb.sample(jax.random.key(0), _VB_DRAWS)
    values, _ = _entries(
        np.asarray(draws.weights)[:, perm],
        np.asarray(draws.means)[:, perm],
        np.asarray(draws.covariances)[:, perm],
    )
    hdi = np.asarray(az.hdi(values[None], hdi_prob=hdi_prob))
    sd = values.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(post_sd > 0, sd / post_sd, np.nan)
    return {
        "vb_mean": values.mean(axis=0),
        "vb_sd": sd,
        "vb_hdi_low": hdi[:, 0],
        "vb_hdi_high": hdi[:, 1],
        "vb_sd_ratio": ratio,
    }


_VB_DRAWS = 4000


# ---------------------------------------------------------- em_vs_posterior ---
@x64
def em_vs_posterior(em, post: Posterior, *, hdi_prob: float = 0.94, relabel: bool = True, vb=None):
    """Compare an EM/MAP estimate with posterior draws, parameter entry by entry.

    Parameters
    ----------
    em : EMResult, VBResult or GMMParams
        The point estimate (no batch axes); a VBResult gives its variational
        posterior mean.
    post : Posterior
        Posterior draws with ``(chain, draw)`` axes, for the same K and D.
    hdi_prob : float
        Probability mass of the highest density intervals (``arviz.hdi``).
    relabel : bool
        Match components first (see the module docstring): relabel the
        posterior against EM if it has not been relabelled, otherwise align EM
        to the posterior's labelling.
    vb : VBResult, optional
        A variational fit of the same model, as a third estimate: 4,000 draws
        of ``q`` (components matched to the posterior's mean) add the columns
        ``vb_mean``, ``vb_sd``, ``vb_hdi_low``, ``vb_hdi_high`` and
        ``vb_sd_ratio`` (``vb_sd / post_sd``: below 1 where the mean-field
        approximation is narrower than the posterior).

    Returns
    -------
    pandas.DataFrame
        (an ``EMvsPosteriorTable``, which prints every column, rounded)
        One row per entry: ``weight`` (K), ``mean`` (K x D), ``covariance``
        (upper triangle, K x D(D+1)/2), ``sd`` (square roots of the variances,
        K x D) and ``correlation`` (K x D(D-1)/2). Columns:

        ``name`` (e.g. ``"means[1,0]"``), ``em``, ``post_mean``, ``hdi_low``,
        ``hdi_high``, ``inside`` (EM within the HDI), ``z``
        (``(em - post_mean) / post_sd``), ``post_sd``, ``r_hat``,
        ``ess_bulk``, ``ess_tail``, then the entry's coordinates
        ``parameter, component, index`` (``""``, ``"d"`` or ``"i,j"``) and
        ``feature``: the index as the features' names (``"waiting"``,
        ``"eruptions,waiting"``) when the fit or the posterior carries
        ``feature_names``, else the index.

        ``attrs`` holds ``hdi_prob``, ``matching`` (what was done to match
        labels), ``em_permutation``, ``fraction_permuted`` and ``relabel_method``.

    Examples
    --------
    >>> import bayesgmm as bg                                   # doctest: +SKIP
    >>> from bayesgmm.bayes import sample_posterior            # doctest: +SKIP
    >>> X = bg.datasets.make_two_gaussians_1d(300)             # doctest: +SKIP
    >>> em = bg.fit_em(X, 2)                                   # doctest: +SKIP
    >>> post = sample_posterior(X, 2, init=em)                 # doctest: +SKIP
    >>> table = bg.em_vs_posterior(em, post)                           # doctest: +SKIP
    >>> table[~table.inside]                 # EM values outside the 94% HDI  # doctest: +SKIP
    """
    import arviz as az
    import pandas as pd
    import xarray as xr

    em_p, post, info = _prepare(em, post, hdi_prob, relabel)

    draws, _ = _entries(*jax.tree.leaves(post.params))  # (C, S, P)
    em_values, meta = _entries(*jax.tree.leaves(em_p))  # (P,)
    C, S, P = draws.shape
    ds = xr.Dataset(
        {"x": (("chain", "draw", "entry"), draws)},
        coords={"chain": np.arange(C), "draw": np.arange(S), "entry": np.arange(P)},
    )
    hdi = np.asarray(az.hdi(ds, hdi_prob=hdi_prob)["x"].transpose("entry", "hdi").values)
    if S >= 4:
        r_hat = np.asarray(az.rhat(ds)["x"].values)
        ess_bulk = np.asarray(az.ess(ds, method="bulk")["x"].values)
        ess_tail = np.asarray(az.ess(ds, method="tail")["x"].values)
    else:  # too few draws for split R-hat and ESS
        r_hat = ess_bulk = ess_tail = np.full(P, np.nan)
    mean = draws.mean(axis=(0, 1))
    sd = draws.reshape(C * S, P).std(axis=0, ddof=1) if C * S > 1 else np.zeros(P)
    scale = np.maximum(np.abs(hdi).max(axis=1), np.abs(em_values))
    tol = 1e-9 * np.where(scale > 0, scale, 1.0)
    inside = (em_values >= hdi[:, 0] - tol) & (em_values <= hdi[:, 1] + tol)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (em_values - mean) / sd, np.nan)
    parameter, component, index, name = (list(col) for col in zip(*meta, strict=True))
    names = post.feature_names or getattr(em, "feature_names", None)
    feature = [
        idx if names is None else ",".join(names[int(i)] for i in idx.split(",") if i)
        for idx in index
    ]
    table = pd.DataFrame(
        {
            "parameter": pd.Categorical(parameter, categories=PARAMETERS),
            "component": np.asarray(component, dtype=np.int64),
            "index": index,
            "name": name,
            "em": em_values,
            "post_mean": mean,
            "post_sd": sd,
            "hdi_low": hdi[:, 0],
            "hdi_high": hdi[:, 1],
            "inside": inside,
            "z": z,
            "r_hat": r_hat,
            "ess_bulk": ess_bulk,
            "ess_tail": ess_tail,
            "feature": feature,
        },
        columns=list(COLUMNS),
    )
    if vb is not None:
        for column, values in _vb_columns(vb, post, hdi_prob, sd).items():
            table[column] = values
    table.attrs.update(hdi_prob=float(hdi_prob), **info)
    from bayesgmm.diagnostics._tables import EMvsPosteriorTable  # pandas, on first use

    out = EMvsPosteriorTable(table)
    out.attrs.update(table.attrs)
    return out


@x64
def em_vs_posterior_summary(
    em, post: Posterior, *, hdi_prob: float = 0.94, relabel: bool = True
) -> dict:
    """Whole-model agreement between an EM/MAP estimate and the posterior.

    Parameters
    ----------
    em : EMResult or GMMParams
    post : Posterior
    hdi_prob : float
        Mass of the HDI of the posterior log-likelihood.
    relabel : bool
        Match components first (as in :func:`em_vs_posterior`); only the membership
        difference depends on it, the other numbers are label-invariant.

    Returns
    -------
    dict
        ``em_log_likelihood``: total (weighted) log-likelihood of ``post.X``
        under EM. ``post_log_likelihood_mean``, ``post_log_likelihood_hdi``:
        the posterior distribution of the same quantity over draws.
        ``log_likelihood_quantile``: fraction of draws whose log-likelihood is
        at most EM's. The maximum-likelihood estimate sits above most draws
        (about ``p / 2`` above the posterior mean for ``p`` free parameters,
        a quantile near 1); a quantile near 0 means EM stopped in a worse
        local optimum than the region the sampler explores.
        ``adjusted_rand_index``: between EM hard labels and posterior modal
        labels (argmax of the posterior mean membership), label-invariant.
        ``label_agreement``: fraction of points whose hard labels agree after
        matching. ``membership_mad``: mean absolute difference between EM and
        posterior mean membership probabilities, ``mean_n 0.5 sum_k |r - r'|``
        (the total variation distance per point, averaged);
        ``membership_max_diff``: its largest value over points.
    """
    from sklearn.metrics import adjusted_rand_score

    em_p, post, info = _prepare(em, post, hdi_prob, relabel)
    X = np.asarray(post.X)
    weight = np.asarray(post.sample_weight)
    ll_post = log_likelihood_draws(post.params, X, weight).ravel()
    ll_em = float(log_likelihood_draws(em_p, X, weight))
    resp_em = np.asarray(em_p.responsibilities(X), dtype=np.float64)
    resp_post = posterior_membership(post.params, X)
    labels_em = resp_em.argmax(axis=1)
    labels_post = resp_post.argmax(axis=1)
    tv = 0.5 * np.abs(resp_em - resp_post).sum(axis=1)
    return {
        "em_log_likelihood": ll_em,
        "post_log_likelihood_mean": float(ll_post.mean()),
        "post_log_likelihood_hdi": _hdi_1d(ll_post, hdi_prob),
        "log_likelihood_quantile": float((ll_post <= ll_em).mean()),
        "adjusted_rand_index": float(adjusted_rand_score(labels_em, labels_post)),
        "label_agreement": float((labels_em == labels_post).mean()),
        "membership_mad": float(tv.mean()),
        "membership_max_diff": float(tv.max()),
        "matching": info["matching"],
    }


def _hdi_1d(values: np.ndarray, hdi_prob: float) -> tuple[float, float]:
    import arviz as az

    low, high = np.asarray(az.hdi(np.asarray(values, dtype=np.float64), hdi_prob=hdi_prob))
    return float(low), float(high)


# ------------------------------------------------------------------- report ---
def _verdict(ok: bool) -> str:
    return "OK     " if ok else "WARNING"


def _indices_text(idx: np.ndarray, first: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:first])
    return shown + (", ..." if len(idx) > first else "")


@x64
def report(
    em,
    post: Posterior,
    *,
    hdi_prob: float = 0.94,
    r_hat_max: float = 1.01,
    ess_min: float | None = None,
    bfmi_min: float = 0.3,
    membership_threshold: float = 0.8,
    max_listed: int = 10,
) -> str:
    """The text to read first: can the sampler be trusted, and where do EM and it disagree.

    Three blocks of lines. A check's line opens with ``OK`` or ``WARNING``, and
    its remark in parentheses follows that outcome (what a pass means, or what
    to try after a failure); ``NOTE`` lines report without judging, and ``-``
    lines say what could not be assessed. Only ``WARNING`` lines count as failed
    checks in the closing verdict.

    - **Sampler**: the largest R-hat and smallest bulk/tail ESS over all
      compared entries (after matching labels), the label-invariant R-hat of the
      log-likelihood, divergences, BFMI per chain (``arviz.bfmi`` on
      ``sample_stats["energy"]``, when recorded) and label switching (the
      fraction of draws relabelled, and how).
    - **EM against the posterior**: the EM entries outside the ``hdi_prob``
      HDI (largest ``|z|`` first), the EM log-likelihood against the posterior
      log-likelihood, agreement of hard labels and memberships.
    - **Membership**: points whose largest posterior mean membership
      probability is below ``membership_threshold``, their count and first
      indices.

    Parameters
    ----------
    em : EMResult or GMMParams
    post : Posterior
    hdi_prob : float
    r_hat_max : float
        Largest acceptable R-hat (Vehtari et al. 2021 recommend 1.01).
    ess_min : float, optional
        Smallest acceptable bulk and tail ESS; default ``100 * num_chains``
        (Vehtari et al. 2021: 400 for four chains).
    bfmi_min : float
        Smallest acceptable energy BFMI per chain.
    membership_threshold : float
        A point is uncertain when its largest membership probability is below it.
    max_listed : int
        Most entries and indices listed per line.

    Returns
    -------
    str
    """

    em_p = point_params(em)
    post = check_posterior(post, em_p)
    em_p, relabelled, info = match_labels(em_p, post, True)  # once; both are then labelled alike
    table = em_vs_posterior(em_p, relabelled, hdi_prob=hdi_prob, relabel=False)
    model = em_vs_posterior_summary(em_p, relabelled, hdi_prob=hdi_prob, relabel=False)
    C, S = post.num_chains, post.num_draws
    ess_min = 100.0 * C if ess_min is None else float(ess_min)
    N = int(np.asarray(post.X).shape[0])
    pct = f"{hdi_prob:.0%}"
    flags = []

    lines = [
        f"EM against the posterior: K={post.n_components}, D={post.n_features}, N={N}, "
        f"{C} chain(s) x {S} draws, covariance_type={post.covariance_type!r}",
        "",
        "Sampler",
    ]
    core = table[table.parameter.isin(["weight", "mean", "covariance"])]
    r_hat = float(np.nanmax(core.r_hat)) if core.r_hat.notna().any() else math.nan
    ok = bool(np.isfinite(r_hat) and r_hat <= r_hat_max)
    flags.append(ok)
    if np.isfinite(r_hat):
        worst = core.name.iloc[int(np.nanargmax(core.r_hat))]
        lines.append(
            f"  {_verdict(ok)}  max R-hat {r_hat:.3f} ({worst}; threshold {r_hat_max:g}"
            + (")" if ok else "; the chains disagree: run longer, or try fewer components)")
        )
    else:
        lines.append(
            f"  {_verdict(ok)}  max R-hat not available (needs at least 2 chains of 4 draws)"
        )
    ess_b = float(np.nanmin(core.ess_bulk)) if core.ess_bulk.notna().any() else math.nan
    ess_t = float(np.nanmin(core.ess_tail)) if core.ess_tail.notna().any() else math.nan
    ok = bool(np.isfinite(ess_b) and np.isfinite(ess_t) and min(ess_b, ess_t) >= ess_min)
    flags.append(ok)
    if np.isfinite(ess_b) and np.isfinite(ess_t):
        lines.append(
            f"  {_verdict(ok)}  min ESS bulk {ess_b:.0f}, tail {ess_t:.0f} (threshold {ess_min:g}"
            + (")" if ok else "; too few effective draws for stable intervals: draw more)")
        )
    else:
        lines.append(f"  {_verdict(ok)}  min ESS not available (needs at least 4 draws per chain)")
    if S >= 4:
        inv = invariant_diagnostics(
            post.params, post.X, sample_weight=post.sample_weight, reference=em_p
        )
        ll_rhat = float(inv.loc["log_likelihood", "r_hat"])
        ok = bool(np.isfinite(ll_rhat) and ll_rhat <= r_hat_max)
        flags.append(ok)
        lines.append(
            f"  {_verdict(ok)}  label-invariant log-likelihood R-hat {ll_rhat:.3f} "
            + (
                "(chains explore the same mixture)"
                if ok
                else f"(threshold {r_hat_max:g}; chains explore different mixtures or have not "
                "converged: run longer, or try fewer components)"
            )
        )
    n_div = post.num_divergences
    ok = n_div == 0
    flags.append(ok)
    lines.append(
        f"  {_verdict(ok)}  {n_div} divergent transition(s) of {C * S}"
        + ("" if ok else " (raise target_accept_prob, or reparameterise)")
    )
    energy = post.sample_stats.get("energy")
    if energy is not None and np.asarray(energy).shape == (C, S) and S > 2:
        import arviz as az

        bfmi = np.atleast_1d(np.asarray(az.bfmi(np.asarray(energy, dtype=np.float64))))
        ok = bool((bfmi >= bfmi_min).all())
        flags.append(ok)
        lines.append(
            f"  {_verdict(ok)}  energy BFMI per chain {', '.join(f'{b:.2f}' for b in bfmi)} "
            f"(threshold {bfmi_min:g}"
            + (")" if ok else "; the sampler explores the energy poorly: reparameterise)")
        )
    else:
        lines.append("  -        energy BFMI not available (no sample_stats['energy'])")
    frac, how = info["fraction_permuted"], info["relabel_method"]
    if post.n_components == 1:
        lines.append("  OK       label switching: impossible with one component")
    elif frac is None:
        lines.append("  -        label switching: not assessed (posterior not relabelled)")
    else:
        lines.append(
            f"  OK       label switching: {frac:.1%} of draws had their labels permuted; "
            f"handled by relabelling ({how}); {info['matching']}"
        )

    lines += ["", f"EM against the posterior ({pct} HDI)"]
    outside = core[~core.inside.to_numpy(dtype=bool)]
    outside = outside.reindex(outside.z.abs().sort_values(ascending=False).index)
    ok = outside.empty
    flags.append(ok)
    if ok:
        lines.append(f"  OK       all {len(core)} EM values lie inside the {pct} HDI")
    else:
        lines.append(
            f"  WARNING  {len(outside)} of {len(core)} EM values lie outside the {pct} HDI "
            "(largest |z| first):"
        )
        for row in outside.head(max_listed).itertuples():
            lines.append(
                f"{'':13}{row.name:<18} EM {row.em:>10.4g}   posterior {row.post_mean:>10.4g} "
                f"[{row.hdi_low:.4g}, {row.hdi_high:.4g}]   z = {row.z:+.2f}"
            )
        if len(outside) > max_listed:
            lines.append(f"             ... and {len(outside) - max_listed} more")
    q = model["log_likelihood_quantile"]
    low, high = model["post_log_likelihood_hdi"]
    ok = q >= 0.05
    flags.append(ok)
    lines.append(
        f"  {_verdict(ok)}  EM log-likelihood {model['em_log_likelihood']:.2f} sits at quantile "
        f"{q:.2f} of the posterior log-likelihood (mean "
        f"{model['post_log_likelihood_mean']:.2f}, {pct} HDI [{low:.2f}, {high:.2f}])"
        + ("" if ok else ": EM may be in a worse local optimum; try more restarts")
    )
    ari = model["adjusted_rand_index"]
    ok = ari >= 0.9
    flags.append(ok)
    lines.append(
        f"  {_verdict(ok)}  hard labels: adjusted Rand index {ari:.3f}, "
        f"{model['label_agreement']:.1%} of points agree; membership probabilities differ by "
        f"{model['membership_mad']:.3f} on average (at most {model['membership_max_diff']:.3f})"
        + ("" if ok else ": EM clusters the points differently from the posterior (ARI < 0.9)")
    )

    lines += ["", "Membership"]
    resp = posterior_membership(relabelled.params, post.X)
    top = resp.max(axis=1)
    uncertain = np.flatnonzero(top < membership_threshold)
    uncertain = uncertain[np.argsort(top[uncertain], kind="stable")]
    if uncertain.size == 0:
        lines.append(
            f"  OK       every point has a posterior membership probability >= "
            f"{membership_threshold:g}"
        )
    else:
        lines.append(
            f"  NOTE     {uncertain.size} of {N} points ({uncertain.size / N:.1%}) have max "
            f"posterior membership < {membership_threshold:g}; most uncertain first: "
            f"{_indices_text(uncertain, max_listed)}"
        )
    lines += [
        "",
        "Verdict: "
        + (
            "OK: the sampler looks trustworthy and EM agrees with the posterior."
            if all(flags)
            else f"WARNING: {sum(not f for f in flags)} check(s) failed; read the lines above."
        ),
    ]
    return "\n".join(lines)
