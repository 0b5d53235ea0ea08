"""The EM speed benchmark runs end to end at tiny sizes.

Only that it runs and prints its table is tested here: the performance targets
live in ``benchmarks/em_speed.py`` itself, never in the test suite.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "em_speed.py"


@pytest.mark.slow
def test_em_speed_quick_prints_the_table():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("case"))
    for column in ("fitter", "s/iter", "GFLOP/s", "% rate", "extra peak MiB"):
        assert column in header
    assert any(line.startswith("float64 GEMM") and "GFLOP/s" in line for line in lines)
    rows = [line.split() for line in lines if line.startswith("N=3,000 D=3 K=2")]
    assert [row[3] for row in rows] == ["bayesgmm", "sklearn"]
    for row in rows:
        float(row[4])  # seconds per iteration, a number
    verdicts = [line for line in lines if line.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 4  # speed, memory cold, memory cached, same log-likelihood
    # Correctness, not speed: both fitters reach the same log-likelihood.
    assert any(v.startswith("PASS") and "same log-likelihood" in v for v in verdicts)


def test_nuts_benchmark_counts_nested_compile_spans_once():
    """The NUTS benchmark's compile time is the union of JAX's compile spans."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import nuts_speed
    finally:
        sys.path.remove(str(SCRIPT.parent))
    spans = [(1.0, 5.0), (2.0, 3.0), (4.0, 6.0), (8.0, 9.0), (-3.0, 0.5)]
    # clipped to the run [0, 8.5]: (0, 0.5) + (1, 6) as one + (8, 8.5)
    assert nuts_speed.covered_seconds(spans, 0.0, 8.5) == pytest.approx(0.5 + 5.0 + 0.5)
    assert nuts_speed.covered_seconds([], 0.0, 1.0) == 0.0


def test_em_peers_reference_log_likelihood_matches_scipy():
    """The one function that scores every peer's final parameters in em_peers.py."""
    import importlib.util

    from scipy.stats import multivariate_normal

    path = SCRIPT.parent / "em_peers.py"
    spec = importlib.util.spec_from_file_location("em_peers", path)
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    X, (w, m, c) = peers.make_problem(1_000, 3, 4)
    dens = sum(w[k] * multivariate_normal(m[k], c[k]).pdf(X) for k in range(4))
    expected = float(np.log(dens).sum())
    got = peers.log_likelihood(X, w, m, c, block=300)  # blocks: 300, 300, 300, 100
    assert abs(got - expected) <= 1e-10 * abs(expected)
