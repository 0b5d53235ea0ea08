"""EM against the posterior (em_vs_posterior, its summary, report) and predictive checks.

Most posteriors here are synthetic, drawn from a conjugate-style approximation
centred where we choose: on the EM estimate (EM must then agree with them), or
on parameters pulled away from it as a strong prior would (EM must then lie
outside the intervals). One test runs the real sampler with a strong prior.
"""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from sklearn.metrics import adjusted_rand_score
from support import approx_draws

import bayesgmm as bg
from bayesgmm import Posterior
from bayesgmm.diagnostics import (
    em_vs_posterior,
    em_vs_posterior_summary,
    permute,
    posterior_membership,
    ppc_replicates,
    ppc_statistics,
    report,
)

C, S = 2, 400


def make_posterior(X, draws, *, reference=None, stats=None):
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    return Posterior(
        params=draws,
        X=X,
        sample_weight=np.ones(len(X)),
        prior=bg.Prior.default(X, draws.n_components),
        covariance_type="full",
        reference=reference,
        reference_kind=None if reference is None else "EM",
        sample_stats=stats or {},
    )


def good_stats(seed=0):
    rng = np.random.default_rng(seed)
    return {"diverging": np.zeros((C, S), bool), "energy": rng.normal(500.0, 5.0, (C, S))}


def pulled(params, *, shrink=0.4, inflate=1.0):
    """Parameters pulled as a strong prior would: means toward their centre, covariances up."""
    p = params.to_numpy()
    centre = p["weights"] @ p["means"]
    return bg.GMMParams(
        weights=p["weights"],
        means=p["means"] + shrink * (centre - p["means"]),
        covariances=inflate * p["covariances"],
    )


@pytest.fixture(scope="module")
def blobs():
    """Large N, well separated clusters."""
    X = bg.datasets.make_four_gaussians_2d(1000, seed=3)
    em = bg.fit_em(X, 4, n_init=3, seed=0)
    return X, em


@pytest.fixture(scope="module")
def agree(blobs):
    X, em = blobs
    post = make_posterior(X, approx_draws(em.params, len(X), seed=1), stats=good_stats())
    return X, em, post


@pytest.fixture(scope="module")
def disagree():
    """Small N, and a posterior pulled away from the ML estimate (means shrunk, covariances up)."""
    X = bg.datasets.make_two_gaussians_1d(80, seed=4)
    em = bg.fit_em(X, 2, seed=0)
    center = pulled(em.params, shrink=0.4, inflate=2.0)
    post = make_posterior(X, approx_draws(center, len(X), seed=2), stats=good_stats(1))
    return X, em, post


# ------------------------------------------------------------------ the table ---
def test_table_has_every_unique_entry(agree):
    _, em, post = agree
    table = em_vs_posterior(em, post)
    K, D = 4, 2
    counts = table.parameter.value_counts()
    assert counts["weight"] == K
    assert counts["mean"] == K * D
    assert counts["covariance"] == K * D * (D + 1) // 2
    assert counts["sd"] == K * D
    assert counts["correlation"] == K * D * (D - 1) // 2
    assert list(table.columns[:7]) == [
        "name", "em", "post_mean", "hdi_low", "hdi_high", "inside", "z"
    ]  # fmt: skip
    assert list(table.columns[-4:]) == ["parameter", "component", "index", "feature"]
    assert (table.feature == table["index"]).all()  # no names: the index itself
    # printed whole and rounded: no column hidden, no 16-digit floats
    text = repr(table)
    assert "..." not in text.splitlines()[0] and "ess_tail" in text and "index" in text
    first = table.em.iloc[0]
    assert f"{first:.4g}" in text and repr(float(first)) not in text
    assert type(table[~table.inside]) is pd.DataFrame
    for col in ("em", "post_mean", "post_sd", "hdi_low", "hdi_high", "inside", "z"):
        assert col in table
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(table.columns)
    assert table.name.is_unique
    row = table.set_index("name").loc["covariances[2,0,1]"]
    assert row.em == pytest.approx(float(em.params.covariances[2, 0, 1]))
    rho = np.asarray(em.params.covariances[3])
    assert table.set_index("name").loc["corr[3,0,1]"].em == pytest.approx(
        rho[0, 1] / np.sqrt(rho[0, 0] * rho[1, 1])
    )
    assert (table.hdi_low <= table.post_mean).all() and (table.post_mean <= table.hdi_high).all()
    assert table.attrs["hdi_prob"] == 0.94
    assert table.attrs["matching"] == "posterior relabelled against EM"


