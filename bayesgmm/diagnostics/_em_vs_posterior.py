"""EM against the posterior: "I fitted EM; how much should I trust it?"

Because an EM/MAP estimate and every posterior draw are the same
:class:`~bayesgmm.GMMParams`, they can be compared entry by entry:

- :func:`em_vs_posterior`: one row per parameter entry (weights, means, the unique
  covariance entries, and the derived standard deviations and correlations)
  with the EM value, the posterior mean, sd and HDI, whether EM lies inside
  the HDI, the standardised distance ``z = (em - mean) / sd``, and R-hat and
  bulk/tail ESS of the entry (ArviZ, on ``(chain, draw)`` arrays). It takes any
  number of estimates (``em_vs_posterior(em, post_nuts, post_gibbs, vb)``): one
  point estimate and Posteriors and VB fits, each with its own columns, their
  intervals' widths measured against the first posterior's.
- :func:`em_vs_posterior_summary`: whole-model numbers that need no component matching
  or are matched once: EM's log-likelihood against the posterior distribution
  of the log-likelihood, adjusted Rand index between the EM hard labels and
  the posterior modal labels, and the difference in membership probabilities.
- :func:`report` (``_report``): the text a person reads first, with
  ``OK``/``WARNING`` lines.

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

Further posteriors and VB fits are then matched to the rows' labelling
(``bayesgmm.diagnostics._estimates``). With ``relabel=False`` nothing is matched:
use it when all are known to be labelled alike.
"""

from __future__ import annotations

import jax
import numpy as np

from bayesgmm._core._precision import x64
from bayesgmm._core._validation import check_positive
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._checks import check_posterior, point_params
from bayesgmm.diagnostics._estimates import estimate_draws, sort_estimates
from bayesgmm.diagnostics._invariant import log_likelihood_draws
from bayesgmm.diagnostics._matching import match_labels
from bayesgmm.diagnostics._membership import posterior_membership

__all__ = [
    "em_vs_posterior",
    "em_vs_posterior_summary",
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


def _summary(draws: np.ndarray, hdi_prob: float, chains: bool) -> dict[str, np.ndarray]:
    """Mean, sd, HDI (with ``chains``: R-hat, bulk/tail ESS) of each entry of (C, S, P) draws."""
    import arviz as az
    import xarray as xr

    C, S, P = draws.shape
    ds = xr.Dataset(
        {"x": (("chain", "draw", "entry"), draws)},
        coords={"chain": np.arange(C), "draw": np.arange(S), "entry": np.arange(P)},
    )
    hdi = np.asarray(az.hdi(ds, hdi_prob=hdi_prob)["x"].transpose("entry", "hdi").values)
    out = {
        "mean": draws.mean(axis=(0, 1)),
        "sd": draws.reshape(C * S, P).std(axis=0, ddof=1) if C * S > 1 else np.zeros(P),
        "hdi_low": hdi[:, 0],
        "hdi_high": hdi[:, 1],
    }
    nan = np.full(P, np.nan)  # independent draws (VB), or too few for split R-hat and ESS
    ok = chains and S >= 4
    out["r_hat"] = np.asarray(az.rhat(ds)["x"].values) if ok else nan
    out["ess_bulk"] = np.asarray(az.ess(ds, method="bulk")["x"].values) if ok else nan
    out["ess_tail"] = np.asarray(az.ess(ds, method="tail")["x"].values) if ok else nan
    return out


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / b, np.nan)


