"""EM beyond memory: seconds per iteration and peak memory per process, dask against in memory.

Run from the repository root (needs ``pip install -e '.[dask]'``)::

    python benchmarks/scale.py                      # N = 1e6, 1e7, 5e7 (about 15 minutes)
    python benchmarks/scale.py --sizes 1e6 1e7      # the two smaller ones
    python benchmarks/scale.py --quick              # N = 2e5, a smoke run

What is measured, for each N (D = 10, K = 8, float64, ``covariance_type="full"``):

- The data, drawn from a mixture of K Gaussians, are written once to a
  ``.npy`` file (``--dir``, reused when present) chunk by chunk, so writing
  them never holds them in memory.
- **dask**: a fresh ``LocalCluster`` of 2 worker processes (1 thread each);
  ``X = bayesgmm.em._dask.from_npy(path, chunk_rows)`` reads the file in chunks
  on the workers at every pass (out of core: the page cache is the only
  cache); ``fit_em(X, 8, init=start, tol=0)``.
- **memory**: ``np.load(path)`` then the same ``fit_em`` on the NumPy array,
  skipped when twice the data (the array and EM's standardised copy) exceed
  ``--memory-limit-gb``.
- Seconds per iteration: ``(t(1 + m) - t(1)) / m`` with ``t(n)`` the wall time
  of a fit with ``max_iter=n`` (``tol=0``, so exactly n iterations), after
  warm-up fits that compile every program (on the workers too): the
  validation pass, the final evaluation and set-up cancel.
- Peak memory per process: ``ru_maxrss`` of every process at the end (the
  driver, which holds a LocalCluster's scheduler, and each worker; each
  configuration runs in a fresh process tree). Linux keeps ``ru_maxrss``
  across ``fork`` + ``exec``, so a child starts from its parent's high-water
  mark: the data are written by a process of their own and the parent stays
  small (an earlier version wrote them in the parent through a memory map and
  charged the file's size to every child).

Targets (printed PASS/FAIL; issue 18): dask within 1.5x of in-memory per
iteration at 1e7; no process above 4 GB at 5e7; time per iteration about
linear in N. The machine is shared: the load average is printed with the
results.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

D, K = 10, 8
CHUNK_ROWS = 1 << 19  # 40 MiB of float64 per chunk at D = 10
WRITE_ROWS = 1 << 20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _truth():
    rng = np.random.default_rng(0)
    means = rng.uniform(-6, 6, size=(K, D))
    scales = rng.uniform(0.5, 1.5, size=(K, D))
    weights = rng.dirichlet(np.full(K, 5.0))
    return weights, means, scales


def write_data(path: Path, n: int) -> None:
    """Rows of the mixture written in blocks to a ``.npy`` file (never all in memory)."""
    weights, means, scales = _truth()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, D))
    for i, start in enumerate(range(0, n, WRITE_ROWS)):
        rng = np.random.default_rng([1, i])
        m = min(WRITE_ROWS, n - start)
        z = rng.choice(K, size=m, p=weights)
        out[start : start + m] = means[z] + scales[z] * rng.standard_normal((m, D))
    out.flush()
    del out


def _start():
    import bayesgmm as bg

    _, means, scales = _truth()
    rng = np.random.default_rng(2)
    cov = np.stack([np.diag(s**2) + 0.5 * np.eye(D) for s in scales])
    return bg.GMMParams(np.full(K, 1.0 / K), means + rng.normal(scale=0.7, size=means.shape), cov)


def _time_fits(fit, m: int, static_max_iter: bool) -> tuple[float, float]:
    """``(seconds per iteration, final log-likelihood)`` from fits of 1 and 1 + m iterations."""
    fit(1)  # warm-up: every program compiled
    if static_max_iter:  # in memory max_iter is static: one program per value
        fit(1 + m)
    t0 = time.perf_counter()
    fit(1)
    t1 = time.perf_counter()
    result = fit(1 + m)
    t2 = time.perf_counter()
    return ((t2 - t1) - (t1 - t0)) / m, result.log_likelihood


def run_one(kind: str, path: str, m: int) -> dict:
    """One configuration in this (fresh) process; returns what the parent prints."""
    import bayesgmm as bg

    warnings.simplefilter("ignore", bg.ConvergenceWarning)
    start = _start()
    base = _peak_mib()
    if kind == "memory":
        X = np.load(path)

        def fit(n):
            return bg.fit_em(X, K, init=start, tol=0.0, max_iter=n)

        per_iter, ll = _time_fits(fit, m, static_max_iter=True)
        return {"per_iter": per_iter, "log_lik": ll, "peak": {"driver": _peak_mib()}, "base": base}
    from distributed import Client, LocalCluster

    from bayesgmm.em import from_npy

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        X = from_npy(path, CHUNK_ROWS)

        def fit(n):
            return bg.fit_em(X, K, init=start, tol=0.0, max_iter=n)

        per_iter, ll = _time_fits(fit, m, static_max_iter=False)
        # (a LocalCluster's scheduler runs in the driver's process)
        peak = {"driver": _peak_mib()}
        for i, (_, v) in enumerate(sorted(client.run(_peak_mib).items())):
            peak[f"worker {i}"] = v
    return {"per_iter": per_iter, "log_lik": ll, "peak": peak, "base": base}


def _child(kind: str, path: Path, m: int, output: bool = True) -> dict | None:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), "--iterations", str(m)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) if output else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 5e7])
    parser.add_argument("--dir", default="/tmp/bayesgmm-scale")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--memory-limit-gb", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"))
    args = parser.parse_args()
    if args.child:
        kind, path = args.child
        if kind.startswith("write:"):
            write_data(Path(path), int(kind.split(":")[1]))
        else:
            print(json.dumps(run_one(kind, path, args.iterations)))
        return
    sizes = [2e5] if args.quick else args.sizes
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"D={D}, K={K}, float64, full; chunks of {CHUNK_ROWS} rows; {args.iterations} timed "
          f"iterations; {os.cpu_count()} CPUs; load average {os.getloadavg()}")  # fmt: skip
    rows = []
    for size in sizes:
        n = int(size)
        path = folder / f"X_{n}.npy"
        t = time.perf_counter()
        if not (path.exists() and np.load(path, mmap_mode="r").shape == (n, D)):
            _child(f"write:{n}", path, 0, output=False)
        gib = n * D * 8 / 2**30
        print(f"\nN={n:.0e}: {path} ({gib:.2f} GiB, ready in {time.perf_counter() - t:.0f} s)")
        res = {"dask": _child("dask", path, args.iterations)}
        if 2 * n * D * 8 <= args.memory_limit_gb * 2**30:
            res["memory"] = _child("memory", path, args.iterations)
        for kind, r in res.items():
            peaks = ", ".join(f"{k} {v:.0f}" for k, v in r["peak"].items())
            print(f"  {kind:6s}: {r['per_iter']:7.3f} s/iteration "
                  f"({r['per_iter'] / n * 1e6:.3f} s per 1e6 rows), log-lik {r['log_lik']:.6e}; "
                  f"peak MiB: {peaks}")  # fmt: skip
        if "memory" in res:
            ratio = res["dask"]["per_iter"] / res["memory"]["per_iter"]
            same = abs(res["dask"]["log_lik"] / res["memory"]["log_lik"] - 1)
            print(f"  dask / memory time per iteration: {ratio:.2f}; log-lik rel. diff {same:.1e}")
        rows.append((n, res))
    print(f"\nload average at the end {os.getloadavg()}")
    for n, res in rows:
        peak = max(res["dask"]["peak"].values())
        if n == int(1e7) and "memory" in res:
            ratio = res["dask"]["per_iter"] / res["memory"]["per_iter"]
            print(f"target dask within 1.5x of memory at 1e7: {ratio:.2f} "
                  f"{'PASS' if ratio <= 1.5 else 'FAIL'}")  # fmt: skip
        if n >= int(5e7):
            print(f"target no process above 4 GB at {n:.0e}: max {peak:.0f} MiB "
                  f"{'PASS' if peak < 4 * 1024**3 / 2**20 else 'FAIL'}")  # fmt: skip
    if len(rows) > 1:
        per_row = [res["dask"]["per_iter"] / n for n, res in rows]
        print("dask seconds per iteration per 1e6 rows: "
              + ", ".join(f"{p * 1e6:.3f}" for p in per_row))  # fmt: skip


if __name__ == "__main__":
    main()