def test_columns_match_arviz_and_numpy(agree):
    """Independent recomputation of one entry with ArviZ on a plain (chain, draw) array."""
    _, em, post = agree
    table = em_vs_posterior(em, post, hdi_prob=0.9).set_index("name")
    values = np.asarray(post.params.means)[:, :, 1, 0]  # no switching: labels already EM's
    row = table.loc["means[1,0]"]
    low, high = az.hdi(values.ravel(), hdi_prob=0.9)
    assert (row.hdi_low, row.hdi_high) == pytest.approx((low, high))
    assert row.r_hat == pytest.approx(float(az.rhat(values)))
    assert row.ess_bulk == pytest.approx(float(az.ess(values, method="bulk")))
    assert row.ess_tail == pytest.approx(float(az.ess(values, method="tail")))
    assert row.post_sd == pytest.approx(values.std(ddof=1))
    assert row.z == pytest.approx((row.em - values.mean()) / values.std(ddof=1))


def test_em_agrees_with_posterior_large_n_separated(agree):
    _, em, post = agree
    table = em_vs_posterior(em, post)
    assert table.inside.all(), table[~table.inside]
    assert table.z.abs().max() < 1.0
    model = em_vs_posterior_summary(em, post)
    assert model["adjusted_rand_index"] > 0.99
    assert model["membership_mad"] < 0.01
    text = report(em, post)
    assert f"all {4 + 8 + 12} EM values lie inside the 94% HDI" in text
    assert "0 divergent" in text and "energy BFMI" in text
    assert "Verdict: OK" in text


def test_em_outside_when_prior_pulls(disagree):
    _, em, post = disagree
    table = em_vs_posterior(em, post).set_index("name")
    outside = set(table.index[~table.inside])
    assert {"means[0,0]", "means[1,0]", "covariances[0,0,0]", "covariances[1,0,0]"} <= outside
    # means were pulled toward the centre: EM lies further out than the posterior
    centre = float(np.asarray(em.params.weights) @ np.asarray(em.params.means)[:, 0])
    for name in ("means[0,0]", "means[1,0]"):
        row = table.loc[name]
        assert abs(row.z) > 2 and np.sign(row.z) == np.sign(row.em - centre)
    assert table.loc["covariances[0,0,0]", "em"] < table.loc["covariances[0,0,0]", "hdi_low"]
    text = report(em, post)
    assert "WARNING" in text and "lie outside the 94% HDI" in text
    for name in ("means[0,0]", "means[1,0]", "covariances[1,0,0]"):
        assert name in text
    assert "Verdict: WARNING" in text


# ------------------------------------------------------------------- matching ---
def test_label_switching_is_undone_before_comparing(agree):
    _, em, post = agree
    rng = np.random.default_rng(5)
    perms = np.argsort(rng.random((C, S, 4)), axis=-1)
    switched = post.replace(params=permute(post.params, perms))
    a, b = em_vs_posterior(em, post), em_vs_posterior(em, switched)
    np.testing.assert_allclose(a.post_mean, b.post_mean, rtol=1e-12)
    np.testing.assert_array_equal(a.inside, b.inside)
    assert b.attrs["fraction_permuted"] > 0.9
    text = report(em, switched)  # handled: the same verdict as without switching
    assert "of draws had their labels permuted" in text and "Verdict: OK" in text


def test_already_relabelled_posterior_keeps_its_labels(agree):
    """Relabelled against a permuted reference: EM is aligned to the posterior instead."""
    _, em, post = agree
    perm = np.array([2, 0, 3, 1])
    other = post.relabel(reference=permute(em.params, perm))
    table = em_vs_posterior(em, other)
    assert table.attrs["matching"] == "EM aligned to the posterior"
    np.testing.assert_array_equal(table.attrs["em_permutation"], perm)
    # the table stays an ordinary DataFrame: pandas compares attrs when copying
    assert table.astype({"ess_bulk": float}).round({"em": 2}).shape == table.shape
    means = table[table.parameter == "mean"].em.to_numpy().reshape(4, 2)
    np.testing.assert_allclose(means, np.asarray(em.params.means)[perm])
    assert table.inside.all()
    # with relabel=False nothing is matched and the components are mismatched
    assert not em_vs_posterior(em, other, relabel=False).inside.all()


