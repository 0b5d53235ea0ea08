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
from matplotlib.colors import same_color, to_rgba
from matplotlib.patches import Ellipse
from support import approx_draws

import bayesgmm as bg
from bayesgmm import Posterior, plots
from bayesgmm.diagnostics import em_vs_posterior, posterior_membership, ppc_statistics
from bayesgmm.plots._common import COMPONENT_COLOURS, EM_COLOUR, POSTERIOR_COLOUR

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


# One panel per parameter kind and feature, for features named "u" and "v".
PANEL_TITLES_UV = [
    "weight",
    "mean (u)",
    "mean (v)",
    "variance (u)",
    "covariance (u, v)",
    "variance (v)",
]


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


# The palette, independently: matplotlib's tab10 without its grey (index 7).
TAB10 = [c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i != 7]


def is_component_colour(colour) -> bool:
    return any(same_color(colour, c) for c in TAB10)


def is_grey(colour) -> bool:
    r, g, b, _ = to_rgba(colour)
    return r == g == b


def lines_labelled(ax, label):
    return [line for line in ax.get_lines() if line.get_label() == label]


# ------------------------------------------------------------------ palette ---
def test_component_colours_are_tab10_without_grey():
    colours = plots.component_colours(11)
    assert [same_color(a, b) for a, b in zip(colours, TAB10 + TAB10[:2], strict=True)] == [
        True
    ] * 11
    assert not is_component_colour(POSTERIOR_COLOUR) and is_grey(POSTERIOR_COLOUR)
    assert same_color(EM_COLOUR, "black") and len(COMPONENT_COLOURS) == 9


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
    (em_line,) = lines_labelled(ax, "EM density")
    x, y = em_line.get_data()
    np.testing.assert_allclose(
        y, mixture_pdf(x, p["weights"], p["means"][:, 0], p["covariances"][:, 0, 0]), rtol=1e-8
    )
    assert same_color(em_line.get_color(), "black")
    (mean_line,) = lines_labelled(ax, "posterior mean density")
    assert np.trapezoid(mean_line.get_ydata(), mean_line.get_xdata()) == pytest.approx(1, abs=0.01)
    band = ax.collections[0]
    vertices = band.get_paths()[0].vertices
    assert vertices[:, 1].max() > mean_line.get_ydata().max()  # the band lies around the mean
    # the posterior is grey, never a component's colour; components keep theirs
    for colour in (band.get_facecolor()[0], mean_line.get_color()):
        assert is_grey(colour) and not is_component_colour(colour)
    comps = [line for line in lines if line.get_linestyle() == "--"]
    assert [same_color(c.get_color(), TAB10[k]) for k, c in enumerate(comps)] == [True, True]
    bars = ax.patches
    assert len(bars) > 5
    assert sum(b.get_height() * b.get_width() for b in bars) == pytest.approx(1.0)
    assert ax.get_xlabel() == "feature 0" and ax.get_ylabel() == "density"
    save(ax, "density_1d", tmp_path)


def test_density_1d_marginal_of_3d_data(three_d, tmp_path):
    X, em, post = three_d
    _, ax = plt.subplots()
    out = plots.plot_density_1d(X, em, post, feature=2, ax=ax, components=False, n_draws=50)
    assert out is ax
    p = em.params.to_numpy()
    (em_line,) = lines_labelled(ax, "EM density")
    x, y = em_line.get_data()
    np.testing.assert_allclose(
        y, mixture_pdf(x, p["weights"], p["means"][:, 2], p["covariances"][:, 2, 2]), rtol=1e-8
    )
    assert ax.get_xlabel() == "feature 2"
    save(ax, "density_1d_feature2_of_3d", tmp_path)


def test_density_1d_of_either_estimate_alone(one_d):
    X, em, post = one_d
    ax = plots.plot_density_1d(X, post=post, n_draws=40, feature_names=["speed"])
    assert not lines_labelled(ax, "EM density") and lines_labelled(ax, "posterior mean density")
    assert "posterior components (colours)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_xlabel() == "speed" and ax.get_title() == "Mixture density: posterior"
    ax = plots.plot_density_1d(X, em)
    assert lines_labelled(ax, "EM density") and not lines_labelled(ax, "posterior mean density")
    assert not ax.collections  # no band without a posterior
    with pytest.raises(TypeError, match="needs an estimate"):
        plots.plot_density_1d(X)
    plt.close("all")


