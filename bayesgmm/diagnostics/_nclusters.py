"""How many clusters: ``K+`` per draw, the table of p(K+) and p(K), a point partition.

For a posterior sampled under :meth:`bayesgmm.Prior.sparse` (a sparse finite
mixture, or the telescoping sampler with a prior on K).

**How the clusters are identified** (:func:`clustering`), as Malsiner-Walli,
Frühwirth-Schnatter & Grün (2016, section 4) and the telescope package do it:

1. ``K+`` is estimated by the mode of its posterior; only the draws with
   exactly that many non-empty components are kept, and in each only its
   non-empty components (weights renormalised).
2. The kept components' means, all draws pooled (the *point process
   representation*), are clustered into ``K+`` groups by k-means, started
   from the means of the kept draw with the highest log-likelihood.
3. A draw whose ``K+`` components fall into ``K+`` different groups is
   relabelled by its groups; a draw where two fall into one group is not a
   permutation and is dropped (its share is reported).
4. Each row's membership probabilities are its responsibilities averaged over
   the relabelled draws (the Rao-Blackwellised version of counting its sampled
   assignments); the point partition is their argmax and a row's uncertainty
   ``1 - max`` probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesgmm._core.params import GMMParams

__all__ = ["Clustering", "clustering", "k_posterior", "n_clusters"]

_NEEDS_SPARSE = (
    "this Posterior was not sampled under a sparse prior, so it has no number of clusters "
    "per draw; sample with prior=bayesgmm.Prior.sparse(X, k_max) and method='gibbs'."
)


def _stats(post):
    if "n_clusters" not in post.sample_stats:
        raise ValueError(_NEEDS_SPARSE)
    return post.sample_stats


def n_clusters(post) -> np.ndarray:
    """``K+``, the number of non-empty components of each draw: int array of shape (C, S)."""
    return np.asarray(_stats(post)["n_clusters"]).astype(np.int64)


def k_posterior(post):
    """Posterior (and prior) probabilities of the number of clusters and of components.

    Parameters
    ----------
    post : Posterior
        Sampled with a :meth:`bayesgmm.Prior.sparse` prior.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``k = 1..k_max``; columns ``p(K+|data)`` and
        ``prior p(K+)`` (exact, :func:`bayesgmm._core._sparse.prior_n_clusters`,
        for this N); with a prior on K also ``p(K|data)`` and ``prior p(K)``.
        ``attrs["mode"]`` is the posterior mode of K+.
    """
    import pandas as pd

    stats = _stats(post)
    kp = np.asarray(stats["n_clusters"]).ravel()
    k_max = post.n_components
    index = pd.RangeIndex(1, k_max + 1, name="k")
    table = {"p(K+|data)": np.bincount(kp, minlength=k_max + 1)[1:] / kp.size}
    sparse = post.cluster_prior
    n_rows = int(np.asarray(post.sample_weight).sum())
    if sparse is not None:
        table["prior p(K+)"] = sparse.prior_n_clusters(n_rows)
        if sparse.has_k_prior:
            K = np.asarray(stats["n_components"]).ravel()
            table["p(K|data)"] = np.bincount(K, minlength=k_max + 1)[1:] / K.size
            table["prior p(K)"] = sparse.prior_k()
    df = pd.DataFrame(table, index=index)
    df.attrs["mode"] = int(np.argmax(table["p(K+|data)"]) + 1)
    return df


@dataclass(frozen=True)
class Clustering:
    """A point estimate of the partition, with per-row uncertainty.

    Attributes
    ----------
    labels : ndarray of shape (N,)
        Cluster of each row, ``0..n_clusters - 1``.
    probabilities : ndarray of shape (N, n_clusters)
        Posterior membership probabilities (responsibilities averaged over the
        relabelled draws).
    uncertainty : ndarray of shape (N,)
        ``1 - probabilities.max(axis=1)``.
    n_clusters : int
        The ``K+`` used (the posterior mode unless chosen).
    params : GMMParams
        The relabelled draws with exactly ``n_clusters`` non-empty components,
        batch shape (M,): weights renormalised over the clusters.
    fraction_kept : float
        Share of all draws used: those with ``K+ = n_clusters`` whose
        components the point-process k-means classified as a permutation.
    fraction_non_permutation : float
        Share of the draws with ``K+ = n_clusters`` dropped because two of
        their components fell into one k-means group.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    uncertainty: np.ndarray
    n_clusters: int
    params: GMMParams
    fraction_kept: float
    fraction_non_permutation: float