def test_gmmparams_and_emresult_give_the_same_table(agree):
    _, em, post = agree
    a, b = em_vs_posterior(em, post), em_vs_posterior(em.params, post)
    np.testing.assert_allclose(a.em, b.em)


def test_bad_inputs(agree):
    X, em, post = agree
    with pytest.raises(TypeError, match="EMResult or GMMParams"):
        em_vs_posterior({"weights": 1}, post)
    with pytest.raises(ValueError, match="no batch axes"):
        em_vs_posterior(post.params, post)
    with pytest.raises(TypeError, match="Posterior"):
        em_vs_posterior(em, post.params)
    em3 = bg.fit_em(X, 3, seed=0)
    with pytest.raises(ValueError, match="K=3"):
        em_vs_posterior(em3, post)
    with pytest.raises(ValueError, match="hdi_prob"):
        em_vs_posterior(em, post, hdi_prob=1.5)


# ---------------------------------------------------------------- whole model ---
def test_compare_model_numbers(agree):
    X, em, post = agree
    model = em_vs_posterior_summary(em, post)
    ll_em = float(np.asarray(em.params.log_prob(X)).sum())
    assert model["em_log_likelihood"] == pytest.approx(ll_em)
    assert model["em_log_likelihood"] == pytest.approx(em.log_likelihood, rel=1e-6)
    ll = np.asarray(post.params.log_prob(X)).sum(-1).ravel()
    assert model["log_likelihood_quantile"] == pytest.approx((ll <= ll_em).mean())
    assert model["log_likelihood_quantile"] > 0.9  # the ML estimate sits above the draws
    resp = posterior_membership(post.params, X)
    labels = resp.argmax(1)
    assert model["adjusted_rand_index"] == pytest.approx(
        adjusted_rand_score(em.predict(X), labels)
    )
    tv = 0.5 * np.abs(em.predict_proba(X) - resp).sum(1)
    assert model["membership_mad"] == pytest.approx(tv.mean())
    low, high = model["post_log_likelihood_hdi"]
    assert low < model["post_log_likelihood_mean"] < high


def test_posterior_membership_matches_explicit_average(agree):
    X, _, post = agree
    sub = post.params[:, :7]
    expected = np.asarray(sub.responsibilities(X[:50])).mean(axis=(0, 1))
    np.testing.assert_allclose(posterior_membership(sub, X[:50]), expected, rtol=1e-10)


def test_report_flags_a_worse_local_optimum(agree):
    _, _, post = agree
    bad = bg.GMMParams(  # two clusters merged, one split: far below the posterior
        weights=np.full(4, 0.25),
        means=np.array([[0.0, -3.0], [-3.0, 4.0], [4.0, 3.0], [4.0, 5.0]]),
        covariances=np.stack([np.diag([16.0, 1.0])] + [np.eye(2)] * 3),
    )
    model = em_vs_posterior_summary(bad, post)
    assert model["log_likelihood_quantile"] == 0.0
    assert model["adjusted_rand_index"] < 0.9
    text = report(bad, post)
    assert "worse local optimum" in text and "Verdict: WARNING" in text


def test_report_flags_sampler_problems(agree):
    _, em, post = agree
    p = post.params.to_numpy()
    stuck = {k: v.copy() for k, v in p.items()}
    stuck["means"][1] += 0.5  # chain 1 sits elsewhere: R-hat of the means blows up
    stats = good_stats()
    stats["diverging"][0, :3] = True
    stats["energy"] = np.cumsum(np.random.default_rng(0).normal(size=(C, S)), axis=1)  # BFMI ~ 0
    bad = post.replace(params=bg.GMMParams(**stuck), sample_stats=stats)
    lines = [line.strip() for line in report(em, bad).splitlines()]
    assert any(line.startswith("WARNING  max R-hat") for line in lines)
    assert any(line.startswith("WARNING  3 divergent transition(s)") for line in lines)
    assert any(line.startswith("WARNING  energy BFMI") for line in lines)
    assert any(line.startswith("WARNING  label-invariant log-likelihood R-hat") for line in lines)
    assert lines[-1].startswith("Verdict: WARNING")