def test_density_2d(two_d, tmp_path):
    X, em, post = two_d
    levels = (0.5, 0.9)
    ax = plots.plot_density_2d(X, em, post, levels=levels, n_draws=40, feature_names=["a", "b"])
    sets = {c.get_gid(): c for c in ax.collections if c.get_gid()}
    assert set(sets) == {"EM density", "posterior mean density"}
    em_set = sets["EM density"]
    p = em.params.to_numpy()

    def em_pdf(points):
        return sum(
            w * st.multivariate_normal(m, c).pdf(points)
            for w, m, c in zip(p["weights"], p["means"], p["covariances"], strict=True)
        )

    # a contour at level t encloses the points where the density is above t:
    # the fraction of the data inside is the level's label
    at_data = em_pdf(X)
    for t, frac in zip(em_set.levels, sorted(levels, reverse=True), strict=True):
        assert (at_data >= t).mean() == pytest.approx(frac, abs=1.5 / len(X))
    # and the drawn lines lie where the EM density equals the level
    for t, path in zip(em_set.levels, em_set.get_paths(), strict=True):
        np.testing.assert_allclose(em_pdf(path.vertices), t, rtol=0.05)
    np.testing.assert_array_equal(sets["posterior mean density"].levels, em_set.levels)
    assert same_color(em_set.get_edgecolor()[0], "black")
    post_colour = sets["posterior mean density"].get_edgecolor()[0]
    assert is_grey(post_colour) and not is_component_colour(post_colour)
    means = [c for c in ax.collections if len(c.get_offsets()) == 4][-1]
    np.testing.assert_allclose(means.get_offsets(), p["means"])
    assert [same_color(c, TAB10[k]) for k, c in enumerate(means.get_facecolors())] == [True] * 4
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "b")
    save(ax, "density_2d", tmp_path)


def test_density_2d_needs_two_features(one_d):
    X, em, post = one_d
    with pytest.raises(ValueError, match="plot_density_1d"):
        plots.plot_density_2d(X, em, post)
    plt.close("all")


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
        assert same_color(e.get_edgecolor()[:3], TAB10[k])
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
    plt.close("all")


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
def test_parameters_one_panel_per_scale(pulled_2d, tmp_path):
    _, em, post = pulled_2d
    table = em_vs_posterior(em, post)
    axes = plots.plot_parameters(em, post, feature_names=["u", "v"])
    shown = [ax for ax in axes.ravel() if ax.get_visible()]
    titles = [ax.get_title() for ax in shown]
    assert titles == PANEL_TITLES_UV
    groups = [("weight", ""), ("mean", "0"), ("mean", "1")]
    groups += [("covariance", i) for i in ("0,0", "0,1", "1,1")]
    n_outside = 0
    for ax, (parameter, index) in zip(shown, groups, strict=True):
        rows = table[(table.parameter == parameter) & (table["index"] == index)]
        segments = np.array(ax.collections[0].get_segments())  # one HDI line per component
        np.testing.assert_allclose(segments[:, :, 0], rows[["hdi_low", "hdi_high"]].to_numpy())
        lo, hi = ax.get_xlim()  # each panel is framed on its own entries
        assert lo <= rows.hdi_low.min() and hi >= rows.hdi_high.max()
        assert hi - lo < 3 * (max(rows.hdi_high.max(), rows.em.max()) - rows.hdi_low.min())
        colours = ax.collections[0].get_colors()
        assert [same_color(c, TAB10[k]) for k, c in enumerate(colours)] == [True] * 4
        diamonds = ax.collections[2]  # EM: filled when outside the HDI, hollow inside
        filled = diamonds.get_facecolors()[:, 3] > 0
        np.testing.assert_array_equal(filled, ~rows.inside.to_numpy())
        n_outside += filled.sum()
    assert (
        n_outside == (~table[table.parameter.isin(["weight", "mean", "covariance"])].inside).sum()
    )
    assert n_outside > 0  # the covariances were pulled to twice EM's
    assert f"{n_outside} of 24 EM outside" in axes.ravel()[0].figure.get_suptitle()
    save(axes, "parameters", tmp_path)


def test_parameters_standardized_from_table(one_d, tmp_path):
    _, em, post = one_d
    table = em_vs_posterior(em, post)
    ax = plots.plot_parameters(em, table=table, standardize=True, parameters=("mean", "sd"))
    em_x = ax.collections[2].get_offsets()[:, 0]
    rows = table[table.parameter.isin(["mean", "sd"])]
    np.testing.assert_allclose(em_x, rows.z.to_numpy())
    assert "posterior sd" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    top_down = [labels[i] for i in np.argsort(-ax.get_yticks())]
    assert top_down == [
        "mean 0 (feature 0)",
        "mean 1 (feature 0)",
        "sd 0 (feature 0)",
        "sd 1 (feature 0)",
    ]
    assert ax.get_legend() is not None  # on the axis, where a user moves it
    save(ax, "parameters_standardized", tmp_path)


