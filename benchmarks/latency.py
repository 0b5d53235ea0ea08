"""Wall time from call to result, compilation included: bayesgmm against its peers.

Run from the repository root::

    python benchmarks/latency.py            # about 5 to 10 minutes on 2 cores
    python benchmarks/latency.py --quick    # fewer repeats, smaller loops
    python benchmarks/latency.py --only em,grid   # some sections (import, em, grid, nuts, many)

Every figure is measured in this run, beside the peer it is compared with:

- ``import``: ``import bayesgmm`` in a fresh process (median of 5), beside
  ``import sklearn.mixture``.
- EM, warm process: the first ``fit_em`` of Old Faithful (K=2) in the process
  with an empty disk cache; then a fit on *new* data of the same shape class
  (a bootstrap resample, 272 rows), median of 5, against scikit-learn's
  ``GaussianMixture`` on the same data; then the first fit of a new (K,
  structure) in the warm process.
- EM, fresh process with a populated disk cache: seconds beyond import.
- ``GridSearchCV`` over ``n_components`` 1..6, 5-fold, on Old Faithful, in a
  fresh process: scikit-learn's estimator against ``bg.GaussianMixture``, with
  the disk cache empty and then populated.
- ``sample_posterior`` on Old Faithful, K=2, 2 chains x 500 + 500: first call,
  second call on new data of the same shape class, and the first call in a
  fresh process with a populated cache; beside a plain NumPyro model of the
  same mixture (NUTS through ``numpyro.infer.MCMC``), first and second call.
- 200 tiny ``sample_posterior`` calls in one process: memory maps and RSS
  after the 1st, 100th and 200th.

Each bayesgmm figure uses a fresh, empty compilation cache folder of its own
(``BAYESGMM_CACHE_DIR``), so "cold" means cold. Targets (issue 13) are printed
as PASS/FAIL; the steady-state speed targets are in ``em_speed.py`` and
``nuts_speed.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, cache: str | None, *, timeout: float = 900.0) -> str:
    """Run ``code`` in a fresh interpreter with the given bayesgmm cache; return its stdout."""
    env = {**os.environ, "BAYESGMM_CACHE_DIR": cache or "off", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return proc.stdout


def last_floats(text: str) -> list[float]:
    return [float(v) for v in text.strip().splitlines()[-1].split()]


def verdict(ok: bool, text: str) -> None:
    print(f"  {'PASS' if ok else 'FAIL'}  {text}")


def bench_import(repeats: int) -> None:
    code = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"
    ours = [last_floats(run_python(code.format(m="bayesgmm"), None))[0] for _ in range(repeats)]
    peer = [last_floats(run_python(code.format(m="sklearn.mixture"), None))[0] for _ in range(3)]
    print(f"\nimport (fresh process, median of {repeats})")
    print(f"  import bayesgmm          {statistics.median(ours):7.2f} s")
    print(f"  import sklearn.mixture   {statistics.median(peer):7.2f} s")
    verdict(statistics.median(ours) < 1.5, "import bayesgmm under 1.5 s")


EM_WARM = """
import time, warnings, numpy as np
warnings.simplefilter("ignore")
import bayesgmm as bg
from sklearn.mixture import GaussianMixture
X = bg.datasets.load_faithful()
rng = np.random.default_rng(0)
def resample():
    return X[rng.integers(0, len(X), len(X))] + rng.normal(0, 1e-3, X.shape)
t = time.perf_counter(); bg.fit_em(X, 2); first = time.perf_counter() - t
ours, peer = [], []
for _ in range({repeats}):
    Y = resample()
    t = time.perf_counter(); bg.fit_em(Y, 2); ours.append(time.perf_counter() - t)
    t = time.perf_counter(); GaussianMixture(2).fit(Y); peer.append(time.perf_counter() - t)
