"""Plots of an EM/MAP estimate against posterior draws (matplotlib).

Every function takes an optional ``ax`` (or ``axes``) and returns what it drew
on, so plots compose into a user's own figures. Components keep one colour
everywhere (``C0``, ``C1``, ... in EM's labelling, or the posterior's once
relabelled), so the ellipses, the assignments and the parameter forest of one
fit read together.

- :func:`plot_density_1d`: data histogram, EM density, posterior mean density
  and a pointwise band over posterior draws (label-invariant).
- :func:`plot_ellipses`: EM ellipses, bold, over faint ellipses of posterior draws.
- :func:`plot_parameters`: forest of posterior HDIs with EM values marked.
- :func:`plot_assignments`: points coloured by posterior modal cluster, uncertain
  memberships standing out.
- :func:`plot_trace`: ArviZ trace plot of the relabelled posterior.
- :func:`plot_ppc`: posterior predictive check of simple statistics.

For data with more than two features, choose what to show with ``feature=i``
(1-D) or ``features=(i, j)`` (2-D): the plots use the exact marginal mixture
of those features (weights, the selected means and covariance block).
"""

from bayesgmm.plots._diagnostics import plot_ppc, plot_trace
from bayesgmm.plots._mixture import plot_density_1d, plot_ellipses
from bayesgmm.plots._posterior import plot_assignments, plot_parameters
from bayesgmm.plots._selection import plot_model_comparison

__all__ = [
    "plot_assignments",
    "plot_density_1d",
    "plot_ellipses",
    "plot_model_comparison",
    "plot_parameters",
    "plot_ppc",
    "plot_trace",
]
