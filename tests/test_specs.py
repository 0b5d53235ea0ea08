import json

import numpy as np
import pytest

import bayesgmm as bg
from bayesgmm.selection import ModelSpec, SpecError, load, load_spec, load_specs, save


def write(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """
name = "m"
covariance_type = "diag"
n_components = {start = 2, stop = 4}
[prior]
mean_precision = 0.5
[em]
n_init = 2
map = true
[nuts]
num_chains = 1
"""


def test_good_spec_expands_into_variants(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert [v.name for v in spec.variants()] == ["m-K2", "m-K3", "m-K4"]
    assert spec.prior == {"mean_precision": 0.5} and spec.em["map"] is True


def test_shipped_specifications_are_valid():
    from pathlib import Path

    files = sorted(Path(__file__).parents[1].joinpath("models").glob("*.toml"))
    specs = load_specs(files)
    assert {s.covariance_type for s in specs} == set(bg.COVARIANCE_TYPES)
    assert all(s.n_components == (1, 2, 3, 4, 5, 6) for s in specs)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("colour = 'red'\n" + GOOD, "spec.toml: colour: unknown key; allowed keys are"),
        (GOOD.replace('"diag"', '"banana"'), r"covariance_type: must be one of \['full'"),
        (GOOD.replace("n_init = 2", "n_init = 'two'"), "em.n_init: must be an integer >= 1"),
        (GOOD.replace("num_chains = 1", "num_chain = 1"), "nuts.num_chain: unknown key"),
        (GOOD.replace("mean_precision = 0.5", "mean_precision = -1"), "prior.mean_precision"),
        (GOOD.replace("{start = 2, stop = 4}", "[2, 2]"), "duplicates"),
        (GOOD.replace("{start = 2, stop = 4}", "0"), "integer >= 1"),
        (GOOD.replace('name = "m"', ""), "name: missing required key"),
        ("name = [", "not valid TOML"),
    ],
)
def test_bad_specs_name_file_key_and_allowed(tmp_path, text, match):
    with pytest.raises(SpecError, match=match):
        load_spec(write(tmp_path, text))


def test_duplicate_names_rejected(tmp_path):
    a = write(tmp_path, GOOD, "a.toml")
    b = write(tmp_path, GOOD, "b.toml")
    with pytest.raises(SpecError, match="also used by"):
        load_specs([a, b])


def test_spec_prior_overrides(faithful):
    spec = ModelSpec.from_dict(
        {
            "name": "t",
            "covariance_type": "full",
            "n_components": 2,
            "prior": {"dof_extra": 10.0, "scale_factor": 2.0, "mean_precision": 3.0},
        }
    )
    prior = spec.build_prior(faithful, 2)
    default = bg.Prior.default(faithful, 2)
    assert float(prior.dof) == 12.0 and float(prior.mean_precision) == 3.0
    np.testing.assert_allclose(np.asarray(prior.scale), 2 * np.asarray(default.scale))


def test_em_result_and_spec_round_trip_json(tmp_path, faithful):
    prior = bg.Prior.default(faithful, 2)
    em = bg.fit_em(faithful, 2, prior=prior, covariance_type="tied")
    path = save(em, tmp_path / "em.json")
    back = load(path)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(
            np.asarray(getattr(back.params, name)), np.asarray(getattr(em.params, name))
        )
    assert back.params.dtype == np.float64
    np.testing.assert_array_equal(back.history, em.history)
    assert (back.bic, back.icl, back.log_posterior) == (em.bic, em.icl, em.log_posterior)
    np.testing.assert_array_equal(np.asarray(back.prior.scale), np.asarray(prior.scale))
    assert json.loads(path.read_text())["kind"] == "EMResult"

    spec = load_spec(write(tmp_path, GOOD))
    assert load(save(spec, tmp_path / "spec.json")) == ModelSpec.from_dict(
        spec.to_dict(), source=str(tmp_path / "spec.json")
    )


def test_save_refuses_to_overwrite(tmp_path, faithful):
    em = bg.fit_em(faithful, 1)
    save(em, tmp_path / "em.json")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save(em, tmp_path / "em.json")
    save(em, tmp_path / "em.json", overwrite=True)


def test_compare_models_em_side_ranks_by_bic(faithful):
    from bayesgmm.selection import compare_models

    specs = [
        ModelSpec.from_dict(
            {"name": ct, "covariance_type": ct, "n_components": [1, 2, 3], "em": {"n_init": 5}}
        )
        for ct in ("full", "tied")
    ]
    res = compare_models(faithful, specs, nuts=False)
    t = res.table
    assert len(t) == 6 and list(t["rank"]) == [1, 2, 3, 4, 5, 6]
    assert t["bic"].is_monotonic_increasing
    assert t.iloc[0]["model"] == "tied-K3"  # mclust's choice (EEE, 3) on these data
    assert t.set_index("model").loc["full-K2", "bic"] == pytest.approx(2322.19, abs=0.01)
    with pytest.raises(ValueError, match="needs the NUTS runs"):
        compare_models(faithful, specs, nuts=False, criterion="loo")

    # The display: deciding columns first, rounded, every row, nothing hidden.
    short = res.summary()
    assert list(short.columns[:4]) == ["rank", "model", "bic", "delta"]
    assert short["delta"].iloc[0] == 0 and (short["delta"] >= 0).all()
    assert (short["bic"] == t["bic"].round(1)).all()
    text = repr(res)
    assert text.splitlines()[0].startswith("Model comparison by bic")
    assert "..." not in text and all(name in text for name in t["model"])
    assert "<table" in res._repr_html_()


