"""Helpers shared by test modules (pytest puts this folder on sys.path)."""

import numpy as np
import scipy.stats as st

import bayesgmm as bg


def approx_draws(center, n_eff, shape=(2, 400), seed=0):
    """Draws around ``center`` as a posterior from ``n_eff`` points would scatter.

    weights ~ Dirichlet(n_eff w), means ~ N(m_k, Sigma_k / (n_eff w_k)),
    covariances ~ InvWishart(n_eff w_k + D + 1, n_eff w_k Sigma_k) (mean Sigma_k).
    """
    rng = np.random.default_rng(seed)
    p = center.to_numpy()
    K, D = center.n_components, center.n_features
    M = int(np.prod(shape))
    n_k = n_eff * p["weights"]
    w = rng.dirichlet(n_k, size=M)
    means = np.empty((M, K, D))
    covs = np.empty((M, K, D, D))
    for k in range(K):
        chol = np.linalg.cholesky(p["covariances"][k] / n_k[k])
        means[:, k] = p["means"][k] + rng.standard_normal((M, D)) @ chol.T
        iw = st.invwishart(df=n_k[k] + D + 1, scale=n_k[k] * p["covariances"][k])
        covs[:, k] = np.asarray(iw.rvs(size=M, random_state=rng)).reshape(M, D, D)
    covs = 0.5 * (covs + np.swapaxes(covs, -1, -2))
    return bg.GMMParams(
        weights=w.reshape((*shape, K)),
        means=means.reshape((*shape, K, D)),
        covariances=covs.reshape((*shape, K, D, D)),
    )
