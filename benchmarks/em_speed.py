"""Seconds per EM iteration: ``bayesgmm.fit_em`` against scikit-learn's ``GaussianMixture``.

Run from the repository root::

    python benchmarks/em_speed.py            # full size, about 5 to 10 minutes
    python benchmarks/em_speed.py --quick    # tiny smoke run (used by the tests)

What is measured, for each case (N samples, D features, K components):

- Both fitters get the same float64 data (drawn from a mixture of K Gaussians
  with random covariances), the same initial parameters,
  ``covariance_type="full"``, ``reg_covar=1e-6`` and ``tol=0``, so both run
  exactly ``max_iter`` iterations; the log-likelihoods they reach must agree.
- Seconds per iteration: ``(t(n2) - t(n1)) / (n2 - n1)`` with ``t(n)`` the
  fastest of ``--repeats`` runs of ``max_iter=n`` (runs interleaved). Set-up
  costs (validation, standardising and copying the data, scikit-learn's
  initialisation, the final E-step) cancel; taking each minimum before the
  difference keeps a disturbed run on a shared machine from skewing it.
- bayesgmm is warmed up with the same shapes and static arguments
  (``max_iter`` is static in the jitted core), so JAX compile time is excluded.
  Repeats stop early once a fitter has spent ``budget_s`` on them.
- scikit-learn runs with ``init_params="random"`` (with all three ``*_init``
  given no k-means is run), once with its default BLAS threads and once with
  one BLAS thread, each in its own process: OpenBLAS threads busy-wait and can
  be many times slower on a loaded machine. The faster is the reference; a
  default-threads run that takes too long is stopped.
- GFLOP/s count 4 N K D^2 flops per iteration (E-step whitening plus M-step
  scatter matrices), against the float64 matrix-multiply rate of this machine
  measured in the same run (numpy and JAX GEMM, ``2 n^3`` flops, the larger).
- Peak memory: a fresh process per fitter reads ``ru_maxrss`` after imports,
  data creation and (for JAX) back-end start ("base"), runs one fit of ``n2``
  iterations and reads it again ("peak"); "extra" = peak - base. bayesgmm is
  measured twice: "cold" includes compiling the EM program with XLA; "cached"
  loads the compiled program from JAX's persistent compilation cache (filled
  by the cold run), which leaves the memory of the fit itself.

Targets (printed PASS/FAIL): at least 5x faster than scikit-learn in the two
D=10 cases and 3x at D=50, with extra peak memory no more than scikit-learn's.
Performance targets live here, never in the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

FULL_CASES = [  # (N, D, K, n1, n2, target speed-up)
    (100_000, 10, 8, 2, 12, 5.0),
    (1_000_000, 10, 8, 1, 5, 5.0),
    (200_000, 50, 16, 1, 3, 3.0),
]
QUICK_CASES = [(3_000, 3, 2, 1, 6, 5.0)]
REG_COVAR = 1e-6
LL_RTOL = 1e-6
FLOPS_NOTE = "4 N K D^2 flops per iteration"


# ----------------------------------------------------------------- problem ---
def make_problem(n: int, d: int, k: int, seed: int = 0):
    """Data from a K-component Gaussian mixture, and fixed initial parameters.

    Returns ``X`` (N, D) float64 and ``(weights0, means0, covariances0)``: equal
    weights, the true means moved by noise, and one shared spherical covariance.
    """
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(0.0, 3.0, (k, d))
    a = rng.normal(size=(k, d, d)) / np.sqrt(d)
    scales = rng.uniform(0.5, 2.0, k)[:, None, None]
    cov = scales * (a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d))
    chol = np.linalg.cholesky(cov)
    labels = rng.choice(k, size=n, p=weights)
    X = rng.standard_normal((n, d))
    for j in range(k):  # data generation only: K products, no (N, D, D) array
        rows = labels == j
        X[rows] = means[j] + X[rows] @ chol[j].T
    weights0 = np.full(k, 1.0 / k)
    means0 = means + rng.normal(0.0, 0.5, (k, d))
    avg_var = np.trace(cov, axis1=-2, axis2=-1).mean() / d
    cov0 = np.broadcast_to(avg_var * np.eye(d), (k, d, d)).copy()
    return X, (weights0, means0, cov0)


def _maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024.0  # bytes / KiB


# ----------------------------------------------------------------- fitters ---
def fit_em_fixed(X, init, n_iter):
    """``bg.fit_em`` for exactly ``n_iter`` iterations of full covariances from ``init``."""
    import bayesgmm as bg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        return bg.fit_em(
            X,
            init.weights.shape[0],
            init=init,
            tol=0.0,
            max_iter=n_iter,
            reg_covar=REG_COVAR,
            covariance_type="full",
        )


def _bayesgmm_fit(n, d, k):
    """(fit(n_iter) -> (log-likelihood, n_iter), version); JAX started, data made."""
    import jax
    import jax.numpy as jnp

    import bayesgmm as bg

    X, (w0, m0, c0) = make_problem(n, d, k)
    jnp.zeros(1).block_until_ready()  # start the JAX back end
    init = bg.GMMParams(w0, m0, c0)

    def fit(n_iter):
        res = fit_em_fixed(X, init, n_iter)
        return res.log_likelihood, res.n_iter

    return fit, f"bayesgmm {bg.__version__} (jax {jax.__version__})"


def sklearn_fitted(X, start, n_iter):
    """scikit-learn's ``GaussianMixture`` after exactly ``n_iter`` iterations from ``start``.

    ``start`` is ``(weights, means, covariances)``; with all three given no
    k-means runs, and ``tol=0`` never stops early.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    w0, m0, c0 = start
    gm = GaussianMixture(
        len(w0),
        covariance_type="full",
        tol=0.0,
        max_iter=n_iter,
        reg_covar=REG_COVAR,
        init_params="random",
        weights_init=w0,
        means_init=m0,
        precisions_init=np.linalg.inv(c0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    return gm


def _sklearn_fit(n, d, k):
    """(fit(n_iter) -> (log-likelihood, n_iter), version); data made."""
    import sklearn

    X, start = make_problem(n, d, k)

    def fit(n_iter):
        gm = sklearn_fitted(X, start, n_iter)
        return float(gm.score(X)) * n, gm.n_iter_

    return fit, f"scikit-learn {sklearn.__version__}"


def _blas_limit(fitter: str, blas_threads: int):
    """Context limiting scikit-learn's BLAS threads (0: the library default)."""
    if fitter != "sklearn" or blas_threads == 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=blas_threads, user_api="blas")


# ----------------------------------------------------------------- workers ---
def worker_time(fitter, n, d, k, n1, n2, repeats, budget_s, blas_threads=0):
    """Seconds per iteration by two iteration counts; the log-likelihood after n2."""
    fit, version = (_bayesgmm_fit if fitter == "bayesgmm" else _sklearn_fit)(n, d, k)
    with _blas_limit(fitter, blas_threads):
        if fitter == "bayesgmm":
            fit(n1), fit(n2)  # compile both max_iter values (a static argument)
        best = {n1: np.inf, n2: np.inf}
        start = time.perf_counter()
        for _ in range(repeats):
            for n_iter in (n1, n2):
                t0 = time.perf_counter()
                log_lik, done = fit(n_iter)
                best[n_iter] = min(best[n_iter], time.perf_counter() - t0)
                assert done == n_iter, (done, n_iter)
            if time.perf_counter() - start > budget_s:
                break
        if fitter == "sklearn":
            from threadpoolctl import threadpool_info

            blas = {f"{i['internal_api']} x{i['num_threads']}" for i in threadpool_info()}
            version += f" ({', '.join(sorted(blas))})"
    return {
        "sec_per_iter": (best[n2] - best[n1]) / (n2 - n1),
        "log_lik": log_lik,
        "version": version,
    }


def worker_memory(fitter, n, d, k, n_iter, cache_dir=""):
    """ru_maxrss before and after one fit in this fresh process (MiB)."""
    if cache_dir:
        import jax

        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    fit, _ = (_bayesgmm_fit if fitter == "bayesgmm" else _sklearn_fit)(n, d, k)
    base = _maxrss_mib()
    fit(n_iter)
    return {"base_mib": base, "peak_mib": _maxrss_mib()}


def worker_gemm(n, repeats):
    """Float64 GEMM rate (GFLOP/s) of numpy and of JAX on this machine."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    a, b = rng.random((n, n)), rng.random((n, n))

    def best_time(fn):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    t_np = best_time(lambda: a @ b)
    with jax.enable_x64(True):
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        mm = jax.jit(jnp.matmul)
        t_jax = best_time(lambda: mm(ja, jb).block_until_ready())
    flops = 2.0 * n**3
    return {"numpy": flops / t_np / 1e9, "jax": flops / t_jax / 1e9}


WORKERS = {"time": worker_time, "memory": worker_memory, "gemm": worker_gemm}


def _parse(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def run_worker(*args, timeout_s: float | None = None, script: str = __file__) -> dict | None:
    """Run ``script`` (this one) as a fresh worker process; its JSON answer, None on timeout."""
    cmd = [sys.executable, os.path.abspath(script), "--worker", *map(str, args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"worker {' '.join(cmd[3:])} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ driver ---
def _measure_case(case, repeats, budget_s, sk_timeout_s, cache_dir):
    n, d, k, n1, n2, _ = case
    timing = (n, d, k, n1, n2, repeats, budget_s)
    out = {"bayesgmm": run_worker("time", "bayesgmm", *timing)}
    one = run_worker("time", "sklearn", *timing, 1)
    default = run_worker("time", "sklearn", *timing, 0, timeout_s=sk_timeout_s)
    out["sklearn"] = dict(one, sec_one_thread=one["sec_per_iter"])
    out["sklearn"]["sec_default"] = default["sec_per_iter"] if default else float("inf")
    out["sklearn"]["sec_per_iter"] = min(one["sec_per_iter"], out["sklearn"]["sec_default"])
    if default:
        out["sklearn"]["version"] = default["version"]
    case_cache = os.path.join(cache_dir, f"{n}_{d}_{k}")
    out["bayesgmm"]["mem_cold"] = run_worker("memory", "bayesgmm", n, d, k, n2, case_cache)
    out["bayesgmm"]["mem_cached"] = run_worker("memory", "bayesgmm", n, d, k, n2, case_cache)
    out["sklearn"]["mem"] = run_worker("memory", "sklearn", n, d, k, n2)
    return out


def _extra(mem: dict) -> float:
    return mem["peak_mib"] - mem["base_mib"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (< 30 s)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per count")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        kind, *params = args.worker
        print(json.dumps(WORKERS[kind](*map(_parse, params))))
        return 0

    cases = QUICK_CASES if args.quick else FULL_CASES
    repeats = args.repeats or (2 if args.quick else 3)
    budget_s = 2.0 if args.quick else 30.0  # timed repeats stop after this
    sk_timeout_s = None if args.quick else 100.0
    start = time.perf_counter()
    print(
        f"em_speed{' --quick' if args.quick else ''}: {platform.machine()}, "
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f} at start; "
        f"float64, covariance_type='full', tol=0, same data and initial parameters"
    )
    gemm_n = 500 if args.quick else 3000
    gemm = run_worker("gemm", gemm_n, 3)
    peak = max(gemm.values())
    print(
        f"float64 GEMM {gemm_n}x{gemm_n} (2n^3 flops): numpy {gemm['numpy']:.1f} GFLOP/s, "
        f"JAX {gemm['jax']:.1f} GFLOP/s; machine rate = {peak:.1f} GFLOP/s"
    )

    results = []
    with tempfile.TemporaryDirectory(prefix="em_speed_jax_cache_") as cache_dir:
        for case in cases:
            results.append((case, _measure_case(case, repeats, budget_s, sk_timeout_s, cache_dir)))

    print()
    head = (
        f"{'case':<21} {'fitter':<9} {'s/iter':>8} {'GFLOP/s':>8} {'% rate':>7}   "
        f"{'extra peak MiB (base)':<24} {'bayesgmm cached':>15}"
    )
    print(head)
    print("-" * len(head))
    for (n, d, k, *_), res in results:
        label = f"N={n:,} D={d} K={k}"
        flops = 4.0 * n * k * d * d
        for name in ("bayesgmm", "sklearn"):
            r = res[name]
            gflops = flops / r["sec_per_iter"] / 1e9
            mem = r["mem_cold"] if name == "bayesgmm" else r["mem"]
            cached = f"{_extra(r['mem_cached']):>15.0f}" if name == "bayesgmm" else ""
            memtxt = f"{_extra(mem):.0f} ({mem['base_mib']:.0f})"
            print(
                f"{label:<21} {name:<9} {r['sec_per_iter']:>8.4f} {gflops:>8.2f} "
                f"{100.0 * gflops / peak:>6.1f}%   {memtxt:<24} {cached}"
            )
    print(
        f"({FLOPS_NOTE}; extra = peak - base ru_maxrss of a fresh process running one fit; "
        "bayesgmm cold includes XLA compilation, cached loads it from the compilation cache)"
    )
    print()
    print("scikit-learn s/iter by BLAS threads (the faster is its row above):")
    for (n, d, k, *_), res in results:
        sk = res["sklearn"]
        default = (
            f"{sk['sec_default']:.4f}"
            if np.isfinite(sk["sec_default"])
            else f"stopped after {sk_timeout_s:g} s"
        )
        print(
            f"  N={n:,} D={d} K={k}: default threads {default}, "
            f"one thread {sk['sec_one_thread']:.4f}"
        )
    print()
    all_pass = True
    for (n, d, k, _, n2, target), res in results:
        label = f"N={n:,} D={d} K={k}"
        bgm, sk = res["bayesgmm"], res["sklearn"]
        speedup = sk["sec_per_iter"] / bgm["sec_per_iter"]
        rel_ll = abs(bgm["log_lik"] - sk["log_lik"]) / abs(sk["log_lik"])
        checks = [
            (
                speedup >= target,
                f"speed-up sklearn/bayesgmm {speedup:.2f}x (target >= {target:g}x)",
            ),
            (
                _extra(bgm["mem_cold"]) <= _extra(sk["mem"]),
                f"extra peak memory, cold: {_extra(bgm['mem_cold']):.0f} MiB vs scikit-learn "
                f"{_extra(sk['mem']):.0f} MiB (target <=)",
            ),
            (
                _extra(bgm["mem_cached"]) <= _extra(sk["mem"]),
                f"extra peak memory, compiled program cached: "
                f"{_extra(bgm['mem_cached']):.0f} MiB vs {_extra(sk['mem']):.0f} MiB (target <=)",
            ),
            (
                rel_ll <= LL_RTOL,
                f"same log-likelihood after {n2} iterations: relative difference "
                f"{rel_ll:.1e} (<= {LL_RTOL:g})",
            ),
        ]
        for ok, text in checks:
            all_pass &= ok
            print(f"{'PASS' if ok else 'FAIL'}  {label:<21} {text}")
    print()
    for name in ("bayesgmm", "sklearn"):
        print(f"  {results[-1][1][name]['version']}")
    if args.quick:
        print("  (--quick: sizes too small for the timings or targets to mean anything)")
    print(
        f"total {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f} at "
        f"end; {'all targets met' if all_pass else 'some targets missed'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
