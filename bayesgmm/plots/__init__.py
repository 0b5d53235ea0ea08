"""Plots of an EM/MAP estimate and posterior draws (matplotlib).

One argument order everywhere: the data first when the plot draws data, then
the estimates, EM before the posterior, then keywords only::

    plot_density_1d(X, em, post)      plot_parameters(em, post)
    plot_density_2d(X, em, post)      plot_trace(em, post)
    plot_ellipses(X, em, post)        plot_ppc(X, em, post)
    plot_assignments(X, em, post)     plot_model_comparison(table)

Either estimate may be left out where the plot makes sense without it
(``plot_assignments(X, em)`` is EM's classification and uncertainty,
``plot_trace(post=post)`` a trace without EM lines). The earlier orders with
the posterior in ``em``'s place (``plot_assignments(X, post, em=em)``,
``plot_trace(post)``, ``plot_ppc(X, post)``) still work, with a
``FutureWarning``.

Every function takes an optional ``ax`` (or ``axes``) and returns what it drew
on, so plots compose into a user's own figures, and ``feature_names`` for its
axis labels (default ``feature 0``, ``feature 1``... or a DataFrame's columns).
Component k has one colour in every plot (:func:`component_colours`: EM's
labelling, or the posterior's once relabelled); black is the EM estimate (and
observed data in predictive checks), grey the posterior as a whole.

- :func:`plot_density_1d`: data histogram, EM density, posterior mean density
  and a pointwise band over posterior draws (label-invariant).
- :func:`plot_density_2d`: contours of the EM and posterior mean densities
  over the data (mclust's density plot).
- :func:`plot_ellipses`: EM ellipses, bold, over faint ellipses of posterior draws.
- :func:`plot_parameters`: posterior HDIs with EM values marked, one panel per
  group of entries on one scale (or one standardised axis); it takes any number
  of posteriors and VB fits beside the point estimate
  (``plot_parameters(em, post_nuts, post_gibbs, vb)``), one interval each per entry.
- :func:`plot_assignments`: classification and uncertainty: points coloured by
  modal cluster, uncertain memberships standing out.
- :func:`plot_trace`: trace of the relabelled posterior, one row per parameter
  and feature.
- :func:`plot_ppc`: predictive check of simple statistics, or
  ``kind="density"``: the data's density over those of replicated data sets.
- :func:`plot_model_comparison`: BIC over K per covariance structure, ELPD.
- :func:`plot_k_posterior`: p(K+ | data) and p(K | data) beside their priors.

For data with more than two features, choose what to show with ``feature=i``
(1-D) or ``features=(i, j)`` (2-D): the plots use the exact marginal mixture
of those features (weights, the selected means and covariance block).
"""

from bayesgmm.plots._common import component_colours
from bayesgmm.plots._diagnostics import plot_ppc, plot_trace
from bayesgmm.plots._mixture import plot_density_1d, plot_density_2d, plot_ellipses
from bayesgmm.plots._posterior import plot_assignments, plot_parameters
from bayesgmm.plots._selection import plot_k_posterior, plot_model_comparison

__all__ = [
    "component_colours",
    "plot_assignments",
    "plot_density_1d",
    "plot_density_2d",
    "plot_ellipses",
    "plot_k_posterior",
    "plot_model_comparison",
    "plot_parameters",
    "plot_ppc",
    "plot_trace",
]