t = time.perf_counter(); bg.fit_em(X, 3, covariance_type="diag")
new_kind = time.perf_counter() - t
t = time.perf_counter(); bg.fit_em(np.c_[X, X[:, :1] ** 2], 2)
new_d = time.perf_counter() - t
t = time.perf_counter(); bg.fit_em(np.c_[X, X ** 2, X[:, :1] ** 3], 2)
new_class = time.perf_counter() - t
print(first, float(np.median(ours)), float(np.median(peer)), new_kind, new_d, new_class)
"""

EM_FRESH = """
import time, warnings
warnings.simplefilter("ignore")
import bayesgmm as bg
from sklearn.mixture import GaussianMixture
X = bg.datasets.load_faithful()
t = time.perf_counter(); bg.fit_em(X, 2); ours = time.perf_counter() - t
t = time.perf_counter(); GaussianMixture(2).fit(X); peer = time.perf_counter() - t
print(ours, peer)
"""


def bench_em(repeats: int, cache_root: str) -> None:
    cache = os.path.join(cache_root, "em")
    out = last_floats(run_python(EM_WARM.format(repeats=repeats), cache))
    first, ours, peer, new_kind, new_d, new_class = out
    print("\nfit_em, Old Faithful K=2 (warm process)")
    print(f"  first fit in the process (empty disk cache)      {first:8.3f} s")
    print(f"  new data, same shape class (median of {repeats})        {ours:8.3f} s")
    print(f"  scikit-learn GaussianMixture on the same data    {peer:8.3f} s")
    print(f"  first fit of a new K and structure (warm)        {new_kind:8.3f} s")
    print(f"  first fit of a new D (warm): D=3 after D=2       {new_d:8.3f} s")
    print(f"  first fit of a new feature class (warm): D=5     {new_class:8.3f} s")
    verdict(ours <= 2 * peer, f"same shape class within 2x scikit-learn ({ours / peer:.2f}x)")
    verdict(new_kind < 1.0, "a new K and structure in a warm process under 1 s")
    verdict(new_d < 1.0, "a new D in a warm process under 1 s")
    print("    (D = 1..4 are one feature class; D = 5 and 6 the next: a program of its own)")
    fresh = [last_floats(run_python(EM_FRESH, cache)) for _ in range(3)]
    ours_f = statistics.median(f[0] for f in fresh)
    peer_f = statistics.median(f[1] for f in fresh)
    print("fit_em in a fresh process, disk cache populated (median of 3)")
    print(f"  bayesgmm      {ours_f:8.3f} s beyond import")
    print(f"  scikit-learn  {peer_f:8.3f} s beyond import")
    verdict(ours_f < 1.0, "first fit in a fresh process with a populated cache under 1 s")


GRID = """
import time, warnings
warnings.simplefilter("ignore")
import bayesgmm as bg
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
X = bg.datasets.load_faithful()
grid = {{"n_components": [1, 2, 3, 4, 5, 6]}}
if "{structures}" == "all":  # scikit-learn's model-selection example
    grid["covariance_type"] = ["full", "tied", "diag", "spherical"]
est = GaussianMixture() if "{which}" == "sklearn" else bg.GaussianMixture()
t = time.perf_counter(); GridSearchCV(est, grid, cv=5).fit(X); print(time.perf_counter() - t)
"""


def bench_grid(cache_root: str) -> None:
    for structures, label in (("full", "n_components 1..6"), ("all", "x 4 covariance types")):
        cache = os.path.join(cache_root, f"grid-{structures}")
        runs = {
            which: last_floats(
                run_python(
                    GRID.format(which=which, structures=structures),
                    None if which == "sklearn" else cache,
                )
            )[0]
            for which in ("sklearn", "bayesgmm", "bayesgmm-again")
        }
        peer, cold, warm = runs["sklearn"], runs["bayesgmm"], runs["bayesgmm-again"]
        print(f"\nGridSearchCV({label}, cv=5), Old Faithful, fresh process")
        print(f"  scikit-learn                          {peer:8.2f} s")
        print(f"  bg.GaussianMixture, empty disk cache  {cold:8.2f} s  ({cold / peer:.1f}x)")
        print(f"  bg.GaussianMixture, populated cache   {warm:8.2f} s  ({warm / peer:.1f}x)")
        verdict(
            warm <= 2 * peer, f"GridSearchCV ({label}) within 2x scikit-learn (populated cache)"
        )


NUTS = """
import time, warnings, numpy as np
warnings.simplefilter("ignore")
import bayesgmm as bg
X = bg.datasets.load_faithful()
rng = np.random.default_rng(1)
kw = dict(init="em", num_chains=2, num_warmup=500, num_samples=500, progress_bar=False)
t = time.perf_counter(); bg.sample_posterior(X, 2, **kw); first = time.perf_counter() - t
Y = X[rng.integers(0, len(X), len(X))] + rng.normal(0, 1e-3, X.shape)
t = time.perf_counter(); bg.sample_posterior(Y, 2, **kw); second = time.perf_counter() - t
print(first, second)
"""

PLAIN_NUMPYRO = """
import time, warnings, numpy as np
warnings.simplefilter("ignore")
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
import numpyro, numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS
import bayesgmm as bg
X = bg.datasets.load_faithful()
def model(X):
    K, D = 2, X.shape[1]
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(K)))
    with numpyro.plate("component", K):
        mu = numpyro.sample("mu", dist.MultivariateNormal(X.mean(0), 100.0 * jnp.eye(D)))
        L = numpyro.sample("L", dist.LKJCholesky(D, 2.0))
        sigma = numpyro.sample("sigma", dist.HalfCauchy(10.0 * jnp.ones(D)).to_event(1))
    mix = dist.MixtureSameFamily(
        dist.Categorical(probs=w), dist.MultivariateNormal(mu, scale_tril=sigma[..., None] * L))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("obs", mix, obs=X)
