"""Seconds per EM iteration of ``bayesgmm.fit_em`` against every EM a user could pick.

Run from the repository root::

    pip install -e ".[bench]"                # oneDAL (daal4py) and gmmx
    python benchmarks/em_peers.py            # the four sizes, about 10 minutes
    python benchmarks/em_peers.py --quick    # tiny smoke run (used by the tests)

Peers, each in a fresh process of its own: Intel oneDAL (``daal4py.em_gmm``),
scikit-learn's ``GaussianMixture``, gmmx (a JAX EM; it accepts float32 only, so
its row is float32 and agrees to float32 rounding), and ``bayesgmm.fit_em``.
A peer that is not installed is reported as such and skipped.

What is measured, for each case (N rows, D features, K components):

- The same float64 data (a K-component mixture with random covariances, from
  ``em_speed.make_problem``), the same initial weights, means and covariances,
  ``covariance_type="full"``, regularisation 1e-6 and no convergence test, so
  every fitter runs exactly the number of iterations asked for.
- Seconds per iteration ``(t(n2) - t(n1)) / (n2 - n1)``, ``t(n)`` the fastest of
  ``--repeats`` runs of n iterations after one warm-up of each (set-up costs
  cancel; compilation is excluded for the JAX fitters).
- Agreement: the log-likelihood of each fitter's final parameters after n2
  iterations, all computed by one NumPy function here; the relative difference
  to bayesgmm's is printed (the same fixed point to rounding when below ~1e-9).
- GFLOP/s count 4 N K D^2 flops per iteration (E-step whitening plus the
  M-step's scatter matrices), against the float64 matrix-multiply rate of
  this machine measured in the same run (numpy and JAX, the larger).
- Extra peak memory at N = 1,000,000, D = 10, K = 8 (data 76 MiB): a fresh
  process per fitter reads its peak resident memory (``VmHWM``) after imports
  and data ("base"), runs
  one fit and reads it again; extra = peak - base. bayesgmm twice: "cold"
  compiles with XLA (an empty compilation cache), "cached" loads the program.

Targets (printed PASS/FAIL, issue #15): ``fit_em`` at least as fast as oneDAL at
every size, at least 60% of the matrix-multiply rate at D = 50, and an extra
peak memory of at most the data's size plus a few blocks (we print the data's
size) cold and cached. oneDAL's own figure is printed beside ours.

Where the time goes (XLA's profiler, ``jax.profiler.trace``, and CPU time on
one core; see issue #15): on small data an EM iteration is ~90 XLA kernel
launches (N=2,000, D=2: 140 us of CPU against oneDAL's 8.5 us), twice the
work of the unpadded problem (K padded to its class, 68 us without); at D=10
we were 1.4x behind oneDAL per core (27 against 19 ms of CPU at N=1e5) and
used one core where oneDAL uses both: XLA runs the blocked E-step inline on
the calling thread. Large fits now split each E-step over host threads
(``bayesgmm/em/_threaded.py``): 73.7 against oneDAL's 84.7 ms at N=1e6 and
259 against 315 ms (83% of the GEMM rate) at D=50 in one run, where one
thread took 123-133 and 472-571 ms. Tried and dropped, single core, N=1e5,
D=10: larger blocks (204 rows 26.6 ms; 1,024 30.2; 4,096 46.7), the M-step's
second moments as a GEMM on the products ``x_d x_e`` (31-35 ms), YNNPACK
fusions off (39 ms; they are off for D <= 3, where they cost 1.5x).

``daal4py`` 2024.7 imports scikit-learn patches from its package ``__init__``
that fail with scikit-learn >= 1.6; only its compiled core
(``daal4py._daal4py``) is needed here, so the worker imports that directly.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import em_speed
from em_speed import _maxrss_mib, _parse, make_problem, sklearn_fitted, worker_gemm

FULL_CASES = [  # (N, D, K, n1, n2)
    (2_000, 2, 3, 10, 210),
    (100_000, 10, 8, 2, 12),
    (1_000_000, 10, 8, 1, 5),
    (200_000, 50, 16, 1, 3),
]
QUICK_CASES = [(2_000, 2, 3, 2, 12)]
MEMORY_CASE = (1_000_000, 10, 8, 3)  # N, D, K, iterations
QUICK_MEMORY_CASE = (20_000, 4, 3, 3)
FITTERS = ("bayesgmm", "bayesgmm-2cpu", "onedal", "sklearn", "gmmx")
# bayesgmm with JAX started on two CPU devices (one per core here): EM's blocked passes
# split their rows over both (bayesgmm/_core/_devices.py); a user opts in the same way.
TWO_DEVICES = "--xla_force_host_platform_device_count=2"
REG = 1e-6
TARGET_RATE_D50 = 0.60


# ----------------------------------------------------------------- fitters ---
def _daal():
    """daal4py's compiled core, without its scikit-learn patches (see the docstring)."""
    spec = importlib.util.find_spec("daal4py")
    if spec is None:
        raise ImportError("daal4py is not installed")
    if "daal4py" not in sys.modules:
        pkg = types.ModuleType("daal4py")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["daal4py"] = pkg
    from daal4py import _daal4py

    return _daal4py


