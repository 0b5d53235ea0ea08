"""Diagnostics of posteriors and of EM against them.

- Relabelling (``_relabel``): :func:`relabel`, :func:`permute`.
- Label-invariant checks (``_invariant``): :func:`invariant_diagnostics`,
  :func:`log_likelihood_draws`, :func:`density_on_grid`, :func:`co_clustering`.
- Membership (``_membership``): :func:`membership`, :func:`posterior_membership`.
- EM against the posterior (``_em_vs_posterior``): :func:`em_vs_posterior` (one
  point estimate against any number of posteriors and VB fits, sorted and matched
  by ``_estimates``), :func:`em_vs_posterior_summary`; the text (``_report``):
  :func:`report`.
- Posterior predictive checks (``_ppc``): :func:`ppc_statistics`, :func:`ppc_replicates`.
- The number of clusters (``_nclusters``): :func:`n_clusters`, :func:`k_posterior`,
  :func:`clustering` (:class:`Clustering`).
- ArviZ I/O (``_arviz_io``): :func:`to_inference_data`, :func:`from_inference_data`.

NumPyro is not imported here; ArviZ only by the functions that need it.
"""

from bayesgmm.diagnostics._arviz_io import from_inference_data, to_inference_data
from bayesgmm.diagnostics._em_vs_posterior import em_vs_posterior, em_vs_posterior_summary
from bayesgmm.diagnostics._invariant import (
    co_clustering,
    density_on_grid,
    invariant_diagnostics,
    log_likelihood_draws,
)
from bayesgmm.diagnostics._membership import membership, posterior_membership
from bayesgmm.diagnostics._nclusters import Clustering, clustering, k_posterior, n_clusters
from bayesgmm.diagnostics._ppc import PPC_STATISTICS, ppc_replicates, ppc_statistics
from bayesgmm.diagnostics._relabel import RELABEL_METHODS, RelabelResult, permute, relabel
from bayesgmm.diagnostics._report import report

__all__ = [
    "PPC_STATISTICS",
    "RELABEL_METHODS",
    "Clustering",
    "RelabelResult",
    "clustering",
    "co_clustering",
    "density_on_grid",
    "em_vs_posterior",
    "em_vs_posterior_summary",
    "from_inference_data",
    "invariant_diagnostics",
    "k_posterior",
    "log_likelihood_draws",
    "membership",
    "n_clusters",
    "permute",
    "posterior_membership",
    "ppc_replicates",
    "ppc_statistics",
    "relabel",
    "report",
    "to_inference_data",
]
