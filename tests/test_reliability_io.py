"""Reliability of saving and loading (issue #19, items 2 and 13): no writes through
symbolic links, no partial files, and every field of a loaded file checked, with the
file name and the field in each message."""

import json
import os

import jax
import numpy as np
import pytest

import bayesgmm as bg
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.selection._serialization import load, save, write_file

X = bg.datasets.make_four_gaussians_2d(80, seed=3)


@pytest.fixture(scope="module")
def em():
    return bg.fit_em(X, 2, n_init=1, seed=0)


@pytest.fixture(scope="module")
def map_em():
    return bg.fit_em(X, 2, prior=bg.Prior.default(X, 2), n_init=1, seed=0)


@pytest.fixture(scope="module")
def post():
    truth = bg.datasets.true_params_four_gaussians_2d()
    rng = np.random.default_rng(0)
    draws = jax.tree.map(lambda a: np.broadcast_to(a, (2, 5, *a.shape)).copy(), truth)
    # swap the labels of a few draws so that relabelling records non-trivial permutations
    order = np.array([1, 0, 2, 3])
    for c, s in zip(rng.integers(0, 2, 3), rng.integers(0, 5, 3), strict=True):
        draws = jax.tree.map(lambda a, c=c, s=s: _permute(a, c, s, order), draws)
    p = Posterior(
        params=draws,
        X=X,
        sample_weight=np.ones(len(X)),
        prior=bg.Prior.default(X, 4),
        covariance_type="full",
        reference=truth,
        reference_kind="EM",
    )
    return p.relabel()


def _permute(a, c, s, order):
    a = np.array(a)
    a[c, s] = a[c, s][order]
    return a


# --- item 2: symbolic links, partial files ---------------------------------------------


def test_save_refuses_a_dangling_symlink(tmp_path, em):
    target = tmp_path / "elsewhere" / "planted.json"
    target.parent.mkdir()
    link = tmp_path / "fit.json"
    link.symlink_to(target)
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"fit\.json is a symbolic link"):
            save(em, link, overwrite=overwrite)
    assert not target.exists() and link.is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "fit.json"]  # no temporary left


def test_save_with_overwrite_does_not_write_through_a_link(tmp_path, post):
    victim = tmp_path / "victim.nc"
    victim.write_text("keep me")
    link = tmp_path / "post.nc"
    link.symlink_to(victim)
    with pytest.raises(ValueError, match="symbolic link"):
        save(post, link, overwrite=True)
    assert victim.read_text() == "keep me"


def test_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def breaks_halfway(tmp):
        tmp.write_text("half a fi")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_file(target, breaks_halfway, overwrite=True)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]
    with pytest.raises(RuntimeError, match="disk full"):
        write_file(tmp_path / "new.json", breaks_halfway, overwrite=False)
    assert os.listdir(tmp_path) == ["out.json"]


def test_save_into_a_missing_folder_says_so(tmp_path, em):
    with pytest.raises(FileNotFoundError, match=r"the folder .*nowhere does not exist"):
        save(em, tmp_path / "nowhere" / "fit.json")


def test_save_refuses_existing_file_without_mentioning_the_cli(tmp_path, em):
    path = save(em, tmp_path / "fit.json")
    with pytest.raises(FileExistsError) as info:
        save(em, path)
    assert "overwrite=True" in str(info.value) and "--force" not in str(info.value)


def test_round_trips_are_bitwise(tmp_path, em, map_em, post):
    for name, result in (("em", em), ("map", map_em)):
        first = save(result, tmp_path / f"{name}.json")
        again = save(load(first), tmp_path / f"{name}2.json")
        assert first.read_bytes() == again.read_bytes()
    back = load(save(post, tmp_path / "p.nc"))
    for key, value in post.params.to_numpy().items():
        np.testing.assert_array_equal(back.params.to_numpy()[key], value)
    np.testing.assert_array_equal(back.permutations, post.permutations)
    np.testing.assert_array_equal(back.X, post.X)