times = []
for data in (X, X[::-1].copy()):
    mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=500, num_chains=2,
                chain_method="vectorized", progress_bar=False)
    t = time.perf_counter(); mcmc.run(jax.random.key(0), jnp.asarray(data))
    jax.block_until_ready(mcmc.get_samples()); times.append(time.perf_counter() - t)
print(*times)
"""


def bench_nuts(cache_root: str) -> None:
    cache = os.path.join(cache_root, "nuts")
    first, second = last_floats(run_python(NUTS, cache))
    fresh_first, _ = last_floats(run_python(NUTS, cache))
    plain_first, plain_second = last_floats(run_python(PLAIN_NUMPYRO, None))
    print("\nsample_posterior, Old Faithful K=2, 2 chains x 500 + 500")
    print(f"  first call in the process (empty disk cache)     {first:7.2f} s")
    print(f"  second call, new data of the same shape class    {second:7.2f} s")
    print(f"  first call in a fresh process, populated cache   {fresh_first:7.2f} s")
    print(f"  plain NumPyro model, first call                  {plain_first:7.2f} s")
    print(f"  plain NumPyro model, second call                 {plain_second:7.2f} s")
    verdict(second < 4.0, "second call of a shape class under 4 s, sampling included")
    verdict(fresh_first < 6.0, "first call, fresh process, populated cache: under 6 s")


MANY = """
import resource, warnings, numpy as np
warnings.simplefilter("ignore")
import bayesgmm as bg
def maps():
    return len(open("/proc/self/maps").read().splitlines())
def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
rng = np.random.default_rng(3)
X = rng.normal(size=(60, 2)) + 6.0 * rng.integers(0, 2, size=(60, 1))
kw = dict(num_chains=1, num_warmup=10, num_samples=100, progress_bar=False)
out = []
for i in range({calls}):
    bg.sample_posterior(X + 1e-3 * i, 2, seed=i, **kw)
    if i + 1 in (1, {calls} // 2, {calls}):
        out += [maps(), rss_mib()]
print(*out)
"""


def bench_many(calls: int, cache_root: str) -> None:
    cache = os.path.join(cache_root, "many")
    m1, r1, m2, r2, m3, r3 = last_floats(run_python(MANY.format(calls=calls), cache))
    print(f"\n{calls} tiny sample_posterior calls in one process")
    print(f"  after call 1:          {m1:6.0f} memory maps, RSS {r1:7.1f} MiB")
    print(f"  after call {calls // 2:<4d}:       {m2:6.0f} memory maps, RSS {r2:7.1f} MiB")
    print(f"  after call {calls:<4d}:       {m3:6.0f} memory maps, RSS {r3:7.1f} MiB")
    verdict(m3 - m1 < 50 and r3 - r1 < 100, "memory maps and RSS flat after the first call")


SECTIONS = ("import", "em", "grid", "nuts", "many")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and calls")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of {', '.join(SECTIONS)} (default: all)",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    if not only <= set(SECTIONS):
        parser.error(f"--only takes sections of {', '.join(SECTIONS)}; got {args.only!r}")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="bayesgmm-latency-") as cache_root:
        t0 = time.time()
        if "import" in only:
            bench_import(3 if args.quick else 5)
        if "em" in only:
            bench_em(3 if args.quick else 5, cache_root)
        if "grid" in only:
            bench_grid(cache_root)
        if "nuts" in only:
            bench_nuts(cache_root)
        if "many" in only:
            bench_many(20 if args.quick else 200, cache_root)
    print(f"\ntotal {time.time() - t0:.0f} s; load at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    raise SystemExit(main())
