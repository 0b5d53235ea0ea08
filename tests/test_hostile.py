"""Hostile input for every public entry point: each gets a correct result or a
clear error, never a traceback from deep inside JAX and never NaN parameters.

The table (input -> what each entry point does) is the parametrisation below:
``ok`` means a finite fit (and the warning named, if any); anything else is the
ValueError message expected.
"""

import re
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


@pytest.mark.parametrize("name", [n for n in INPUTS if n != "object_dtype_numbers"])
def test_command_line(tmp_path, capsys, name):
    """``bayesgmm em`` on a .npy file: exit 0 with a summary, or 2 with one line saying why."""
    from bayesgmm.cli import main

    X, K = INPUTS[name]
    path = tmp_path / "x.npy"
    np.save(path, X, allow_pickle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.DataWarning)
        code = main(["em", str(path), "-k", str(K)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if FIT_EM[name][0] == "error":
        assert code == 2
        assert err.startswith("bayesgmm em: error:") and len(err.strip().splitlines()) == 1
        assert re.search(FIT_EM[name][1], err)
    else:
        assert code == 0, err
        assert "log-likelihood" in out.lower() and "nan" not in out.lower()


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


# ------------------------------------------------------- sample_posterior ---
# NUTS validates its input as fit_em does, then builds the default prior from the
# data, which needs a non-singular data covariance: inputs fit_em only warns about
# (a constant column, all rows equal, one row) are refused there with what to do.
SAMPLE_POSTERIOR = {
    **FIT_EM,
    "single_row": ("error", "data covariance is singular"),
    "all_rows_equal": ("error", "data covariance is singular"),
    "one_constant_column": ("error", "data covariance is singular"),
    "magnitude_1e-12": ("ok", None),  # no reg_covar on the Bayesian side
}
# Inputs that reach the sampler; the rest are refused before anything compiles.
SAMPLED = [name for name, (kind, _) in SAMPLE_POSTERIOR.items() if kind == "ok"]
# These differ from float64 input only in how they are read: after validation the
# sampler sees the same float64 array, checked here without running NUTS again.
READ_AS_FLOAT64 = ["object_dtype_numbers", "integers"]


def _nuts(X, K, **kw):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "num_samples=", UserWarning)
        return bg.sample_posterior(
            X, K, num_chains=2, num_warmup=60, num_samples=60, progress_bar=False, **kw
        )


@pytest.mark.parametrize("name", [n for n in INPUTS if n not in SAMPLED])
def test_sample_posterior_refuses(name):
    X, K = INPUTS[name]
    _run(lambda: _nuts(X, K), SAMPLE_POSTERIOR[name])


@pytest.mark.parametrize("name", READ_AS_FLOAT64)
def test_sample_posterior_reads_numbers_as_float64(name):
    from bayesgmm.bayes import _sites

    X, K = INPUTS[name]
    data, w, k, _, prior = _sites.prepare_inputs(X, K, None, "full", None, None)
    assert data.dtype == np.float64 and k == K and np.all(w == 1.0)
    np.testing.assert_array_equal(data, np.asarray(X, dtype=np.float64))
    reference = _sites.prepare_inputs(np.asarray(X, float), K, None, "full", None, None)[4]
    np.testing.assert_array_equal(prior.scale, reference.scale)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in SAMPLED if n not in READ_AS_FLOAT64])
def test_sample_posterior_samples(name):
    """Finite draws in the data's own units and precision, for every magnitude."""
    X, K = INPUTS[name]
    post = _nuts(X, K)
    assert _finite(post.params)
    assert post.params.dtype == (np.float32 if name == "float32" else np.float64)
    # the draws live on the data's scale: the posterior mean of the mixture mean
    # is the data mean to within a few posterior standard deviations
    Xf = np.asarray(X, float)
    mixture_mean = np.einsum("cdk,cdkf->cdf", post.params.weights, post.params.means)
    spread = Xf.std(axis=0) / np.sqrt(len(Xf))
    assert np.all(np.abs(mixture_mean.mean(axis=(0, 1)) - Xf.mean(axis=0)) < 5 * spread)


# ---------------------------------------------------------- compare_models ---
SPEC = {"name": "full", "covariance_type": "full", "n_components": [1, 2], "em": {"n_init": 2}}
# compare_models reads X as float64 (a table of scores has no precision to keep)
# and refuses a K larger than the data before fitting anything.
COMPARE = {
    **FIT_EM,
    "K_greater_than_N": ("error", "more components than the"),
}


@pytest.mark.parametrize("name", list(INPUTS))
def test_compare_models(name):
    X, K = INPUTS[name]
    spec = bg.ModelSpec.from_dict({**SPEC, "n_components": sorted({1, K})})
    result = _run(lambda: bg.compare_models(X, spec, nuts=False), COMPARE[name])
    if result is not None:
        table = result.table
        assert len(table) == len({1, K})
        assert np.isfinite(table["bic"]).all() and np.isfinite(table["log_likelihood"]).all()
        assert all(_finite(em.params) for em in result.em.values())
