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


# The longest modules (seconds of a warm run on 2 cores, most first). `make test`
# hands whole modules to its two workers in collection order, so a long module
# collected late (test_sbc, test_split_merge: alphabetical) kept one worker busy
# while the other had finished; longest first, the two finish close together.
LONGEST_MODULES = (
    "test_latency.py",  # 68 s
    "test_notebooks.py",  # 67
    "test_nclusters.py",  # 63
    "test_dask.py",  # 53
    "test_sbc.py",  # 51
    "test_split_merge.py",  # 49
    "test_bayes.py",  # 45
    "test_compare.py",  # 33
    "test_gibbs.py",  # 30
    "test_sklearn_dropin.py",  # 28
    "test_devices.py",  # 24
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept within
