"""Small data sets shipped with bayesgmm, and the synthetic seed examples.

Real data (shipped as CSV inside the package, no download):

- :func:`load_faithful`: Old Faithful geyser eruptions, 272 x 2.
- :func:`load_galaxies`: velocities of 82 galaxies in the Corona Borealis region.

Synthetic data with known parameters:

- :func:`make_two_gaussians_1d`: 1-D data from a mixture of 2 Gaussians.
- :func:`make_four_gaussians_2d`: 2-D data from a mixture of 4 Gaussians.
"""

from __future__ import annotations

from importlib import resources

import jax
import numpy as np

from bayesgmm._core._precision import x64
from bayesgmm._core.params import GMMParams

__all__ = [
    "load_faithful",
    "load_galaxies",
    "make_four_gaussians_2d",
    "make_two_gaussians_1d",
    "true_params_four_gaussians_2d",
    "true_params_two_gaussians_1d",
]


def _read_csv(name: str) -> tuple[list[str], np.ndarray]:
    text = resources.files("bayesgmm.datasets").joinpath("data", name).read_text()
    header, *rows = text.strip().splitlines()
    values = np.array([[float(v) for v in row.split(",")] for row in rows], dtype=np.float64)
    return header.split(","), values


def load_faithful(*, return_names: bool = False):
    """Old Faithful geyser data: eruption duration and waiting time, 272 x 2.

    Columns: ``eruptions`` (eruption time, minutes) and ``waiting`` (waiting
    time to the next eruption, minutes), observed at Old Faithful,
    Yellowstone National Park. This is R's ``datasets::faithful`` (Härdle
    1991, *Smoothing Techniques with Implementation in S*; also Azzalini &
    Bowman 1990, *Applied Statistics* 39, 357-365), shipped unchanged.

    Parameters
    ----------
    return_names : bool
        Also return the column names.

    Returns
    -------
    X : ndarray of shape (272, 2), float64
    names : list of str, only with ``return_names=True``
    """
    names, X = _read_csv("faithful.csv")
    return (X, names) if return_names else X


def load_galaxies() -> np.ndarray:
    """Velocities (km/s) of 82 galaxies in the Corona Borealis region, shape (82,).

    From Postman, Huchra & Geller (1986), *Astronomical Journal* 92, 1238-1247,
    as analysed by Roeder (1990), *JASA* 85, 617-624, and Richardson & Green
    (1997). This is R's ``MASS::galaxies`` shipped unchanged, which includes
    its known quirk: observation 78 is 26690, whereas Roeder's paper lists
    26960 (the two middle digits transposed). We ship MASS's 26690 so results
    match the many analyses done with R; replace ``X[77]`` if you need
    Roeder's value.

    Returns
    -------
    ndarray of shape (82,), float64
        A 1-D array; :func:`bayesgmm.fit_em` reads it as one feature.
    """
    _, X = _read_csv("galaxies.csv")
    return X[:, 0]


def true_params_two_gaussians_1d() -> GMMParams:
    """The mixture behind :func:`make_two_gaussians_1d`: weights 0.4/0.6, means -2 and 3."""
    return GMMParams(
        weights=np.array([0.4, 0.6]),
        means=np.array([[-2.0], [3.0]]),
        covariances=np.array([[[1.0]], [[1.5**2]]]),
    )


def true_params_four_gaussians_2d() -> GMMParams:
    """The mixture behind :func:`make_four_gaussians_2d`: four unequal, correlated clusters."""
    return GMMParams(
        weights=np.array([0.3, 0.25, 0.25, 0.2]),
        means=np.array([[-4.0, -3.0], [4.0, -3.0], [-3.0, 4.0], [4.0, 4.0]]),
        covariances=np.array(
            [
                [[1.0, 0.5], [0.5, 1.0]],
                [[1.5, -0.6], [-0.6, 0.8]],
                [[0.6, 0.0], [0.0, 0.6]],
                [[1.2, 0.7], [0.7, 1.5]],
            ]
        ),
    )


@x64
def _draw(params: GMMParams, n_samples: int, seed: int):
    X, labels = params.sample(jax.random.key(seed), n_samples)
    return np.asarray(X, dtype=np.float64), np.asarray(labels)


def make_two_gaussians_1d(n_samples: int = 500, *, seed: int = 0, return_labels: bool = False):
    """1-D data from the mixture :func:`true_params_two_gaussians_1d`.

    Returns
    -------
    X : ndarray of shape (n_samples,)
    labels : ndarray of shape (n_samples,), only with ``return_labels=True``
    """
    X, labels = _draw(true_params_two_gaussians_1d(), n_samples, seed)
    return (X[:, 0], labels) if return_labels else X[:, 0]


def make_four_gaussians_2d(n_samples: int = 600, *, seed: int = 0, return_labels: bool = False):
    """2-D data from the mixture :func:`true_params_four_gaussians_2d`.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
    labels : ndarray of shape (n_samples,), only with ``return_labels=True``
    """
    X, labels = _draw(true_params_four_gaussians_2d(), n_samples, seed)
    return (X, labels) if return_labels else X
