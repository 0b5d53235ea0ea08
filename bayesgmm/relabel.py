"""Label switching, first-class: relabelling of posterior draws and label-invariant diagnostics.

A mixture likelihood is invariant to permutations of the component labels, so
MCMC chains may visit the ``K!`` relabelled copies of each mode, and different
chains may settle in different copies. Summaries of ``weights[..., k]`` are
then meaningless until every draw is relabelled against a common reference.

- :func:`permute` applies given permutations to batched parameters.
- :func:`relabel` finds them: by optimal assignment of each draw to a reference
  (``"hungarian"``) or by Stephens' (2000) algorithm (``"stephens"``).
- :func:`log_likelihood_draws`, :func:`density_on_grid`, :func:`co_clustering`
  and :func:`invariant_diagnostics` need no relabelling at all: they are
  functions of the mixture, not of its labelling.

Convention: a permutation ``perm`` of shape (K,) maps old labels to new ones by
``new[..., k] = old[..., perm[k]]``.
"""

from __future__ import annotations

import itertools
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from bayesgmm import _linalg
from bayesgmm._precision import x64
from bayesgmm._validation import (
    ConvergenceWarning,
    check_data,
    check_positive_int,
    check_sample_weight,
)
from bayesgmm.params import GMMParams

__all__ = [
    "RelabelResult",
    "co_clustering",
    "density_on_grid",
    "invariant_diagnostics",
    "log_likelihood_draws",
    "permute",
    "relabel",
]

RELABEL_METHODS = ("hungarian", "stephens")

# Largest K for which the assignment scores all K! permutations at once instead of
# calling linear_sum_assignment once per draw (about 2 us a call): measured faster
# up to K = 4 (24 permutations), slower from K = 5 on.
_BRUTE_FORCE_MAX_K = 4
# Largest number of observations for the (N, N) co-clustering matrix.
_CO_CLUSTERING_MAX_N = 5000
# Elements of the largest (draws x N x K) block of responsibilities held at once.
_BLOCK_ELEMENTS = 1 << 22


class RelabelResult(NamedTuple):
    """The outcome of :func:`relabel`.

    Attributes
    ----------
    params : GMMParams
        The relabelled draws, same batch shape as the input.
    permutations : int ndarray of shape S + (K,)
        The permutation applied to each draw: ``new[..., k] = old[..., perm[k]]``.
    fraction_permuted : float
        Fraction of draws whose permutation is not the identity.
    reference : GMMParams
        What the draws were aligned to: the given reference, or the pivot draw.
    n_iter : int
        Iterations of Stephens' algorithm (0 for ``"hungarian"``).
    """

    params: GMMParams
    permutations: np.ndarray
    fraction_permuted: float
    reference: GMMParams
    n_iter: int


# ------------------------------------------------------------------ helpers ---
def _check_params(params, name: str = "params") -> GMMParams:
    if not isinstance(params, GMMParams):
        raise TypeError(f"{name} must be GMMParams; got {type(params).__name__}.")
    return params


def _check_chain_draw(params: GMMParams, what: str) -> tuple[int, int]:
    batch = params.batch_shape
    if len(batch) != 2:
        raise ValueError(
            f"{what} needs params with batch axes (chain, draw); got batch shape {batch}. "
            "Reshape the draws to (n_chains, n_draws, ...) first (one chain is (1, n_draws))."
        )
    if batch[1] < 4:
        raise ValueError(f"{what} needs at least 4 draws per chain; got {batch[1]}.")
    return batch


def _flat(params: GMMParams) -> GMMParams:
    """Merge the batch axes into one leading axis of size M (1 for unbatched params)."""
    nb = len(params.batch_shape)
    return jax.tree.map(lambda leaf: leaf.reshape((-1, *leaf.shape[nb:])), params)


