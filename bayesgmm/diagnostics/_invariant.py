"""Label-invariant diagnostics: functions of the mixture, not of its labelling.

:func:`log_likelihood_draws`, :func:`density_on_grid`, :func:`co_clustering`
and :func:`invariant_diagnostics` need no relabelling at all, so they judge
whether chains mix even where the labels switch.
"""

from __future__ import annotations

import numpy as np

from bayesgmm._core._blocks import rows_per_block
from bayesgmm._core._precision import x64
from bayesgmm._core._validation import check_data, check_sample_weight
from bayesgmm._core.params import GMMParams
from bayesgmm.diagnostics._checks import check_chain_draw, check_params, check_reference

__all__ = ["co_clustering", "density_on_grid", "invariant_diagnostics", "log_likelihood_draws"]

# Largest number of observations for the (N, N) co-clustering matrix.
_CO_CLUSTERING_MAX_N = 5000


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
    params = check_params(params)
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
    params = check_params(params)
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
    params = check_params(params)
    data = check_data(X, dtype=params.dtype, n_features=params.n_features)
    N = data.shape[0]
    if N > max_samples:
        raise ValueError(
            f"co_clustering builds a dense ({N}, {N}) matrix; N={N} is above "
            f"max_samples={max_samples}. Pass a subsample of X (or raise max_samples)."
        )
    flat = params.flatten_batch()
    M = flat.batch_shape[0]
    block = rows_per_block(N * params.n_components)
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

    params = check_params(params)
    C, S = check_chain_draw(params, "invariant_diagnostics")
    data = check_data(X, dtype=params.dtype, n_features=params.n_features)
    if reference is not None:
        reference = check_reference(reference, params)
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