def test_parameters_on_one_given_axis_are_standardised(two_d):
    _, em, post = two_d
    table = em_vs_posterior(em, post)
    _, ax = plt.subplots()
    assert plots.plot_parameters(em, table=table, ax=ax) is ax
    assert "posterior sd" in ax.get_xlabel()
    _, ax = plt.subplots()
    plots.plot_parameters(em, table=table, ax=ax, standardize=False, parameters=("weight",))
    np.testing.assert_allclose(ax.collections[2].get_offsets()[:, 0], table.em[:4])
    assert ax.get_xlabel() == "value"
    plt.close("all")


# -------------------------------------------------------------- assignments ---
def test_assignments_2d(two_d, tmp_path):
    X, em, post = two_d
    ax = plots.plot_assignments(X, em, post)
    pts = ax.collections[0]
    assert len(pts.get_offsets()) == len(X)
    resp = posterior_membership(post.relabel(reference=em.params).params, X)
    top = np.sort(resp.max(1))[::-1]  # drawn from certain to uncertain
    alpha = pts.get_facecolors()[:, 3]
    assert np.all(np.diff(alpha) >= -1e-12)  # more uncertain, more opaque
    sizes = pts.get_sizes()
    assert sizes[-1] >= sizes[0]
    assert (top < 0.8).sum() == sum(np.allclose(c, [0, 0, 0, 1]) for c in pts.get_edgecolors())
    # a point's colour is its modal cluster's
    order = np.argsort((1 - resp.max(1)), kind="stable")
    labels = resp.argmax(1)[order]
    rgb = pts.get_facecolors()[:, :3]
    np.testing.assert_allclose(rgb, np.array(TAB10)[labels])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("cluster 0 (") for t in legend) and any(
        "uncertain" in t for t in legend
    )
    save(ax, "assignments_2d", tmp_path)


def test_assignments_1d_shows_membership(one_d, tmp_path):
    X, em, post = one_d
    ax = plots.plot_assignments(X, em, post)
    y = ax.collections[0].get_offsets()[:, 1]
    resp = posterior_membership(post.relabel(reference=em.params).params, X)
    np.testing.assert_allclose(np.sort(y), np.sort(resp.max(1)))
    assert (y < 0.8).any() and y.min() >= 0.5  # the overlap region is uncertain
    assert ax.get_ylabel() == "largest posterior membership probability"
    assert ax.get_xlabel() == "feature 0"
    save(ax, "assignments_1d", tmp_path)


def test_assignments_of_em_alone_are_its_responsibilities(one_d):
    X, em, _ = one_d
    ax = plots.plot_assignments(X, em)
    y = ax.collections[0].get_offsets()[:, 1]
    p = em.params.to_numpy()
    joint = np.stack(
        [
            w * st.norm.pdf(X[:, 0], m[0], np.sqrt(c[0, 0]))
            for w, m, c in zip(*p.values(), strict=True)
        ],
        axis=1,
    )
    np.testing.assert_allclose(np.sort(y), np.sort((joint / joint.sum(1, keepdims=True)).max(1)))
    assert ax.get_title().startswith("EM cluster assignments")
    plt.close("all")


# -------------------------------------------------------------------- trace ---
def test_trace(two_d, tmp_path):
    _, em, post = two_d
    axes = plots.plot_trace(em, post, feature_names=["u", "v"])
    titles = [row[0].get_title() for row in axes]
    assert titles == PANEL_TITLES_UV
    relabelled = post.relabel(reference=em.params).params.to_numpy()
    p = em.params.to_numpy()
    # the mean (v) row: one trace per chain and component, in the component's colour,
    # holding that component's draws of feature 1 only
    right = axes[2, 1]
    traces = [line for line in right.get_lines() if line.get_linestyle() == "-"]
    assert len(traces) == 4 * C
    for i, line in enumerate(traces):
        k, c = divmod(i, C)
        np.testing.assert_allclose(line.get_ydata(), relabelled["means"][c, :, k, 1])
        assert same_color(line.get_color(), TAB10[k])
    # EM's values: dashed, in the component's colour, on both panels
    em_lines = [line for line in right.get_lines() if line.get_linestyle() == "--"]
    np.testing.assert_allclose([line.get_ydata()[0] for line in em_lines], p["means"][:, 1])
    assert [same_color(line.get_color(), TAB10[k]) for k, line in enumerate(em_lines)] == [
        True
    ] * 4
    left_em = [line for line in axes[0, 0].get_lines() if len(line.get_xdata()) == 2]
    np.testing.assert_allclose([line.get_xdata()[0] for line in left_em], p["weights"])
    assert axes[0, 0].figure.get_suptitle().startswith("Trace of the relabelled posterior")
    assert axes[-1, 1].get_xlabel() == "draw"
    save(axes, "trace", tmp_path)


