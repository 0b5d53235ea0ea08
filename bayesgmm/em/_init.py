"""Initial responsibilities for EM: k-means++, Lloyd's k-means, random.

Every method returns responsibilities of shape (N, K); EM turns them into
initial parameters with one M-step (as scikit-learn does). Rows with zero
sample weight are never chosen as centres. All functions are jittable and take
the PRNG key first.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["INIT_METHODS", "initial_responsibilities", "kmeans_plusplus"]

INIT_METHODS = ("kmeans++", "kmeans", "random", "random_from_data")
_LLOYD_ITERATIONS = 10


def _sq_distances(X, centers):
    """Squared Euclidean distances, shape (N, K), by one matrix product."""
    d2 = (
        jnp.sum(X * X, axis=1)[:, None]
        - 2.0 * X @ centers.T
        + jnp.sum(centers * centers, axis=1)[None, :]
    )
    return jnp.maximum(d2, 0.0)


def _nearest(X, centers, n_components, active=None):
    d2 = _sq_distances(X, centers)
    if active is not None:  # padding components are never nearest
        d2 = jnp.where(active, d2, jnp.inf)
    return jax.nn.one_hot(jnp.argmin(d2, axis=1), n_components, dtype=X.dtype)


def active_components(n_components: int, n_active):
    """Mask of the components in use, (K,) booleans; None when all are (``n_active`` None).

    Small fits run with ``K`` padded up to a shape class (see
    :func:`bayesgmm._core._blocks.component_class`): the first ``n_active``
    components are the model's, the rest have weight 0 throughout.
    """
    if n_active is None:
        return None
    return jnp.arange(n_components) < n_active


def kmeans_plusplus(key, X, sample_weight, n_components: int, n_active=None):
    """Centres chosen by weighted k-means++ (Arthur & Vassilvitskii, 2007).

    Parameters
    ----------
    key : jax.random key
    X : array of shape (N, D)
    sample_weight : array of shape (N,)
    n_components : int
    n_active : int or traced int, optional
        Only the first ``n_active`` centres are chosen (the rest stay 0): the
        centres of a padded fit are those of the unpadded one, because the
        ``i``-th of ``split(key, n)`` does not depend on ``n``.

    Returns
    -------
    array of shape (K, D)
    """
    keys = jax.random.split(key, n_components)
    log_w = jnp.log(sample_weight)

    # The first centre is drawn in the loop too, with every distance 1 (log 1 = 0
    # exactly, so its logits are log_w): one sampling step in the program, not
    # two (a second costs about 0.3 s of compilation).
    def pick(i, carry):
        centers, d2 = carry
        idx = jax.random.categorical(keys[i], log_w + jnp.log(d2))
        centers = centers.at[i].set(X[idx])
        new = jnp.sum((X - X[idx]) ** 2, axis=1)
        return centers, jnp.where(i == 0, new, jnp.minimum(d2, new))

    stop = n_components if n_active is None else n_active
    centers = jnp.zeros((n_components, X.shape[1]), X.dtype)
    centers, _ = jax.lax.fori_loop(0, stop, pick, (centers, jnp.ones_like(log_w)))
    return centers


def _lloyd(X, sample_weight, centers, n_iter: int, active=None):
    """``n_iter`` weighted Lloyd iterations; an empty cluster keeps its centre."""

    def step(_, centers):
        assign = _nearest(X, centers, centers.shape[0], active) * sample_weight[:, None]
        counts = assign.sum(axis=0)
        new = (assign.T @ X) / jnp.maximum(counts, 1e-300)[:, None]
        return jnp.where(counts[:, None] > 0, new, centers)

    return jax.lax.fori_loop(0, n_iter, step, centers)


def initial_responsibilities(key, X, sample_weight, n_components: int, method: str, n_active=None):
    """Initial responsibilities by ``method``.

    Parameters
    ----------
    key : jax.random key
    X : array of shape (N, D)
    sample_weight : array of shape (N,)
    n_components : int
    method : {"kmeans++", "kmeans", "random", "random_from_data"}
        ``"kmeans++"``: hard assignment to k-means++ centres.
        ``"kmeans"``: k-means++ then 10 weighted Lloyd iterations, hard assignment.
        ``"random"``: uniform random responsibilities, normalised per row.
        ``"random_from_data"``: K distinct rows drawn (in proportion to their
        weight) as centres, hard assignment to the nearest. Unlike
        scikit-learn's method of that name, every row is assigned, so the
        initial covariances come from the data rather than from ``reg_covar``.
    n_active : int or traced int, optional
        With ``K`` padded to a shape class, the number of components in use:
        the padding components get no responsibility, and the result's first
        ``n_active`` columns are what ``n_components=n_active`` gives.

    Returns
    -------
    array of shape (N, K)
    """
    active = active_components(n_components, n_active)
    if method == "kmeans++":
        centers = kmeans_plusplus(key, X, sample_weight, n_components, n_active)
    elif method == "kmeans":
        centers = kmeans_plusplus(key, X, sample_weight, n_components, n_active)
        centers = _lloyd(X, sample_weight, centers, _LLOYD_ITERATIONS, active)
    elif method == "random":
        # column k from the k-th key, so that padding adds columns and changes none
        keys = jax.random.split(key, n_components)
        resp = jax.vmap(lambda k: jax.random.uniform(k, (X.shape[0],), dtype=X.dtype))(keys).T
        if active is not None:
            resp = jnp.where(active, resp, 0.0)
        return resp / resp.sum(axis=1, keepdims=True)
    elif method == "random_from_data":
        # K distinct rows in proportion to their weight: the K largest of
        # log(w) + Gumbel noise (the first K of them whatever K is padded to)
        scores = jnp.log(sample_weight) + jax.random.gumbel(key, sample_weight.shape, X.dtype)
        centers = X[jax.lax.top_k(scores, n_components)[1]]
    else:
        raise ValueError(f"init must be one of {INIT_METHODS} or a GMMParams; got {method!r}.")
    return _nearest(X, centers, n_components, active)
