"""The ``bayesgmm`` command line.

Subcommands: ``demo`` (built-in data), ``em`` (fit EM / MAP-EM),
``mcmc`` (NUTS from MAP-EM), ``compare`` (rank model specifications),
``clusters`` (the posterior of the number of clusters from one sparse Gibbs run).

Exit codes scripts can rely on: 0 success; 1 an unexpected internal error;
2 bad usage or bad input (unreadable data, invalid specification, a custom
model that fails, results that exist without ``--force``, NumPyro or ArviZ
missing for a command that samples), with a one-line
``bayesgmm COMMAND: error: ...`` on stderr. Output paths and arguments are
checked before any data is read or any model fitted. ``bayesgmm --version``
prints the installed version.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
import time
from pathlib import Path

from bayesgmm._data_files import read_data

__all__ = ["main"]


class _MissingDependency(RuntimeError):
    """A package the command needs cannot be imported (exit code 2, one line)."""


def _require_bayes(what: str, alternative: str = "") -> None:
    """Import NumPyro and ArviZ, or raise :class:`_MissingDependency` naming the one
    that fails and how to install both; ``alternative`` says how to do without."""
    import importlib

    for name in ("numpyro", "arviz"):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise _MissingDependency(
                f"{what} needs NumPyro and ArviZ, but {name} cannot be imported ({err}); "
                f"install them with: pip install numpyro arviz{alternative}"
            ) from None


def _version() -> str:
    """The installed distribution's version, else the package's ``__version__``."""
    from importlib import metadata

    try:
        return metadata.version("bayesgmm")
    except metadata.PackageNotFoundError:
        import bayesgmm

        return getattr(bayesgmm, "__version__", "unknown")


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    import bayesgmm as bg

    _check_common(args)
    if not args.no_nuts:
        _require_bayes("the demo's NUTS step", "; or pass --no-nuts")
    X, names = bg.datasets.load_faithful(return_names=True)
    print(f"Old Faithful geyser data: {X.shape[0]} eruptions x {X.shape[1]} features {names}\n")

    print("Choosing K and covariance structure by BIC (EM, 5 restarts each):")
    print(f"  {'K':>2} " + " ".join(f"{ct:>12}" for ct in bg.COVARIANCE_TYPES))
    best = None
    for K in range(1, args.max_components + 1):
        row = []
        for ct in bg.COVARIANCE_TYPES:
            em = bg.fit_em(X, K, covariance_type=ct, n_init=5, seed=args.seed, feature_names=names)
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
    map_em = bg.fit_em(
        X, K, covariance_type=ct, prior=prior, n_init=5, seed=args.seed, feature_names=names
    )
    print(f"\nMAP-EM under {prior} ({time.perf_counter() - t0:.2f} s):\n")
    print(map_em.summary())
    shift = np.abs(np.asarray(map_em.params.means) - np.asarray(best.params.means)).max()
    print(f"\nLargest change of a mean between EM and MAP-EM: {shift:.4f}")
    if args.no_nuts:
        return 0

    from bayesgmm.bayes._sample import sample_posterior

    print(
        f"\nNUTS under the same prior: {args.chains} chains x {args.warmup} warmup + "
        f"{args.samples} draws, started at the MAP-EM estimate ..."
    )
    t0 = time.perf_counter()
    post = sample_posterior(
        X,
        K,
        prior=prior,
        covariance_type=ct,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        init=map_em,
        seed=args.seed,
        progress_bar=not args.quiet,
    ).relabel(reference=map_em.params)
    print(f"done in {time.perf_counter() - t0:.1f} s (compilation included)\n")
    print(post, "\n")
    print(bg.report(map_em, post))
    return 0


_SEED_MAX = 2**63 - 1  # JAX's keys take a signed 64-bit seed


def _check_common(args: argparse.Namespace) -> None:
    """Checks of plain arguments, before any file is read."""
    if not 0 <= args.seed <= _SEED_MAX:
        raise ValueError(f"--seed must be an integer from 0 to {_SEED_MAX}; got {args.seed}")


def _note(command: str):
    return lambda line: print(f"bayesgmm {command}: {line}", file=sys.stderr)


def _read(args: argparse.Namespace):
    return read_data(args.data, args.columns, header=args.header, note=_note(args.command))


def _check_out_file(path: str, suffix: str, what: str, force: bool) -> Path:
    """``--out`` of ``em``/``mcmc``, checked before any work: suffix, folder, link, file."""
    from bayesgmm.selection._serialization import check_writable

    out = Path(path)
    if out.suffix != suffix:
        raise ValueError(f"--out for {what} is a {suffix} file; got {path}")
    try:
        return check_writable(out, overwrite=force, force_hint="pass --force")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--out {err}; create the folder first") from None


def _save_out(obj, out: Path, force: bool) -> None:
    from bayesgmm.selection._serialization import save

    try:
        save(obj, out, overwrite=force)
    except FileExistsError:
        raise FileExistsError(
            f"{out} appeared while bayesgmm was working; pass --force to replace it"
        ) from None


def _em(args: argparse.Namespace) -> int:
    import bayesgmm as bg

    _check_common(args)
    out = _check_out_file(args.out, ".json", "em", args.force) if args.out else None
    if args.chunk_rows is not None:  # out of core: the .npy file read in chunks by Dask
        from bayesgmm._cli_dask import fit_em_chunked

        em = fit_em_chunked(args)
    else:
        X, names = _read(args)
        prior = bg.Prior.default(X, args.n_components) if args.map else None
        em = bg.fit_em(
            X,
            args.n_components,
            covariance_type=args.covariance_type,
            prior=prior,
            n_init=args.n_init,
            max_iter=args.max_iter,
            tol=args.tol,
            seed=args.seed,
            feature_names=names,
        )
    print(em.summary())
    if out is not None:
        _save_out(em, out, args.force)
        print(f"\nsaved {out}")
    return 0


def _mcmc(args: argparse.Namespace) -> int:
    import bayesgmm as bg

    _check_common(args)
    out = _check_out_file(args.out, ".nc", "mcmc (netCDF)", args.force) if args.out else None
    _require_bayes("NUTS")
    import arviz as az

    from bayesgmm.bayes._sample import sample_posterior

    X, names = _read(args)
    prior = bg.Prior.default(X, args.n_components)
    em = bg.fit_em(
        X,
        args.n_components,
        covariance_type=args.covariance_type,
        prior=prior,
        n_init=args.n_init,
        seed=args.seed,
        feature_names=names,
    )
    print(em.summary(), "\n")
    post = sample_posterior(
        X,
        args.n_components,
        prior=prior,
        covariance_type=args.covariance_type,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        init=em,
        seed=args.seed,
        progress_bar=not args.quiet,
    ).relabel()
    print(post)
    print(az.summary(post.to_arviz(), var_names=["weights", "means"]).to_string(), "\n")
    print(bg.report(em, post))
    if out is not None:
        _save_out(post, out, args.force)
        print(f"\nsaved {out}")
    return 0


def _clusters(args: argparse.Namespace) -> int:
    from bayesgmm._cli_clusters import run_clusters

    return run_clusters(args, read=_read, require_bayes=_require_bayes, check_common=_check_common)


# The record of a compare run's files, kept in its output folder.
MANIFEST = ".bayesgmm-manifest.json"
# Names compare writes; under --force only such files of an earlier run are removed.
_RUN_FILE = re.compile(
    r"(comparison\.(csv|md|png)|em_[A-Za-z0-9_.-]+\.json|posterior_[A-Za-z0-9_.-]+\.nc"
    r"|spec_[A-Za-z0-9_.-]+\.json)"
)


def _planned_files(specs, nuts: bool) -> list[str]:
    names = ["comparison.csv", "comparison.md", "comparison.png"]
    for spec in specs:
        names.append(f"spec_{spec.name}.json")
        for v in spec.variants():
            names.append(f"em_{v.name}.json")
            if nuts and spec.nuts.get("enabled", True):
                names.append(f"posterior_{v.name}.nc")
    return names


def _check_out_dir(path: str, force: bool, planned: list[str]) -> tuple[Path, bool]:
    """``--out`` of ``compare``, checked before any work; creates it if missing.

    Returns the folder and whether it was created here.
    """
    out = Path(path)
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        mode = None
    if mode is None:
        try:
            out.mkdir(parents=True)
        except OSError as err:
            raise ValueError(f"--out {out}: cannot create the folder ({err.strerror})") from None
        return out, True
    if stat.S_ISLNK(mode):
        raise ValueError(
            f"--out {out} is a symbolic link; bayesgmm does not write through links "
            "(give the real folder)"
        )
    if not stat.S_ISDIR(mode):
        raise ValueError(f"--out {out} is a file; compare writes its results into a folder")
    if any(out.iterdir()) and not force:
        raise FileExistsError(
            f"{out} exists and is not empty; pass --force to replace the results in it"
        )
    for name in planned:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            raise ValueError(f"--out {out}: {name} is a folder; compare needs that name")
    return out, False


def _earlier_run_files(out: Path) -> set[str]:
    """Files of an earlier run in ``out``: those its manifest lists (files of compare's
    names only), or, without a manifest, every file with a name compare writes."""
    import json

    names = {n for n in os.listdir(out) if _RUN_FILE.fullmatch(n)}
    try:
        listed = json.loads((out / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return names
    if not isinstance(listed, list):
        return names
    return names & {n for n in listed if isinstance(n, str)}


def _publish(staging: Path, out: Path) -> None:
    """Move a finished run from ``staging`` into ``out``; remove the earlier run's
    files it does not replace. Renames never follow links: a link in ``out`` with an
    output's name is replaced, its target left alone."""
    import json

    new = sorted(os.listdir(staging))
    (staging / MANIFEST).write_text(json.dumps({"files": new}, indent=1) + "\n")
    for name in sorted(_earlier_run_files(out) - set(new)):
        target = out / name
        mode = os.lstat(target).st_mode
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            os.unlink(target)
    for name in [*new, MANIFEST]:
        os.replace(staging / name, out / name)
    staging.rmdir()


