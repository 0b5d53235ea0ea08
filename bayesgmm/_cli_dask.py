"""``bayesgmm em --chunk-rows``: a ``.npy`` file fitted out of core, read in chunks by Dask."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

__all__ = ["fit_em_chunked"]


def fit_em_chunked(args: argparse.Namespace):
    """The EM fit the ``em`` command asks for, on its ``.npy`` file read in chunks.

    The file is never loaded: :func:`bayesgmm.em.from_npy` reads ``--chunk-rows``
    rows per task, on the Dask scheduler at ``--scheduler`` (else Dask's local
    threads). ``--map``'s default prior comes from one pass over the file.
    """
    import bayesgmm as bg
    from bayesgmm.em._dask import from_npy
    from bayesgmm.em._dask_vb import prior_default

    if Path(args.data).suffix != ".npy" or args.columns or args.header is not None:
        raise ValueError("--chunk-rows reads a .npy file (no --columns, no --header)")
    if args.chunk_rows < 1:
        raise ValueError(f"--chunk-rows must be a positive integer; got {args.chunk_rows}")
    X = from_npy(args.data, args.chunk_rows)
    with contextlib.ExitStack() as stack:
        if args.scheduler:
            from distributed import Client

            stack.enter_context(Client(args.scheduler))
        prior = prior_default(X, args.n_components) if args.map else None
        return bg.fit_em(
            X,
            args.n_components,
            covariance_type=args.covariance_type,
            prior=prior,
            n_init=args.n_init,
            max_iter=args.max_iter,
            tol=args.tol,
            seed=args.seed,
        )