def _check_permutations(permutations, batch: tuple[int, ...], K: int) -> np.ndarray:
    perm = np.asarray(permutations)
    if perm.dtype.kind not in "iu":
        if perm.dtype.kind == "f" and perm.size and np.array_equal(perm, np.round(perm)):
            perm = perm.astype(np.int64)
        else:
            raise ValueError(f"permutations must be integers; got dtype {perm.dtype}.")
    if perm.shape != (*batch, K):
        raise ValueError(
            f"permutations must have shape S + (K,) = {(*batch, K)} (one permutation of the "
            f"K={K} components per draw); got {perm.shape}."
        )
    if not (np.sort(perm, axis=-1) == np.arange(K)).all():
        raise ValueError(
            f"every permutations[..., :] must be a permutation of 0..{K - 1}; "
            "some rows repeat or miss a component."
        )
    return perm.astype(np.int64)


def _identity_fraction(perm: np.ndarray) -> float:
    K = perm.shape[-1]
    changed = (perm.reshape(-1, K) != np.arange(K)).any(axis=-1)
    return float(changed.mean())


# ------------------------------------------------------------------ permute ---
@x64
def permute(params: GMMParams, permutations) -> GMMParams:
    """Relabel the components of every draw by a given permutation.

    Parameters
    ----------
    params : GMMParams with batch shape S
    permutations : int array-like of shape S + (K,)
        One permutation of ``0..K-1`` per draw; the result holds
        ``new[..., k] = old[..., perm[k]]`` for weights, means and covariances.

    Returns
    -------
    GMMParams with batch shape S

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GMMParams
    >>> from bayesgmm.relabel import permute
    >>> p = GMMParams(weights=[0.3, 0.7], means=[[0.0], [4.0]],
    ...               covariances=[[[1.0]], [[0.5]]])
    >>> np.asarray(permute(p, [1, 0]).means[:, 0]).tolist()
    [4.0, 0.0]
    """
    params = _check_params(params)
    perm = jnp.asarray(_check_permutations(permutations, params.batch_shape, params.n_components))
    return GMMParams._unchecked(
        jnp.take_along_axis(params.weights, perm, axis=-1),
        jnp.take_along_axis(params.means, perm[..., None], axis=-2),
        jnp.take_along_axis(params.covariances, perm[..., None, None], axis=-3),
    )


# --------------------------------------------------------------- assignment ---
def _all_permutations(K: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(K))), dtype=np.int64)


