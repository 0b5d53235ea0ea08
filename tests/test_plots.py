"""Plots: each is rendered to PNG and its content checked against independent references.

A copy of every figure goes to /tmp/bayesgmm_plots/<name>.png for a person to look at.
Posteriors are synthetic (conjugate-style scatter around the EM estimate), as in
tests/test_compare.py.
"""

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.stats as st
from matplotlib.collections import LineCollection
from matplotlib.patches import Ellipse
from support import approx_draws

import bayesgmm as bg
from bayesgmm import Posterior, plots
from bayesgmm.diagnostics import em_vs_posterior, posterior_membership, ppc_statistics

C, S = 2, 100
PLOT_DIR = "/tmp/bayesgmm_plots"


def fit(X, K, *, center=None, seed=0):
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    em = bg.fit_em(X, K, n_init=3, seed=0)
    draws = approx_draws(
        em.params if center is None else center(em.params), len(X), shape=(C, S), seed=seed
    )
    rng = np.random.default_rng(seed)
    post = Posterior(
        params=draws,
        X=X,
        sample_weight=np.ones(len(X)),
        prior=bg.Prior.default(X, K),
        covariance_type="full",
        sample_stats={"diverging": np.zeros((C, S), bool), "energy": rng.normal(0, 1, (C, S))},
    )
    return X, em, post


def save(obj, name, tmp_path):
    """Write the figure holding ``obj`` (Axes or array of Axes) to tmp_path and PLOT_DIR."""
    fig = np.ravel(obj)[0].figure
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=80)
    os.makedirs(PLOT_DIR, exist_ok=True)
    fig.savefig(os.path.join(PLOT_DIR, f"{name}.png"), dpi=80)
    plt.close(fig)
    assert path.stat().st_size > 10_000
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def mixture_pdf(x, weights, means, variances):
    return sum(
        w * st.norm.pdf(x, m, np.sqrt(v))
        for w, m, v in zip(weights, means, variances, strict=True)
    )


@pytest.fixture(scope="module")
def one_d():
    return fit(bg.datasets.make_two_gaussians_1d(300, seed=0), 2)


@pytest.fixture(scope="module")
def two_d():
    return fit(bg.datasets.make_four_gaussians_2d(300, seed=1), 4)


@pytest.fixture(scope="module")
def three_d():
    truth = bg.GMMParams(
        weights=[0.5, 0.5],
        means=[[0.0, 0.0, 0.0], [4.0, 1.0, -3.0]],
        covariances=[np.eye(3), [[1.0, 0.3, 0.4], [0.3, 1.0, 0.0], [0.4, 0.0, 2.0]]],
    )
    import jax

    X, _ = truth.sample(jax.random.key(2), 200)
    return fit(np.asarray(X), 2)


@pytest.fixture(scope="module")
def pulled_2d(two_d):
    """A posterior whose covariances sit at twice EM's, as a strong prior would pull them."""
    X = two_d[0]

    def center(p):
        return bg.GMMParams(
            weights=p.weights, means=p.means, covariances=2.0 * np.asarray(p.covariances)
        )

    return fit(X, 4, center=center, seed=3)


# ------------------------------------------------------------------ density ---
def test_density_1d(one_d, tmp_path):
    X, em, post = one_d
    ax = plots.plot_density_1d(X, em, post, n_draws=100)
    lines = ax.get_lines()
    assert len(lines) == 2 + 2  # posterior mean, EM density, two EM components
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "EM density" in labels and "posterior mean density" in labels
    assert any(label.startswith("posterior 94% band") for label in labels)
    p = em.params.to_numpy()
    (em_line,) = [line for line in lines if line.get_label() == "EM density"]
    x, y = em_line.get_data()
    np.testing.assert_allclose(
        y, mixture_pdf(x, p["weights"], p["means"][:, 0], p["covariances"][:, 0, 0]), rtol=1e-8
    )
    (mean_line,) = [line for line in lines if line.get_label() == "posterior mean density"]
    assert np.trapezoid(mean_line.get_ydata(), mean_line.get_xdata()) == pytest.approx(1, abs=0.01)
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() > mean_line.get_ydata().max()  # the band lies around the mean
    bars = ax.patches
    assert len(bars) > 5
    assert sum(b.get_height() * b.get_width() for b in bars) == pytest.approx(1.0)
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "density"
    save(ax, "density_1d", tmp_path)


