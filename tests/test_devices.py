"""EM's blocked passes and Gibbs sweeps split over several CPU devices (bayesgmm._core._devices).

A process started with two CPU devices runs the same fits as one with one device
(this process); every result must agree to rounding: the sums are only added in
another order. The cases make the shards uneven (the used blocks end inside the
first shard, an odd number of used blocks), pad components, and cover every
structure, MAP-EM, sample weights, restarts, VB and few features; for Gibbs,
an odd number of used blocks, one used block (the second device has none),
and the sparse sampler, whose split-merge moves read every row's drawn label
back from the devices. Gibbs draws on two devices equal those on one: every
block draws from a key of its index in the whole data, whichever device runs it.
"""

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from bayesgmm._core import _devices

CASES = textwrap.dedent(
    """
    import json, warnings
    import numpy as np
    import bayesgmm as bg

    def cases():
        rng = np.random.default_rng(7)
        out = {}
        X = rng.normal(size=(5003, 5)) + 4.0 * rng.integers(0, 3, size=(5003, 1))
        w = rng.uniform(0.0, 2.0, size=len(X))
        for structure in ("full", "tied", "diag", "spherical"):
            r = bg.fit_em(X, 3, covariance_type=structure, seed=1, tol=1e-8)
            out[f"ml-{structure}"] = r
        # restarts that reach one optimum: which is kept may differ at rounding level
        out["restarts"] = bg.fit_em(X, 3, n_init=3, seed=6)
        prior = bg.Prior.default(X, 3)
        out["map-weights"] = bg.fit_em(X, 3, prior=prior, sample_weight=w, seed=2)
        out["few-rows"] = bg.fit_em(X[:700], 2, seed=3)  # used blocks end in the first shard
        out["two-features"] = bg.fit_em(X[:3001, :2], 4, seed=4)
        out["vb"] = bg.fit_vb(X, 3, prior=prior, seed=5)
        return {
            name: {
                "n_iter": int(r.n_iter),
                "elbo_or_ll": float(getattr(r, "elbo", None) or r.log_likelihood),
                "means": np.asarray(r.params.means).tolist(),
                "covariances": np.asarray(r.params.covariances).tolist(),
            }
            for name, r in out.items()
        }
    """
)


GIBBS_CASES = textwrap.dedent(
    """
    import json, warnings
    import numpy as np
    import bayesgmm as bg

    def cases():
        rng = np.random.default_rng(7)
        out = {}
        # D=3, 2 chains: blocks of 1,638 rows; 13 used (7 + 6 on two devices)
        X = rng.normal(size=(20_003, 3)) + 4.0 * rng.integers(0, 3, size=(20_003, 1))
        run = dict(method="gibbs", num_chains=2, num_warmup=10, num_samples=20)
        out["full"] = bg.sample_posterior(X, 3, seed=1, **run)
        out["few-rows"] = bg.sample_posterior(X[:700], 2, seed=2, **run)  # 1 used (1 + 0)
        # 5 used (3 + 2); the split-merge moves read the drawn labels back
        sparse = bg.Prior.sparse(X[:8000], k_max=5)
        out["sparse"] = bg.sample_posterior(X[:8000], 5, prior=sparse, seed=3, **run)
        return {
            name: {key: np.asarray(getattr(p.params, key)).tolist()
                   for key in ("weights", "means", "covariances")}
            for name, p in out.items()
        }
    """
)


def _results_here(cases=CASES):
    namespace = {}
    exec(cases, namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return namespace["cases"]()


def _results_on_two_devices(cases=CASES):
    child = cases + textwrap.dedent(
        """
        from bayesgmm._core import _devices
        assert _devices.row_mesh() is not None and _devices.row_mesh().size == 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            print(json.dumps(cases()))
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.slow
def test_two_cpu_devices_give_the_one_device_results():
    assert _devices.row_mesh() is None  # this process: one device, the unsplit passes
    split = _results_on_two_devices()
    here = _results_here()
    assert split.keys() == here.keys()
    for name in here:
        a, b = here[name], split[name]
        np.testing.assert_allclose(b["elbo_or_ll"], a["elbo_or_ll"], rtol=1e-11, err_msg=name)
        if name == "restarts":  # same optimum; which restart (labelling) is kept may differ
            order_a, order_b = (
                np.argsort(np.asarray(a["means"])[:, 0]),
                np.argsort(np.asarray(b["means"])[:, 0]),
            )
            for key in ("means", "covariances"):
                np.testing.assert_allclose(
                    np.asarray(b[key])[order_b], np.asarray(a[key])[order_a], rtol=1e-6
                )
            continue
        assert a["n_iter"] == b["n_iter"], name
        for key in ("means", "covariances"):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-8, atol=1e-10, err_msg=name)


@pytest.mark.slow
def test_gibbs_on_two_cpu_devices_draws_what_one_draws():
    """Same seed, same draws: the same assignments (so the weights, drawn from the
    counts, are equal exactly), the means and covariances to the rounding of the sums."""
    assert _devices.row_mesh() is None
    split = _results_on_two_devices(GIBBS_CASES)
    here = _results_here(GIBBS_CASES)
    assert split.keys() == here.keys()
    for name in here:
        np.testing.assert_array_equal(split[name]["weights"], here[name]["weights"], err_msg=name)
        for key in ("means", "covariances"):
            np.testing.assert_allclose(
                split[name][key], here[name][key], rtol=1e-9, atol=1e-12, err_msg=f"{name} {key}"
            )


def test_one_device_splits_nothing():
    """JAX's default (one CPU device): no mesh, the blocks are not rounded up."""
    assert _devices.row_mesh() is None and _devices.n_shards() == 1
