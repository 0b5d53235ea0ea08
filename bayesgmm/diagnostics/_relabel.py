"""Label switching, first-class: relabelling of posterior draws.

A mixture likelihood is invariant to permutations of the component labels, so
MCMC chains may visit the ``K!`` relabelled copies of each mode, and different
chains may settle in different copies. Summaries of ``weights[..., k]`` are
then meaningless until every draw is relabelled against a common reference.

- :func:`permute` applies given permutations to batched parameters.
- :func:`relabel` finds them: by optimal assignment of each draw to a reference
  (``"hungarian"``) or by Stephens' (2000) algorithm (``"stephens"``).
- The label-invariant checks, which need no relabelling at all, are in
  :mod:`bayesgmm.diagnostics._invariant`.

Convention: a permutation ``perm`` of shape (K,) maps old labels to new ones by
``new[..., k] = old[..., perm[k]]``.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from bayesgmm._core import _linalg, _warnings
from bayesgmm._core._blocks import rows_per_block
from bayesgmm._core._precision import x64
from bayesgmm._core._validation import check_data, check_positive_int
from bayesgmm._core._warnings import warn
from bayesgmm._core.params import GMMParams
from bayesgmm.diagnostics._checks import check_params, check_reference

__all__ = [
    "RelabelResult",
    "permute",
    "relabel",
]

RELABEL_METHODS = ("hungarian", "stephens")

# Largest K for which the assignment scores all K! permutations at once instead of
# calling linear_sum_assignment once per draw (about 2 us a call): measured faster
# up to K = 4 (24 permutations), slower from K = 5 on.
_BRUTE_FORCE_MAX_K = 4


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
    >>> from bayesgmm.diagnostics import permute
    >>> p = GMMParams(weights=[0.3, 0.7], means=[[0.0], [4.0]],
    ...               covariances=[[[1.0]], [[0.5]]])
    >>> np.asarray(permute(p, [1, 0]).means[:, 0]).tolist()
    [4.0, 0.0]
    """
    params = check_params(params)
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
        block = rows_per_block(len(perms) * K)
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
    warn(
        f"Stephens' relabelling did not settle in max_iter={max_iter} iterations; "
        "the last permutations are returned. Raise max_iter.",
        _warnings.ConvergenceWarning,
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
    >>> from bayesgmm.diagnostics import permute, relabel
    >>> truth = bg.datasets.true_params_four_gaussians_2d()
    >>> draws = jax.tree.map(lambda a: np.stack([a] * 3), truth)   # 3 identical draws
    >>> switched = permute(draws, [[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2]])
    >>> res = relabel(switched, reference=truth)
    >>> res.fraction_permuted
    0.6666666666666666
    >>> bool(np.allclose(res.params.means, draws.means))
    True
    """
    params = check_params(params)
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
    flat = params.flatten_batch()
    if reference is None:
        if data is None:
            raise ValueError(
                "relabel needs a reference to align to, or X to choose a pivot draw (the draw "
                "with the highest log-likelihood); pass reference=... or X=..."
            )
        reference = _pivot(flat, data)
    else:
        reference = check_reference(reference, params)

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