def test_density_1d_marginal_of_3d_data(three_d, tmp_path):
    X, em, post = three_d
    _, ax = plt.subplots()
    out = plots.plot_density_1d(X, em, post, feature=2, ax=ax, components=False, n_draws=50)
    assert out is ax
    p = em.params.to_numpy()
    (em_line,) = [line for line in ax.get_lines() if line.get_label() == "EM density"]
    x, y = em_line.get_data()
    np.testing.assert_allclose(
        y, mixture_pdf(x, p["weights"], p["means"][:, 2], p["covariances"][:, 2, 2]), rtol=1e-8
    )
    assert ax.get_xlabel() == "feature 2"
    save(ax, "density_1d_feature2_of_3d", tmp_path)


# ----------------------------------------------------------------- ellipses ---
def ellipse_axes(cov, level=0.95):
    vals = np.linalg.eigvalsh(cov)
    return 2 * np.sqrt(st.chi2.ppf(level, 2) * vals[::-1])  # (major, minor) full lengths


def test_ellipses(two_d, tmp_path):
    X, em, post = two_d
    ax = plots.plot_ellipses(X, em, post, n_draws=30)
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 30 * 4 + 2 * 4  # draws, then EM (halo + colour)
    p = em.params.to_numpy()
    em_ell = ellipses[-2 * 4 :][1::2]  # the coloured EM ellipses, one per component
    for k, e in enumerate(em_ell):
        np.testing.assert_allclose(e.center, p["means"][k])
        major, minor = ellipse_axes(p["covariances"][k])
        assert (e.width, e.height) == pytest.approx((major, minor))
        assert e.get_linewidth() > ellipses[0].get_linewidth()  # bold over faint draws
    assert ax.get_xlabel() == "feature 0" and ax.get_ylabel() == "feature 1"
    assert "component 3" in [t.get_text() for t in ax.get_legend().get_texts()]
    save(ax, "ellipses", tmp_path)


def test_ellipses_window_ignores_a_stray_draw(two_d):
    """A draw of a component far from the data does not shrink the data to a corner."""
    X, em, post = two_d
    means = np.array(post.params.means)
    means[0, 0, 0] += 1e3  # one draw of one component, far away
    stray = post.replace(params=bg.GMMParams(post.params.weights, means, post.params.covariances))
    ax = plots.plot_ellipses(X, em, stray, n_draws=post.num_draws * post.num_chains)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    data = np.asarray(X)
    assert x0 <= data[:, 0].min() and data[:, 0].max() <= x1
    assert y0 <= data[:, 1].min() and data[:, 1].max() <= y1
    assert x1 - x0 < 2 * np.ptp(data[:, 0]) and y1 - y0 < 2 * np.ptp(data[:, 1])


def test_ellipses_choose_features(three_d, tmp_path):
    X, em, post = three_d
    ax = plots.plot_ellipses(X, em, post, features=(0, 2), n_draws=20)
    e = [p for p in ax.patches if isinstance(p, Ellipse)][-1]
    cov = np.asarray(em.params.covariances[1])[np.ix_([0, 2], [0, 2])]
    assert (e.width, e.height) == pytest.approx(tuple(ellipse_axes(cov)))
    assert ax.get_ylabel() == "feature 2"
    save(ax, "ellipses_features_0_2_of_3d", tmp_path)
    with pytest.raises(ValueError, match="distinct feature indices"):
        plots.plot_ellipses(X, em, post, features=(0, 3))


def test_ellipses_reject_1d(one_d):
    X, em, post = one_d
    with pytest.raises(ValueError, match="plot_density_1d"):
        plots.plot_ellipses(X, em, post)


# --------------------------------------------------------------- parameters ---
def test_parameters_forest_marks_em_outside(pulled_2d, tmp_path):
    _, em, post = pulled_2d
    table = em_vs_posterior(em, post)
    ax = plots.plot_parameters(em, post)
    rows = table[table.parameter.isin(["weight", "mean", "covariance"])]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    top_down = [labels[i] for i in np.argsort(-ax.get_yticks())]
    assert top_down == rows.name.tolist()  # first row on top
    assert len(ax.collections[0].get_segments()) == len(rows)  # one HDI line per entry
    diamonds = ax.collections[2]
    red = np.all(np.isclose(diamonds.get_edgecolors()[:, :3], [1, 0, 0]), axis=1)
    assert red.sum() == (~rows.inside).sum() > 0  # variances were pulled: EM outside
    assert f"{(~rows.inside).sum()} of {len(rows)} EM outside" in ax.get_title()
    save(ax, "parameters", tmp_path)


