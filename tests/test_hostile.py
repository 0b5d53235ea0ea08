"""Hostile input for every public entry point: each gets a correct result or a
clear error, never a traceback from deep inside JAX and never NaN parameters.

The table (input -> what each entry point does) is the parametrisation below:
``ok`` means a finite fit (and the warning named, if any); anything else is the
ValueError message expected.
"""

import warnings

import numpy as np
import pytest

import bayesgmm as bg

rng = np.random.default_rng(0)
BASE = rng.normal(size=(30, 2)) + np.repeat([[0, 0], [5, 5]], 15, axis=0)

# name: (X, K)
INPUTS = {
    "nan": (np.where(np.arange(60).reshape(30, 2) == 7, np.nan, BASE), 2),
    "inf": (np.where(np.arange(60).reshape(30, 2) == 7, np.inf, BASE), 2),
    "empty": (np.zeros((0, 2)), 1),
    "object_dtype_numbers": (BASE.astype(object), 2),
    "strings": (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), 1),
    "3d_array": (np.zeros((4, 3, 2)), 1),
    "single_row": (BASE[:1], 1),
    "K_greater_than_N": (BASE[:3], 4),
    "K_equal_N": (BASE[:4], 4),
    "all_rows_equal": (np.ones((20, 2)), 2),
    "one_constant_column": (np.column_stack([BASE[:, 0], np.full(30, 2.0)]), 2),
    "magnitude_1e12": (BASE * 1e12, 2),
    "magnitude_1e-12": (BASE * 1e-12, 2),
    "integers": (np.round(BASE * 10).astype(np.int64), 2),
    "float32": (BASE.astype(np.float32), 2),
}

# What fit_em does with each input: ("ok", warning category or None) or ("error", regex).
FIT_EM = {
    "nan": ("error", "contains NaN values"),
    "inf": ("error", r"infinite values \(NaN or inf\)"),
    "empty": ("error", "has no rows"),
    "object_dtype_numbers": ("ok", None),
    "strings": ("error", "must hold real numbers"),
    "3d_array": ("error", "must be 2-D"),
    "single_row": ("ok", None),
    "K_greater_than_N": ("error", "larger than the number of samples"),
    "K_equal_N": ("ok", None),
    "all_rows_equal": ("ok", bg.DataWarning),
    "one_constant_column": ("ok", bg.DataWarning),
    "magnitude_1e12": ("ok", None),
    "magnitude_1e-12": ("ok", bg.DataWarning),  # reg_covar swamps the variances: say so
    "integers": ("ok", None),
    "float32": ("ok", None),
}

# scikit-learn's estimator follows scikit-learn's validation (its messages).
ESTIMATOR = {
    **FIT_EM,
    "nan": ("error", "Input X contains NaN"),
    "inf": ("error", "Input X contains infinity"),
    "empty": ("error", "0 sample"),
    "strings": ("error", "could not convert|dtype"),
    "3d_array": ("error", "Found array with dim 3"),
}


def _finite(params):
    return all(np.isfinite(a).all() for a in params.to_numpy().values())


def _run(fn, expectation):
    kind, detail = expectation
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if kind == "error":
            with pytest.raises(ValueError, match=detail):
                fn()
            return None
        out = fn()
    if detail is not None:
        assert any(issubclass(w.category, detail) for w in caught), [
            str(w.message) for w in caught
        ]
    return out


@pytest.mark.parametrize("name", list(INPUTS))
def test_fit_em(name):
    X, K = INPUTS[name]
    em = _run(lambda: bg.fit_em(X, K), FIT_EM[name])
    if em is not None:
        assert _finite(em.params) and np.isfinite(em.log_likelihood)
        expected = np.float32 if name == "float32" else np.float64
        assert em.params.dtype == expected


@pytest.mark.parametrize("name", list(INPUTS))
def test_gaussian_mixture(name):
    X, K = INPUTS[name]
    gm = _run(lambda: bg.GaussianMixture(K, random_state=0).fit(X), ESTIMATOR[name])
    if gm is not None:
        assert _finite(gm.params_) and np.isfinite(gm.score(X))


@pytest.mark.parametrize("name", ["nan", "strings", "K_greater_than_N", "3d_array", "empty"])
def test_command_line(tmp_path, capsys, name):
    from bayesgmm.cli import main

    X, K = INPUTS[name]
    path = tmp_path / "x.npy"
    np.save(path, X, allow_pickle=False) if X.dtype != object else None
    assert main(["em", str(path), "-k", str(K)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayesgmm em: error:") and "Traceback" not in err


def test_params_log_prob_rejects_hostile_x():
    em = bg.fit_em(BASE, 2)
    for X, match in [
        (INPUTS["nan"][0], "NaN"),
        (INPUTS["strings"][0], "real numbers"),
        (INPUTS["3d_array"][0], "2-D"),
        (np.zeros((3, 5)), "5 features, but the model has 2"),
    ]:
        with pytest.raises(ValueError, match=match):
            em.params.log_prob(X)
