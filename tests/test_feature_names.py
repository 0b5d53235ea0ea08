"""Column names travel with the fit: EMResult, Posterior, ArviZ, files and plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import bayesgmm as bg

NAMES = ("eruptions", "waiting")


@pytest.fixture(scope="module")
def frame():
    X = bg.datasets.load_faithful()
    return pd.DataFrame(X, columns=list(NAMES))


@pytest.fixture(scope="module")
def post(frame):
    em = bg.fit_em(frame, 2, prior=bg.Prior.default(frame.to_numpy(), 2))
    return bg.sample_posterior(
        frame.to_numpy(), 2, init=em, num_chains=1, num_warmup=60, num_samples=100,
        progress_bar=False,
    )  # fmt: skip


def test_a_dataframe_names_the_em_fit(frame):
    em = bg.fit_em(frame, 2)
    assert em.feature_names == NAMES
    assert "features: eruptions, waiting" in em.summary()
    plain = bg.fit_em(frame.to_numpy(), 2)
    assert plain.feature_names is None
    np.testing.assert_allclose(plain.log_likelihood, em.log_likelihood, rtol=1e-12)
    given = bg.fit_em(frame.to_numpy(), 2, feature_names=["a", "b"])
    assert given.feature_names == ("a", "b")


def test_integer_column_labels_are_positions_not_names(frame):
    assert bg.fit_em(pd.DataFrame(frame.to_numpy()), 2).feature_names is None


def test_bad_feature_names_fail_before_fitting(frame):
    with pytest.raises(ValueError, match="2 distinct names"):
        bg.fit_em(frame.to_numpy(), 2, feature_names=["only one"])
    with pytest.raises(ValueError, match="2 distinct names"):
        bg.fit_em(frame.to_numpy(), 2, feature_names=["same", "same"])
    with pytest.raises(TypeError, match="non-empty strings"):
        bg.fit_em(frame.to_numpy(), 2, feature_names=[1, 2])


def test_em_names_round_trip_through_json(frame, tmp_path):
    em = bg.fit_em(frame, 2)
    path = bg.save(em, tmp_path / "em.json")
    assert bg.load(path).feature_names == NAMES
    unnamed = bg.save(bg.fit_em(frame.to_numpy(), 2), tmp_path / "plain.json")
    assert bg.load(unnamed).feature_names is None


def test_posterior_takes_the_names_of_its_em_start(post):
    assert post.feature_names == NAMES
    assert post.relabel().feature_names == NAMES


def test_names_are_arviz_coordinates_and_survive_netcdf(post, tmp_path):
    idata = post.to_arviz()
    assert list(idata.posterior["means"].coords["feature"].values) == list(NAMES)
    assert list(idata.observed_data["obs"].coords["feature"].values) == list(NAMES)
    path = bg.save(post, tmp_path / "post.nc")
    back = bg.load(path)
    assert back.feature_names == NAMES
    assert list(az.from_netcdf(path).posterior.coords["feature"].values) == list(NAMES)


def test_plots_label_axes_with_the_names(frame, post):
    em = bg.fit_em(frame, 2)
    X = frame.to_numpy()  # no columns here: the names come from the fit
    ax = bg.plots.plot_ellipses(X, em)
    assert (ax.get_xlabel(), ax.get_ylabel()) == NAMES
    plt.close("all")
    ax = bg.plots.plot_density_2d(X, None, post)
    assert (ax.get_xlabel(), ax.get_ylabel()) == NAMES
    plt.close("all")


def test_em_vs_posterior_names_the_features(frame, post):
    em = bg.fit_em(frame, 2, prior=bg.Prior.default(frame.to_numpy(), 2))
    table = bg.em_vs_posterior(em, post).set_index("name")
    assert table.loc["means[1,1]", "feature"] == "waiting"
    assert table.loc["covariances[0,0,1]", "feature"] == "eruptions,waiting"
    assert table.loc["weights[0]", "feature"] == ""
