"""Shared fixtures. Tests never turn on jax_enable_x64 globally: bayesgmm must
give float64 results whatever the user's JAX setting is."""

import gc

import jax
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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Every loaded XLA executable maps memory regions of its own; the suite
    compiles hundreds of programs (each NUTS run, each data shape), and in one
    process they exceeded the kernel's limit on memory maps
    (``vm.max_map_count``, 65530 here), after which compilation crashed
    with a segmentation fault. Tests in later modules never reuse these.
    """
    yield
    jax.clear_caches()
    gc.collect()