@pytest.mark.slow
def test_compare_models_reports_mixing_and_warns_when_chains_disagree(faithful):
    """Each NUTS row carries label-invariant R-hat / ESS; unmixed chains are named in a warning."""
    import dataclasses
    import warnings

    from bayesgmm.selection import ComparisonResult, compare_models
    from bayesgmm.selection._compare_models import _bayes_row

    spec = ModelSpec.from_dict(
        {
            "name": "f",
            "covariance_type": "full",
            "n_components": [2],
            "nuts": {"num_chains": 4, "num_warmup": 300, "num_samples": 300},
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a well-mixed run: no warning at all
        res = compare_models(faithful, [spec], criterion="loo")
    row = res.table.iloc[0]
    assert row["rhat_max"] < 1.01 and row["ess_bulk_min"] > 400
    assert row["n_pareto_k_bad"] == 0 and row["divergences"] == 0

    # the same draws with chain 1's means moved off: its log-likelihood differs from the rest
    post = res.posteriors["f-K2"]
    means = np.array(post.params.means)
    means[1] += 0.5 * np.asarray(faithful).std(axis=0)
    moved = bg.GMMParams(post.params.weights, means, post.params.covariances)
    stuck = dataclasses.replace(post, params=moved)
    with pytest.warns(UserWarning, match=r"stuck: the chains have not mixed \(label-invariant"):
        bad = _bayes_row("stuck", stuck, ComparisonResult(table=None, criterion="loo"))
    assert bad["rhat_max"] > 1.1 > row["rhat_max"]


def test_compare_models_reports_the_number_of_clusters(tmp_path):
    """A [clusters] table adds p(K+ = K | data), its mode and the mode's probability."""
    from bayesgmm.selection import compare_models

    X = bg.datasets.make_four_gaussians_2d(200, seed=0)
    clusters = {"k_max": 8, "e0": 0.01, "num_chains": 2, "num_warmup": 200, "num_samples": 200}
    with_k = ModelSpec.from_dict(
        {
            "name": "sparse",
            "covariance_type": "full",
            "n_components": [3, 4, 5],
            "nuts": {"enabled": False},
            "clusters": clusters,
        }
    )
    plain = ModelSpec.from_dict(
        {
            "name": "plain",
            "covariance_type": "full",
            "n_components": [4],
            "nuts": {"enabled": False},
        }
    )
    res = compare_models(X, [with_k, plain], criterion="kplus", progress=False)
    t = res.table.set_index("model")
    table = res.clusters["sparse"].k_posterior()["p(K+|data)"]
    assert t.loc["sparse-K4", "p_kplus"] > 0.8
    assert (t.loc[["sparse-K3", "sparse-K4", "sparse-K5"], "kplus_mode"] == 4).all()
    for k in (3, 4, 5):
        assert t.loc[f"sparse-K{k}", "p_kplus"] == table[k]
        assert t.loc[f"sparse-K{k}", "p_kplus_mode"] == table.max()
    assert np.isnan(t.loc["plain-K4", "p_kplus"])
    assert res.table["model"].iloc[0] == "sparse-K4"  # ranked by p(K+ = K | data)
    assert "p_kplus" in res.summary().columns
    assert ModelSpec.from_dict(with_k.to_dict()) == with_k
    with pytest.raises(ValueError, match=r"'kplus' needs the \[clusters\] Gibbs runs"):
        compare_models(X, [with_k], criterion="kplus", nuts=False)
    assert "p_kplus" not in compare_models(X, [with_k], nuts=False, progress=False).table


@pytest.mark.parametrize(
    "clusters,match",
    [
        ({"k_prior": "zipf(2)"}, "clusters.k_prior"),
        ({"e0": 0}, "clusters.e0"),
        ({"e0_prior": [1.0]}, "clusters.e0_prior"),
        ({"scale_prior": "wishart"}, "clusters.scale_prior"),
        ({"kmax": 5}, "clusters.kmax: unknown key"),
    ],
)
def test_bad_clusters_tables_are_refused(clusters, match):
    with pytest.raises(SpecError, match=match):
        ModelSpec.from_dict(
            {"name": "s", "covariance_type": "full", "n_components": 2, "clusters": clusters}
        )
    with pytest.raises(SpecError, match="needs covariance_type = 'full'"):
        ModelSpec.from_dict(
            {
                "name": "s",
                "covariance_type": "diag",
                "n_components": 2,
                "clusters": {"scale_prior": "mw2016"},
            }
        )
