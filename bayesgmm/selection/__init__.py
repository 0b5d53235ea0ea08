"""Model selection: specifications, :func:`compare_models`, saving and loading fits.

- ``_specs``: :class:`ModelSpec` read from TOML/JSON files in ``models/``
  (:func:`load_spec`, :func:`load_specs`), validated before any fit.
- ``_compare_models``: :func:`compare_models` across K and covariance
  structure (BIC/AIC/ICL for EM, PSIS-LOO/WAIC for NUTS), :func:`to_markdown`.
- ``_serialization``: :func:`save` and :func:`load` of EM results (JSON) and
  posteriors (netCDF through ArviZ).

The model-comparison plot is :func:`bayesgmm.plots.plot_model_comparison`.
"""

from bayesgmm.selection._compare_models import (
    CRITERIA,
    ComparisonResult,
    compare_models,
    to_markdown,
)
from bayesgmm.selection._serialization import load, save
from bayesgmm.selection._specs import ModelSpec, SpecError, load_spec, load_specs

__all__ = [
    "CRITERIA",
    "ComparisonResult",
    "ModelSpec",
    "SpecError",
    "compare_models",
    "load",
    "load_spec",
    "load_specs",
    "save",
    "to_markdown",
]


def __getattr__(name):
    # Moved to bayesgmm.plots in 0.1.0; kept here one release.
    if name == "plot_model_comparison":
        from bayesgmm._core._warnings import warn
        from bayesgmm.plots import plot_model_comparison

        warn(
            "bayesgmm.selection.plot_model_comparison moved to "
            "bayesgmm.plots.plot_model_comparison; the old name will be removed.",
            FutureWarning,
        )
        return plot_model_comparison
    raise AttributeError(f"module 'bayesgmm.selection' has no attribute {name!r}")