def _assign(cost: np.ndarray) -> np.ndarray:
    """Optimal permutation per draw for a cost ``cost[m, i, k]`` of old label i -> new k.

    Parameters
    ----------
    cost : array of shape (M, K, K)

    Returns
    -------
    int array of shape (M, K)
        ``perm[m, k]``: the old component that becomes new component ``k``,
        minimising ``sum_k cost[m, perm[k], k]``. For ``K <= 4`` all ``K!``
        permutations are scored at once (ties go to the identity, which comes
        first); beyond that ``linear_sum_assignment`` runs once per draw.
    """
    cost = np.asarray(cost, dtype=np.float64)
    M, K, _ = cost.shape
    if not np.isfinite(cost).all():
        raise ValueError(
            "the relabelling cost is not finite for some draws (NaN or infinite parameters, "
            "or singular covariances); check the draws before relabelling."
        )
    out = np.empty((M, K), dtype=np.int64)
    if K <= _BRUTE_FORCE_MAX_K:
        perms = _all_permutations(K)  # (P, K)
        block = max(1, _BLOCK_ELEMENTS // (len(perms) * K))
        for start in range(0, M, block):  # blocks of draws bound the (M, P, K) scores
            total = cost[start : start + block, perms, np.arange(K)].sum(axis=-1)  # (B, P)
            out[start : start + block] = perms[np.argmin(total, axis=-1)]
        return out
    for m in range(M):  # the only Python loop: one small assignment problem per draw
        _, cols = linear_sum_assignment(cost[m].T)  # rows: new label k, cols: old label
        out[m] = cols
    return out


def _gaussian_stats(params: GMMParams):
    """Per component, from one Cholesky: whitening factor ``P``, precision ``P P^T``, log-det."""
    chol = _linalg.cholesky(params.covariances)
    prec_chol = _linalg.precision_cholesky(chol)  # P = L^{-T}, cov^{-1} = P P^T
    precision = jnp.einsum("...kde,...kfe->...kdf", prec_chol, prec_chol)
    return prec_chol, precision, _linalg.logdet_from_cholesky(chol)


def _sym_kl_cost_one(draw: GMMParams, ref: GMMParams):
    """Cost ``c[i, j]`` of matching draw component i to reference component j, (K, K).

    The symmetrised generalised KL divergence between the weighted component
    measures ``w_i N(mu_i, S_i)`` and ``v_j N(m_j, T_j)``::

        (w_i - v_j) (log w_i - log v_j) + w_i KL(N_i || N_j) + v_j KL(N_j || N_i)
    """
    D = draw.means.shape[-1]
    tiny = jnp.finfo(draw.weights.dtype).tiny
    p_d, prec_d, logdet_d = _gaussian_stats(draw)
    p_r, prec_r, logdet_r = _gaussian_stats(ref)
    tr_dr = jnp.einsum("jde,ide->ij", prec_r, draw.covariances)  # tr(T_j^{-1} S_i)
    tr_rd = jnp.einsum("ide,jde->ij", prec_d, ref.covariances)  # tr(S_i^{-1} T_j)
    diff = draw.means[:, None, :] - ref.means[None, :, :]  # (i, j, D)
    maha_r = jnp.sum(jnp.einsum("ijd,jde->ije", diff, p_r) ** 2, axis=-1)
    maha_d = jnp.sum(jnp.einsum("ijd,ide->ije", diff, p_d) ** 2, axis=-1)
    kl_dr = 0.5 * (tr_dr + maha_r - D + logdet_r[None, :] - logdet_d[:, None])
    kl_rd = 0.5 * (tr_rd + maha_d - D + logdet_d[:, None] - logdet_r[None, :])
    w = jnp.maximum(draw.weights, tiny)[:, None]
    v = jnp.maximum(ref.weights, tiny)[None, :]
    return (w - v) * (jnp.log(w) - jnp.log(v)) + w * kl_dr + v * kl_rd


@jax.jit
def _sym_kl_cost(flat: GMMParams, ref: GMMParams):
    return jax.vmap(_sym_kl_cost_one, in_axes=(0, None))(flat, ref)


def _check_reference(reference, params: GMMParams) -> GMMParams:
    reference = _check_params(reference, "reference")
    if reference.batch_shape:
        raise ValueError(
            f"reference must be a single set of parameters (no batch axes); got batch shape "
            f"{reference.batch_shape}. Pass e.g. an EM result's params or params[chain, draw]."
        )
    if (reference.n_components, reference.n_features) != (params.n_components, params.n_features):
        raise ValueError(
            f"reference has K={reference.n_components}, D={reference.n_features} but the draws "
            f"have K={params.n_components}, D={params.n_features}; relabel against a reference "
            "of the same model."
        )
    return reference.astype(params.dtype)


def _pivot(flat: GMMParams, X) -> GMMParams:
    """The draw with the highest log-likelihood on X."""
    loglik = np.asarray(flat.log_prob(X).sum(axis=-1))
    return flat[int(np.nanargmax(loglik))]


def _hungarian(flat: GMMParams, reference: GMMParams) -> np.ndarray:
    return _assign(np.asarray(_sym_kl_cost(flat, reference)))


def _stephens(flat: GMMParams, X, init: np.ndarray, max_iter: int) -> tuple[np.ndarray, int]:
    """Stephens (2000), Algorithm 2, on responsibilities ``p`` of shape (M, N, K)."""
    resp = np.asarray(flat.responsibilities(X))  # (M, N, K)
    tiny = np.finfo(resp.dtype).tiny
    perm = init
    for it in range(1, max_iter + 1):
        permuted = np.take_along_axis(resp, perm[:, None, :], axis=-1)
        log_q = np.log(np.maximum(permuted.mean(axis=0), tiny))  # (N, K)
        # KL cost sum_n p[n, i] log(p[n, i] / Q[n, k]); the entropy part
        # sum_n p log p adds the same total to every permutation, so only the
        # cross term -sum_n p[n, i] log Q[n, k] decides the assignment.
        cost = -(np.swapaxes(resp, 1, 2) @ log_q)  # (M, K, K): old label i, new label k
        new = _assign(cost)
        if np.array_equal(new, perm):
            return perm, it
        perm = new
    warnings.warn(
        f"Stephens' relabelling did not settle in max_iter={max_iter} iterations; "
        "the last permutations are returned. Raise max_iter.",
        ConvergenceWarning,
        stacklevel=4,
    )
    return perm, max_iter


@x64
def relabel(
    params: GMMParams,
    *,
    reference: GMMParams | None = None,
    method: str = "hungarian",
    X=None,
    max_iter: int = 100,
) -> RelabelResult:
    """Undo label switching: permute each draw's components onto a common labelling.

    ``"hungarian"`` (default) aligns each draw to ``reference`` by the optimal
    assignment of its components to the reference components. The cost of
    matching draw component ``i`` (weight ``w``, Gaussian ``N_i``) to
    reference component ``j`` (weight ``v``, Gaussian ``N_j``) is the
    symmetrised generalised Kullback-Leibler divergence between the weighted
    component densities ``w N_i`` and ``v N_j``::

        (w - v) (log w - log v) + w KL(N_i || N_j) + v KL(N_j || N_i)

    Why this cost: it compares whole components (location, shape and size)
    rather than means alone, so components with close means but different
    covariances or weights are still told apart; it is invariant to affine
    changes of the data (no dependence on the units of each feature, unlike a
    Euclidean distance between means); it is zero only for identical
    components; and a component of negligible weight, which the data hardly
    identify, costs little wherever it goes. It has a closed form, computed for
    all draws at once from Cholesky factors (traces against precision
    matrices from triangular solves, whitened mean differences, log-dets from
    the Cholesky diagonal; no ``inv`` or ``det``). Each draw's permutation then
    minimises the total cost: all ``K!`` permutations are scored at once for
    ``K <= 4``, otherwise ``scipy.optimize.linear_sum_assignment`` runs per draw.

    ``"stephens"`` runs Stephens' (2000) KL algorithm on the per-draw
    responsibilities ``p[m, n, k]`` of ``X``: with ``Q`` the mean over draws of
    the relabelled responsibilities, each draw takes the permutation
    minimising ``sum_n sum_k p[n, perm[k]] log(p[n, perm[k]] / Q[n, k])``, and
    the two steps alternate until no permutation changes. It starts from the
    ``"hungarian"`` solution. It needs ``X`` and memory for ``M x N x K``
    responsibilities (M the number of draws).

    Parameters
    ----------
    params : GMMParams with batch shape S
        Posterior draws, typically ``(chain, draw)``.
    reference : GMMParams, optional
        Unbatched parameters to align to (by default in :meth:`Posterior.relabel`
        the EM/MAP estimate). If None, the pivot is the draw with the highest
        log-likelihood on ``X`` (unweighted), and the result is labelled like
        that draw.
    method : {"hungarian", "stephens"}
    X : array-like of shape (N, D), optional
        Data; required by ``"stephens"`` and when ``reference`` is None.
    max_iter : int
        Most iterations of Stephens' algorithm (a ``ConvergenceWarning`` if reached).

    Returns
    -------
    RelabelResult
        ``params`` relabelled, ``permutations`` of shape S + (K,) with
        ``new[..., k] = old[..., perm[k]]``, ``fraction_permuted``, the
        ``reference`` used and ``n_iter``.

    References
    ----------
    M. Stephens (2000), "Dealing with label switching in mixture models",
    *Journal of the Royal Statistical Society B* 62, 795-809.

    Examples
    --------
    >>> import numpy as np, jax
    >>> import bayesgmm as bg
    >>> from bayesgmm.relabel import permute, relabel
    >>> truth = bg.datasets.true_params_four_gaussians_2d()
    >>> draws = jax.tree.map(lambda a: np.stack([a] * 3), truth)   # 3 identical draws
    >>> switched = permute(draws, [[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2]])
    >>> res = relabel(switched, reference=truth)
    >>> res.fraction_permuted
    0.6666666666666666
    >>> bool(np.allclose(res.params.means, draws.means))
    True
    """
    params = _check_params(params)
    if method not in RELABEL_METHODS:
        raise ValueError(f"method must be one of {RELABEL_METHODS}; got {method!r}.")
    max_iter = check_positive_int("max_iter", max_iter)
    data = None
    if X is not None:
        data = check_data(X, dtype=params.dtype, n_features=params.n_features)
    if method == "stephens" and data is None:
        raise ValueError(
            "method='stephens' works on the responsibilities of the data: pass X=... "
            "(Posterior.relabel passes its data automatically)."
        )
    flat = _flat(params)
    if reference is None:
        if data is None:
            raise ValueError(
                "relabel needs a reference to align to, or X to choose a pivot draw (the draw "
                "with the highest log-likelihood); pass reference=... or X=..."
            )
        reference = _pivot(flat, data)
    else:
        reference = _check_reference(reference, params)

    perm = _hungarian(flat, reference)
    n_iter = 0
    if method == "stephens":
        perm, n_iter = _stephens(flat, data, perm, max_iter)
    perm = perm.reshape((*params.batch_shape, params.n_components))
    return RelabelResult(
        params=permute(params, perm),
        permutations=perm,
        fraction_permuted=_identity_fraction(perm),
        reference=reference,
        n_iter=n_iter,
    )


# ------------------------------------------------ label-invariant quantities ---
@x64
def log_likelihood_draws(params: GMMParams, X, sample_weight=None) -> np.ndarray:
    """Total log-likelihood ``sum_n w_n log p(x_n | theta)`` of each draw.

    Invariant to the labelling, so comparable across chains without relabelling.

    Parameters
    ----------
    params : GMMParams with batch shape S
    X : array-like of shape (N, D)
    sample_weight : array-like of shape (N,), optional

    Returns
    -------
    ndarray of shape S
    """
    params = _check_params(params)
    data = check_data(X, dtype=params.dtype, n_features=params.n_features)
    w = check_sample_weight(sample_weight, data.shape[0], params.dtype)
    return np.asarray(params.log_prob(data)) @ w


@x64
def density_on_grid(params: GMMParams, grid) -> np.ndarray:
    """Log mixture density of each draw at given points (label-invariant).

    Parameters
    ----------
    params : GMMParams with batch shape S
    grid : array-like of shape (G, D)

    Returns
    -------
    ndarray of shape S + (G,)
    """
    params = _check_params(params)
    points = check_data(grid, dtype=params.dtype, n_features=params.n_features, name="grid")
    return np.asarray(params.log_prob(points))


@x64
def co_clustering(params: GMMParams, X, *, max_samples: int = _CO_CLUSTERING_MAX_N) -> np.ndarray:
    """Posterior co-clustering matrix ``P(z_i = z_j | data)``, label-invariant.

    Given the parameters the assignments are independent, so
    ``P(z_i = z_j | theta) = sum_k r_ik r_jk`` with ``r`` the responsibilities;
    averaging over draws gives ``mean_m R_m R_m^T``. The diagonal is 1 by
    definition (``z_i = z_i``). Computed in blocks of draws, memory ``N x N``.

    Parameters
    ----------
    params : GMMParams with batch shape S
    X : array-like of shape (N, D)
    max_samples : int
        Largest ``N`` accepted (the result is a dense ``N x N`` matrix).

    Returns
    -------
    ndarray of shape (N, N)
        Symmetric, entries in [0, 1], ones on the diagonal.
    """
    params = _check_params(params)
    data = check_data(X, dtype=params.dtype, n_features=params.n_features)
    N = data.shape[0]
    if N > max_samples:
        raise ValueError(
            f"co_clustering builds a dense ({N}, {N}) matrix; N={N} is above "
            f"max_samples={max_samples}. Pass a subsample of X (or raise max_samples)."
        )
    flat = _flat(params)
    M = flat.batch_shape[0]
    block = max(1, _BLOCK_ELEMENTS // (N * params.n_components))
    out = np.zeros((N, N), dtype=np.float64)
    for start in range(0, M, block):  # blocks of draws, to bound memory
        resp = np.asarray(flat[start : start + block].responsibilities(data), dtype=np.float64)
        out += np.einsum("mnk,mpk->np", resp, resp)
    out /= M
    out = 0.5 * (out + out.T)
    np.fill_diagonal(out, 1.0)
    return np.clip(out, 0.0, 1.0)


def _default_grid(data: np.ndarray, reference: GMMParams | None) -> np.ndarray:
    """Reference means, or the observations nearest the per-feature 10/50/90% quantiles."""
    if reference is not None:
        return np.asarray(reference.means, dtype=data.dtype)
    targets = np.quantile(data, [0.1, 0.5, 0.9], axis=0)  # (3, D)
    scale = np.maximum(data.std(axis=0), np.finfo(data.dtype).tiny)
    dist = (((data[None, :, :] - targets[:, None, :]) / scale) ** 2).sum(-1)  # (3, N)
    return data[np.unique(np.argmin(dist, axis=-1))]


@x64
def invariant_diagnostics(params: GMMParams, X, *, sample_weight=None, grid=None, reference=None):
    """R-hat and ESS of label-invariant quantities: trustworthy even before relabelling.

    Reports the total log-likelihood of each draw and the log mixture density
    at a few points. Neither depends on the labels, so their R-hat (rank
    normalised split R-hat) and bulk/tail ESS judge mixing of the chains
    whatever label switching happened.

    R-hat compares chains, so ArviZ leaves it undefined (NaN) for a single
    chain. Here a single chain of at least 8 draws is cut into its first and
    second halves, and R-hat compares those, as split R-hat does within every
    chain: a chain that drifts, or jumps between modes once, still shows up.
    ESS is always computed on the draws as they are.

    Parameters
    ----------
    params : GMMParams with batch shape (chain, draw)
    X : array-like of shape (N, D)
    sample_weight : array-like of shape (N,), optional
    grid : array-like of shape (G, D), optional
        Points for the log density. Default: the means of ``reference`` if
        given, otherwise the observations nearest the 10%, 50% and 90%
        per-feature quantiles of ``X``.
    reference : GMMParams, optional

    Returns
    -------
    pandas.DataFrame
        Index ``log_likelihood`` and ``log_density[x=(...)]`` per grid point;
        columns ``mean``, ``sd``, ``r_hat``, ``ess_bulk``, ``ess_tail``.
    """
    import arviz as az
    import pandas as pd
    import xarray as xr

    params = _check_params(params)
    C, S = _check_chain_draw(params, "invariant_diagnostics")
    data = check_data(X, dtype=params.dtype, n_features=params.n_features)
    if reference is not None:
        reference = _check_reference(reference, params)
    points = (
        _default_grid(data, reference)
        if grid is None
        else check_data(grid, dtype=params.dtype, n_features=params.n_features, name="grid")
    )
    loglik = log_likelihood_draws(params, data, sample_weight)
    logdens = density_on_grid(params, points)

    def dataset(loglik, logdens):
        return xr.Dataset(
            {
                "log_likelihood": (("chain", "draw"), loglik),
                "log_density": (("chain", "draw", "point"), logdens),
            },
            coords={"point": np.arange(len(points))},
        )

    ds = dataset(loglik, logdens)
    halves = ds
    if C == 1 and S >= 8:  # R-hat of the two halves of the one chain (see the docstring)
        half = S // 2
        loglik_h = np.asarray(loglik)[0, : 2 * half].reshape(2, half)
        logdens_h = np.asarray(logdens)[0, : 2 * half].reshape(2, half, len(points))
        halves = dataset(loglik_h, logdens_h)
    rhat = az.rhat(halves)
    bulk = az.ess(ds, method="bulk")
    tail = az.ess(ds, method="tail")

    def summary(var: str, **sel) -> dict[str, float]:
        values = ds[var].sel(**sel)
        return {
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)),
            "r_hat": float(rhat[var].sel(**sel)),
            "ess_bulk": float(bulk[var].sel(**sel)),
            "ess_tail": float(tail[var].sel(**sel)),
        }

    records = {"log_likelihood": summary("log_likelihood")}
    for g, point in enumerate(points):
        name = "log_density[x=(" + ", ".join(f"{v:.3g}" for v in point) + ")]"
        records[name] = summary("log_density", point=g)
    return pd.DataFrame.from_dict(records, orient="index")
