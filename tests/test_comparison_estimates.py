"""The comparison tools with several estimates: em_vs_posterior(em, post_nuts, post_gibbs, vb).

Posteriors are synthetic (conjugate-style scatter around the EM estimate, as in
tests/test_compare.py); the "Gibbs" one has its components listed in another
order, so it must be matched to EM's labels before its columns mean anything.
Every column is checked against statistics computed here from the draws
themselves, with the known permutation undone by hand.
"""

import arviz as az
import jax
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection
from support import approx_draws

import bayesgmm as bg
from bayesgmm import Posterior
from bayesgmm.diagnostics import em_vs_posterior, report

C, S, K = 2, 150, 3
PERM = np.array([2, 0, 1])  # the "Gibbs" draws list EM's component PERM[j] as component j
UNDO = np.argsort(PERM)


def _posterior(X, draws, sampler):
    return Posterior(
        params=draws,
        X=X,
        sample_weight=np.ones(len(X)),
        prior=bg.Prior.default(X, K),
        covariance_type="full",
        sampler=sampler,
    )


def _permuted(params, perm):
    return bg.GMMParams(
        weights=np.asarray(params.weights)[..., perm],
        means=np.asarray(params.means)[..., perm, :],
        covariances=np.asarray(params.covariances)[..., perm, :, :],
    )


@pytest.fixture(scope="module")
def fits():
    truth = bg.GMMParams(
        weights=[0.3, 0.3, 0.4],
        means=[[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]],
        covariances=[np.eye(2), [[1.0, 0.4], [0.4, 0.8]], 0.6 * np.eye(2)],
    )
    X = np.asarray(truth.sample(jax.random.key(0), 300)[0], dtype=np.float64)
    em = bg.fit_em(X, K, n_init=3, seed=0)
    nuts = _posterior(X, approx_draws(em.params, len(X), shape=(C, S), seed=1), "nuts")
    gibbs_draws = approx_draws(em.params, len(X), shape=(C, S), seed=2)
    gibbs = _posterior(X, _permuted(gibbs_draws, PERM), "gibbs")
    vb = bg.fit_vb(X, K, init=_permuted(em.params, PERM))  # VB's labels differ from EM's too
    return X, em, nuts, gibbs, gibbs_draws, vb


def _direct(draws, hdi_prob=0.94):
    """{name: (mean, sd, hdi_low, hdi_high, r_hat)} of the weight, mean and covariance entries."""
    w, m, c = (
        np.asarray(a, dtype=np.float64) for a in (draws.weights, draws.means, draws.covariances)
    )
    series = {}
    for k in range(K):
        series[f"weights[{k}]"] = w[..., k]
        for d in range(2):
            series[f"means[{k},{d}]"] = m[..., k, d]
        for i, j in ((0, 0), (0, 1), (1, 1)):
            series[f"covariances[{k},{i},{j}]"] = c[..., k, i, j]
    out = {}
    for name, x in series.items():  # x: (chain, draw)
        low, high = np.asarray(az.hdi(x.ravel(), hdi_prob=hdi_prob))  # all draws pooled
        r_hat = float(az.rhat(x)) if x.ndim == 2 and x.shape[0] > 1 else np.nan
        out[name] = (x.mean(), x.ravel().std(ddof=1), low, high, r_hat)
    return out


# ------------------------------------------------------------------ the table ---
@pytest.mark.parametrize("gibbs_relabelled", [False, True], ids=["raw", "relabelled"])
def test_each_estimate_has_its_columns_computed_from_its_own_draws(fits, gibbs_relabelled):
    _, em, nuts, gibbs, gibbs_draws, vb = fits
    if gibbs_relabelled:  # relabelled already, in its own labelling: permuted once to EM's
        gibbs = gibbs.relabel(reference=_permuted(em.params, PERM))
    table = em_vs_posterior(em, nuts, gibbs, vb).set_index("name")
    assert table.attrs["estimates"] == (("NUTS", ""), ("Gibbs", "gibbs"), ("VB", "vb"))
    ref, other = _direct(nuts.params), _direct(gibbs_draws)
    for name, (mean, sd, low, high, r_hat) in other.items():
        row = table.loc[name]
        r_mean, r_sd, r_low, r_high, r_rhat = ref[name]
        assert (row.post_mean, row.post_sd, row.hdi_low, row.hdi_high) == pytest.approx(
            (r_mean, r_sd, r_low, r_high), rel=1e-9, abs=1e-12
        )
        assert row.r_hat == pytest.approx(r_rhat, rel=1e-9)
        got = (row.gibbs_mean, row.gibbs_sd, row.gibbs_hdi_low, row.gibbs_hdi_high)
        assert got == pytest.approx((mean, sd, low, high), rel=1e-9, abs=1e-12), name
        assert row.gibbs_r_hat == pytest.approx(r_hat, rel=1e-9)
        assert row.gibbs_sd_ratio == pytest.approx(sd / r_sd, rel=1e-9)
        assert row.gibbs_width_ratio == pytest.approx((high - low) / (r_high - r_low), rel=1e-9)
    # VB: 4,000 draws of q, matched to EM's labels; q's mean is vb.params (undone by hand)
    vb_mean = _permuted(vb.params, UNDO)
    P = vb_mean.to_numpy()
    for k in range(K):
        row = table.loc[f"weights[{k}]"]
        assert abs(row.vb_mean - P["weights"][k]) < 4 * row.vb_sd / np.sqrt(4000)
        for d in range(2):
            row = table.loc[f"means[{k},{d}]"]
            assert abs(row.vb_mean - P["means"][k, d]) < 4 * row.vb_sd / np.sqrt(4000)
            assert abs(row.vb_mean - row.post_mean) < 0.5 * row.post_sd  # the same clusters
    assert (table.vb_hdi_low < table.vb_mean).all() and (table.vb_mean < table.vb_hdi_high).all()
    width = table.hdi_high - table.hdi_low
    np.testing.assert_allclose(
        table.vb_width_ratio, (table.vb_hdi_high - table.vb_hdi_low) / width
    )
    np.testing.assert_allclose(table.vb_sd_ratio, table.vb_sd / table.post_sd)
    assert "vb_r_hat" not in table  # independent draws: nothing to diagnose