def make_fitter(name, X, w0, m0, c0, blas_threads=None):
    """``(fit(n_iter) -> (weights, means, covariances), version)`` for one peer.

    ``blas_threads`` limits scikit-learn's BLAS threads (None: its default).
    """
    k = len(w0)
    if name == "bayesgmm-2cpu":
        if "jax" in sys.modules:
            raise RuntimeError("bayesgmm-2cpu must set XLA_FLAGS before JAX is imported")
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TWO_DEVICES}"
    if name in ("bayesgmm", "bayesgmm-2cpu"):
        import jax

        import bayesgmm as bg

        init = bg.GMMParams(w0, m0, c0)

        def fit(n_iter):
            res = em_speed.fit_em_fixed(X, init, n_iter)
            p = res.params
            return p.weights, p.means, p.covariances

        devices = f", {len(jax.devices())} CPU devices" if name != "bayesgmm" else ""
        return fit, f"{name} {bg.__version__} (jax {jax.__version__}{devices})"
    if name == "onedal":
        d4p = _daal()
        covs = [c.copy() for c in c0]

        def fit(n_iter):
            alg = d4p.em_gmm(
                nComponents=k,
                maxIterations=n_iter,
                accuracyThreshold=0.0,
                regularizationFactor=REG,
            )
            r = alg.compute(X, w0[None, :], m0, covs)
            return np.ravel(r.weights), r.means, np.stack(r.covariances)

        version = importlib.metadata.version("daal4py")
        return fit, f"oneDAL (daal4py {version}, run {d4p._get__daal_run_version__()})"
    if name == "sklearn":
        import sklearn
        from threadpoolctl import threadpool_limits

        def fit(n_iter):
            with threadpool_limits(limits=blas_threads, user_api="blas"):
                gm = sklearn_fitted(X, (w0, m0, c0), n_iter)
            return gm.weights_, gm.means_, gm.covariances_

        return fit, f"scikit-learn {sklearn.__version__}"
    if name == "gmmx":
        import jax
        import jax.numpy as jnp
        from gmmx import EMFitter, GaussianMixtureModelJax

        f32 = jnp.float32  # gmmx 0.7 accepts float32 only
        xj = jnp.asarray(X, f32)
        gmm0 = GaussianMixtureModelJax.from_squeezed(
            means=jnp.asarray(m0, f32),
            covariances=jnp.asarray(c0, f32),
            weights=jnp.asarray(w0, f32),
        )

        def fit(n_iter):
            # tol < 0: never converged, exactly n_iter iterations
            res = EMFitter(max_iter=n_iter, tol=-1.0, reg_covar=REG).fit(xj, gmm0)
            g = res.gmm
            return g.weights_numpy, g.means_numpy, g.covariances.values_numpy

        return (
            fit,
            f"gmmx {importlib.metadata.version('gmmx')} (jax {jax.__version__}, float32 only)",
        )
    raise ValueError(name)


def log_likelihood(X, weights, means, covs, block=100_000):
    """Total log-likelihood of ``X`` under full-covariance parameters (NumPy, float64)."""
    weights, means, covs = (np.asarray(a, dtype=np.float64) for a in (weights, means, covs))
    means = means.reshape(len(weights), -1)
    covs = covs.reshape(len(weights), means.shape[1], means.shape[1])
    chol = np.linalg.cholesky(covs)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    d = X.shape[1]
    total = 0.0
    for s in range(0, len(X), block):
        xb = X[s : s + block]
        diff = xb[None, :, :] - means[:, None, :]  # (K, B, D)
        z = np.linalg.solve(chol, np.swapaxes(diff, 1, 2))  # (K, D, B)
        lp = -0.5 * (d * np.log(2 * np.pi) + logdet[:, None] + (z * z).sum(1))
        lp += np.log(weights)[:, None]
        top = lp.max(0)
        total += float((top + np.log(np.exp(lp - top).sum(0))).sum())
    return total