def test_parameters_standardized_from_table(one_d, tmp_path):
    _, em, post = one_d
    table = em_vs_posterior(em, post)
    ax = plots.plot_parameters(em, table=table, standardize=True, parameters=("mean", "sd"))
    em_x = ax.collections[2].get_offsets()[:, 0]
    rows = table[table.parameter.isin(["mean", "sd"])]
    np.testing.assert_allclose(em_x, rows.z.to_numpy())
    assert "posterior sd" in ax.get_xlabel()
    save(ax, "parameters_standardized", tmp_path)


# -------------------------------------------------------------- assignments ---
def test_assignments_2d(two_d, tmp_path):
    X, em, post = two_d
    ax = plots.plot_assignments(X, post, em=em)
    pts = ax.collections[0]
    assert len(pts.get_offsets()) == len(X)
    resp = posterior_membership(post.relabel(reference=em.params).params, X)
    top = np.sort(resp.max(1))[::-1]  # drawn from certain to uncertain
    alpha = pts.get_facecolors()[:, 3]
    assert np.all(np.diff(alpha) >= -1e-12)  # more uncertain, more opaque
    sizes = pts.get_sizes()
    assert sizes[-1] >= sizes[0]
    assert (top < 0.8).sum() == sum(np.allclose(c, [0, 0, 0, 1]) for c in pts.get_edgecolors())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("cluster 0 (") for t in legend) and any(
        "uncertain" in t for t in legend
    )
    save(ax, "assignments_2d", tmp_path)


def test_assignments_1d_shows_membership(one_d, tmp_path):
    X, em, post = one_d
    ax = plots.plot_assignments(X, post, em=em)
    y = ax.collections[0].get_offsets()[:, 1]
    resp = posterior_membership(post.relabel(reference=em.params).params, X)
    np.testing.assert_allclose(np.sort(y), np.sort(resp.max(1)))
    assert (y < 0.8).any() and y.min() >= 0.5  # the overlap region is uncertain
    assert ax.get_ylabel() == "largest posterior membership probability"
    save(ax, "assignments_1d", tmp_path)


# -------------------------------------------------------------------- trace ---
def test_trace(two_d, tmp_path):
    _, em, post = two_d
    axes = plots.plot_trace(post, em=em)
    assert axes.shape == (3, 2)
    assert [row[0].get_title() for row in axes] == ["weights", "means", "covariances"]
    # the EM values are drawn as reference lines on the density panels
    weights_ax = axes[0, 0]
    xs = np.concatenate(
        [
            seg[:, 0]
            for coll in weights_ax.collections
            if isinstance(coll, LineCollection)
            for seg in coll.get_segments()
        ]
    )
    for w in np.asarray(em.params.weights):
        assert np.isclose(xs, w).any()
    assert axes[0, 0].figure.get_suptitle().startswith("Trace of the relabelled posterior")
    save(axes, "trace", tmp_path)
    raw = plots.plot_trace(post, relabel=False, var_names=("weights",))
    assert raw[0, 0].figure.get_suptitle() == "Trace of the posterior (not relabelled)"


# ---------------------------------------------------------------------- ppc ---
def test_ppc(two_d, tmp_path):
    X, _, post = two_d
    stats = ("mean", "sd", "skewness", "median", "correlation")
    axes = plots.plot_ppc(X, post, statistics=stats, n_draws=60, seed=1)
    assert axes.shape == (3, 4)  # two features and a row of correlations
    table = ppc_statistics(X, post, n_draws=60, seed=1).set_index(["statistic", "feature"])
    sd_ax = axes[1, 1]
    red = [line for line in sd_ax.get_lines() if line.get_color() == "red"]
    assert red[0].get_xdata()[0] == pytest.approx(table.loc[("sd", "1"), "observed"])
    assert f"p={table.loc[('sd', '1'), 'p_value']:.2f}" in sd_ax.get_title()
    assert sum(p.get_height() for p in sd_ax.patches) == 60
    assert axes[2, 0].get_title().startswith("correlation(x0,x1)")
    assert not axes[2, 1].get_visible()
    save(axes, "ppc", tmp_path)