def test_estimates_come_in_any_order_and_keywords_still_work(fits):
    _, em, nuts, gibbs, _, vb = fits
    table = em_vs_posterior(em, nuts, gibbs, vb)
    shuffled = em_vs_posterior(vb, gibbs, nuts, em)  # the first Posterior is the reference
    assert shuffled.attrs["estimates"] == (("Gibbs", ""), ("VB", "vb"), ("NUTS", "nuts"))
    np.testing.assert_allclose(shuffled.post_mean, table.gibbs_mean)
    np.testing.assert_allclose(shuffled.nuts_mean, table.post_mean)
    np.testing.assert_allclose(shuffled.vb_mean, table.vb_mean)
    old = em_vs_posterior(em, nuts, vb=vb)  # the earlier keyword: the same columns
    for col in ("vb_mean", "vb_sd", "vb_hdi_low", "vb_hdi_high", "vb_sd_ratio"):
        np.testing.assert_allclose(old[col], table[col])
    assert old.attrs["estimates"] == (("posterior", ""), ("VB", "vb"))
    np.testing.assert_allclose(em_vs_posterior(em=em, post=nuts).post_sd, table.post_sd)
    # a VBResult given first with no EM is the point estimate (its mean), as before
    as_point = em_vs_posterior(vb, nuts)
    np.testing.assert_allclose(
        np.sort(as_point[as_point.parameter == "weight"].em), np.sort(vb.params.weights)
    )
    assert as_point.attrs["estimates"] == (("posterior", ""),)


def test_labels_name_the_estimates_and_their_columns(fits):
    _, em, nuts, gibbs, _, vb = fits
    table = em_vs_posterior(em, nuts, gibbs, vb, labels=["exact", "Data augmentation", "q"])
    assert table.attrs["estimates"] == (
        ("exact", ""),
        ("Data augmentation", "data_augmentation"),
        ("q", "q"),
    )
    assert {"data_augmentation_mean", "data_augmentation_ess_bulk", "q_width_ratio"} <= set(
        table.columns
    )
    twice = em_vs_posterior(em, nuts, nuts.replace(sample_stats={}))
    assert twice.attrs["estimates"] == (("NUTS 1", ""), ("NUTS 2", "nuts_2"))
    np.testing.assert_allclose(twice.nuts_2_width_ratio, 1.0)


def test_wrong_estimates_are_refused_clearly(fits):
    X, em, nuts, gibbs, _, vb = fits
    with pytest.raises(TypeError, match="two point estimates"):
        em_vs_posterior(em, nuts, em.params)
    with pytest.raises(TypeError, match="nothing to compare"):
        em_vs_posterior(em)
    with pytest.raises(TypeError, match="nothing to compare"):
        em_vs_posterior(vb)
    with pytest.raises(TypeError, match="needs a point estimate"):
        em_vs_posterior(nuts, gibbs)
    with pytest.raises(TypeError, match="argument 3 is a str"):
        em_vs_posterior(em, nuts, "gibbs")
    with pytest.raises(TypeError, match="as a Posterior"):
        em_vs_posterior(em, nuts, gibbs.params)
    with pytest.raises(ValueError, match="K=2"):
        em_vs_posterior(em, nuts, bg.fit_vb(X, 2))
    with pytest.raises(ValueError, match="name the 3"):
        em_vs_posterior(em, nuts, gibbs, vb, labels=["a", "b"])
    with pytest.raises(ValueError, match="distinct"):
        em_vs_posterior(em, nuts, gibbs, labels=["a", "a"])
    with pytest.raises(ValueError, match="not be 'post'"):
        em_vs_posterior(em, nuts, gibbs, labels=["a", "Post"])
    with pytest.raises(TypeError, match="two point estimates"):
        bg.plots.plot_parameters(em, em, nuts)
    with pytest.raises(TypeError, match="nothing to compare"):
        bg.plots.plot_parameters(em)


