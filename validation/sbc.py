"""Simulation-based calibration of the NumPyro model, every covariance structure.

Run from the repository root::

    python validation/sbc.py               # full size, about 20 minutes on 2 busy cores
    python validation/sbc.py --quick       # a smoke run, written to a temporary folder

For each covariance structure (K = 2 components in D = 2 features, N = 30
rows per data set) it draws parameters from a fixed prior with the independent
NumPy/SciPy sampler of :mod:`bayesgmm.sbc`, data from them, runs NUTS on
:func:`bayesgmm.gmm_model`, and tests the uniformity of the ranks of every
weight, mean and free covariance entry (components in canonical order: sorted
by the first coordinate of the mean) and of two label-invariant quantities
(the log-likelihood of the data set, the log density at the prior mean). Then
the same with planted errors: the sampler is given another prior than the one
the data came from, and SBC must reject.

Writes to ``validation/output/``: one rank-histogram PNG per run
(``sbc_<run>.png``) and ``sbc_pvalues.md``, the Holm-corrected p-value of
every group and of every quantity, with divergences and run times.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import bayesgmm as bg
from bayesgmm.calibration import GROUPS, simulation_based_calibration

OUT = Path(__file__).parent / "output"
K, D = 2, 2
PSI = np.array([[1.0, 0.3], [0.3, 0.8]])
LEVEL = 0.001


def make_prior(*, scale_factor: float = 1.0, kappa: float = 0.2) -> bg.Prior:
    """Label-symmetric prior: Dirichlet(3, 3), m0 = 0, kappa, dof = D + 4, Psi."""
    return bg.Prior(
        weight_concentration=np.full(K, 3.0),
        mean=np.zeros(D),
        mean_precision=kappa,
        dof=D + 4.0,
        scale=scale_factor * PSI,
    )


# name -> (covariance_type, the sampler's prior (None: the true one), its description,
#          expected to pass (None: a power check, no expectation))
RUNS = {
    "full": ("full", None, "same", True),
    "tied": ("tied", None, "same", True),
    "diag": ("diag", None, "same", True),
    "spherical": ("spherical", None, "same", True),
    "bug_full_scale_x4": ("full", make_prior(scale_factor=4.0), "Psi x 4", False),
    "bug_full_kappa_x4": ("full", make_prior(kappa=0.8), "kappa 0.8 (x 4)", False),
    "bug_spherical_scale_x0.25": (
        "spherical",
        make_prior(scale_factor=0.25),
        "Psi x 1/4",
        False,
    ),
    "subtle_full_scale_x1.5": ("full", make_prior(scale_factor=1.5), "Psi x 1.5", None),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--replications", type=int, default=400)
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {OUT})")
    args = parser.parse_args(argv)
    out = args.out or (Path(tempfile.mkdtemp(prefix="sbc_")) if args.quick else OUT)
    if args.quick:
        settings = dict(n_replications=20, num_warmup=50, num_samples=40, thin=2, n_bins=5)
    else:
        settings = dict(
            n_replications=args.replications, num_warmup=200, num_samples=400, thin=4, n_bins=20
        )
    out.mkdir(parents=True, exist_ok=True)
    prior = make_prior()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        "# Simulation-based calibration of `bayesgmm.gmm_model` (NUTS)",
        "",
        f"K = {K}, D = {D}, N = 30 rows per data set; prior Dirichlet(3, 3), m0 = 0, "
        f"kappa = 0.2, dof = D + 4, Psi = {PSI.tolist()}.",
        f"{settings['n_replications']} replications; NUTS {settings['num_warmup']} warmup + "
        f"{settings['num_samples']} draws, thinned by {settings['thin']}; chi-square on "
        f"{settings['n_bins']} bins; Holm correction over all quantities of a run; "
        f"reject at {LEVEL}.",
        "",
        "| run | sampler's prior | weights | means | covariances | invariant | min | verdict "
        "| expected | divergent reps | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    details = []
    failures = 0
    for seed, name in enumerate(args.runs):
        covariance_type, fit_prior, description, should_pass = RUNS[name]
        start = time.perf_counter()
        res = simulation_based_calibration(
            K,
            D,
            covariance_type,
            prior=prior,
            fit_prior=fit_prior,
            n_obs=30,
            seed=100 + seed,
            **settings,
        )
        seconds = time.perf_counter() - start
        fig = res.plot(ncols=4)
        fig.savefig(out / f"sbc_{name}.png", dpi=90)
        plt.close(fig)
        groups = res.group_p_values
        passed = res.min_p_value > LEVEL
        expected = {True: "pass", False: "reject", None: "(power check)"}[should_pass]
        if should_pass is not None and passed != should_pass:
            failures += 1
        lines.append(
            f"| {name} | {description} | "
            + " | ".join(f"{groups[g]:.3g}" for g in GROUPS)
            + f" | {res.min_p_value:.3g} | {'pass' if passed else 'REJECT'} | {expected} | "
            f"{int((res.divergences > 0).sum())} | {seconds:.0f} |"
        )
        table = res.summary()
        details += [
            "",
            f"## {name} ({covariance_type})",
            "",
            "| quantity | group | chi2 | p | Holm p |",
            "|---|---|---|---|---|",
            *(
                f"| {q} | {row.group} | {row.chi2:.1f} | {row.p_value:.3g} | {row.p_holm:.3g} |"
                for q, row in table.iterrows()
            ),
        ]
        print(f"{name}: {res!r} ({seconds:.0f} s)", flush=True)
    (out / "sbc_pvalues.md").write_text("\n".join(lines + details) + "\n")
    print(f"wrote {out / 'sbc_pvalues.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