# --- item 13: load checks every field ---------------------------------------------------


def _drop_last_component(d):
    p = d["params"]
    w = np.asarray(p["weights"][:-1])
    p["weights"] = (w / w.sum()).tolist()
    p["means"], p["covariances"] = p["means"][:-1], p["covariances"][:-1]


def _other_k_prior(d):
    d["prior"]["weight_concentration"] = [1.0, 1.0, 1.0]


EDITS = {
    "missing_params": (lambda d: d.pop("params"), "params: missing field"),
    "log_likelihood_text": (
        lambda d: d.update(log_likelihood="abc"),
        "log_likelihood: must be a finite number; got 'abc'",
    ),
    "n_samples_zero": (lambda d: d.update(n_samples=0), "n_samples: must be a number > 0"),
    "converged_text": (lambda d: d.update(converged="yes"), "converged: must be true or false"),
    "format_version_99": (
        lambda d: d.update(format_version=99),
        "format_version: this bayesgmm reads format 1; got 99",
    ),
    "unknown_covariance_type": (
        lambda d: d.update(covariance_type="banana"),
        "covariance_type: must be one of",
    ),
    "k_edited": (_drop_last_component, "prior.weight_concentration: a prior for K=2 .* K=1"),
    "prior_for_another_k": (
        _other_k_prior,
        "prior.weight_concentration: a prior for K=3 components, but params have K=2",
    ),
    "history_length": (lambda d: d["history"].pop(), "history: must have"),
    "best_restart_out_of_range": (lambda d: d.update(best_restart=7), "best_restart"),
    "unknown_field": (lambda d: d.update(colour="red"), "colour: unknown field"),
    "ragged_means": (lambda d: d["params"]["means"][0].pop(), "params.means: must be a rect"),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_load_rejects_edited_em_files_naming_file_and_field(tmp_path, map_em, name):
    path = save(map_em, tmp_path / "fit.json")
    data = json.loads(path.read_text())
    edit, message = EDITS[name]
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"fit.json: {message}"):
        load(path)


def test_load_rejects_an_em_fit_whose_k_was_edited(tmp_path, em):
    """Without a prior to compare with, the stored BIC gives the edit away."""
    path = save(em, tmp_path / "fit.json")
    data = json.loads(path.read_text())
    _drop_last_component(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"fit.json: bic: stored .* \(K=1, D=2, 'full'\)"):
        load(path)


def test_load_rejects_deeply_nested_json(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ValueError, match=r"deep\.json: not a bayesgmm JSON file .*nested"):
        load(path)


def test_load_spec_json_checks_format_version(tmp_path):
    spec = bg.ModelSpec.from_dict({"name": "s", "covariance_type": "full", "n_components": 2})
    path = save(spec, tmp_path / "spec.json")
    data = json.loads(path.read_text())
    data["format_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"spec\.json: format_version"):
        load(path)


def test_load_of_a_truncated_netcdf_names_the_file(tmp_path, post):
    path = save(post, tmp_path / "post.nc")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"post\.nc: not a readable netCDF file"):
        load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("permutation", "sample_stats.relabel_permutation: every entry must be a permutation"),
        ("covariance_type", "posterior.attrs.covariance_type: must be one of"),
    ],
)
def test_load_rejects_edited_netcdf(tmp_path, post, change, message):
    idata = post.to_arviz()
    if change == "permutation":
        perm = idata.sample_stats["relabel_permutation"].values.copy()
        perm[0, 0, 0] = 9
        idata.sample_stats["relabel_permutation"].values = perm
    else:
        idata.posterior.attrs["covariance_type"] = "banana"
    path = tmp_path / "edited.nc"
    idata.to_netcdf(str(path))
    with pytest.raises(ValueError, match=f"edited.nc: {message}"):
        load(path)
