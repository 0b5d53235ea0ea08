"""The report: the text a person reads first after sampling, with ``OK``/``WARNING`` lines.

Built on :func:`bayesgmm.em_vs_posterior` and :func:`bayesgmm.em_vs_posterior_summary`
(labels matched once, as described in :mod:`bayesgmm.diagnostics._em_vs_posterior`).
"""

from __future__ import annotations

import math

import numpy as np

from bayesgmm._core._precision import x64
from bayesgmm._core._validation import check_positive
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._em_vs_posterior import _table, em_vs_posterior_summary
from bayesgmm.diagnostics._estimates import other_draws, sort_estimates
from bayesgmm.diagnostics._invariant import invariant_diagnostics
from bayesgmm.diagnostics._matching import match_labels
from bayesgmm.diagnostics._membership import posterior_membership

__all__ = ["report"]


# ------------------------------------------------------------------- report ---
def _verdict(ok: bool) -> str:
    return "OK     " if ok else "WARNING"


def _indices_text(idx: np.ndarray, first: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:first])
    return shown + (", ..." if len(idx) > first else "")


@x64
def report(
    *estimates,
    em=None,
    post: Posterior | None = None,
    vb=None,
    labels=None,
    hdi_prob: float = 0.94,
    r_hat_max: float = 1.01,
    ess_min: float | None = None,
    bfmi_min: float = 0.3,
    membership_threshold: float = 0.8,
    max_listed: int = 10,
) -> str:
    """The text to read first: can the sampler be trusted, and where do EM and it disagree.

    ``report(em, post)``; with more estimates (``report(em, post_nuts,
    post_gibbs, vb)``, any order, sorted as by :func:`bayesgmm.em_vs_posterior`)
    the first posterior is the one examined in full, and a fourth block sets
    the others against it.

    Blocks of lines. A check's line opens with ``OK`` or ``WARNING``, and
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
    - **Other estimates** (only with more than one): for every further
      posterior, its R-hat, ESS and divergences (``OK``/``WARNING``); for every
      posterior and VB fit a ``NOTE`` with the ratio of its HDI widths to the
      first posterior's (how many entries are narrower, median and range, as
      in the table's ``*_width_ratio`` columns) and the largest shift of its
      mean, in the first posterior's standard deviations.
    - **Membership**: points whose largest posterior mean membership
      probability is below ``membership_threshold``, their count and first
      indices.

    Parameters
    ----------
    *estimates : EMResult, GMMParams, Posterior or VBResult
        One point estimate and at least one Posterior (the first is examined
        in full), then any further Posteriors and VBResults.
    em, post, vb, labels : optional
        As in :func:`bayesgmm.em_vs_posterior`.
    hdi_prob : float
    r_hat_max : float
        Largest acceptable R-hat (Vehtari et al. 2021 recommend 1.01).
    ess_min : float, optional
        Smallest acceptable bulk and tail ESS; default ``100 * num_chains``
        of each posterior (Vehtari et al. 2021: 400 for four chains).
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

    est = sort_estimates(estimates, em=em, post=post, vb=vb, labels=labels, what="report")
    post = est.reference.source
    if not isinstance(post, Posterior):
        raise TypeError(
            "report examines a sampler's draws: pass a Posterior (sample_posterior) beside "
            f"the point estimate; got only {', '.join(e.label for e in est.intervals)}."
        )
    hdi_prob = check_positive("hdi_prob", hdi_prob)
    if not hdi_prob < 1:
        raise ValueError(f"hdi_prob must lie in (0, 1); got {hdi_prob!r}.")
    em_p, relabelled, info = match_labels(est.point, post, True)  # once: all labelled alike
    draws = [relabelled.params, *other_draws(est.intervals[1:], em_p, True)]
    table = _table(est, em_p, draws, info, hdi_prob)
    model = em_vs_posterior_summary(em_p, relabelled, hdi_prob=hdi_prob, relabel=False)
    C, S = post.num_chains, post.num_draws
    ess_given = ess_min
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

    if len(est.intervals) > 1:
        ref = est.reference.label
        ref = "the posterior" if ref == "posterior" else ref
        lines += ["", f"Other estimates against {ref} ({pct} HDI)"]
        for e in est.intervals[1:]:
            other_lines, other_flags = _other(e, table, ref, r_hat_max, ess_given)
            lines += other_lines
            flags += other_flags

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


def _other(e, table, ref: str, r_hat_max: float, ess_min: float | None):
    """The lines (and check outcomes) of one estimate set against the reference posterior."""
    core = table[table.parameter.isin(["weight", "mean", "covariance"])]
    p = e.prefix
    lines, flags = [], []
    if isinstance(e.source, Posterior):
        C, S = e.source.num_chains, e.source.num_draws
        need = 100.0 * C if ess_min is None else float(ess_min)
        r_hat, ess_b, ess_t = (core[f"{p}_{c}"] for c in ("r_hat", "ess_bulk", "ess_tail"))
        if r_hat.notna().any() and ess_b.notna().any():
            worst = float(np.nanmax(r_hat))
            least = float(min(np.nanmin(ess_b), np.nanmin(ess_t)))
            n_div = e.source.num_divergences
            ok = worst <= r_hat_max and least >= need and n_div == 0
            lines.append(
                f"  {_verdict(ok)}  {e.label}: max R-hat {worst:.3f}, min ESS {least:.0f}, "
                f"{n_div} divergent transition(s) of {C * S} (thresholds {r_hat_max:g}, {need:g}"
                + (")" if ok else "; run it longer before comparing)")
            )
            flags.append(ok)
        else:
            lines.append(f"  -        {e.label}: R-hat and ESS not available (too few draws)")
    ratio = core[f"{p}_width_ratio"].to_numpy(dtype=np.float64)
    shift = np.abs(core[f"{p}_mean"] - core.post_mean).to_numpy() / core.post_sd.to_numpy()
    if np.isfinite(ratio).any():
        lo, hi = int(np.nanargmin(ratio)), int(np.nanargmax(ratio))
        far = int(np.nanargmax(np.where(np.isfinite(shift), shift, -1.0)))
        names = core.name.to_numpy()
        lines.append(
            f"  NOTE     {e.label}: HDI narrower than {ref}'s for "
            f"{int((ratio < 1).sum())} of {len(ratio)} entries; width ratio median "
            f"{np.nanmedian(ratio):.2f}, from {ratio[lo]:.2f} ({names[lo]}) to {ratio[hi]:.2f} "
            f"({names[hi]}); means at most {shift[far]:.2f} sd apart ({names[far]})"
        )
    return lines, flags