# ----------------------------------------------------------------- the report ---
def test_report_sets_the_other_estimates_against_the_first_posterior(fits):
    _, em, nuts, gibbs, _, vb = fits
    loose = {"r_hat_max": 1.1, "ess_min": 50}  # short synthetic chains pass these
    text = report(em, nuts, gibbs, vb, **loose)
    table = em_vs_posterior(em, nuts, gibbs, vb)
    core = table[table.parameter.isin(["weight", "mean", "covariance"])]
    lines = [line.strip() for line in text.splitlines()]
    i = lines.index("Other estimates against NUTS (94% HDI)")
    assert lines[i + 1].startswith(f"OK       Gibbs: max R-hat {core.gibbs_r_hat.max():.3f}, ")
    vb_note = next(line for line in lines if line.startswith("NOTE     VB:"))
    narrower = int((core.vb_width_ratio < 1).sum())
    assert f"narrower than NUTS's for {narrower} of {len(core)} entries" in vb_note
    assert f"median {core.vb_width_ratio.median():.2f}, " in vb_note
    assert lines[-1].startswith("Verdict: OK")
    # a Gibbs run whose chains disagree fails its own check, and the verdict counts it
    p = gibbs.params.to_numpy()
    p["means"][1] += 0.5
    stuck = gibbs.replace(params=bg.GMMParams(**p))
    lines = [line.strip() for line in report(em, nuts, stuck, vb, **loose).splitlines()]
    assert any(line.startswith("WARNING  Gibbs: max R-hat") for line in lines)
    assert lines[-1] == "Verdict: WARNING: 1 check(s) failed; read the lines above."
    assert "Other estimates" not in report(em, nuts)  # one posterior: the report as before
    with pytest.raises(TypeError, match="pass a Posterior"):
        report(em, vb)


# ------------------------------------------------------------------ the plot ---
def _legend_texts(axes):
    axes = np.ravel(axes)
    fig = axes[0].figure
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    return texts + [t.get_text() for a in axes if a.get_legend() for t in a.get_legend().texts]


def test_plot_draws_every_estimate_per_entry(fits):
    _, em, nuts, gibbs, _, vb = fits
    table = em_vs_posterior(em, nuts, gibbs, vb)
    axes = bg.plots.plot_parameters(em, nuts, gibbs, vb, parameters=("weight", "mean"))
    shown = [ax for ax in axes.ravel() if ax.get_visible()]
    assert len(shown) == 3  # weights, mean of feature 0, mean of feature 1
    columns = [("hdi_low", "hdi_high"), ("gibbs_hdi_low", "gibbs_hdi_high")]
    columns.append(("vb_hdi_low", "vb_hdi_high"))
    groups = [("weight", ""), ("mean", "0"), ("mean", "1")]
    for ax, (parameter, index) in zip(shown, groups, strict=True):
        rows = table[(table.parameter == parameter) & (table["index"] == index)]
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(lines) == 3  # one set of intervals per estimate
        heights = []
        for coll, cols in zip(lines, columns, strict=True):
            seg = np.array(coll.get_segments())  # one interval per component
            assert seg.shape[0] == K
            np.testing.assert_allclose(seg[:, :, 0], rows[list(cols)].to_numpy())
            heights.append(seg[:, 0, 1])
        heights = np.array(heights)  # (estimate, component)
        for k in range(K):  # the estimates of one entry: distinct rows around its tick
            assert len(set(heights[:, k])) == 3 and np.all(np.abs(heights[:, k] + k) < 0.5)
    assert _legend_texts(axes) == [
        "NUTS mean, 94% HDI",
        "Gibbs mean, 94% HDI",
        "VB mean, 94% HDI",
        "EM inside NUTS HDI",
        "EM outside NUTS HDI",
    ]
    assert "(NUTS, Gibbs, VB)" in axes.ravel()[0].figure.get_suptitle()
    plt.close("all")


def test_plot_on_one_axis_and_from_a_table(fits):
    _, em, nuts, gibbs, _, vb = fits
    table = em_vs_posterior(em, nuts, gibbs, vb, labels=["NUTS", "Gibbs", "mean-field"])
    _, ax = plt.subplots()
    assert bg.plots.plot_parameters(em, table=table, ax=ax) is ax
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    rows = table[table.parameter.isin(["weight", "mean", "covariance"])]
    assert [len(c.get_segments()) for c in lines] == [len(rows)] * 3
    z = (rows.mean_field_mean - rows.post_mean) / rows.post_sd  # standardised by the reference
    np.testing.assert_allclose(ax.collections[-1].get_offsets()[:, 0], z)
    assert "mean-field mean, 94% HDI" in _legend_texts(ax)
    assert "NUTS sd" in ax.get_xlabel()
    plt.close("all")