def test_trace_options(one_d):
    _, em, post = one_d
    raw = plots.plot_trace(post=post, relabel=False, var_names=("weights",))
    assert raw.shape == (1, 2)
    assert raw[0, 0].figure.get_suptitle() == "Trace of the posterior (not relabelled)"
    split = plots.plot_trace(em, post, compact=False)
    assert split.shape == (3 * 2, 2)  # weights, mean, variance; one row per component
    assert split[1, 0].get_title() == "weight, component 1"
    with pytest.raises(ValueError, match="unknown var_name"):
        plots.plot_trace(em, post, var_names=("sds",))
    with pytest.raises(TypeError, match="needs a posterior"):
        plots.plot_trace(em)
    plt.close("all")


# ---------------------------------------------------------------------- ppc ---
def test_ppc(two_d, tmp_path):
    X, _, post = two_d
    stats = ("mean", "sd", "skewness", "median", "correlation")
    axes = plots.plot_ppc(X, post=post, statistics=stats, n_draws=60, seed=1)
    assert axes.shape == (3, 4)  # two features and a row of correlations
    table = ppc_statistics(X, post, n_draws=60, seed=1).set_index(["statistic", "feature"])
    sd_ax = axes[1, 1]
    (observed,) = sd_ax.get_lines()
    assert same_color(observed.get_color(), "black")
    assert observed.get_xdata()[0] == pytest.approx(table.loc[("sd", "1"), "observed"])
    assert sd_ax.get_title() == f"sd(feature 1)  p={table.loc[('sd', '1'), 'p_value']:.2f}"
    assert sum(p.get_height() for p in sd_ax.patches) == 60
    assert not is_component_colour(sd_ax.patches[0].get_facecolor())
    assert axes[2, 0].get_title().startswith("correlation(feature 0, feature 1)")
    assert not axes[2, 1].get_visible()
    save(axes, "ppc", tmp_path)


def test_ppc_density_overlay(one_d, tmp_path):
    X, em, post = one_d
    axes = plots.plot_ppc(X, em, post, kind="density", n_draws=25, feature_names=["x"])
    assert axes.shape == (1, 1)
    ax = axes[0, 0]
    (observed,) = lines_labelled(ax, "observed")
    x = np.asarray(X)[:, 0]
    grid, dens = observed.get_data()
    sd, iqr = x.std(ddof=1), np.subtract(*np.quantile(x, [0.75, 0.25]))
    h = 0.9 * min(sd, iqr / 1.349) * len(x) ** -0.2  # Silverman's rule
    kde = st.gaussian_kde(x, bw_method=h / sd)
    np.testing.assert_allclose(dens, kde(grid), rtol=1e-8)
    assert same_color(observed.get_color(), "black")
    replicated = [line for line in ax.get_lines() if line.get_linewidth() < 1]
    assert len(replicated) == 25
    for line in replicated:
        assert is_grey(line.get_color()) and not is_component_colour(line.get_color())
        assert np.trapezoid(line.get_ydata(), grid) == pytest.approx(1, abs=0.02)
    assert ax.get_xlabel() == "x"
    assert "25 replicated data sets" in ax.figure.get_suptitle()
    save(axes, "ppc_density", tmp_path)


def test_ppc_from_em_alone_is_a_parametric_bootstrap(two_d):
    X, em, _ = two_d
    axes = plots.plot_ppc(X, em, statistics=("mean",), n_draws=40)
    assert axes.shape == (2, 1)
    assert axes[0, 0].figure.get_suptitle().startswith("EM (parametric bootstrap)")
    reps = np.array([p.get_height() for p in axes[0, 0].patches]).sum()
    assert reps == 40
    # the replicated means scatter around EM's mixture mean, by sd / sqrt(N)
    p = em.params.to_numpy()
    centre = p["weights"] @ p["means"][:, 0]
    lo, hi = axes[0, 0].get_xlim()
    assert lo < centre < hi and hi - lo < 10 * np.asarray(X)[:, 0].std() / np.sqrt(len(X))
    plt.close("all")