# ---------------------------------------------------------- em_vs_posterior ---
@x64
def em_vs_posterior(
    *estimates,
    em=None,
    post: Posterior | None = None,
    vb=None,
    labels=None,
    hdi_prob: float = 0.94,
    relabel: bool = True,
):
    """Compare a point estimate with posteriors (and VB), parameter entry by entry.

    ``em_vs_posterior(em, post)`` for one posterior; any number of estimates for
    more, in any order: ``em_vs_posterior(em, post_nuts, post_gibbs, vb)``.

    Parameters
    ----------
    *estimates : EMResult, GMMParams, Posterior or VBResult
        One point estimate, the values compared (an EMResult or a GMMParams
        without batch axes; with neither, a VBResult given first stands in with
        its variational posterior mean), and any number of interval estimates:
        Posteriors (``(chain, draw)`` draws; NUTS and Gibbs alike) and
        VBResults (4,000 draws of ``q``), all of the same K and D. The first
        Posterior is the *reference* (with none, the first VBResult).
    em, post, vb : optional
        The earlier keywords: the point estimate, a Posterior, a VBResult (an
        interval estimate; its columns are prefixed ``vb_``).
    labels : sequence of str, optional
        Names of the interval estimates, in the order given (keywords last);
        default ``"NUTS"``/``"Gibbs"`` (``Posterior.sampler``) and ``"VB"``,
        numbered when one repeats, and ``"posterior"`` for a lone Posterior.
        The column prefix of an estimate is its label in lower case.
    hdi_prob : float
        Probability mass of the highest density intervals (``arviz.hdi``).
    relabel : bool
        Match components first (see the module docstring): relabel the
        reference posterior against EM if it has not been relabelled, otherwise
        align EM to the posterior's labelling; every other estimate is then
        matched to that labelling (a Posterior not relabelled yet is relabelled
        against it, one relabelled already and a VBResult are permuted once).

    Returns
    -------
    pandas.DataFrame
        (an ``EMvsPosteriorTable``, which prints every column, rounded)
        One row per entry: ``weight`` (K), ``mean`` (K x D), ``covariance``
        (upper triangle, K x D(D+1)/2), ``sd`` (square roots of the variances,
        K x D) and ``correlation`` (K x D(D-1)/2). Columns, for the reference:

        ``name`` (e.g. ``"means[1,0]"``), ``em``, ``post_mean``, ``hdi_low``,
        ``hdi_high``, ``inside`` (EM within the HDI), ``z``
        (``(em - post_mean) / post_sd``), ``post_sd``, ``r_hat``,
        ``ess_bulk``, ``ess_tail``, then the entry's coordinates
        ``parameter, component, index`` (``""``, ``"d"`` or ``"i,j"``) and
        ``feature``: the index as the features' names (``"waiting"``,
        ``"eruptions,waiting"``) when the fit or the posterior carries
        ``feature_names``, else the index.

        Then, for every other estimate with prefix ``p`` (``gibbs``, ``vb``...):
        ``p_mean``, ``p_sd``, ``p_hdi_low``, ``p_hdi_high``, ``p_sd_ratio``
        (``p_sd / post_sd``) and ``p_width_ratio`` (its HDI's width over the
        reference's): below 1 where that estimate is narrower than the
        reference, as mean-field VB often is. A Posterior adds ``p_r_hat``,
        ``p_ess_bulk`` and ``p_ess_tail``.

        ``attrs`` holds ``hdi_prob``, ``estimates`` (``(label, prefix)`` per
        interval estimate, the reference first with prefix ``""``), ``matching``
        (what was done to match labels), ``em_permutation``,
        ``fraction_permuted`` and ``relabel_method`` (of the reference).

    Examples
    --------
    >>> import bayesgmm as bg                                   # doctest: +SKIP
    >>> X = bg.datasets.make_two_gaussians_1d(300)             # doctest: +SKIP
    >>> em = bg.fit_em(X, 2)                                   # doctest: +SKIP
    >>> post = bg.sample_posterior(X, 2, init=em)              # doctest: +SKIP
    >>> table = bg.em_vs_posterior(em, post)                   # doctest: +SKIP
    >>> table[~table.inside]                 # EM values outside the 94% HDI  # doctest: +SKIP
    >>> post_g = bg.sample_posterior(X, 2, init=em, method="gibbs")  # doctest: +SKIP
    >>> vb = bg.fit_vb(X, 2)                                   # doctest: +SKIP
    >>> both = bg.em_vs_posterior(em, post, post_g, vb)        # doctest: +SKIP
    >>> both[both.vb_width_ratio < 0.8]      # VB much narrower than NUTS  # doctest: +SKIP
    """
    est = sort_estimates(estimates, em=em, post=post, vb=vb, labels=labels, what="em_vs_posterior")
    hdi_prob = check_positive("hdi_prob", hdi_prob)
    if not hdi_prob < 1:
        raise ValueError(f"hdi_prob must lie in (0, 1); got {hdi_prob!r}.")
    em_p, draws, info = estimate_draws(est, relabel)
    return _table(est, em_p, draws, info, hdi_prob)


def _table(est, em_p, draws, info: dict, hdi_prob: float):
    """:func:`em_vs_posterior`'s table from label-matched draws (one per ``est.intervals``)."""
    import pandas as pd

    em_values, meta = _entries(*jax.tree.leaves(em_p))  # (P,)
    ref = _summary(
        _entries(*jax.tree.leaves(draws[0]))[0],  # (C, S, P)
        hdi_prob,
        chains=isinstance(est.reference.source, Posterior),
    )
    hdi = np.stack([ref["hdi_low"], ref["hdi_high"]], axis=1)
    scale = np.maximum(np.abs(hdi).max(axis=1), np.abs(em_values))
    tol = 1e-9 * np.where(scale > 0, scale, 1.0)
    inside = (em_values >= hdi[:, 0] - tol) & (em_values <= hdi[:, 1] + tol)
    parameter, component, index, name = (list(col) for col in zip(*meta, strict=True))
    names = next(
        (
            e.source.feature_names
            for e in est.intervals
            if getattr(e.source, "feature_names", None) is not None
        ),
        getattr(est.point_source, "feature_names", None),
    )
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
            "post_mean": ref["mean"],
            "post_sd": ref["sd"],
            "hdi_low": ref["hdi_low"],
            "hdi_high": ref["hdi_high"],
            "inside": inside,
            "z": _ratio(em_values - ref["mean"], ref["sd"]),
            "r_hat": ref["r_hat"],
            "ess_bulk": ref["ess_bulk"],
            "ess_tail": ref["ess_tail"],
            "feature": feature,
        },
        columns=list(COLUMNS),
    )
    width = ref["hdi_high"] - ref["hdi_low"]
    for e, d in zip(est.intervals[1:], draws[1:], strict=True):
        chains = isinstance(e.source, Posterior)
        other = _summary(_entries(*jax.tree.leaves(d))[0], hdi_prob, chains)
        other["sd_ratio"] = _ratio(other["sd"], ref["sd"])
        other["width_ratio"] = _ratio(other["hdi_high"] - other["hdi_low"], width)
        for key in ("mean", "sd", "hdi_low", "hdi_high", "sd_ratio", "width_ratio"):
            table[f"{e.prefix}_{key}"] = other[key]
        for key in ("r_hat", "ess_bulk", "ess_tail") if chains else ():
            table[f"{e.prefix}_{key}"] = other[key]
    table.attrs.update(
        hdi_prob=float(hdi_prob),
        estimates=tuple((e.label, e.prefix) for e in est.intervals),
        **info,
    )
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