def _check_lines(text):
    """``{subject: (verdict, line)}`` for the lines of a report's sampler and EM checks."""
    subjects = {
        "max R-hat": "max R-hat",
        "min ESS": "min ESS",
        "invariant R-hat": "label-invariant log-likelihood R-hat",
        "divergences": "divergent transition(s)",
        "BFMI": "energy BFMI",
        "outside": "EM values lie",
        "log-likelihood": "EM log-likelihood",
        "labels": "hard labels",
    }
    found = {}
    for line in text.splitlines():
        verdict, _, rest = line.strip().partition("  ")
        for subject, marker in subjects.items():
            if verdict in ("OK", "WARNING") and marker in rest and subject not in found:
                found[subject] = (verdict, rest)
    return found


# what a passing line may say, and what only a failing one may
PASS_REMARKS = ("chains explore the same mixture", "lie inside the")
FAIL_REMARKS = (
    "the chains disagree",
    "chains explore different mixtures",
    "too few effective draws",
    "raise target_accept_prob",
    "explores the energy poorly",
    "worse local optimum",
    "clusters the points differently",
    "lie outside",
)


def test_report_remarks_follow_each_lines_own_verdict(agree):
    """A remark that says a check passed never stands on a WARNING line, and advice after a
    failure never on an OK line, whichever of the other checks pass."""
    _, em, post = agree
    p = post.params.to_numpy()
    stuck = {k: v.copy() for k, v in p.items()}
    stuck["means"][1] += 0.5
    stats = good_stats()
    stats["diverging"][0, :3] = True
    stats["energy"] = np.cumsum(np.random.default_rng(0).normal(size=(C, S)), axis=1)
    merged = bg.GMMParams(  # a worse local optimum with other clusters than the posterior's
        weights=np.full(4, 0.25),
        means=np.array([[0.0, -3.0], [-3.0, 4.0], [4.0, 3.0], [4.0, 5.0]]),
        covariances=np.stack([np.diag([16.0, 1.0])] + [np.eye(2)] * 3),
    )
    good = _check_lines(report(em, post))
    bad = _check_lines(
        report(merged, post.replace(params=bg.GMMParams(**stuck), sample_stats=stats))
    )
    assert len(good) == len(bad) == 8, (good, bad)
    assert {verdict for verdict, _ in good.values()} == {"OK"}
    assert {verdict for verdict, _ in bad.values()} == {"WARNING"}
    assert "(chains explore the same mixture)" in good["invariant R-hat"][1]
    for _, rest in good.values():
        assert not any(remark in rest for remark in FAIL_REMARKS), rest
    for _, rest in bad.values():
        assert not any(remark in rest for remark in PASS_REMARKS), rest
    for subject in ("max R-hat", "min ESS", "invariant R-hat", "BFMI", "labels"):
        assert any(remark in bad[subject][1] for remark in FAIL_REMARKS), bad[subject]
    text = report(merged, post.replace(params=bg.GMMParams(**stuck), sample_stats=stats))
    assert text.splitlines()[-1] == "Verdict: WARNING: 8 check(s) failed; read the lines above."


def test_report_says_when_r_hat_and_ess_cannot_be_computed(agree):
    """Three draws per chain: no R-hat or ESS; the lines say why instead of printing nan."""
    _, em, post = agree
    short = post.replace(params=post.params[:, :3], sample_stats={})
    lines = [line.strip() for line in report(em, short).splitlines()]
    assert "WARNING  max R-hat not available (needs at least 2 chains of 4 draws)" in lines
    assert "WARNING  min ESS not available (needs at least 4 draws per chain)" in lines
    assert not any("nan" in line for line in lines)


def test_report_lists_uncertain_points(disagree):
    X, em, post = disagree
    text = report(em, post, membership_threshold=0.8)
    resp = posterior_membership(post.relabel(reference=em.params).params, X)
    top = resp.max(1)
    uncertain = np.flatnonzero(top < 0.8)
    assert 0 < uncertain.size < len(X)
    assert f"{uncertain.size} of {len(X)} points" in text
    most = int(uncertain[np.argmin(top[uncertain])])
    assert f"most uncertain first: {most}" in text


