"""The estimates the comparison tools put side by side, sorted by kind and label-matched.

:func:`bayesgmm.em_vs_posterior` and :func:`bayesgmm.plots.plot_parameters` take
their estimates positionally, in any order, as in
``plot_parameters(em, post_nuts, post_gibbs, vb)``:

- **the point estimate** (the marked values): an :class:`~bayesgmm.EMResult` or a
  :class:`~bayesgmm.GMMParams` without batch axes, exactly one. With none, a
  :class:`~bayesgmm.VBResult` given first stands in (its variational posterior
  mean), as in ``em_vs_posterior(vb, post)``.
- **the interval estimates**: every :class:`~bayesgmm.Posterior` (NUTS or Gibbs,
  one class) and every other VBResult (4,000 independent draws of its ``q``). The
  first Posterior is the *reference*: the table's unprefixed columns (``post_mean``,
  ``hdi_low``, ``inside``, ``z``...) describe it, and the other estimates' widths
  are measured against it. With no Posterior, the first VBResult is the reference.

Each interval estimate has a label (``labels=``, else ``"NUTS"``/``"Gibbs"`` from
``Posterior.sampler``, ``"VB"``; a lone Posterior is ``"posterior"``) and, unless it
is the reference, a column prefix made from the label (``"Gibbs"`` -> ``gibbs_``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jax
import numpy as np

from bayesgmm._core.params import GMMParams
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._checks import check_posterior, point_params, posterior_mean
from bayesgmm.diagnostics._matching import match_labels
from bayesgmm.diagnostics._relabel import permute
from bayesgmm.diagnostics._relabel import relabel as relabel_draws
from bayesgmm.em._fit import EMResult
from bayesgmm.em._vb import VBResult

__all__ = ["Estimate", "Estimates", "estimate_draws", "other_draws", "sort_estimates"]

#: Draws of a VBResult's q behind its intervals (independent, so one "chain").
VB_DRAWS = 4000
_SAMPLERS = {"nuts": "NUTS", "gibbs": "Gibbs"}


@dataclass(frozen=True)
class Estimate:
    """One interval estimate: its label, its column prefix ("" for the reference), the fit."""

    label: str
    prefix: str
    source: Posterior | VBResult


@dataclass(frozen=True)
class Estimates:
    """The point estimate and the interval estimates (the reference first)."""

    point: GMMParams
    point_source: object
    intervals: tuple[Estimate, ...]

    @property
    def reference(self) -> Estimate:
        return self.intervals[0]


def _kind(obj, position: int, explicit_em: bool) -> str:
    """``"point"``, ``"interval"`` or ``"vb"`` (a VBResult: interval, or point if alone)."""
    if isinstance(obj, Posterior):
        check_posterior(obj)
        return "interval"
    if isinstance(obj, VBResult):
        return "vb"
    if isinstance(obj, EMResult):
        return "point"
    if isinstance(obj, GMMParams):
        if obj.batch_shape and position == 0 and not explicit_em:
            point_params(obj)  # em's place: "em must be a single estimate (no batch axes)"
        if obj.batch_shape:
            raise TypeError(
                f"argument {position + 1} is GMMParams with batch shape {obj.batch_shape}: "
                "draws are compared as a Posterior (Posterior.from_draws, sample_posterior); "
                "a point estimate has no batch axes."
            )
        return "point"
    raise TypeError(
        "the estimates to compare are one EMResult or GMMParams (the point estimate) and "
        f"Posteriors or VBResults; argument {position + 1} is a {type(obj).__name__}."
    )


def sort_estimates(
    estimates, *, em=None, post=None, vb=None, labels=None, what: str, need_intervals=True
) -> Estimates:
    """Sort ``estimates`` (any order) into the point estimate and labelled interval estimates.

    Parameters
    ----------
    estimates : tuple
        The positional estimates.
    em, post, vb : optional
        The earlier keywords: ``em`` the point estimate (an EMResult, VBResult or
        GMMParams), ``post`` a Posterior, ``vb`` a VBResult (an interval estimate).
    labels : sequence of str, optional
        One label per interval estimate, in the order given (keywords after the
        positional estimates).
    what : str
        The caller's name, for the messages.
    need_intervals : bool
        Refuse a call with nothing to compare (no Posterior or VBResult).

    Returns
    -------
    Estimates
    """
    given = [(_kind(obj, i, em is not None), obj) for i, obj in enumerate(estimates)]
    if post is not None:
        given.append(("interval", check_posterior(post)))
    if vb is not None:
        if not isinstance(vb, VBResult):
            raise TypeError(f"vb must be a VBResult (bayesgmm.fit_vb); got {type(vb).__name__}.")
        given.append(("vb", vb))
    points = [obj for kind, obj in given if kind == "point"]
    if em is not None:
        points.insert(0, em)
    if len(points) > 1:
        raise TypeError(
            f"{what} got two point estimates ({', '.join(type(p).__name__ for p in points)}); "
            "it marks one (an EMResult or GMMParams) against any number of Posteriors and "
            "VBResults."
        )
    intervals = [obj for kind, obj in given if kind != "point"]
    if not points and given and given[0][0] == "vb":  # em_vs_posterior(vb, post): VB's mean
        points = [intervals.pop(0)]
    if not points:
        raise TypeError(
            f"{what} needs a point estimate to mark (an EMResult or GMMParams, e.g. "
            f"{what}(em, post)); got only {', '.join(type(o).__name__ for o in intervals) or '-'}."
        )
    point = point_params(points[0])
    if need_intervals and not intervals:
        raise TypeError(
            f"{what} has nothing to compare the point estimate with: pass one or more "
            "Posteriors (sample_posterior) or VBResults (fit_vb) beside it."
        )
    for obj in intervals:
        fit = obj.params if isinstance(obj, VBResult) else obj
        if (fit.n_components, fit.n_features) != (point.n_components, point.n_features):
            raise ValueError(
                f"the EM estimate has K={point.n_components}, D={point.n_features} but the "
                f"{type(obj).__name__} has K={fit.n_components}, D={fit.n_features}; compare "
                "fits of the same model."
            )
    names = _labels(intervals, labels)
    order = sorted(range(len(intervals)), key=lambda i: not isinstance(intervals[i], Posterior))
    order = order[:1] + sorted(order[1:])  # the first Posterior first, the rest as given
    prefixes = [_prefix(names[i]) for i in order[1:]]
    if len(set(prefixes)) < len(prefixes) or "post" in prefixes or "" in prefixes:
        raise ValueError(
            f"labels {[names[i] for i in order[1:]]!r} give the column prefixes {prefixes!r}; "
            "they must be distinct, contain a letter or digit, and not be 'post'."
        )
    return Estimates(
        point=point,
        point_source=points[0],
        intervals=tuple(
            Estimate(names[i], "" if j == 0 else prefixes[j - 1], intervals[i])
            for j, i in enumerate(order)
        ),
    )


def _labels(intervals, labels) -> list[str]:
    if labels is not None:
        if isinstance(labels, str):
            labels = [labels]
        labels = [str(s) for s in labels]
        if len(labels) != len(intervals):
            raise ValueError(
                f"labels must name the {len(intervals)} Posterior(s) and VBResult(s) in the "
                f"order given; got {len(labels)} labels."
            )
        if len(set(labels)) < len(labels) or not all(labels):
            raise ValueError(f"labels must be distinct, non-empty strings; got {labels!r}.")
        return labels
    n_posteriors = sum(isinstance(o, Posterior) for o in intervals)
    names = [
        "VB"
        if isinstance(o, VBResult)
        else "posterior"
        if n_posteriors == 1
        else _SAMPLERS.get(o.sampler, str(o.sampler))
        for o in intervals
    ]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for name in names:  # "NUTS 1", "NUTS 2" when a kind repeats
        seen[name] = seen.get(name, 0) + 1
        out.append(name if counts[name] == 1 else f"{name} {seen[name]}")
    return out


def _prefix(label: str) -> str:
    return re.sub(r"\W+", "_", label.lower()).strip("_")


# ----------------------------------------------------------------- matching ---
def estimate_draws(est: Estimates, relabel: bool):
    """Every interval estimate's draws, labelled as the (aligned) point estimate.

    The reference Posterior is matched as by :func:`match_labels` (relabelled
    against the point estimate, or, if relabelled already, the point estimate
    aligned to it). Each other Posterior not yet relabelled is relabelled
    against the aligned point estimate; one relabelled already keeps its draws'
    labelling and gets one permutation for all draws (its mean matched to the
    point estimate). A VBResult's draws get the permutation that matches its
    mean to the point estimate.

    Returns
    -------
    point : GMMParams, the aligned point estimate
    draws : list of GMMParams with batch shape (chain, draw), one per interval
        estimate in ``est.intervals`` order (a VBResult's: (1, 4000))
    info : dict, as from :func:`match_labels` (for the reference)
    """
    ref = est.reference.source
    K = est.point.n_components
    if isinstance(ref, Posterior):
        point, ref, info = match_labels(est.point, ref, relabel)
        draws = [ref.params]
    else:
        point = est.point
        info = {
            "matching": "VB matched to EM" if relabel and K > 1 else "none",
            "em_permutation": tuple(range(K)),
            "fraction_permuted": None,
            "relabel_method": None,
        }
        draws = [_vb_draws(ref, point, relabel)]
    return point, [*draws, *other_draws(est.intervals[1:], point, relabel)], info


def other_draws(intervals, point: GMMParams, relabel: bool) -> list[GMMParams]:
    """The draws of the estimates after the reference, labelled as ``point`` (see above)."""
    out = []
    for e in intervals:
        obj = e.source
        if isinstance(obj, VBResult):
            out.append(_vb_draws(obj, point, relabel))
        elif not relabel or point.n_components == 1:
            out.append(obj.params)
        elif obj.relabel_method is None:
            out.append(obj.relabel(reference=point).params)
        else:
            out.append(_permuted(obj.params, posterior_mean(obj.params), point))
    return out


def _permuted(params: GMMParams, mean: GMMParams, point: GMMParams) -> GMMParams:
    """``params`` with one permutation for all draws, the one matching ``mean`` to ``point``."""
    perm = np.asarray(relabel_draws(mean, reference=point).permutations)
    return permute(params, np.broadcast_to(perm, (*params.batch_shape, perm.size)))


def _vb_draws(vb: VBResult, point: GMMParams, relabel: bool) -> GMMParams:
    draws = vb.sample(jax.random.key(0), VB_DRAWS)
    draws = GMMParams._unchecked(*(np.asarray(leaf)[None] for leaf in jax.tree.leaves(draws)))
    if relabel and point.n_components > 1:
        draws = _permuted(draws, vb.params, point)
    return draws
