"""The blocked Gibbs sampler (data augmentation) under the shared conjugate prior.

One sweep of every chain:

1. ``z | theta, X``: each row's component drawn from its responsibilities
   (one uniform per row against the cumulative responsibilities), block by
   block over the data, all chains at once, with the one-hot assignments'
   sufficient statistics (:func:`bayesgmm.bayes._assign.assign_chains`: the
   log densities and the statistics are two GEMMs with the rows' features
   ``[1, x, vech(x x^T)]``, for every chain's components together);
2. ``theta | z, X``: the conjugate posterior of those statistics
   (:func:`bayesgmm._core._conjugate.posterior`, the update variational Bayes
   uses) and one draw from it: ``weights ~ Dirichlet(alpha + N_k)``, every
   component's mean and covariance from its Normal-Inverse-Wishart (or
   Normal-Inverse-Gamma, or shared Inverse-Wishart for ``tied``) posterior.

Chains advance together: the Cholesky factors of all chains' covariances
are computed as one batch of single-matrix LAPACK calls
(:mod:`bayesgmm._core._linalg`), the assignment step reads each block of
the data once for all chains (no LAPACK inside), and the sweeps run in a
compiled ``lax.scan``. The data, weights, prior and starting points are
arguments of the compiled program: one program per shape class, as for EM.
The data are standardised (:class:`bayesgmm.em._standardize.Standardizer`)
and the draws mapped back.

Both cores (opt-in): when JAX was started with two or more CPU devices
(:mod:`bayesgmm._core._devices`), the assignment step splits the blocks over
them, each device drawing its own run of blocks for every chain; the
statistics are summed across devices and the conjugate draws run replicated.
Block ``i`` draws its uniforms from its own run of the Philox counter under
the sweep's key (:func:`bayesgmm.bayes._assign._block_uniforms`) whichever device runs
it, so the draws are those of one device up to the rounding of the sums
(``tests/test_devices.py``). With one device (JAX's default) nothing changes.

Cost per sweep and chain, N = 100,000, D = 10, K = 8, one core (CPU time,
``benchmarks/engines.py``'s configuration): 36 ms with the EM engine's
soft-responsibility kernel vmapped over chains, 18 ms with the feature GEMMs.

Sample weights must be 0 or 1: a row of weight 2 is two rows with two
independent assignments, which one shared assignment does not give.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm._core import _conjugate, _devices, _exported, _linalg
from bayesgmm._core import covariance as _cov
from bayesgmm._core._precision import x64
from bayesgmm._core._threads import single_threaded_blas
from bayesgmm._core._validation import column_stats
from bayesgmm._core.params import GMMParams
from bayesgmm.bayes._assign import assign_chains, gibbs_block_layout, rows_last
from bayesgmm.bayes._posterior import Posterior
from bayesgmm.bayes._sweeps import kept_sweeps, sample_slots
from bayesgmm.em._standardize import Standardizer

__all__ = ["check_gibbs_weights", "gibbs_draws", "run_gibbs", "sample_gibbs_validated"]


def check_gibbs_weights(w: np.ndarray) -> None:
    """Refuse sample weights other than 0 and 1 (see the module docstring)."""
    if not np.all((w == 0.0) | (w == 1.0)):
        raise ValueError(
            "method='gibbs' takes sample weights of 0 or 1 only: a row of weight 2 must act "
            "as two rows with their own assignments, which the sampler does not do. Repeat "
            "the rows instead (np.repeat(X, counts, axis=0)), or use method='nuts' or "
            "bayesgmm.fit_vb, which take any non-negative weights."
        )


def _sweep(key, params: GMMParams, X, w, n_used, prior, structure: str, per_chain_data: bool):
    """One Gibbs sweep of every chain; ``params`` with a leading chain axis."""
    key_z, key_theta = jax.random.split(key)
    chol = _linalg.cholesky(params.covariances)
    prec = _linalg.precision_cholesky(chol)
    logdet = _linalg.logdet_from_cholesky(chol)
    counts, sums, outer, log_lik = assign_chains(
        key_z,
        params.means,
        prec,
        logdet,
        jnp.log(params.weights),
        X,
        w,
        n_used,
        per_chain_data=per_chain_data,
    )
    fam = _cov.get(structure).conjugate
    post = _conjugate.posterior(prior, counts, sums, outer, fam)
    return _conjugate.sample(key_theta, post, fam), counts.min(axis=-1), log_lik


def run_gibbs(
    key,
    params0: GMMParams,
    X,
    w,
    n_used,
    prior,
    num_warmup,
    num_samples,
    thin=1,
    *,
    structure: str,
    slots: int,
    per_chain_data: bool = False,
):
    """Gibbs chains from ``params0`` (batch (C,)); draws with axes (C, S, ...).

    Parameters
    ----------
    key : jax.random key
    params0 : GMMParams with batch shape (C,)
    X : array of shape (n_blocks, D, B), or (C, n_blocks, D, B) with ``per_chain_data``
        (rows last: :func:`bayesgmm.bayes._assign.rows_last`)
    w : array of shape (n_blocks, B), or (C, n_blocks, B)
    n_used : int
        Blocks that hold data (the rest are zero-weight padding).
    prior : Prior
    structure : str
    num_warmup, num_samples, thin : int (may be traced)
        Sweeps discarded, draws kept, and sweeps per kept draw. The sweeps run
        in one loop (:mod:`bayesgmm.bayes._sweeps`): one compiled program
        serves every ``num_warmup``, ``thin`` and ``num_samples`` up to ``slots``.
    slots : int
        Draws the program has room for (:func:`bayesgmm.bayes._sweeps.sample_slots`).
    per_chain_data : bool
        Each chain has data of its own (simulation-based calibration).

    Returns
    -------
    (GMMParams, dict)
        Draws with batch shape (C, slots), and per draw ``min_count``
        (the smallest component count of the assignments it was drawn from)
        and ``log_likelihood_start`` (the log-likelihood of the parameters
        the sweep started from), each (C, slots); the first ``num_samples``
        draws are the run's.
    """
    args = (X, w, n_used, prior, structure, per_chain_data)

    def sweep(key, params):
        params, min_count, log_lik = _sweep(key, params, *args)
        return params, (params, min_count, log_lik)

    draws, min_count, log_lik = kept_sweeps(
        sweep,
        key,
        params0,
        num_warmup=num_warmup,
        num_samples=num_samples,
        slots=slots,
        thin=thin,
    )
    draws = jax.tree.map(lambda leaf: jnp.swapaxes(leaf, 0, 1), draws)
    stats = {"min_count": min_count.T, "log_likelihood_start": log_lik.T}
    return draws, stats


_GIBBS_OUT = jax.tree.structure(
    (GMMParams._unchecked(0, 0, 0), {"min_count": 0, "log_likelihood_start": 0})
)
#: :func:`run_gibbs` compiled, and kept on disk as its export (a fresh process
#: does not trace it: :mod:`bayesgmm._core._exported`).
run_gibbs_jit = _exported.jit(
    run_gibbs,
    "gibbs",
    ("structure", "slots", "per_chain_data"),
    lambda kwargs: _GIBBS_OUT,
)


@x64
def gibbs_draws(
    key,
    starts: GMMParams,
    data: np.ndarray,
    w: np.ndarray,
    prior,
    *,
    structure: str,
    num_warmup: int,
    num_samples: int,
    thin: int = 1,
    block_size: int | None = None,
):
    """Gibbs draws in the user's units: standardise, run the compiled chains, map back.

    ``data`` (N, D) and ``w`` (N,) validated, weights 0 or 1; ``starts`` one
    GMMParams per chain (batch (C,)); ``prior`` checked for K and D.
    Returns ``(draws, stats)`` as :func:`run_gibbs`, draws as NumPy arrays.
    """
    N, D = data.shape
    dt = data.dtype
    with single_threaded_blas():
        std = Standardizer.from_stats(column_stats(data, w))
        n_blocks, n_used, B = gibbs_block_layout(
            N, D, block_size, n_outputs=starts.weights.shape[0] * starts.n_components
        )
        Xs = rows_last(std.blocks(data, n_blocks, B))
        ws = np.concatenate([w, np.zeros(n_blocks * B - N, dt)]).reshape(n_blocks, B)
        Xs, ws = _devices.place_rows(Xs, ws)
        draws, stats = run_gibbs_jit(
            key,
            std.params_in(starts),
            Xs,
            ws,
            np.asarray(n_used, np.int32),
            std.prior_in(prior),
            np.asarray(num_warmup, np.int32),
            np.asarray(num_samples, np.int32),
            np.asarray(thin, np.int32),
            structure=structure,
            slots=sample_slots(num_samples),
        )
    draws, stats = jax.tree.map(lambda a: np.asarray(a)[:, :num_samples], (draws, stats))
    draws = std.params_out(draws)
    log_jac = float(w.sum()) * D * np.log(std.scale)
    stats = {
        "min_count": stats["min_count"],
        "log_likelihood_start": stats["log_likelihood_start"] - log_jac,
    }
    return GMMParams._unchecked(*(np.asarray(leaf) for leaf in jax.tree.leaves(draws))), stats


def sample_gibbs_validated(
    data: np.ndarray,
    w: np.ndarray,
    *,
    structure,
    prior,
    key,
    starts: GMMParams,
    reference: GMMParams | None,
    reference_kind: str | None,
    num_warmup: int,
    num_samples: int,
) -> Posterior:
    """:func:`bayesgmm.sample_posterior` with ``method="gibbs"`` on validated inputs.

    ``structure`` is the registry entry, ``starts`` one GMMParams per chain.
    """
    check_gibbs_weights(w)
    draws, stats = gibbs_draws(
        key,
        starts,
        data,
        w,
        prior,
        structure=structure.name,
        num_warmup=num_warmup,
        num_samples=num_samples,
    )
    return Posterior.from_draws(
        draws.weights,
        draws.means,
        draws.covariances,
        X=data,
        sample_weight=w,
        prior=prior,
        covariance_type=structure.name,
        reference=reference,
        reference_kind=reference_kind,
        sample_stats=stats,
        sampler="gibbs",
    )
