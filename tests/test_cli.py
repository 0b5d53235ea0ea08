import argparse
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayesgmm as bg
from bayesgmm.cli import build_parser, main
from bayesgmm.selection import load


@pytest.fixture
def faithful_csv(tmp_path):
    X, names = bg.datasets.load_faithful(return_names=True)
    path = tmp_path / "faithful.csv"
    pd.DataFrame(X, columns=names).to_csv(path, index=False)
    return path


def test_help_lists_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "bayesgmm.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    for cmd in ("demo", "em", "mcmc", "compare", "clusters"):
        assert cmd in out.stdout


def _option_entries(help_text: str) -> dict[str, str]:
    """The "options:" section of an argparse help text: first option string -> its help."""
    section = help_text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, list[str]] = {}
    for line in section.splitlines():
        entry = re.match(r"  (-\S.*?)(?: {2,}(.*))?$", line)
        if entry:  # an option's line: its invocation, then maybe the first line of help
            current = entries.setdefault(entry.group(1).split()[0].rstrip(","), [])
            current.append(entry.group(2) or "")
        else:  # a continuation of the help, indented further
            assert line.startswith("   "), line
            current.append(line)
    return {name: " ".join(" ".join(parts).split()) for name, parts in entries.items()}


@pytest.mark.parametrize("command", ["demo", "em", "mcmc", "compare", "clusters"])
def test_help_of_every_option_says_what_it_does_and_its_default(command, capsys, monkeypatch):
    """Issue 14: each option of each subcommand has help text, and one with a default
    (a number, a choice) shows it."""
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    entries = _option_entries(capsys.readouterr().out)
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = [a for a in sub.choices[command]._actions if a.option_strings]
    assert sorted(entries) == sorted(a.option_strings[0] for a in options)
    for action in options:
        text = entries[action.option_strings[0]]
        assert text, f"{command} {action.option_strings[0]} has no help"
        if action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in text, (action.option_strings, text)
    numeric = {a.option_strings[-1] for a in options if a.type in (int, float)}
    expected = {
        "demo": {"--max-components", "--seed", "--chains", "--warmup", "--samples"},
        "em": {"--n-components", "--seed", "--n-init", "--max-iter", "--tol", "--chunk-rows"},
        "mcmc": {"--n-components", "--seed", "--n-init", "--chains", "--warmup", "--samples"},
        "compare": {"--seed"},
        "clusters": {"--seed", "--k-max", "--e0", "--chains", "--warmup", "--samples"},
    }[command]
    assert numeric == expected  # the options the issue names: none lost from the check


