"""bayesgmm: Gaussian mixtures where EM/MAP and NumPyro posteriors share one structure.

The public surface is listed in ``__all__``; everything prefixed with an
underscore is private. NumPyro, ArviZ and matplotlib are imported only by the
parts that need them (``sample_posterior``, ``plots``, ...), which are loaded on
first use, so ``import bayesgmm`` and the EM path stay light.
"""

import importlib

# ``bayesgmm.relabel`` and ``bayesgmm.membership`` stay modules (``relabel.relabel``,
# ``relabel.permute``, ``membership.membership``): a function of the same name would
# be shadowed by the submodule once anything imports it. Posteriors relabel and
# summarise themselves with ``post.relabel()`` and ``post.membership()``.
from bayesgmm import covariance, datasets, density, membership, relabel
from bayesgmm._validation import ConvergenceWarning, DataWarning
from bayesgmm.compare import compare, compare_model, report
from bayesgmm.covariance import COVARIANCE_TYPES
from bayesgmm.em import EMResult, fit_em, n_parameters
from bayesgmm.estimator import GaussianMixture
from bayesgmm.params import GMMParams
from bayesgmm.posterior import Posterior
from bayesgmm.priors import Prior
from bayesgmm.serialization import load, save
from bayesgmm.specs import ModelSpec, SpecError, load_spec, load_specs

__version__ = "0.1.0"

# name -> module that defines it; imported on first access (NumPyro, ArviZ, matplotlib).
_LAZY = {
    "sample_posterior": "bayesgmm.bayes",
    "gmm_model": "bayesgmm.model",
    "find_map": "bayesgmm.mode",
    "log_joint": "bayesgmm.mode",
    "to_inference_data": "bayesgmm.arviz_io",
    "from_inference_data": "bayesgmm.arviz_io",
    "compare_models": "bayesgmm.selection",
    "ppc_statistics": "bayesgmm.ppc",
    "plots": None,
    "bayes": None,
    "selection": None,
    "sbc": None,
    "prior_sampling": None,
}


def __getattr__(name):
    if name in _LAZY:
        module = _LAZY[name]
        if module is None:
            return importlib.import_module(f"bayesgmm.{name}")
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "COVARIANCE_TYPES",
    "ConvergenceWarning",
    "DataWarning",
    "EMResult",
    "GMMParams",
    "GaussianMixture",
    "ModelSpec",
    "Posterior",
    "Prior",
    "SpecError",
    "__version__",
    "bayes",
    "compare",
    "compare_model",
    "compare_models",
    "covariance",
    "datasets",
    "density",
    "find_map",
    "fit_em",
    "from_inference_data",
    "gmm_model",
    "load",
    "load_spec",
    "load_specs",
    "log_joint",
    "membership",
    "n_parameters",
    "plots",
    "ppc_statistics",
    "prior_sampling",
    "relabel",
    "report",
    "sample_posterior",
    "save",
    "sbc",
    "selection",
    "to_inference_data",
]
