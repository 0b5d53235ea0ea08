"""Reliability and security of the command line (issue #19, items 1, 2, 3, 7, 8, 10
and 12): a specification's code runs only when asked, no writes through links,
no stale or partial results, every check before the first fit, one-line errors with
exit code 2, and CSV files read without a silent guess."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesgmm as bg
import bayesgmm.plots
import bayesgmm.selection._compare_models
from bayesgmm.cli import main, read_data
from bayesgmm.selection._serialization import load

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
    monkeypatch.setattr(bayesgmm.selection._compare_models, "fit_validated", fit)


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
from pathlib import Path
Path(__file__).with_name("ran.txt").write_text("the spec's code ran")

def model(X, n_components, prior, covariance_type="full", sample_weight=None):
    raise RuntimeError("boom from the custom model")
"""
WITH_MODEL = (
    'name = "custom"\ncovariance_type = "full"\nn_components = 1\n'
    '[model]\nfile = "evil.py"\nfunction = "model"\n'
    "[nuts]\nnum_chains = 1\nnum_warmup = 100\nnum_samples = 100\n"
)


# --- item 1: a specification runs code only when asked ----------------------------------


def test_compare_refuses_a_spec_with_a_model_file_without_allow_code(
    tmp_path, csv_file, capsys, no_fitting
):
    spec = write_spec(tmp_path / "downloaded", WITH_MODEL)
    (spec.parent / "evil.py").write_text(EVIL)
    assert main(["compare", str(csv_file), str(spec), "--quiet"]) == 2
    line = one_line_error(capsys, "compare")
    assert "runs the Python code in 'evil.py'" in line and "--allow-code" in line
    assert not (spec.parent / "ran.txt").exists()


def test_allow_code_runs_it_and_a_raising_model_is_a_one_line_error(tmp_path, csv_file, capsys):
    spec = write_spec(tmp_path / "mine", WITH_MODEL)
    (spec.parent / "evil.py").write_text(EVIL)
    assert main(["compare", str(csv_file), str(spec), "--quiet", "--allow-code"]) == 2
    line = one_line_error(capsys, "compare")
    assert "evil.py: model() raised RuntimeError: boom from the custom model" in line
    assert (spec.parent / "ran.txt").exists()


# --- item 2: no writes through links ------------------------------------------------------


def test_em_refuses_a_dangling_link_as_out_before_fitting(tmp_path, csv_file, capsys, no_fitting):
    target = tmp_path / "planted.json"
    link = tmp_path / "fit.json"
    link.symlink_to(target)
    assert main(["em", str(csv_file), "-k", "1", "--out", str(link), "--force"]) == 2
    assert "symbolic link" in one_line_error(capsys, "em")
    assert not target.exists()


def test_compare_force_does_not_write_through_links_in_the_folder(tmp_path, csv_file, capsys):
    spec = write_spec(tmp_path, EM_ONLY)
    out = tmp_path / "res"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "em_s-K1.json").symlink_to(victim)
    (out / "comparison.csv").symlink_to(tmp_path / "dangling.csv")
    argv = ["compare", str(csv_file), str(spec), "--no-nuts", "--quiet", "--out", str(out)]
    assert main([*argv, "--force"]) == 0
    assert victim.read_text() == "keep me" and not (tmp_path / "dangling.csv").exists()
    assert not (out / "em_s-K1.json").is_symlink()
    assert load(out / "em_s-K1.json").n_components == 1


def test_compare_refuses_a_link_as_out(tmp_path, csv_file, capsys, no_fitting):
    spec = write_spec(tmp_path, EM_ONLY)
    (tmp_path / "real").mkdir()
    (tmp_path / "res").symlink_to(tmp_path / "real")
    argv = ["compare", str(csv_file), str(spec), "--no-nuts", "--out", str(tmp_path / "res")]
    assert main([*argv, "--force"]) == 2
    assert "symbolic link" in one_line_error(capsys, "compare")


# --- item 7: no stale or partial results ----------------------------------------------------


def test_compare_force_removes_the_earlier_runs_stale_files(tmp_path, csv_file, capsys):
    out = tmp_path / "res"
    argv = ["compare", str(csv_file), "--no-nuts", "--quiet", "--out", str(out)]
    spec3 = write_spec(tmp_path / "a", EM_ONLY.replace("[1, 2]", "[1, 2, 3]"))
    assert main([*argv[:2], str(spec3), *argv[2:]]) == 0
    assert (out / "em_s-K3.json").exists()
    (out / "notes.txt").write_text("the user's own file")
    spec2 = write_spec(tmp_path / "b", EM_ONLY)
    assert main([*argv[:2], str(spec2), *argv[2:], "--force"]) == 0
    assert not (out / "em_s-K3.json").exists()
    assert (out / "notes.txt").read_text() == "the user's own file"
    manifest = json.loads((out / ".bayesgmm-manifest.json").read_text())["files"]
    assert sorted(manifest) == sorted(
        [
            *("comparison.csv", "comparison.md", "comparison.png"),
            *("em_s-K1.json", "em_s-K2.json", "spec_s.json"),
        ]
    )
    assert sorted(os.listdir(out)) == sorted([*manifest, ".bayesgmm-manifest.json", "notes.txt"])
    assert len(pd.read_csv(out / "comparison.csv")) == 2


