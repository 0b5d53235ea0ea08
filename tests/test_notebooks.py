"""The notebooks in ``notebooks/`` run top to bottom from a fresh kernel.

Each is executed with ``BAYESGMM_SMOKE=1`` (small data, short chains) so the
suite stays fast; readers running them without the switch get full size. The
stored copies carry the full-size outputs.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
EXPECTED = [
    "01_em_from_scratch_to_bayes.ipynb",
    "02_clusters_in_2d.ipynb",
    "03_old_faithful.ipynb",
    "04_model_comparison.ipynb",
    "05_how_many_clusters.ipynb",
    "06_four_engines.ipynb",
]


def _notebooks():
    return [NOTEBOOK_DIR / name for name in EXPECTED if (NOTEBOOK_DIR / name).exists()]


def test_every_notebook_is_there_and_linked_from_the_readme():
    missing = [name for name in EXPECTED if not (NOTEBOOK_DIR / name).exists()]
    assert not missing, f"missing notebooks: {missing}"
    readme = (ROOT / "README.md").read_text()
    unlinked = [name for name in EXPECTED if f"(notebooks/{name})" not in readme]
    assert not unlinked, f"README does not link: {unlinked}"


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_stored_notebook_has_full_size_outputs(path):
    """The stored copy was executed in order, without errors, and shows figures."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code]
    assert all(isinstance(n, int) for n in counts), "some code cells were never executed"
    assert counts == sorted(counts), "cells were executed out of order"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], "a stored cell has an error"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "the stored notebook shows no figure"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # every notebook prints its size switch first; the stored copy is the full-size run
    assert re.search(r"SMOKE = False", text), "stored outputs are not from a full-size run"


@pytest.mark.slow
@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_from_a_fresh_kernel(path, monkeypatch):
    monkeypatch.setenv("BAYESGMM_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
