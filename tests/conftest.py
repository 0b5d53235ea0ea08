"""Shared fixtures. Tests never turn on jax_enable_x64 globally: bayesgmm must
give float64 results whatever the user's JAX setting is."""

import numpy as np
import pytest

import bayesgmm as bg


@pytest.fixture(scope="session")
def faithful():
    return bg.datasets.load_faithful()


@pytest.fixture(scope="session")
def blobs2d():
    return bg.datasets.make_four_gaussians_2d(300, seed=1)


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(12345)
