"""Matching the labels of a point estimate and a posterior before they are compared."""

from __future__ import annotations

import numpy as np

from bayesgmm._core.params import GMMParams
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.diagnostics._checks import posterior_mean
from bayesgmm.diagnostics._relabel import relabel as relabel_draws

__all__ = ["match_labels"]


def match_labels(em: GMMParams, post: Posterior, relabel: bool):
    """Match labels: returns (em aligned, posterior aligned, info dict)."""
    K = em.n_components
    info = {
        "matching": "none",
        # tuples, not arrays: pandas compares attrs with == when it copies a table
        "em_permutation": tuple(range(K)),
        "fraction_permuted": post.fraction_permuted,
        "relabel_method": post.relabel_method,
    }
    if not relabel or K == 1:
        return em, post, info
    if post.relabel_method is None:
        post = post.relabel(reference=em)
        info.update(
            matching="posterior relabelled against EM",
            fraction_permuted=post.fraction_permuted,
            relabel_method=post.relabel_method,
        )
        return em, post, info
    res = relabel_draws(em, reference=posterior_mean(post.params))
    info.update(
        matching="EM aligned to the posterior",
        em_permutation=tuple(int(k) for k in np.asarray(res.permutations)),
    )
    return res.params, post, info