def _kmeans(points, centers, n_iter: int = 100):
    """Lloyd's k-means from ``centers``; labels of ``points`` (M, D)."""
    for _ in range(n_iter):
        d = ((points[:, None, :] - centers[None]) ** 2).sum(-1)
        labels = d.argmin(1)
        new = np.array(
            [
                points[labels == j].mean(0) if (labels == j).any() else centers[j]
                for j in range(centers.shape[0])
            ]
        )
        if np.allclose(new, centers):
            break
        centers = new
    return labels


def _mean_resp(X, params: GMMParams, chunk: int = 100) -> np.ndarray:
    """Responsibilities of rows X (N, D) averaged over a batch of draws (M,): (N, k)."""
    from scipy.special import log_softmax

    total = 0.0
    M = params.weights.shape[0]
    for start in range(0, M, chunk):
        lp = np.asarray(params[start : start + chunk].log_prob_components(X))
        total = total + np.exp(log_softmax(lp, axis=-1)).sum(0)
    return total / M


def clustering(post, X=None, *, n_clusters: int | None = None) -> Clustering:
    """The partition of the rows, identified as in the module docstring.

    Parameters
    ----------
    post : Posterior
        Sampled with a :meth:`bayesgmm.Prior.sparse` prior.
    X : array-like of shape (N, D), optional
        Rows to classify; the posterior's data by default.
    n_clusters : int, optional
        ``K+`` to condition on; the posterior mode by default.

    Returns
    -------
    Clustering
    """
    stats = _stats(post)
    kp = np.asarray(stats["n_clusters"]).reshape(-1)
    sizes = np.asarray(stats["cluster_sizes"]).reshape(kp.size, -1)
    k_hat = int(np.argmax(np.bincount(kp))) if n_clusters is None else int(n_clusters)
    keep = np.flatnonzero(kp == k_hat)
    if keep.size == 0:
        raise ValueError(f"no draw has K+ = {k_hat} non-empty components.")
    flat = post.params.flatten_batch()
    # the non-empty components of each kept draw, in the draw's order
    filled = np.argsort(sizes[keep] == 0, axis=1, kind="stable")[:, :k_hat]
    w = np.take_along_axis(flat.weights[keep], filled, 1)
    mu = np.take_along_axis(flat.means[keep], filled[..., None], 1)
    cov = np.take_along_axis(flat.covariances[keep], filled[..., None, None], 1)
    # point-process k-means on the means, started at the best draw's means
    ll = np.asarray(stats["log_likelihood_start"]).reshape(-1)[keep]
    M, D = mu.shape[0], mu.shape[-1]
    scale = mu.reshape(-1, D).std(0) + 1e-12
    labels = _kmeans((mu / scale).reshape(-1, D), mu[np.argmax(ll)] / scale).reshape(M, k_hat)
    perm_ok = np.all(np.sort(labels, 1) == np.arange(k_hat), axis=1)
    if not perm_ok.any():
        raise ValueError(
            "no draw could be relabelled: the point-process k-means never classified the "
            f"{k_hat} components of a draw into {k_hat} different groups."
        )
    inv = np.argsort(labels[perm_ok], axis=1)  # new[j] = old[inv[j]]
    w = np.take_along_axis(w[perm_ok], inv, 1)
    w = w / w.sum(1, keepdims=True)
    params = GMMParams._unchecked(
        w,
        np.take_along_axis(mu[perm_ok], inv[..., None], 1),
        np.take_along_axis(cov[perm_ok], inv[..., None, None], 1),
    )
    rows = post.X if X is None else np.asarray(X, dtype=post.X.dtype).reshape(-1, post.n_features)
    prob = _mean_resp(rows, params)
    labels_rows = prob.argmax(1)
    return Clustering(
        labels=labels_rows,
        probabilities=prob,
        uncertainty=1.0 - prob.max(1),
        n_clusters=k_hat,
        params=params,
        fraction_kept=float(perm_ok.sum() / kp.size),
        fraction_non_permutation=float(1.0 - perm_ok.mean()),
    )
