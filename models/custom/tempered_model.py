"""Example custom model for a specification's ``[model]`` table.

It keeps bayesgmm's parameter sites (so EM starts, relabelling, ArviZ and the
comparison all work) and changes only the likelihood: a tempered (power)
likelihood ``p(x | theta)^0.5`` that widens the posterior, a common robustness
check. Only the likelihood is tempered (through the per-row weights), not the
prior. A custom model must have ``gmm_model``'s signature and declare
``weights``, ``means``, the structure's covariance site, ``covariances`` and a
per-row observed site ``obs``.
"""

import jax.numpy as jnp

from bayesgmm.bayes import gmm_model

TEMPERATURE = 0.5


def model(X, n_components, prior, covariance_type="full", sample_weight=None):
    w = jnp.ones(X.shape[0], X.dtype) if sample_weight is None else sample_weight
    gmm_model(X, n_components, prior, covariance_type, TEMPERATURE * w)