# ----------------------------------------------------------------- workers ---
def _peak_mib() -> float:
    """This process's peak resident memory (MiB) since it started (``VmHWM``).

    Not ``ru_maxrss``: Linux keeps that across ``exec``, so a worker started by
    a driver that once held a large array would report the driver's peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return _maxrss_mib()


def _reset_peak() -> None:
    """Start the peak over from the current resident memory (Linux; else nothing)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def worker_time(name, n, d, k, n1, n2, repeats, budget_s, blas_threads=0):
    """Seconds per iteration of one peer, and its final parameters after n2 iterations."""
    X, (w0, m0, c0) = make_problem(n, d, k)
    try:
        fit, version = make_fitter(name, X, w0, m0, c0, blas_threads or None)
    except ImportError as exc:
        return {"missing": str(exc)}
    fit(n1), fit(n2)  # warm-up: compiles both iteration counts of the JAX fitters
    best = {n1: np.inf, n2: np.inf}
    start = time.perf_counter()
    for _ in range(repeats):
        for n_iter in (n1, n2):
            t0 = time.perf_counter()
            params = fit(n_iter)
            best[n_iter] = min(best[n_iter], time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    weights, means, covs = (np.asarray(a, dtype=np.float64).tolist() for a in params)
    return {
        "sec_per_iter": (best[n2] - best[n1]) / (n2 - n1),
        "params": [weights, means, covs],
        "version": version + (f", {blas_threads} BLAS thread(s)" if blas_threads else ""),
    }


def worker_memory(name, n, d, k, n_iter, cache_dir=""):
    """Peak resident memory before and after one fit in this fresh process (MiB).

    The peak is reset after the data are made, so that their temporaries do not
    hide the fit's own peak.
    """
    if cache_dir:
        os.environ["BAYESGMM_CACHE_DIR"] = cache_dir
    X, (w0, m0, c0) = make_problem(n, d, k)
    try:
        fit, _ = make_fitter(name, X, w0, m0, c0)
    except ImportError as exc:
        return {"missing": str(exc)}
    if name in ("bayesgmm", "bayesgmm-2cpu", "gmmx"):
        import jax.numpy as jnp

        jnp.zeros(1).block_until_ready()  # the back end's start is not the fit's memory
    _reset_peak()
    base = _peak_mib()
    fit(n_iter)
    first = _peak_mib()
    fit(n_iter)  # warm: a second fit of the same shapes in this process
    return {
        "base_mib": base,
        "peak_mib": first,
        "warm_mib": _peak_mib() - first,
        "data_mib": X.nbytes / 2**20,
    }


WORKERS = {"time": worker_time, "memory": worker_memory, "gemm": worker_gemm}


def run_worker(*args, timeout_s: float | None = None) -> dict:
    """Run this script as a fresh worker process and return its JSON answer."""
    out = em_speed.run_worker(*args, timeout_s=timeout_s, script=__file__)
    return {"missing": f"stopped after {timeout_s:g} s"} if out is None else out


# ------------------------------------------------------------------ driver ---
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=FITTERS, help="a subset of the fitters")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        kind, *params = args.worker
        print(json.dumps(WORKERS[kind](*map(_parse, params))))
        return 0

    cases = QUICK_CASES if args.quick else FULL_CASES
    fitters = args.only or FITTERS
    budget_s = 2.0 if args.quick else 40.0
    start = time.perf_counter()
    print(
        f"em_peers{' --quick' if args.quick else ''}: {platform.machine()}, "
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f} at start; "
        "float64, covariance_type='full', same data, start and iteration count"
    )
    gemm_n = 500 if args.quick else 3000
    gemm = run_worker("gemm", gemm_n, 3)
    rate = max(gemm.values())
    print(
        f"float64 GEMM {gemm_n}x{gemm_n}: numpy {gemm['numpy']:.1f}, JAX {gemm['jax']:.1f} "
        f"GFLOP/s; machine rate {rate:.1f} GFLOP/s"
    )

    versions, rows, checks = {}, [], []
    for n, d, k, n1, n2 in cases:
        X = make_problem(n, d, k)[0]
        res = {}
        for name in fitters:
            r = run_worker("time", name, n, d, k, n1, n2, args.repeats, budget_s)
            if name == "sklearn" and "missing" not in r:
                # OpenBLAS threads spin on a busy machine: the faster of default and one
                one = run_worker("time", name, n, d, k, n1, n2, args.repeats, budget_s, 1)
                r = min(r, one, key=lambda x: x["sec_per_iter"])
            if "missing" in r:
                versions.setdefault(name, f"{name}: not run ({r['missing']})")
                continue
            versions[name] = r["version"]
            r["log_lik"] = log_likelihood(X, *r["params"])
            res[name] = r
        label = f"N={n:,} D={d} K={k}"
        ref = res.get("bayesgmm", next(iter(res.values()), None))
        flops = 4.0 * n * k * d * d
        for name, r in res.items():
            gflops = flops / r["sec_per_iter"] / 1e9
            rel = abs(r["log_lik"] - ref["log_lik"]) / abs(ref["log_lik"])
            rows.append(
                f"{label:<22} {name:<13} {r['sec_per_iter'] * 1e3:>10.3f} {gflops:>8.1f} "
                f"{100 * gflops / rate:>6.1f}%  {r['log_lik']:>18.6f} {rel:>9.1e}"
            )
        for ours in ("bayesgmm", "bayesgmm-2cpu"):
            if ours in res and "onedal" in res:
                ratio = res["onedal"]["sec_per_iter"] / res[ours]["sec_per_iter"]
                checks.append(
                    (ratio >= 1.0, f"{label:<22} oneDAL / {ours} time {ratio:.2f}x (>= 1)")
                )
        if "bayesgmm" in res and d >= 50:
            share = flops / res["bayesgmm"]["sec_per_iter"] / 1e9 / rate
            checks.append(
                (
                    share >= TARGET_RATE_D50,
                    f"{label:<22} bayesgmm at {100 * share:.0f}% of the rate",
                )
            )
        del X

    print()
    head = f"{'case':<22} {'fitter':<13} {'ms/iter':>10} {'GFLOP/s':>8} {'% rate':>7}  "
    head += f"{'log-likelihood':>18} {'rel diff':>9}"
    print(head)
    print("-" * len(head))
    print("\n".join(rows))
    print("(4 N K D^2 flops per iteration; rel diff: to bayesgmm's log-likelihood)")

    if not args.no_memory:
        n, d, k, n_iter = QUICK_MEMORY_CASE if args.quick else MEMORY_CASE
        print(f"\nextra peak memory of one {n_iter}-iteration fit at N={n:,} D={d} K={k}:")
        with tempfile.TemporaryDirectory(prefix="em_peers_cache_") as cache_dir:
            runs = [(name, "") for name in fitters]
            if "bayesgmm" in fitters:
                runs = [("bayesgmm", cache_dir), ("bayesgmm", cache_dir), *runs[1:]]
            mem = {}
            for i, (name, cache) in enumerate(runs):
                r = run_worker("memory", name, n, d, k, n_iter, cache)
                if "missing" in r:
                    continue
                tag = name if not cache else ("bayesgmm cold" if i == 0 else "bayesgmm cached")
                mem[tag] = r
                extra = r["peak_mib"] - r["base_mib"]
                print(
                    f"  {tag:<16} first fit {extra:>6.0f} MiB, a second fit {r['warm_mib']:>5.0f} "
                    f"MiB more   (base {r['base_mib']:.0f} MiB)"
                )
            data_mib = next(iter(mem.values()))["data_mib"] if mem else 0.0
            print(
                f"  (the data: {data_mib:.0f} MiB; the peak only grows, so a second fit shows "
                "only what it needs beyond the first fit's peak)"
            )
            limit = 1.25 * data_mib + 16
            for tag in ("bayesgmm cold", "bayesgmm cached"):
                if tag in mem:
                    extra = mem[tag]["peak_mib"] - mem[tag]["base_mib"]
                    text = f"{tag} extra peak {extra:.0f} MiB (data + blocks: {limit:.0f} MiB)"
                    checks.append((extra <= limit, text))

    print()
    all_pass = True
    for ok, text in checks:
        all_pass &= ok
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    print()
    for text in versions.values():
        print(f"  {text}")
    if args.quick:
        print("  (--quick: sizes too small for the timings or targets to mean anything)")
    print(
        f"total {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f} at "
        f"end; {'all targets met' if all_pass else 'some targets missed'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