@pytest.mark.parametrize("existing", [False, True])
def test_compare_failure_while_writing_leaves_no_partial_files(
    tmp_path, csv_file, capsys, monkeypatch, existing
):
    def broken_plot(table):
        raise ValueError("the plot could not be drawn")

    monkeypatch.setattr(bayesgmm.plots, "plot_model_comparison", broken_plot)
    spec = write_spec(tmp_path, EM_ONLY)
    out = tmp_path / "res"
    if existing:
        out.mkdir()
    argv = ["compare", str(csv_file), str(spec), "--no-nuts", "--quiet", "--out", str(out)]
    assert main(argv) == 2
    assert "the plot could not be drawn" in one_line_error(capsys, "compare")
    assert (os.listdir(out) == []) if existing else not out.exists()


# --- item 8: every check before the first fit ------------------------------------------------


@pytest.mark.parametrize(
    ("command", "out", "message"),
    [
        ("em", "missing/fit.json", "the folder .*missing does not exist"),
        ("em", "exists.json", "exists; pass --force to replace it"),
        ("em", "fit.nc", "--out for em is a .json file"),
        ("mcmc", "missing/post.nc", "the folder .*missing does not exist"),
        ("mcmc", "exists.nc", "exists; pass --force to replace it"),
        ("mcmc", "post.json", r"--out for mcmc \(netCDF\) is a .nc file"),
        ("em", "a_folder.json", "a_folder.json is a folder"),
    ],
)
def test_bad_out_fails_in_under_a_second_before_fitting(
    tmp_path, csv_file, capsys, no_fitting, command, out, message
):
    import re

    (tmp_path / "exists.json").write_text("{}")
    (tmp_path / "exists.nc").write_text("")
    (tmp_path / "a_folder.json").mkdir()
    t0 = time.perf_counter()
    code = main([command, str(csv_file), "-k", "1", "--out", str(tmp_path / out)])
    elapsed = time.perf_counter() - t0
    line = one_line_error(capsys, command)
    assert code == 2 and elapsed < 1.0
    assert re.search(message, line), line
    assert "overwrite=True" not in line


# --- item 10: one-line errors with exit code 2 -------------------------------------------


def test_compare_out_that_is_a_file(tmp_path, csv_file, capsys, no_fitting):
    spec = write_spec(tmp_path, EM_ONLY)
    out = tmp_path / "results.txt"
    out.write_text("not a folder")
    assert main(["compare", str(csv_file), str(spec), "--no-nuts", "--out", str(out)]) == 2
    assert "is a file; compare writes its results into a folder" in one_line_error(
        capsys, "compare"
    )


def test_spec_path_that_is_a_folder(tmp_path, csv_file, capsys, no_fitting):
    assert main(["compare", str(csv_file), str(tmp_path), "--no-nuts"]) == 2
    assert "is a folder, not a specification file" in one_line_error(capsys, "compare")


@pytest.mark.parametrize("seed", ["18446744073709551616", "-1"])
def test_seed_out_of_range(csv_file, capsys, no_fitting, seed):
    assert main(["em", str(csv_file), "-k", "1", "--seed", seed]) == 2
    assert "--seed must be an integer from 0 to" in one_line_error(capsys, "em")


# Runs the command line in a fresh interpreter where importing ``sys.argv[1]`` fails.
WITHOUT_PACKAGE = """
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == sys.argv[1]:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Missing())
from bayesgmm.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    ("missing", "command", "extra"),
    [
        ("numpyro", "mcmc", ["-k", "1"]),
        ("arviz", "mcmc", ["-k", "1", "--out", "post.nc"]),
        ("numpyro", "compare", ["s.toml", "--out", "res"]),
        ("arviz", "demo", []),
    ],
)
def test_missing_numpyro_or_arviz_is_a_one_line_error_before_any_work(
    tmp_path, csv_file, missing, command, extra
):
    """Issue 14: a broken environment gets exit code 2 and how to install, no traceback,
    and nothing is fitted or written first."""
    import subprocess
    import sys

    write_spec(tmp_path, EM_ONLY)
    argv = [command] if command == "demo" else [command, str(csv_file), *extra]
    here = str(Path(bg.__file__).parents[1])  # the bayesgmm under test, not another install
    pythonpath = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_PACKAGE, missing, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": pythonpath},
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"bayesgmm {command}: error: "), run.stderr
    assert f"{missing} cannot be imported" in lines[0]
    assert "pip install numpyro arviz" in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["data.csv", "s.toml"]  # no --out written


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
