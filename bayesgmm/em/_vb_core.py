"""Pure functional core of variational Bayes (coordinate ascent, CAVI).

The mean-field family is ``q(z) q(weights) q(means, covariances)``: the
assignments apart from the parameters, the parameters in their conjugate
form (:mod:`bayesgmm._core._conjugate`). One iteration is

1. the E-step: ``q(z_n = k) ∝ exp E_q[log w_k + log N(x_n | mu_k, Sigma_k)]``,
   which is an ordinary mixture E-step for the parameters
   :func:`~bayesgmm._core._conjugate.expected_params` returns, so the EM
   engine's blocked kernel (:func:`bayesgmm.em._core.e_step`) computes the
   responsibilities, their sufficient statistics and ``sum_n log sum_k
   exp E_q[...]`` in one pass;
2. the ELBO of ``(q(z), q(theta))`` with ``q(z)`` just optimised:
   ``sum_n w_n log sum_k exp E_q[log w_k N(x_n | k)] - KL(q(theta) || p(theta))``
   (exact, constants included);
3. the conjugate update of ``q(theta)`` from the statistics.

Each step maximises the ELBO over one factor, so the ELBO never decreases.
Data come standardised and in blocks as for EM (``_core``); restarts run one
after another under ``lax.map`` in one compiled program.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesgmm._core import _conjugate
from bayesgmm._core import covariance as _cov
from bayesgmm._core.params import GMMParams
from bayesgmm.em._core import e_step, stats_from_responsibilities
from bayesgmm.em._init import initial_responsibilities

__all__ = ["VBOutput", "fit_vb_restarts_jit", "vb_elbo_and_stats", "vb_initial"]


class VBState(NamedTuple):
    post: _conjugate.Conjugate  # q(theta) to evaluate next
    good: _conjugate.Conjugate  # last q(theta) with a finite ELBO
    n_iter: jax.Array
    prev_elbo: jax.Array  # ELBO per unit weight at the previous iteration
    converged: jax.Array
    failed: jax.Array
    history: jax.Array  # (max_iter + 1,) ELBO of q(theta) 0..n_iter


class VBOutput(NamedTuple):
    """What one restart returns."""

    post: _conjugate.Conjugate
    elbo: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    failed: jax.Array
    history: jax.Array


def vb_elbo_and_stats(post, X, w, prior, structure: str, n_used=None):
    """The E-step under ``q(theta) = post``: statistics of ``q(z)`` and the ELBO.

    The expected log weights are shifted by their maximum before the mixture
    E-step (the largest pseudo-weight is 1) and the shift added back.
    """
    fam = _cov.get(structure).conjugate
    log_w, means, cov = _conjugate.expected_params(post, fam)
    shift = jnp.max(log_w)
    params = GMMParams._unchecked(jnp.exp(log_w - shift), means, cov)
    stats = e_step(params, X, w, n_used)
    data = stats.log_lik + shift * w.sum()
    return data - _conjugate.kl_to_prior(post, prior, fam), stats


def _update(stats, prior, structure: str):
    fam = _cov.get(structure).conjugate
    return _conjugate.posterior(prior, stats.counts, stats.sums, stats.outer, fam)


def vb_initial(key, X, w, params0, *, n_components, method, structure, prior, n_used=None):
    """``q(theta)`` after one update from initial responsibilities.

    The responsibilities come from ``method`` (as for EM), or, when
    ``params0`` is given, are those of the mixture ``params0``.
    """
    if params0 is not None:
        stats = e_step(params0, X, w, n_used)
    else:
        flat_x = X.reshape(-1, X.shape[-1])
        resp = initial_responsibilities(key, flat_x, w.reshape(-1), n_components, method)
        stats = stats_from_responsibilities(X, w, resp.reshape(*w.shape, n_components))
    return _update(stats, prior, structure)


def _where(ok, a, b):
    return jax.tree.map(lambda x, y: jnp.where(ok, x, y), a, b)


def run_vb(post0, X, w, *, prior, structure, tol, max_iter: int, n_used=None) -> VBOutput:
    """CAVI from ``q(theta) = post0`` until the ELBO per unit weight changes by < ``tol``."""
    total_w = w.sum()

    def cond(s: VBState):
        return (~s.converged) & (~s.failed) & (s.n_iter < max_iter)

    def body(s: VBState):
        elbo, stats = vb_elbo_and_stats(s.post, X, w, prior, structure, n_used)
        ok = jnp.isfinite(elbo)
        mean_elbo = elbo / total_w
        return VBState(
            post=_where(ok, _update(stats, prior, structure), s.post),
            good=_where(ok, s.post, s.good),
            n_iter=s.n_iter + ok.astype(s.n_iter.dtype),
            prev_elbo=jnp.where(ok, mean_elbo, s.prev_elbo),
            converged=ok & (jnp.abs(mean_elbo - s.prev_elbo) < tol),
            failed=~ok,
            history=s.history.at[s.n_iter].set(elbo),
        )

    state = VBState(
        post=post0,
        good=post0,
        n_iter=jnp.zeros((), jnp.int32),
        prev_elbo=jnp.asarray(-jnp.inf, X.dtype),
        converged=jnp.asarray(False),
        failed=jnp.asarray(False),
        history=jnp.full(max_iter + 1, jnp.nan, dtype=X.dtype),
    )
    s = jax.lax.while_loop(cond, body, state)
    # The final q(theta) (one update past the last ELBO), or the last good one.
    elbo, _ = vb_elbo_and_stats(s.post, X, w, prior, structure, n_used)
    ok = jnp.isfinite(elbo) & ~s.failed
    post = _where(ok, s.post, s.good)
    elbo = jnp.where(ok, elbo, vb_elbo_and_stats(post, X, w, prior, structure, n_used)[0])
    return VBOutput(
        post=post,
        elbo=elbo,
        n_iter=s.n_iter,
        converged=s.converged & ok,
        failed=~ok,
        history=s.history.at[s.n_iter].set(jnp.where(ok, elbo, s.history[s.n_iter])),
    )


def fit_vb_restarts(
    keys, X, w, params0, *, n_components, method, structure, prior, tol, max_iter, n_used=None
) -> VBOutput:
    """VB from every key in ``keys`` one after another (``lax.map``, as EM's restarts)."""

    def one(key):
        post0 = vb_initial(
            key,
            X,
            w,
            params0,
            n_components=n_components,
            method=method,
            structure=structure,
            prior=prior,
            n_used=n_used,
        )
        return run_vb(
            post0,
            X,
            w,
            prior=prior,
            structure=structure,
            tol=tol,
            max_iter=max_iter,
            n_used=n_used,
        )

    if keys.shape[0] == 1:
        return jax.tree.map(lambda leaf: leaf[None], one(keys[0]))
    return jax.lax.map(one, keys)


fit_vb_restarts_jit = jax.jit(
    fit_vb_restarts, static_argnames=("n_components", "method", "structure", "max_iter")
)