def test_version_prints_name_and_version_and_exits_0():
    from importlib.metadata import version

    out = subprocess.run(
        [sys.executable, "-m", "bayesgmm.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"bayesgmm {version('bayesgmm')}"


def test_version_falls_back_to_the_package_attribute(monkeypatch):
    from importlib import metadata

    from bayesgmm.cli import _version

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert _version() == bg.__version__


def test_em_subcommand_saves_json(tmp_path, faithful_csv, capsys):
    out = tmp_path / "fit.json"
    code = main(
        ["em", str(faithful_csv), "-k", "2", "--columns", "waiting,eruptions", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "BIC" in printed and "features: waiting, eruptions" in printed
    em = load(out)
    assert em.params.means.shape == (2, 2)
    assert em.feature_names == ("waiting", "eruptions")  # the header's names, in file order
    assert main(["em", str(faithful_csv), "-k", "2", "--out", str(out)]) == 2  # no --force
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("a,b\n1,2\n3,\n5,6\n", [], "missing value at data row 2, column 'b'"),
        ("a,b\n1,x\n3,4\n", [], "not numeric"),
        ("a,b\n1,2\n3,4\n", ["-k", "5"], "larger than the number of samples"),
        ("a,b\n1,2\n3,4\n", ["--columns", "c"], "no column"),
    ],
)
def test_bad_csv_gives_message_and_exit_2(tmp_path, capsys, content, args, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    argv = ["em", str(path), *(args if "-k" in args else ["-k", "1", *args])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_npy_input(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, bg.datasets.load_faithful())
    assert main(["em", str(path), "-k", "1"]) == 0


def test_compare_em_only_writes_results(tmp_path, faithful_csv, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "full"\ncovariance_type = "full"\nn_components = [1, 2]\n')
    out = tmp_path / "res"
    code = main(
        ["compare", str(faithful_csv), str(spec), "--no-nuts", "--quiet", "--out", str(out)]
    )
    assert code == 0
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["model"]) == ["full-K2", "full-K1"]
    assert (out / "comparison.md").read_text().startswith("| rank |")
    assert (out / "comparison.png").stat().st_size > 1000
    assert load(out / "em_full-K2.json").bic == pytest.approx(table.loc[0, "bic"])
    assert load(out / "em_full-K2.json").feature_names == ("eruptions", "waiting")
    assert json.loads((out / "spec_full.json").read_text())["kind"] == "ModelSpec"
    assert main(["compare", str(faithful_csv), str(spec), "--no-nuts", "--out", str(out)]) == 2


def test_compare_bad_spec_names_key(tmp_path, faithful_csv, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "x"\ncovariance_type = "full"\nn_components = 2\ncolour = 1\n')
    assert main(["compare", str(faithful_csv), str(spec), "--no-nuts"]) == 2
    err = capsys.readouterr().err
    assert "s.toml: colour: unknown key" in err


@pytest.mark.slow
def test_compare_galaxies_with_nuts_round_trips(tmp_path, capsys):
    """The issue's check: `bayesgmm compare` on the galaxy data over K = 1..4 with small
    NUTS settings; the table's shape and content, and saved files load back equal. (Each K
    compiles a sampler of its own: four, not the issue's six, keep the suite short; the
    galaxy data need three or more components, so the best model is still inside.)"""
    import warnings

    csv = tmp_path / "galaxies.csv"
    pd.DataFrame({"velocity": bg.datasets.load_galaxies() / 1000}).to_csv(csv, index=False)
    spec = tmp_path / "galaxies.toml"
    spec.write_text(
        'name = "gal"\ncovariance_type = "full"\nn_components = {start = 1, stop = 4}\n'
        "[em]\nn_init = 5\n[nuts]\nnum_chains = 1\nnum_warmup = 150\nnum_samples = 150\n"
    )
    out = tmp_path / "res"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k and few-draws warnings are expected here
        code = main(["compare", str(csv), str(spec), "--quiet", "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "comparison.csv")
    assert len(table) == 4 and sorted(table["n_components"]) == [1, 2, 3, 4]
    for column in (
        "bic",
        "aic",
        "icl",
        "elpd_loo",
        "se_loo",
        "elpd_waic",
        "loo_weight",
        "rhat_max",
    ):
        assert table[column].notna().all(), column
    assert table["bic"].is_monotonic_increasing and list(table["rank"]) == [1, 2, 3, 4]
    assert table.loc[0, "n_components"] >= 3  # one or two components cannot fit these data
    assert table["loo_weight"].sum() == pytest.approx(1.0, abs=1e-6)
    k1 = table.set_index("n_components").loc[1]
    assert k1["elpd_loo"] < table["elpd_loo"].max()
    # saved files load back equal
    for _, row in table.iterrows():
        em = load(out / f"em_{row['model']}.json")
        assert em.bic == pytest.approx(row["bic"], rel=1e-12)
        post = load(out / f"posterior_{row['model']}.nc")
        assert post.params.batch_shape == (1, 150)
        assert post.covariance_type == "full" and post.reference is not None
    # the saved posterior carries its MAP-EM start: refit it here, bit for bit
    from bayesgmm.selection import load_spec

    X = pd.read_csv(csv).to_numpy()
    prior = load_spec(spec).build_prior(X, 3)
    em3 = bg.fit_em(X, 3, prior=prior, n_init=5, seed=0)
    saved = load(out / "posterior_gal-K3.nc")
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            np.asarray(getattr(saved.reference, name)),
            np.asarray(getattr(em3.params, name)),
            rtol=1e-12,
        )
    np.testing.assert_array_equal(saved.X, X)
    assert (out / "comparison.png").stat().st_size > 1000


@pytest.mark.slow
def test_demo_runs_em_map_em_and_nuts(capsys):
    """`make demo` end to end, small: BIC table, MAP-EM, NUTS and the report."""
    args = "demo --max-components 2 --chains 2 --warmup 100 --samples 100 --quiet"
    code = main(args.split())
    out = capsys.readouterr().out
    assert code == 0
    assert "Lowest BIC: K=2" in out
    assert "MAP-EM under" in out
    assert "NUTS under the same prior: 2 chains" in out
    assert "Posterior(" in out and "Sampler" in out
    assert "nan" not in out.lower()


@pytest.mark.slow
def test_mcmc_prints_the_arviz_summary_then_the_em_vs_posterior_report(
    tmp_path, faithful_csv, capsys
):
    """Issue 14: after ArviZ's table, `mcmc` reports EM against the posterior."""
    import warnings

    out = tmp_path / "post.nc"
    argv = ["mcmc", str(faithful_csv), "-k", "2", "--chains", "2", "--warmup", "100"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: the sampler's warnings are expected here
        code = main([*argv, "--samples", "100", "--quiet", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    table = text.index("ess_bulk")  # ArviZ's summary
    heading = text.index("EM against the posterior: K=2, D=2, N=272, 2 chain(s) x 100 draws")
    verdict = re.search(r"^Verdict: (OK|WARNING): ", text, flags=re.MULTILINE)
    assert table < heading < verdict.start() < text.index(f"saved {out}")
    for block in ("\nSampler\n", "\nEM against the posterior (94% HDI)\n", "\nMembership\n"):
        assert block in text
    post = load(out)
    assert post.params.batch_shape == (2, 100) and post.reference is not None


@pytest.fixture
def four_csv(tmp_path):
    X = bg.datasets.make_four_gaussians_2d(200, seed=1)
    path = tmp_path / "four.csv"
    pd.DataFrame(X, columns=["x1", "x2"]).to_csv(path, index=False)
    return path


def _k_table(out: str) -> pd.DataFrame:
    """The p(K+) table ``clusters`` prints: header line, then one row per k."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["p(K+|data)"])
    header = re.split(r"\s{2,}", lines[start].strip())
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        k, *values = line.split()
        rows.append([int(k), *map(float, values)])
    return pd.DataFrame(rows, columns=["k", *header]).set_index("k")


def test_clusters_prints_the_posterior_of_k_plus_and_its_mode(four_csv, capsys):
    sizes = ["--chains", "2", "--warmup", "150", "--samples", "100", "--seed", "0"]
    code = main(["clusters", str(four_csv), "--k-max", "6", *sizes])
    out = capsys.readouterr().out
    assert code == 0, out
    table = _k_table(out)
    assert list(table.index) == [1, 2, 3, 4, 5, 6]
    assert list(table.columns) == ["p(K+|data)", "prior p(K+)"]  # no prior on K: no p(K)
    assert table["p(K+|data)"].sum() == pytest.approx(1.0, abs=2e-3)
    assert table["prior p(K+)"].sum() == pytest.approx(1.0, abs=2e-3)
    assert table["p(K+|data)"].idxmax() == 4  # four well separated groups
    assert "Posterior mode of K+ (non-empty components): 4" in out
    assert "Posterior mode of K " not in out
    assert "split_merge" not in out  # the moves are on by default


def test_clusters_with_a_prior_on_k_prints_p_of_k(four_csv, capsys):
    sizes = ["--chains", "2", "--warmup", "150", "--samples", "100"]
    prior = ["--k-prior", "bnb(1,4,3)", "--e0-prior", "1,20", "--no-split-merge"]
    code = main(["clusters", str(four_csv), "--k-max", "6", *prior, *sizes])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "e0~Gamma(1.0, 20.0)" in out and "bnb(1,4,3)" in out
    assert "split_merge=False" in out
    table = _k_table(out)
    assert list(table.columns) == ["p(K+|data)", "prior p(K+)", "p(K|data)", "prior p(K)"]
    assert table["p(K|data)"].sum() == pytest.approx(1.0, abs=2e-3)
    # K counts components, empty ones included: never fewer than K+ in a draw
    assert (table["p(K|data)"].cumsum() <= table["p(K+|data)"].cumsum() + 2e-3).all()
    assert re.search(r"Posterior mode of K \(components\): [4-6] ", out)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--k-prior", "zipf(2)"], "k_prior must be None"),
        (["--e0", "0"], "--e0 must be a positive number"),
        (["--e0", "nan"], "--e0 must be a positive number"),
        (["--e0-prior", "1"], "--e0-prior is SHAPE,RATE"),
        (["--e0-prior", "1,-2"], "--e0-prior SHAPE,RATE must both be positive"),
        (["--k-max", "0"], "--k-max must be a positive integer"),
        (["--chains", "0"], "--chains must be at least 1"),
        (["--samples", "0"], "--samples must be at least 1"),
        (["--warmup", "-1"], "--warmup must be 0 or more"),
        (["--seed", "-1"], "--seed must be an integer"),
    ],
)
def test_clusters_bad_arguments_exit_2_before_the_data_is_read(tmp_path, capsys, args, message):
    missing = tmp_path / "no_such_file.csv"  # checked after the arguments: never reached
    assert main(["clusters", str(missing), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayesgmm clusters: error: ") and err.count("\n") == 1, err
    assert message in err


def test_clusters_bad_data_file_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,oops\n")
    assert main(["clusters", str(path), "--chains", "1"]) == 2
    err = capsys.readouterr().err
    assert "bayesgmm clusters: error:" in err
    assert main(["clusters", str(tmp_path / "missing.csv")]) == 2
    assert "bayesgmm clusters: error:" in capsys.readouterr().err
