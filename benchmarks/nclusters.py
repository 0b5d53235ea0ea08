"""How many clusters: one sparse K_max = 10 Gibbs run against NUTS fits for K = 1..10.

Run: ``python benchmarks/nclusters.py [--budget SECONDS] [--seeds 0 1 2] [--no-split-merge]``.

The question is "how many clusters are in N = 10,000 rows of 2-D data" (four
well separated Gaussians, :func:`bayesgmm.datasets.make_four_gaussians_2d`).

1. bayesgmm's answer from one run: ``Prior.sparse(X, k_max=10, e0=0.01)``,
   ``sample_posterior(..., method="gibbs")``, 4 chains x (500 + 500) sweeps;
   wall time including compilation (the first seed) and ``p(K+ = 4 | data)``,
   for each of ``--seeds`` (the data's seed and the sampler's). The sampler
   makes two split-merge moves per sweep (``Prior.sparse``'s default);
   ``--no-split-merge`` runs the plain Gibbs sampler instead, which at this
   size keeps a true cluster split between two components (p(K+ = 4) = 0.14
   on seed 0 in an earlier run).
2. The refit-every-K answer, on the first seed's data:
   ``sample_posterior(X, K, init="em")`` with NUTS
   for K = 1, 2, ... and PSIS-LOO of each, **capped**: 2 chains x (200 + 200)
   transitions each (a quarter of the defaults), and K stops when the
   cumulative wall time passes ``--budget`` seconds (default 600). The time
   for all ten K is then extrapolated from the per-K times measured
   (reported as a lower bound: time per K grows with K).
"""

from __future__ import annotations

import argparse
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--no-split-merge", action="store_true")
    args = parser.parse_args()

    import arviz as az

    import bayesgmm as bg

    moves = "plain Gibbs" if args.no_split_merge else "Gibbs + split-merge"
    times = []
    for seed in args.seeds:
        X = bg.datasets.make_four_gaussians_2d(args.n, seed=seed)
        t = time.perf_counter()
        prior = bg.Prior.sparse(X, k_max=10, e0=0.01, split_merge=not args.no_split_merge)
        post = bg.sample_posterior(
            X, 10, prior=prior, method="gibbs", num_chains=4, num_warmup=500, num_samples=500,
            seed=seed,
        )  # fmt: skip
        table = post.k_posterior()
        seconds = time.perf_counter() - t
        times.append(seconds)
        p = table["p(K+|data)"]
        print(
            f"N = {X.shape[0]}, D = 2, true K = 4, seed {seed}: sparse {moves} K_max=10, "
            f"4 x (500 + 500) sweeps: {seconds:7.1f} s   p(K+=4 | data) = {p.loc[4]:.3f}   "
            f"mode K+ = {table.attrs['mode']}",
            flush=True,
        )
    gibbs_s = times[0]  # compilation included, as for the NUTS fits below
    X = bg.datasets.make_four_gaussians_2d(args.n, seed=args.seeds[0])

    spent, times = 0.0, []
    for K in range(1, 11):
        if spent > args.budget:
            break
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nuts = bg.sample_posterior(
                X,
                K,
                init="em",
                num_chains=2,
                num_warmup=200,
                num_samples=200,
                progress_bar=False,
                seed=0,
            )
            elpd = az.loo(nuts.to_arviz()).elpd_loo
        dt = time.perf_counter() - t
        spent += dt
        times.append(dt)
        print(f"NUTS K={K:2d}, 2 x (200 + 200), + LOO: {dt:7.1f} s   elpd_loo = {elpd:10.1f}")
    done = len(times)
    if done < 10:
        est = spent + (10 - done) * times[-1]
        print(f"NUTS K=1..{done} took {spent:.1f} s; K=1..10 would take > {est:.0f} s (capped)")
    else:
        est = spent
        print(f"NUTS K=1..10 took {spent:.1f} s")
    print(f"ratio (NUTS over K=1..10) / (one sparse Gibbs run) >= {est / gibbs_s:.1f}")


if __name__ == "__main__":
    main()
