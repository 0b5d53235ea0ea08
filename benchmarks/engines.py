"""VB and Gibbs against their references: seconds per VB iteration, Gibbs ESS per second.

Run: ``python benchmarks/engines.py`` (the configurations of issue 16 that fit
in a few minutes), ``--all`` for the larger ones as well, ``--only NAME`` for
one of them (``vb``, ``small``, ``medium``, ``large``, ``million``).

1. Seconds per VB iteration of :func:`bayesgmm.fit_vb` against scikit-learn's
   ``BayesianGaussianMixture`` (Dirichlet weights, the mapped prior,
   ``reg_covar=0``) on the same data from the same responsibilities, both
   running a fixed number of iterations (``tol=0``); bayesgmm's time excludes
   compilation (a first call of the same shape compiles).
2. Bulk ESS per second of ``sample_posterior(method="gibbs")`` against
   ``method="nuts"``, both started from the MAP-EM fit, relabelled against it:
   the smallest bulk ESS over the component means, divided by the wall time of
   a second, compiled call (warmup included). Gibbs uses 4 chains x (200 +
   2000) sweeps, NUTS 4 chains x (500 + 500) transitions. At N=100,000, D=10,
   K=8 (``large``) NUTS's default run does not finish in 10 minutes on a
   2-core machine: there Gibbs runs 2 chains x (200 + 1000) sweeps and NUTS 2
   chains x (100 + 100) transitions, each once, compilation included.
3. ``million``: Gibbs at N=1,000,000, D=10, K=8, 2 chains x 1,000 sweeps
   (wall and CPU seconds, compilation included), the largest error of its
   posterior means against the true means, and the smallest bulk ESS. On a
   machine with two or more cores it runs with two CPU devices (set before
   JAX starts, in this process only; with ``--all`` in a process of its own):
   every sweep's assignment step splits the rows over both cores
   (``bayesgmm/_core/_devices.py``).

Wall times depend on the load of the machine (shared here): see the README
for the latest figures with the load they were taken under.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings

import numpy as np


def mixture(n, d, k, seed=0):
    """Well separated Gaussian clusters: data and the true means, weights."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=6.0, size=(k, d))
    weights = rng.dirichlet(np.full(k, 5.0))
    labels = rng.choice(k, size=n, p=weights)
    scales = rng.uniform(0.5, 1.5, size=(k, d))
    X = means[labels] + rng.standard_normal((n, d)) * scales[labels]
    return X, means, weights


