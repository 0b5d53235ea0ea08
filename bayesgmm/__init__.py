"""bayesgmm: Gaussian mixtures where EM/MAP and NumPyro posteriors share one structure.

The public surface is listed in ``__all__``; everything prefixed with an
underscore is private. NumPyro, ArviZ and matplotlib are imported only by the
parts that need them, so ``import bayesgmm`` and the EM path stay light.
"""

from bayesgmm import covariance, datasets, density
from bayesgmm._validation import ConvergenceWarning, DataWarning
from bayesgmm.covariance import COVARIANCE_TYPES
from bayesgmm.em import EMResult, fit_em, n_parameters
from bayesgmm.estimator import GaussianMixture
from bayesgmm.params import GMMParams
from bayesgmm.priors import Prior

__version__ = "0.1.0"

__all__ = [
    "COVARIANCE_TYPES",
    "ConvergenceWarning",
    "DataWarning",
    "EMResult",
    "GMMParams",
    "GaussianMixture",
    "Prior",
    "__version__",
    "covariance",
    "datasets",
    "density",
    "fit_em",
    "n_parameters",
]