def _compare(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesgmm.plots import plot_model_comparison
    from bayesgmm.selection import compare_models, load_specs, save, to_markdown

    _check_common(args)
    specs = load_specs(args.specs)
    nuts = not args.no_nuts
    if nuts and any(spec.nuts.get("enabled", True) for spec in specs):
        _require_bayes("NUTS (PSIS-LOO, WAIC)", "; or pass --no-nuts")
    out = created = None
    if args.out:
        out, created = _check_out_dir(args.out, args.force, _planned_files(specs, nuts))
    staging = None
    try:
        if out is not None:  # a run's files are written here, then moved into place
            staging = Path(tempfile.mkdtemp(prefix=".bayesgmm-partial-", dir=out))
        X, names = _read(args)
        res = compare_models(
            X,
            specs,
            feature_names=names,
            criterion=args.criterion,
            nuts=nuts,
            seed=args.seed,
            progress=None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True)),
            allow_code=args.allow_code,
        )
        shown = [c for c in res.table.columns if c not in ("spec",)]
        print(res.table[shown].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        if out is None:
            return 0
        res.table.to_csv(staging / "comparison.csv", index=False)
        (staging / "comparison.md").write_text(to_markdown(res.table) + "\n")
        for name, em in res.em.items():
            save(em, staging / f"em_{name}.json")
        for name, post in res.posteriors.items():
            save(post, staging / f"posterior_{name}.nc")
        for spec in specs:
            save(spec, staging / f"spec_{spec.name}.json")
        axes = plot_model_comparison(res.table)
        axes[0].figure.tight_layout()
        axes[0].figure.savefig(staging / "comparison.png", dpi=120)
        plt.close(axes[0].figure)
        _publish(staging, out)
        staging = None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            if created and not any(out.iterdir()):
                out.rmdir()
    print(
        f"\nwrote {out}/: comparison.csv, comparison.md, comparison.png, "
        f"{len(res.em)} EM fits (JSON), {len(res.posteriors)} posteriors (netCDF)"
    )
    return 0


# Every option's help says its default with this suffix (argparse fills it in).
_DEFAULT = " (default: %(default)s)"


def _add_data_args(p: argparse.ArgumentParser, seed_help: str, force: bool = True) -> None:
    p.add_argument("data", help="CSV file (comma-separated) or .npy array of shape (N, D)")
    p.add_argument("--columns", help="comma-separated CSV columns to use (default: all)")
    p.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the CSV's first row is (--header) or is not (--no-header) a header; by "
        "default a first row with a cell that is not a number is a header, and the "
        "decision is printed",
    )
    p.add_argument("--seed", type=int, default=0, help=seed_help + _DEFAULT)
    if force:
        p.add_argument("--force", action="store_true", help="replace existing output")