# ------------------------------------------------- posterior predictive checks ---
def test_ppc_statistics_observed_values_and_p_values(agree):
    X, _, post = agree
    table = ppc_statistics(X, post, n_draws=100, seed=0).set_index(["statistic", "feature"])
    assert table.attrs["n_draws"] == 100
    assert table.loc[("mean", "1"), "observed"] == pytest.approx(X[:, 1].mean())
    assert table.loc[("sd", "0"), "observed"] == pytest.approx(X[:, 0].std(ddof=1))
    assert table.loc[("skewness", "0"), "observed"] == pytest.approx(st.skew(X[:, 0]))
    assert table.loc[("q95", "1"), "observed"] == pytest.approx(np.quantile(X[:, 1], 0.95))
    assert table.loc[("correlation", "0,1"), "observed"] == pytest.approx(np.corrcoef(X.T)[0, 1])
    assert table.p_value.between(0, 1).all()
    assert (table.loc[["mean", "sd", "correlation"], "p_two_sided"] > 0.05).all()
    names, _, rep = ppc_replicates(X, post, n_draws=100, seed=0)
    assert rep.shape == (100, len(names))
    # the replicated mean varies by sampling (sd / sqrt(N)) plus the posterior uncertainty
    # of the mixture mean (about sd / sqrt(N) again): sqrt(2) sd / sqrt(N) in all
    expected = np.sqrt(2) * X[:, 0].std() / np.sqrt(len(X))
    assert table.loc[("mean", "0"), "rep_sd"] == pytest.approx(expected, rel=0.3)


def test_ppc_detects_misfit(disagree):
    X, _, post = disagree
    p = post.params.to_numpy()
    p["covariances"] = p["covariances"] * 4.0  # replicated components twice as wide
    wide = post.replace(params=bg.GMMParams(**p))
    table = ppc_statistics(X, wide, n_draws=100).set_index(["statistic", "feature"])
    assert table.loc[("sd", "0"), "p_value"] > 0.95  # replicates too spread out
    assert table.loc[("sd", "0"), "p_two_sided"] < 0.1
    assert table.loc[("mean", "0"), "p_two_sided"] > 0.1  # the location is still right


def test_ppc_warns_with_sample_weights(agree):
    X, _, post = agree
    weighted = post.replace(sample_weight=np.full(len(X), 2.0))
    with pytest.warns(UserWarning, match="sample weights"):
        ppc_statistics(X, weighted, n_draws=10)


# ------------------------------------------------------------ the real sampler ---
def test_real_posterior_map_agrees_ml_disagrees_under_strong_prior():
    """One NUTS run under a strong Inverse-Wishart prior (100 pseudo-observations of
    variance 4) that pulls both variances up. MAP-EM under the same prior is the mode of
    that posterior and agrees with it; ML EM ignores the prior: its variances fall below
    the intervals, while its means, which the prior leaves alone, stay inside."""
    pytest.importorskip("numpyro")
    from bayesgmm.bayes import sample_posterior

    X = bg.datasets.make_two_gaussians_1d(200, seed=0)
    prior = bg.Prior(
        weight_concentration=[1.0, 1.0],
        mean=X.mean(keepdims=True),
        mean_precision=0.01,
        dof=100.0,
        scale=[[100.0 * 4.0]],
    )
    map_em = bg.fit_em(X, 2, prior=prior, seed=0)
    ml_em = bg.fit_em(X, 2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        post = sample_posterior(
            X,
            2,
            prior=prior,
            init=map_em,
            num_chains=2,
            num_warmup=300,
            num_samples=300,
            progress_bar=False,
            seed=0,
        )
    agree = em_vs_posterior(map_em, post)
    core = agree[agree.parameter.isin(["weight", "mean", "covariance"])]
    assert core.inside.all(), core
    assert core.z.abs().max() < 1.5
    disagree = em_vs_posterior(ml_em, post).set_index("name")
    cov = disagree.loc[["covariances[0,0,0]", "covariances[1,0,0]"]]
    assert not cov.inside.any() and (cov.z < -2).all()
    assert disagree.loc[["means[0,0]", "means[1,0]"], "inside"].all()
    text = report(ml_em, post)
    assert "2 of 6 EM values lie outside" in text and "covariances[0,0,0]" in text
    assert "label switching" in text and "energy BFMI" in text
    assert "max R-hat" in text and "min ESS" in text and "0 divergent" in text
    assert "all 6 EM values lie inside" in report(map_em, post)
