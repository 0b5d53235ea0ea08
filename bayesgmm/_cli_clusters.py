"""``bayesgmm clusters``: the posterior of the number of clusters from one sparse Gibbs run.

The command's checks, run and parser, apart from :mod:`bayesgmm.cli` (which
imports this module when it builds its parser and when the command runs).
"""

from __future__ import annotations

import argparse
import time

__all__ = ["add_clusters_parser", "check_clusters", "run_clusters"]


def add_clusters_parser(sub, add_data_args, default: str) -> None:
    """The ``clusters`` subparser, with the data options ``add_data_args`` adds."""
    cl = sub.add_parser(
        "clusters",
        help="the posterior of the number of clusters from one sparse Gibbs run",
        description="Fit an overfitted mixture of --k-max full-covariance components under "
        "Prior.sparse (a sparse finite mixture; with --k-prior the telescoping sampler with "
        "a prior on K) by Gibbs sampling, and print p(K+ | data), the posterior of the number "
        "of non-empty components, beside its exact prior (and p(K | data) with --k-prior), "
        "then the posterior mode.",
    )
    add_data_args(cl, "seed of the Gibbs sampler", force=False)
    cl.add_argument(
        "--k-max", type=int, default=10, help="components of the overfitted mixture" + default
    )
    cl.add_argument(
        "--e0",
        type=float,
        default=0.01,
        help="Dirichlet concentration of the weights (the starting value with --e0-prior)"
        + default,
    )
    cl.add_argument(
        "--e0-prior",
        metavar="SHAPE,RATE",
        help="a Gamma(SHAPE, RATE) prior on e0, updated by the sampler, such as 1,20 "
        "(default: e0 fixed)",
    )
    cl.add_argument(
        "--k-prior",
        default="none",
        help="prior on the number of components K: 'none' (K = k-max, a sparse finite "
        "mixture), 'uniform', 'bnb(a,b,c)' (K - 1 ~ beta-negative-binomial, bnb(1,4,3) is "
        "the telescoping paper's), 'poisson(lambda)' or 'geometric(p)'" + default,
    )
    cl.add_argument(
        "--no-split-merge",
        action="store_true",
        help="sample without the split-merge moves (Prior.sparse(split_merge=False)): the "
        "plain Gibbs sampler, which at large N can keep a cluster split in two",
    )
    cl.add_argument("--chains", type=int, default=4, help="Gibbs chains" + default)
    cl.add_argument(
        "--warmup", type=int, default=1000, help="sweeps discarded per chain" + default
    )
    cl.add_argument("--samples", type=int, default=1000, help="sweeps kept per chain" + default)


def _parse_e0_prior(text: str | None) -> tuple[float, float] | None:
    """``--e0-prior SHAPE,RATE`` as a pair of positive finite floats (None if not given)."""
    import math

    if text is None:
        return None
    parts = text.split(",")
    try:
        shape, rate = (float(v) for v in parts)
    except ValueError:
        raise ValueError(
            f"--e0-prior is SHAPE,RATE of a Gamma prior on e0, two positive numbers such "
            f"as 1,20; got {text!r}"
        ) from None
    if not all(math.isfinite(v) and v > 0 for v in (shape, rate)):
        raise ValueError(f"--e0-prior SHAPE,RATE must both be positive and finite; got {text!r}")
    return shape, rate


def check_clusters(args: argparse.Namespace, check_common) -> tuple:
    """Checks of ``clusters``' numbers and prior, before the data file is read."""
    import math

    from bayesgmm._core._sparse import k_prior_log_pmf

    check_common(args)
    if args.k_max < 1:
        raise ValueError(f"--k-max must be a positive integer; got {args.k_max}")
    if not (math.isfinite(args.e0) and args.e0 > 0):
        raise ValueError(f"--e0 must be a positive number such as 0.01; got {args.e0}")
    for flag, value, low in (("--chains", args.chains, 1), ("--samples", args.samples, 1)):
        if value < low:
            raise ValueError(f"{flag} must be at least {low}; got {value}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be 0 or more; got {args.warmup}")
    e0_prior = _parse_e0_prior(args.e0_prior)
    k_prior = None if args.k_prior.lower() == "none" else args.k_prior
    k_prior_log_pmf(k_prior, args.k_max)  # a ValueError listing the accepted forms
    return e0_prior, k_prior


def run_clusters(args: argparse.Namespace, *, read, require_bayes, check_common) -> int:
    """The ``clusters`` command: check, read, sample, print p(K+) (and p(K)) and the modes.

    ``read``, ``require_bayes`` and ``check_common`` are the command line's own
    steps (:mod:`bayesgmm.cli`), shared by every command.
    """
    import bayesgmm as bg

    e0_prior, k_prior = check_clusters(args, check_common)
    require_bayes("the Gibbs sampler")
    X, names = read(args)
    if X.shape[0] < 2:
        raise ValueError(f"clusters needs at least 2 rows of data; got {X.shape[0]}")
    prior = bg.Prior.sparse(
        X,
        k_max=args.k_max,
        e0=args.e0,
        e0_prior=e0_prior,
        k_prior=k_prior,
        split_merge=not args.no_split_merge,
    )
    print(
        f"{prior}: Gibbs, {args.chains} chains x ({args.warmup} + {args.samples}) sweeps "
        f"on {X.shape[0]} rows x {X.shape[1]} features ..."
    )
    t0 = time.perf_counter()
    post = bg.sample_posterior(
        X,
        args.k_max,
        prior=prior,
        method="gibbs",
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        seed=args.seed,
        progress_bar=False,
        feature_names=names,
    )
    print(f"done in {time.perf_counter() - t0:.1f} s (compilation included)\n")
    table = post.k_posterior()
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    mode = table.attrs["mode"]
    p_mode = table.loc[mode, "p(K+|data)"]
    print(f"\nPosterior mode of K+ (non-empty components): {mode} (p = {p_mode:.3f})")
    if "p(K|data)" in table:
        k_mode = int(table["p(K|data)"].idxmax())
        p_k = table.loc[k_mode, "p(K|data)"]
        print(f"Posterior mode of K (components): {k_mode} (p = {p_k:.3f})")
    return 0
