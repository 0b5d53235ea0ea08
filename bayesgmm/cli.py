"""The ``bayesgmm`` command line.

``bayesgmm demo`` fits the built-in data and prints what it found. Further
subcommands (``em``, ``mcmc``, ``compare``) are added as the library grows;
exit codes: 0 success, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    import bayesgmm as bg

    X, names = bg.datasets.load_faithful(return_names=True)
    print(f"Old Faithful geyser data: {X.shape[0]} eruptions x {X.shape[1]} features {names}\n")

    print("Choosing K and covariance structure by BIC (EM, 5 restarts each):")
    print(f"  {'K':>2} " + " ".join(f"{ct:>12}" for ct in bg.COVARIANCE_TYPES))
    best = None
    for K in range(1, args.max_components + 1):
        row = []
        for ct in bg.COVARIANCE_TYPES:
            em = bg.fit_em(X, K, covariance_type=ct, n_init=5, seed=args.seed)
            row.append(em.bic)
            if best is None or em.bic < best.bic:
                best = em
        print(f"  {K:>2} " + " ".join(f"{b:12.2f}" for b in row))
    print(
        f"\nLowest BIC: K={best.n_components}, covariance_type={best.covariance_type!r} "
        f"(BIC {best.bic:.2f})\n"
    )
    print(best.summary())

    K, ct = best.n_components, best.covariance_type
    prior = bg.Prior.default(X, K)
    t0 = time.perf_counter()
    map_em = bg.fit_em(X, K, covariance_type=ct, prior=prior, n_init=5, seed=args.seed)
    print(f"\nMAP-EM under {prior} ({time.perf_counter() - t0:.2f} s):\n")
    print(map_em.summary())
    shift = np.abs(np.asarray(map_em.params.means) - np.asarray(best.params.means)).max()
    print(f"\nLargest change of a mean between EM and MAP-EM: {shift:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesgmm",
        description="Gaussian mixtures by EM, MAP-EM and NUTS on one parameter structure.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="fit the built-in Old Faithful data and print a summary",
        description="Fit EM over K and covariance structures on Old Faithful, pick the "
        "lowest BIC, then refit it by MAP-EM with the default prior.",
    )
    demo.add_argument("--max-components", type=int, default=4, help="largest K tried (4)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the initialisation (0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ValueError as err:
        print(f"bayesgmm: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
