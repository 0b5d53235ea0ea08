"""Specifications that could run code or fail late (issue #19, items 1 and 8): a
custom model runs only with allow_code=True, its file stays in the specification's
folder and relative, and every value is checked before the first fit."""

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import bayesgmm as bg
import bayesgmm.plots
import bayesgmm.selection._compare_models
from bayesgmm.selection._serialization import load, save
from bayesgmm.selection._specs import SpecError, load_spec

ROOT = Path(__file__).resolve().parents[1]
X = bg.datasets.make_four_gaussians_2d(40, seed=2)


@pytest.fixture
def no_fitting(monkeypatch):
    """Any fit fails the test: the checks under test must come first."""

    def fit(*args, **kwargs):
        raise AssertionError("a model was fitted before the check")

    monkeypatch.setattr(bayesgmm.selection._compare_models, "fit_validated", fit)


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


# --- item 1: custom models -------------------------------------------------------------


def test_compare_models_refuses_a_model_file_before_any_fit(tmp_path, no_fitting):
    spec = write_spec(tmp_path, WITH_MODEL)
    (tmp_path / "evil.py").write_text(EVIL)
    with pytest.raises(SpecError, match=r"s\.toml: model: this specification runs .*allow_code"):
        bg.compare_models(X, load_spec(spec))
    assert not (tmp_path / "ran.txt").exists()
    # with NUTS off the model never runs, so nothing is refused
    with pytest.raises(AssertionError, match="fitted"):
        bg.compare_models(X, load_spec(spec), nuts=False)


def test_a_raising_custom_model_is_a_spec_error_naming_it(tmp_path):
    spec = write_spec(tmp_path, WITH_MODEL)
    (tmp_path / "evil.py").write_text(EVIL)
    with pytest.raises(SpecError, match=r"evil\.py: model\(\) raised RuntimeError: boom"):
        bg.compare_models(X, load_spec(spec), allow_code=True)
    assert (tmp_path / "ran.txt").exists()


def test_spec_path_that_is_a_folder(tmp_path):
    with pytest.raises(SpecError, match="is a folder, not a specification file"):
        load_spec(tmp_path)


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("../elsewhere/evil.py", "model.file: must be a relative path"),
        ("/tmp/evil.py", "model.file: must be a relative path"),
        ("link/evil.py", "leads outside the specification's folder"),
    ],
)
def test_model_file_is_confined_to_the_spec_folder(tmp_path, file, message):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "evil.py").write_text(EVIL)
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "link").symlink_to(elsewhere)
    spec = write_spec(folder, WITH_MODEL.replace('"evil.py"', json.dumps(file)))
    with pytest.raises(SpecError, match=message):
        load_spec(spec)


def test_saved_spec_keeps_the_model_file_relative(tmp_path):
    spec = load_spec(ROOT / "models" / "custom" / "tempered.toml")
    assert spec.model["file"] == "tempered_model.py"
    saved = json.loads(save(spec, tmp_path / "spec.json").read_text())
    assert saved["model"]["file"] == "tempered_model.py"
    assert str(ROOT) not in json.dumps(saved)


def test_json_spec_looks_for_its_model_in_its_own_folder_only(tmp_path, monkeypatch, no_fitting):
    """A spec read by bg.load resolves model.file against the JSON's folder, never the
    current folder, and compare_models refuses to run it unless allow_code=True."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "evil.py").write_text(EVIL)
    monkeypatch.chdir(cwd)
    spec = bg.ModelSpec.from_dict(
        {
            "name": "c",
            "covariance_type": "full",
            "n_components": 1,
            "model": {"file": "evil.py", "function": "model"},
        }
    )
    (tmp_path / "results").mkdir()
    loaded = load(save(spec, tmp_path / "results" / "spec_c.json"))
    with pytest.raises(SpecError, match="allow_code=True"):
        bg.compare_models(X, loaded)
    with pytest.raises(SpecError, match=r"results/evil\.py does not exist"):
        bg.compare_models(X, loaded, allow_code=True)
    assert not (cwd / "ran.txt").exists()


@pytest.mark.slow
def test_shipped_custom_model_runs_with_allow_code():
    """models/custom/tempered.toml through compare_models (tiny NUTS settings)."""
    spec = load_spec(ROOT / "models" / "custom" / "tempered.toml")
    spec = replace(
        spec, n_components=(1,), nuts={"num_chains": 1, "num_warmup": 30, "num_samples": 30}
    )
    res = bg.compare_models(X, spec, nuts=True, allow_code=True)
    assert list(res.posteriors) == ["full-tempered-K1"]
    assert np.isfinite(res.table["elpd_waic"]).all()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ("[em]\nreg_covar = inf\n", "em.reg_covar: must be a finite number >= 0"),
        ("[prior]\nscale_factor = inf\n", "prior.scale_factor: must be a finite number > 0"),
    ],
)
def test_infinite_spec_values_are_refused_on_reading(tmp_path, change, key):
    with pytest.raises(SpecError, match=key):
        load_spec(write_spec(tmp_path, EM_ONLY + change))


def test_a_huge_range_of_components_is_refused_at_once(tmp_path):
    text = EM_ONLY.replace("[1, 2]", "{start = 1, stop = 30000000}")
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"n_components: the range 1\.\.30000000 has 30000000"):
        load_spec(write_spec(tmp_path, text))
    assert time.perf_counter() - t0 < 1.0


def test_compare_models_checks_every_prior_before_the_first_fit(no_fitting):
    good = bg.ModelSpec.from_dict({"name": "a", "covariance_type": "full", "n_components": 1})
    bad = bg.ModelSpec.from_dict(
        {
            "name": "b",
            "covariance_type": "full",
            "n_components": 2,
            "prior": {"scale_factor": 1e308},
            "em": {"map": True},
        }
    )
    with pytest.raises(
        ValueError, match=r"prior\.scale_factor: 1e\+308 times the default scale overflows .* K=2"
    ):
        bg.compare_models(X, [good, bad], nuts=False)