def vb_seconds_per_iteration(n=100_000, d=10, k=8, iters=20):
    from sklearn.mixture import BayesianGaussianMixture

    import bayesgmm as bg

    X, _, _ = mixture(n, d, k)
    prior = bg.Prior.default(X, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a rough start: three EM iterations
        start = bg.fit_em(X, k, prior=prior, max_iter=3).params
    resp = np.asarray(start.responsibilities(X))

    class FromResponsibilities(BayesianGaussianMixture):
        def _initialize_parameters(self, X, random_state, xp=None):
            self._initialize(X, resp)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg.fit_vb(X, k, prior=prior, init=start, tol=0.0, max_iter=iters)  # compiles
        t0 = time.perf_counter()
        vb = bg.fit_vb(X, k, prior=prior, init=start, tol=0.0, max_iter=iters)
        ours = (time.perf_counter() - t0) / vb.n_iter
        sk = FromResponsibilities(
            n_components=k,
            weight_concentration_prior_type="dirichlet_distribution",
            weight_concentration_prior=1.0,
            mean_prior=np.asarray(prior.mean),
            mean_precision_prior=float(prior.mean_precision),
            degrees_of_freedom_prior=float(prior.dof),
            covariance_prior=np.asarray(prior.scale),
            reg_covar=0.0,
            tol=0.0,
            max_iter=iters,
        )
        t0 = time.perf_counter()
        sk.fit(X)
        theirs = (time.perf_counter() - t0) / sk.n_iter_
    same = np.abs(vb.means - sk.means_).max()
    print(
        f"VB  N={n:,} D={d} K={k}: bayesgmm {ours * 1e3:.1f} ms/iteration, "
        f"scikit-learn {theirs * 1e3:.1f} ms/iteration ({theirs / ours:.1f}x); "
        f"largest difference of the means after {iters} iterations {same:.2e}"
    )


def _min_bulk_ess(post):
    import arviz as az

    means = post.params.means.reshape(*post.params.batch_shape, -1)
    return float(az.ess(az.convert_to_dataset(means), method="bulk")["x"].values.min())


def ess_per_second(n, d, k, nuts=True, gibbs_run=None, nuts_run=None, compile_first=True):
    """Bulk ESS per second of Gibbs and NUTS on one data set (see the module docstring).

    ``gibbs_run`` / ``nuts_run`` override the chains and lengths; with
    ``compile_first=False`` each method runs once and its time includes compiling.
    """
    import bayesgmm as bg

    X, _, _ = mixture(n, d, k, seed=1)
    prior = bg.Prior.default(X, k)
    em = bg.fit_em(X, k, prior=prior, n_init=4)
    runs = {"gibbs": gibbs_run or dict(num_chains=4, num_warmup=200, num_samples=2000)}
    runs["gibbs"] = dict(method="gibbs", **runs["gibbs"])
    if nuts:
        runs["nuts"] = dict(
            **(nuts_run or dict(num_chains=4, num_warmup=500, num_samples=500)),
            progress_bar=False,
        )
    out = {}
    for name, kw in runs.items():
        common = dict(prior=prior, init=em, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if compile_first:
                bg.sample_posterior(X, k, seed=0, **common)  # compiles
            t0 = time.perf_counter()
            post = bg.sample_posterior(X, k, seed=1, **common)
            seconds = time.perf_counter() - t0
        ess = _min_bulk_ess(post.relabel())
        out[name] = ess / seconds
        run = f"{kw['num_chains']} chains x ({kw['num_warmup']} + {kw['num_samples']})"
        print(
            f"{name:5s} N={n:,} D={d} K={k}, {run}: {seconds:.1f} s"
            f"{'' if compile_first else ' (compilation included)'}, min bulk ESS of the "
            f"means {ess:.0f}, {ess / seconds:.2f} ESS/s",
            flush=True,
        )
    if nuts:
        print(f"      Gibbs / NUTS ESS per second: {out['gibbs'] / out['nuts']:.1f}x", flush=True)


def two_cpu_devices() -> bool:
    """Ask for two CPU devices when there are two cores; only before JAX is imported."""
    if "jax" in sys.modules:
        raise RuntimeError("the device count must be set before JAX is first imported")
    if (os.cpu_count() or 1) < 2:
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
    return True


def gibbs_million(n=1_000_000, d=10, k=8):
    import jax

    import bayesgmm as bg

    print(
        f"Gibbs at N={n:,}: {jax.device_count()} CPU device(s) "
        f"({os.cpu_count()} cores; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r})",
        flush=True,
    )

    X, true_means, _ = mixture(n, d, k, seed=2)
    prior = bg.Prior.default(X, k)
    em = bg.fit_em(X, k, prior=prior, n_init=2)
    t0, c0 = time.perf_counter(), time.process_time()
    post = bg.sample_posterior(
        X, k, prior=prior, init=em, method="gibbs", num_chains=2, num_warmup=0, num_samples=1000
    )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    est = post.relabel().params.means.mean(axis=(0, 1))
    # match the estimated components to the true ones by nearest mean
    err = max(np.abs(true_means - m).sum(axis=1).min() for m in est) / d
    print(
        f"Gibbs N={n:,} D={d} K={k}, 2 chains x 1,000 sweeps: {seconds:.0f} s wall, {cpu:.0f} s "
        f"CPU (compilation included); mean absolute error of the posterior means against the "
        f"truth {err:.3g}; min bulk ESS of the means {_min_bulk_ess(post.relabel()):.0f}",
        flush=True,
    )


#: N=100,000: NUTS's default run does not finish in 10 minutes here; a short one
#: (2 chains x (100 + 100)) gives its ESS per second. Both run once, compiling included.
LARGE = dict(
    gibbs_run=dict(num_chains=2, num_warmup=200, num_samples=1000),
    nuts_run=dict(num_chains=2, num_warmup=100, num_samples=100),
    compile_first=False,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also the large configurations")
    parser.add_argument(
        "--only",
        choices=["vb", "small", "medium", "large", "million"],
        help="run one configuration: VB, ESS/s at N=1,000, 10,000 or 100,000, Gibbs at 1e6",
    )
    args = parser.parse_args()
    pieces = {
        "vb": vb_seconds_per_iteration,
        "small": lambda: ess_per_second(1_000, 2, 3),
        "medium": lambda: ess_per_second(10_000, 5, 4),
        "large": lambda: ess_per_second(100_000, 10, 8, **LARGE),
        "million": gibbs_million,
    }
    if args.only:
        if args.only == "million":
            two_cpu_devices()
        pieces[args.only]()
        return
    pieces["vb"]()
    pieces["small"]()
    if args.all:
        for name in ("medium", "large"):
            pieces[name]()
        # the device count is for the whole process: the million case runs in its own
        subprocess.run([sys.executable, __file__, "--only", "million"], check=True)


if __name__ == "__main__":
    main()
