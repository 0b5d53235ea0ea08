"""The Bayesian engine: the NumPyro model, NUTS, the posterior mode, the Posterior.

- :func:`gmm_model` (``_model``): the NumPyro model, the same prior as MAP-EM,
  assignments summed out (no discrete sites).
- ``_sites``: between :class:`~bayesgmm.GMMParams` and the model's sites.
- ``_nuts``: the one NUTS engine (also used by simulation-based calibration),
  compiled once per model and shape class with the data as arguments.
- ``_exported``: the traced programs of bayesgmm's own model kept on disk
  (``jax.export``), so that a fresh process does not trace NUTS again.
- :func:`sample_posterior` (``_sample``): starting points and the NUTS run.
- :func:`find_map` and :func:`log_joint` (``_map``): the mode of the model.
- :class:`Posterior` (``_posterior``): the draws as ``GMMParams`` with
  ``(chain, draw)`` axes.

Importing this package does not import NumPyro: its names are loaded on first
use, so :class:`Posterior` (imported by ``import bayesgmm``) stays light.
"""

import importlib

_WHERE = {
    "CHAIN_METHODS": "bayesgmm.bayes._nuts",
    "MixtureRows": "bayesgmm.bayes._model",
    "Posterior": "bayesgmm.bayes._posterior",
    "find_map": "bayesgmm.bayes._map",
    "gmm_model": "bayesgmm.bayes._model",
    "log_joint": "bayesgmm.bayes._map",
    "sample_posterior": "bayesgmm.bayes._sample",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'bayesgmm.bayes' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