# ------------------------------------------------- one convention for all ---
def test_old_argument_orders_still_work_with_a_future_warning(one_d):
    X, em, post = one_d
    new = plots.plot_assignments(X, em, post).collections[0].get_offsets()
    with pytest.warns(FutureWarning, match=r"plot_assignments\(X, em, post\)") as caught:
        old = plots.plot_assignments(X, post, em=em).collections[0].get_offsets()
    assert caught[0].filename == __file__  # points at the caller's line
    np.testing.assert_array_equal(old, new)
    with pytest.warns(FutureWarning, match=r"plot_trace\(em, post\)"):
        axes = plots.plot_trace(post, em=em)
    assert axes.shape == (3, 2)
    with pytest.warns(FutureWarning, match=r"plot_ppc\(X, em, post\)"):
        plots.plot_ppc(X, post, n_draws=20)
    with pytest.raises(TypeError, match="and a post as well"):
        plots.plot_assignments(X, post, post)
    plt.close("all")


def test_feature_names_are_checked(two_d):
    X, em, post = two_d
    with pytest.raises(ValueError, match="name the 2 features"):
        plots.plot_ellipses(X, em, post, feature_names=["only one"])
    pd = pytest.importorskip("pandas")
    ax = plots.plot_density_2d(pd.DataFrame(X, columns=["left", "right"]), em)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("left", "right")
    plt.close("all")


@pytest.mark.parametrize(
    "call",
    [
        lambda X, em, post, ax: plots.plot_density_1d(X, em, post, ax=ax, n_draws=20),
        lambda X, em, post, ax: plots.plot_density_2d(X, em, post, ax=ax, n_draws=20),
        lambda X, em, post, ax: plots.plot_ellipses(X, em, post, ax=ax, n_draws=5),
        lambda X, em, post, ax: plots.plot_assignments(X, em, post, ax=ax),
        lambda X, em, post, ax: plots.plot_parameters(em, post, ax=ax),
    ],
    ids=["density_1d", "density_2d", "ellipses", "assignments", "parameters"],
)
def test_every_single_panel_plot_draws_on_the_given_axis(two_d, call):
    X, em, post = two_d
    fig, ax = plt.subplots()
    assert call(X, em, post, ax) is ax
    assert fig.axes == [ax]
    plt.close(fig)


def test_every_multi_panel_plot_draws_on_the_given_axes(two_d):
    X, em, post = two_d
    _, axes = plt.subplots(2, 2)
    assert (
        plots.plot_ppc(X, post=post, kind="density", axes=axes[0], n_draws=5)[0, 0] is axes[0, 0]
    )
    assert (
        plots.plot_trace(em, post, var_names=("weights",), axes=axes[1:]).ravel()[1] is axes[1, 1]
    )
    fig2, axes2 = plt.subplots(2, 3)
    out = plots.plot_parameters(em, post, axes=axes2)
    assert out.ravel()[5] is axes2[1, 2] and len(fig2.axes) == 6
    plt.close("all")


def test_a_component_has_one_colour_in_every_plot(two_d):
    """Ellipses, assignments, trace, density and parameters agree on component k's colour."""
    X, em, post = two_d
    K = 4
    want = [to_rgba(c)[:3] for c in TAB10[:K]]
    ell = [
        p for p in plots.plot_ellipses(X, em, post, n_draws=2).patches if p.get_linewidth() == 2.2
    ]
    got = {"ellipses": [e.get_edgecolor()[:3] for e in ell]}
    leg = plots.plot_assignments(X, em, post).get_legend()
    got["assignments"] = [to_rgba(h.get_color())[:3] for h in leg.legend_handles[:K]]
    trace = plots.plot_trace(em, post, var_names=("weights",))
    got["trace"] = [to_rgba(line.get_color())[:3] for line in trace[0, 1].get_lines()[:: C + 1]]
    dens = plots.plot_density_1d(X, em, post, n_draws=5)
    dashed = [line for line in dens.get_lines() if line.get_linestyle() == "--"]
    got["density_1d"] = [to_rgba(line.get_color())[:3] for line in dashed]
    params = plots.plot_parameters(em, post, parameters=("weight",))
    got["parameters"] = [tuple(c[:3]) for c in params.ravel()[0].collections[0].get_colors()]
    for name, colours in got.items():
        np.testing.assert_allclose(colours, want, err_msg=name)
    plt.close("all")
