"""Split-merge moves of the sparse sampler: the marginal likelihood they need.

Checked against SciPy densities (Chib's identity at random parameters).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

import bayesgmm as bg
from bayesgmm._core import _conjugate
from bayesgmm._core import covariance as _cov

STRUCTURES = ["full", "diag", "spherical", "tied"]


def _stats(X, z, k_max):
    onehot = (z[..., None] == np.arange(k_max)).astype(float)
    return (
        onehot.sum(-2),
        np.einsum("...nk,nd->...kd", onehot, X),
        np.einsum("...nk,nd,ne->...kde", onehot, X, X),
    )


def _chib(X, z, prior, structure, rng):
    """``log p(X | z)`` as ``log p(X | theta) + log p(theta) - log p(theta | X)``, random theta.

    Posterior hyperparameters computed here in NumPy from the model's
    definition, densities from SciPy; the identity holds at every theta only
    if the posterior is the right one.
    """
    m0, kappa = np.asarray(prior.mean), float(prior.mean_precision)
    nu, psi = float(prior.dof), np.asarray(prior.scale)
    D = X.shape[1]
    labels = np.unique(z)
    post = []
    for k in labels:
        Xk = X[z == k]
        n, xbar = len(Xk), Xk.mean(0)
        kn = kappa + n
        mn = (kappa * m0 + n * xbar) / kn
        S = (Xk - xbar).T @ (Xk - xbar) + kappa * n / kn * np.outer(xbar - m0, xbar - m0)
        post.append((n, kn, mn, S))
    mus = [mn + rng.normal(scale=0.3, size=D) for _, _, mn, _ in post]
    log_lik = log_prior = log_post = 0.0
    if structure in ("full", "tied"):
        if structure == "full":
            covs = [(psi + S) / (nu + n + D + 1) * rng.uniform(0.7, 1.4) for n, _, _, S in post]
            for (n, _, _, S), cov in zip(post, covs, strict=True):
                log_prior += st.invwishart(nu, psi).logpdf(cov)
                log_post -= st.invwishart(nu + n, psi + S).logpdf(cov)
        else:
            n_all, S_all = sum(p[0] for p in post), sum(p[3] for p in post)
            cov = (psi + S_all) / (nu + n_all + D + 1) * rng.uniform(0.7, 1.4)
            covs = [cov] * len(post)
            log_prior += st.invwishart(nu, psi).logpdf(cov)
            log_post -= st.invwishart(nu + n_all, psi + S_all).logpdf(cov)
    elif structure == "diag":
        covs = []
        for n, _, _, S in post:
            an, bn = (nu + n) / 2, np.diag(psi + S) / 2
            var = bn / (an + 1) * rng.uniform(0.7, 1.4, size=D)
            covs.append(np.diag(var))
            log_prior += st.invgamma(nu / 2, scale=np.diag(psi) / 2).logpdf(var).sum()
            log_post -= st.invgamma(an, scale=bn).logpdf(var).sum()
    else:
        covs = []
        for n, _, _, S in post:
            a0, b0 = nu * D / 2, np.trace(psi) / 2
            an, bn = a0 + n * D / 2, b0 + np.trace(S) / 2
            var = bn / (an + 1) * rng.uniform(0.7, 1.4)
            covs.append(var * np.eye(D))
            log_prior += st.invgamma(a0, scale=b0).logpdf(var)
            log_post -= st.invgamma(an, scale=bn).logpdf(var)
    for k, (_, kn, mn, _), mu, cov in zip(labels, post, mus, covs, strict=True):
        log_lik += st.multivariate_normal(mu, cov).logpdf(X[z == k]).sum()
        log_prior += st.multivariate_normal(m0, cov / kappa).logpdf(mu)
        log_post -= st.multivariate_normal(mn, cov / kn).logpdf(mu)
    return log_lik + log_prior + log_post


@pytest.mark.parametrize("structure", STRUCTURES)
def test_log_evidence_is_the_marginal_likelihood(structure):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=(7, 3)), rng.normal(3.0, 0.5, size=(5, 3))])
    prior = bg.Prior.default(X, 3)
    z = np.array([0] * 7 + [2] * 5)
    z[[1, 8]] = 2, 0
    fam = _cov.get(structure).conjugate
    with jax.enable_x64(True):
        got = float(_conjugate.log_evidence(prior, *map(jnp.asarray, _stats(X, z, 3)), fam))
    for _ in range(3):  # the identity must hold wherever theta is
        assert got == pytest.approx(_chib(X, z, prior, structure, rng), rel=1e-10, abs=1e-9)
    # an empty component adds nothing; another partition has another evidence
    other = np.where(np.arange(12) < 6, 0, 2)
    with jax.enable_x64(True):
        moved = float(_conjugate.log_evidence(prior, *map(jnp.asarray, _stats(X, other, 3)), fam))
    assert abs(moved - got) > 0.1
