"""Simulation-based calibration of the Bayesian engines.

- :func:`simulation_based_calibration` and :class:`SBCResult` (``_sbc``): draw
  parameters from the prior, data from them, NUTS draws through the one NUTS
  engine, and the ranks of the truth among the draws.
- ``_prior_sampling``: an independent NumPy/SciPy sampler of the prior
  (:func:`sample_prior`, :func:`reference_log_prior`), so that a wrong
  density in the model cannot hide behind the same wrong density in the test.
"""

from bayesgmm.calibration._prior_sampling import reference_log_prior, sample_prior
from bayesgmm.calibration._sbc import (
    GROUPS,
    SBCResult,
    chi_square_uniform,
    holm,
    order_components,
    simulation_based_calibration,
)

__all__ = [
    "GROUPS",
    "SBCResult",
    "chi_square_uniform",
    "holm",
    "order_components",
    "reference_log_prior",
    "sample_prior",
    "simulation_based_calibration",
]
