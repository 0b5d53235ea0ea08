"""pytest plugin: scikit-learn's own GaussianMixture tests, run against bayesgmm's estimator.

scikit-learn's test module is imported from the installed package (nothing is
copied into this project); before any test runs, the module's global name
``GaussianMixture`` is replaced by :class:`bayesgmm.GaussianMixture`, so every
test in it builds and fits ours. Tests of scikit-learn's private helpers, which
never touch the estimator, and one test of a scikit-learn limitation are
skipped with the reasons listed below.

Run from the repository root::

    PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=tests/sklearn_compat python -m pytest \
        -p sklearn_gmm_plugin -p no:cacheprovider \
        --pyargs sklearn.mixture.tests.test_gaussian_mixture

(``PYTHONDONTWRITEBYTECODE`` and ``no:cacheprovider`` keep pytest from writing
next to the installed scikit-learn.)
"""

from __future__ import annotations

import pytest

import bayesgmm

TARGET = "sklearn.mixture.tests.test_gaussian_mixture"

# Test name -> why it does not apply to bayesgmm.GaussianMixture.
EXCLUDED = {
    "test_suffstat_sk_full": "tests scikit-learn's private M-step helpers, not the estimator",
    "test_suffstat_sk_tied": "tests scikit-learn's private M-step helpers, not the estimator",
    "test_suffstat_sk_diag": "tests scikit-learn's private M-step helpers, not the estimator",
    "test_gaussian_suffstat_sk_spherical": "tests scikit-learn's private M-step helpers",
    "test_compute_log_det_cholesky": "tests scikit-learn's private _compute_log_det_cholesky",
    "test_gaussian_mixture_log_probabilities": (
        "tests scikit-learn's private _estimate_log_gaussian_prob"
    ),
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": (
        "counts calls of scikit-learn's private _estimate_gaussian_parameters, which "
        "bayesgmm never calls (its M-step is its own)"
    ),
    # Runs only with SCIPY_ARRAY_API=1 (skipped by scikit-learn otherwise).
    "test_gaussian_mixture_raises_where_array_api_not_implemented": (
        "expects scikit-learn's own limitation (NotImplementedError for k-means inits under "
        "array_api_dispatch); bayesgmm's initialisations run in JAX for any input"
    ),
}


def pytest_collection_modifyitems(session, config, items):
    found = set()
    patched = False
    for item in items:
        module = getattr(item, "module", None)
        if module is None or module.__name__ != TARGET:
            continue
        module.GaussianMixture = bayesgmm.GaussianMixture
        patched = True
        name = getattr(item, "originalname", item.name)
        if name in EXCLUDED:
            found.add(name)
            item.add_marker(pytest.mark.skip(reason=f"bayesgmm: {EXCLUDED[name]}"))
    if not patched:
        raise pytest.UsageError(f"{TARGET} was not collected: pass --pyargs {TARGET}")
    stale = set(EXCLUDED) - found
    if stale:
        raise pytest.UsageError(f"excluded tests not found in {TARGET}: {sorted(stale)}")


def pytest_runtest_setup(item):
    module = getattr(item, "module", None)
    if module is not None and module.__name__ == TARGET:
        assert module.GaussianMixture is bayesgmm.GaussianMixture
