"""Reliability and security of the command line (issue #19, items 1, 2, 3, 7, 8, 10
and 12): a specification's code runs only when asked, no writes through links,
no stale or partial results, every check before the first fit, one-line errors with
exit code 2, and CSV files read without a silent guess."""

import numpy as np
import pandas as pd
import pytest

import bayesgmm as bg
import bayesgmm.selection
from bayesgmm.cli import main, read_data

X = bg.datasets.make_four_gaussians_2d(40, seed=2)


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame(X, columns=["x", "y"]).to_csv(path, index=False)
    return path


@pytest.fixture
def no_fitting(monkeypatch):
    """Any fit fails the test: the checks under test must come first."""

    def fit(*args, **kwargs):
        raise AssertionError("a model was fitted before the check")

    monkeypatch.setattr(bg, "fit_em", fit)
    monkeypatch.setattr(bayesgmm.selection, "fit_em", fit)


def one_line_error(capsys, command):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith(f"bayesgmm {command}: error: "), err
    return lines[0]


def write_spec(folder, text, name="s.toml"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


EM_ONLY = 'name = "s"\ncovariance_type = "full"\nn_components = [1, 2]\n'
EVIL = """
Path(__file__).with_name("ran.txt").write_text("the spec's code ran")

def model(X, n_components, prior, covariance_type="full", sample_weight=None):
    raise RuntimeError("boom from the custom model")
"""
WITH_MODEL = (
    'name = "custom"\ncovariance_type = "full"\nn_components = 1\n'
    '[model]\nfile = "evil.py"\nfunction = "model"\n'
    "[nuts]\nnum_chains = 1\nnum_warmup = 100\nnum_samples = 100\n"
)


# --- items 3 and 12: CSV files read without a silent guess ---------------------------------


def test_header_of_numbers_is_kept_with_header_flag_and_reported_without(tmp_path, capsys):
    path = tmp_path / "years.csv"
    path.write_text("2020,2021\n1,2\n3,4\n5,7\n")
    data, names = read_data(str(path), header=True)
    assert names == ["2020", "2021"] and data.shape == (3, 2)
    assert main(["em", str(path), "-k", "1", "--header", "--columns", "2021"]) == 0
    notes = []
    data, names = read_data(str(path), note=notes.append)
    assert data.shape == (4, 2) and names == ["0", "1"]  # no row dropped, and it says so
    assert len(notes) == 1 and "read as data" in notes[0] and "--header" in notes[0]
    assert main(["em", str(path), "-k", "1"]) == 0
    assert "the first row holds only numbers" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("1,\n3,4\n5,6\n", [], "missing value at data row 1, column '1'"),
        ("a,b\n", [], r"only a header row \(a, b\) and no data rows"),
        ("a,b\n1,2\n3,4\n", ["--columns", "a,a"], r"--columns names \['a'\] more than once"),
        ("a;b\n1;2\n3;4\n", [], "the first line has no commas but semicolons"),
        ("a,b,\n1,2,\n3,4,\n", [], "the header row ends with a comma"),
        ("a,b\n1,2,\n3,4,\n", [], "the header has 2 columns .* but the data rows have 3"),
        ("1,2,\n3,4,\n", [], r"column\(s\) \['2'\] are empty in every row"),
        ("a,b\n1,true\n2,false\n", [], r"column\(s\) \['b'\] hold true/false values"),
        ("a,b\n1,2\n\n3,4\n", [], r"data row 2 \(line 3\) is blank"),
        ("a,a\n1,2\n3,4\n", [], r"the header names column\(s\) \['a'\] more than once"),
        ("a,b\n1,2\n3,4,5\n", [], "line 3 has 3 fields where the rows before it have 2"),
    ],
)
def test_csv_problems_are_named(tmp_path, capsys, content, args, message):
    import re

    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["em", str(path), "-k", "1", *args]) == 2
    assert re.search(message, one_line_error(capsys, "em"))


def test_header_flag_on_npy_is_refused(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, X)
    assert main(["em", str(path), "-k", "1", "--no-header"]) == 2
    assert "apply to CSV files only" in one_line_error(capsys, "em")