def _add_model_args(p: argparse.ArgumentParser, n_init_help: str) -> None:
    from bayesgmm._core.covariance import COVARIANCE_TYPES

    p.add_argument(
        "-k", "--n-components", type=int, required=True, help="number of components (required)"
    )
    p.add_argument(
        "--covariance-type",
        choices=COVARIANCE_TYPES,
        default="full",
        help="covariance structure of the components" + _DEFAULT,
    )
    p.add_argument("--n-init", type=int, default=5, help=n_init_help + _DEFAULT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesgmm",
        description="Gaussian mixtures by EM, MAP-EM and NUTS on one parameter structure.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"bayesgmm {_version()}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="fit the built-in Old Faithful data and print a summary",
        description="Fit EM over K and covariance structures on Old Faithful, pick the "
        "lowest BIC, refit it by MAP-EM with the default prior, then sample its posterior "
        "with NUTS from the MAP-EM estimate and report EM against the posterior.",
    )
    demo.add_argument("--max-components", type=int, default=4, help="largest K tried" + _DEFAULT)
    demo.add_argument("--seed", type=int, default=0, help="seed of EM and NUTS" + _DEFAULT)
    demo.add_argument("--chains", type=int, default=4, help="NUTS chains" + _DEFAULT)
    demo.add_argument(
        "--warmup", type=int, default=500, help="NUTS warmup iterations per chain" + _DEFAULT
    )
    demo.add_argument("--samples", type=int, default=500, help="draws per chain" + _DEFAULT)
    demo.add_argument("--no-nuts", action="store_true", help="EM and MAP-EM only")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)

    em = sub.add_parser(
        "em",
        help="fit EM (or MAP-EM with --map) to a data file and print the fit",
        description="Fit a Gaussian mixture by EM; --map maximises the posterior under "
        "the default prior instead. --out saves the fit as JSON (read back by bayesgmm.load).",
    )
    _add_data_args(em, "seed of the EM restarts")
    _add_model_args(em, "EM restarts; the best is kept")
    em.add_argument("--map", action="store_true", help="MAP-EM under Prior.default")
    em.add_argument(
        "--max-iter", type=int, default=500, help="most EM iterations per restart" + _DEFAULT
    )
    em.add_argument(
        "--tol",
        type=float,
        default=1e-5,
        help="stop when the mean log-likelihood per sample (log posterior with --map) "
        "changes by less between iterations" + _DEFAULT,
    )
    em.add_argument("--out", help="save the fit to this .json file")
    em.add_argument(
        "--chunk-rows",
        type=int,
        help="read the .npy file in chunks of this many rows with Dask (out of core; "
        "needs bayesgmm[dask]) instead of loading it",
    )
    em.add_argument(
        "--scheduler", help="with --chunk-rows: address of a Dask scheduler (tcp://host:8786)"
    )
    em.set_defaults(func=_em)

    mc = sub.add_parser(
        "mcmc",
        help="sample the posterior with NUTS, started from MAP-EM",
        description="MAP-EM under the default prior, then NUTS from it; draws are relabelled "
        "against MAP-EM, summarised with ArviZ, and EM is reported against the posterior "
        "(bayesgmm.report). --out saves the posterior as netCDF. Needs NumPyro and ArviZ.",
    )
    _add_data_args(mc, "seed of MAP-EM and NUTS")
    _add_model_args(mc, "MAP-EM restarts for the starting point")
    mc.add_argument("--chains", type=int, default=4, help="NUTS chains" + _DEFAULT)
    mc.add_argument(
        "--warmup", type=int, default=1000, help="NUTS warmup iterations per chain" + _DEFAULT
    )
    mc.add_argument("--samples", type=int, default=1000, help="draws per chain" + _DEFAULT)
    mc.add_argument("--quiet", action="store_true", help="no progress bar")
    mc.add_argument("--out", help="save the posterior to this .nc file")
    mc.set_defaults(func=_mcmc)

    cmp_ = sub.add_parser(
        "compare",
        help="fit and rank the variants of model specifications (models/*.toml)",
        description="Fit every variant of the given TOML specifications with EM (BIC, AIC, "
        "ICL) and NUTS (PSIS-LOO, WAIC), print one ranked table and, with --out, write "
        "comparison.csv/.md/.png, each EM fit as JSON and each posterior as netCDF.",
    )
    _add_data_args(cmp_, "seed of EM and NUTS")
    cmp_.add_argument("specs", nargs="+", help="model specification files (TOML)")
    cmp_.add_argument("--out", help="folder for the results (created if missing)")
    cmp_.add_argument(
        "--criterion",
        choices=["bic", "aic", "icl", "loo", "waic", "kplus"],
        default="bic",
        help="ranking criterion" + _DEFAULT,
    )
    cmp_.add_argument("--no-nuts", action="store_true", help="EM only (no LOO/WAIC)")
    cmp_.add_argument(
        "--allow-code",
        action="store_true",
        help="run the Python code of specifications with a [model] table (custom NumPyro "
        "models); without it such specifications are refused. Only for model files you "
        "have read and trust",
    )
    cmp_.add_argument("--quiet", action="store_true", help="no progress lines")
    cmp_.set_defaults(func=_compare)

    from bayesgmm._cli_clusters import add_clusters_parser

    add_clusters_parser(sub, _add_data_args, _DEFAULT)
    cl = sub.choices["clusters"]
    cl.set_defaults(func=_clusters)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, _MissingDependency) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"bayesgmm {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
