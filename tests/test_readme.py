"""Every ```python block of README.md runs, verbatim, as a reader would run them.

The blocks share one namespace and run top to bottom (the second block uses the
``X`` and ``bg`` of the first). Figures go to matplotlib's Agg backend and files a
block writes land in a temporary working directory. Output listings and shell
commands in the README are fenced without ``python`` and are not run.
"""

import re
from pathlib import Path

import matplotlib
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)


def python_blocks(text):
    """``[(line number of the first code line, code)]`` of the ```python blocks of ``text``."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text)]


def test_python_blocks_are_found():
    """The fence pattern sees the README's examples (else the test below would run nothing)."""
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    assert any("bg.fit_em(" in code for _, code in blocks)
    assert any("print(bg.report(" in code for _, code in blocks)
    sample = "text\n```python\nx = 1\n```\n\n```\n$ not python\n```\n"
    assert python_blocks(sample) == [(3, "x = 1\n")]


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    text = README.read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    try:
        for line, code in python_blocks(text):
            # a block that raises fails the test; the traceback names README.md and the line
            exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)
    finally:
        plt.close("all")
    printed = capsys.readouterr().out
    # the report's verdict shown in the README is the one the code prints
    verdicts = [line for line in printed.splitlines() if line.startswith("Verdict: ")]
    assert verdicts, printed
    for verdict in verdicts:
        assert verdict in text, f"README.md does not show the printed {verdict!r}"
