"""bayesgmm: Gaussian mixtures where EM/MAP and NumPyro posteriors share one structure.

The public surface is listed in ``__all__``; everything prefixed with an
underscore is private. The folders are the layers (``../DESIGN.md``):
``_core`` (parameters, densities, covariance registry, prior), ``em`` and
``bayes`` (the engines), ``diagnostics``, ``selection``, ``calibration``,
``plots``. NumPyro, ArviZ, matplotlib and scikit-learn's estimator are
imported only by the parts that need them, on first use, so ``import
bayesgmm`` and the EM path stay light.

Renamed in 0.1.0 (the old names still work for one release, with a
``FutureWarning``): ``compare`` is :func:`em_vs_posterior`, ``compare_model``
is :func:`em_vs_posterior_summary`; the modules ``relabel`` and
``membership`` are :mod:`bayesgmm.diagnostics`, ``sbc`` and
``prior_sampling`` are :mod:`bayesgmm.calibration`.
"""

import importlib

from bayesgmm import datasets
from bayesgmm._core import _cache, covariance, density
from bayesgmm._core._cache import set_compilation_cache
from bayesgmm._core._warnings import DataWarning
from bayesgmm._core.covariance import COVARIANCE_TYPES
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.em._fit import EMResult, fit_em, n_parameters

__version__ = "0.1.0"

# JAX's persistent compilation cache where BAYESGMM_CACHE_DIR says (bayesgmm._core._cache).
_cache.configure()

# name -> module that defines it, imported on first access (NumPyro, ArviZ,
# matplotlib, scikit-learn's estimator); None: the subpackage itself.
_LAZY = {
    "ConvergenceWarning": "bayesgmm._core._warnings",
    "SparsePrior": "bayesgmm._core._sparse",
    "GaussianMixture": "bayesgmm.em._estimator",
    "sample_posterior": "bayesgmm.bayes._sample",
    "gmm_model": "bayesgmm.bayes._model",
    "find_map": "bayesgmm.bayes._map",
    "log_joint": "bayesgmm.bayes._map",
    "to_inference_data": "bayesgmm.diagnostics._arviz_io",
    "from_inference_data": "bayesgmm.diagnostics._arviz_io",
    "VBResult": "bayesgmm.em._vb",
    "fit_vb": "bayesgmm.em._vb",
    "em_vs_posterior": "bayesgmm.diagnostics._em_vs_posterior",
    "em_vs_posterior_summary": "bayesgmm.diagnostics._em_vs_posterior",
    "report": "bayesgmm.diagnostics._report",
    "ppc_statistics": "bayesgmm.diagnostics._ppc",
    "compare_models": "bayesgmm.selection._compare_models",
    "ModelSpec": "bayesgmm.selection._specs",
    "SpecError": "bayesgmm.selection._specs",
    "load_spec": "bayesgmm.selection._specs",
    "load_specs": "bayesgmm.selection._specs",
    "load": "bayesgmm.selection._serialization",
    "save": "bayesgmm.selection._serialization",
    "bayes": None,
    "calibration": None,
    "diagnostics": None,
    "em": None,
    "plots": None,
    "selection": None,
}

# old name -> (new object, where it lives now); one release of grace.
_DEPRECATED = {
    "compare": ("em_vs_posterior", "bayesgmm.diagnostics._em_vs_posterior"),
    "compare_model": ("em_vs_posterior_summary", "bayesgmm.diagnostics._em_vs_posterior"),
    "relabel": (None, "bayesgmm.diagnostics"),
    "membership": (None, "bayesgmm.diagnostics"),
    "sbc": (None, "bayesgmm.calibration"),
    "prior_sampling": (None, "bayesgmm.calibration"),
}


def __getattr__(name):
    if name in _LAZY:
        module = _LAZY[name]
        if module is None:
            return importlib.import_module(f"bayesgmm.{name}")
        return getattr(importlib.import_module(module), name)
    if name in _DEPRECATED:
        from bayesgmm._core._warnings import warn

        new, module = _DEPRECATED[name]
        target = importlib.import_module(module)
        now = f"bayesgmm.{new}" if new else module
        warn(
            f"bayesgmm.{name} is now {now} (renamed in 0.1.0); the old name will be removed "
            "in the next release.",
            FutureWarning,
        )
        return getattr(target, new) if new else target
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
    "SparsePrior",
    "SpecError",
    "VBResult",
    "__version__",
    "bayes",
    "calibration",
    "compare_models",
    "covariance",
    "datasets",
    "density",
    "diagnostics",
    "em",
    "em_vs_posterior",
    "em_vs_posterior_summary",
    "find_map",
    "fit_em",
    "fit_vb",
    "from_inference_data",
    "gmm_model",
    "load",
    "load_spec",
    "load_specs",
    "log_joint",
    "n_parameters",
    "plots",
    "ppc_statistics",
    "report",
    "sample_posterior",
    "save",
    "selection",
    "set_compilation_cache",
    "to_inference_data",
]
