"""Split-merge moves on the partition, for the sparse and telescoping sampler.

Why: at large N the row-by-row assignment step cannot move a whole cluster.
When two components share one Gaussian cluster, emptying one of them takes
thousands of rows crossing over one sweep at a time, against the drift of a
nearly balanced split; the chains stay at ``K+`` one too high for hundreds
of sweeps (and two clusters held by one component would never be pulled
apart). A split-merge move proposes the whole change at once.

What: a Metropolis-Hastings move on the labelled allocations ``z`` given the
number of active components ``K`` and the concentration ``e0``, with the
weights and the component parameters integrated out. Its target is

    p(z | K, e0, X) ∝ prod_{k < K} Gamma(N_k + e0) / Gamma(e0) * p(X | z),

the Dirichlet-multinomial of the labels times the conjugate marginal
likelihood :func:`bayesgmm._core._conjugate.log_evidence`. The sweep draws
``z`` given the parameters, applies these moves, and draws ``K``, ``e0`` and
then the parameters given the new ``z`` (a partially collapsed Gibbs
sampler: after ``z`` is drawn the old parameters are never used again, so a
move that leaves ``p(z, K, e0 | X)`` invariant keeps the whole sweep exact).

One move (after Jain & Neal 2004, with a staged allocation in the spirit of
Dahl's sequentially allocated merge-split, 2005):

1. Two distinct rows: ``i`` uniformly, ``j`` uniformly or as a near
   neighbour of ``i`` (:func:`_pair`). The rule ignores the labels, so a
   move and its reverse (the same ordered pair) are proposed with the same
   probability, which cancels.
2. If ``z_i == z_j = a`` propose a **split**: a label ``b`` drawn uniformly
   among the ``E`` empty active components (none: no move); ``i`` stays in
   ``a``, ``j`` goes to ``b``, and the other rows of ``a`` are allocated
   between the two. If ``z_i = a != z_j = c`` propose the **merge** of ``c``
   into ``a``; its reverse is the split with ``b = c`` into exactly the
   current two clusters.
3. The allocation: the rows are visited in a random order (drawn without
   looking at ``z``, an auxiliary variable of the move), cut into stages
   whose sizes grow geometrically (:func:`stage_plan`). Every row of a
   stage chooses between the two sides with probability proportional to
   ``(n_side + e0) N(x | m_side, V_side)``, where ``n``, ``m``, ``V`` are
   the side's count, posterior mean and predictive covariance
   ``Psi / nu (1 + 1 / kappa)`` from the rows allocated in earlier stages
   (the anchors ``i``, ``j`` first). Stages of one row are Dahl's sequential
   allocation; a larger stage is one vectorised pass over its rows, so a
   move costs O(N) however large the clusters (on the benchmark's 10,000
   rows about a third of the assignment step with ``k_max = 10``).
   The proposal probability ``q`` of a split is the product of these
   choices; for a merge it is evaluated for the current split (forcing each
   row to its current side).
4. Accept a split with probability
   ``min(1, p(z_split) / p(z_merged) * E_merged / q(split))``, a merge with
   the inverse ratio, where ``E_merged`` is the number of empty active
   components of the merged state (the reverse split's choices of ``b``).

Everything has fixed shapes (``k_max`` components, the padded rows) and runs
inside the sampler's compiled ``lax.scan``, vectorised over chains. With the
likelihood tempered by ``beta`` the evidence is that of the tempered
likelihood (statistics weighted by ``beta``); ``beta = 0`` targets the prior
of the partition exactly.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp

from bayesgmm._core import _conjugate, _linalg
from bayesgmm._core._pytree import unchecked_replace

__all__ = ["MOVES_PER_SWEEP", "chain_moves", "moves", "stage_plan"]

#: Split-merge proposals per sweep when the option is on.
MOVES_PER_SWEEP = 2
_MULTIPLIERS = 64
_CANDIDATES = 16
_FIRST_STAGES = 2048  # a first-class stage holds about n_rows / this many rows


def stage_plan(n_rows: int, first: int | None = None):
    """The static stages of the allocation: ``((W_0, n_0), (W_1, n_1), ...)``.

    Class ``c`` is ``n_c`` stages of ``W_c`` consecutive positions of the move's
    random order, the classes one after the other from position 0, covering at
    least ``n_rows`` positions (the rest are padding). Stages of one class share
    their shapes, so each class compiles once (a ``lax.scan`` over its stages).
    The first class is 8 stages of ``first`` positions; class ``c >= 1`` has
    windows ``4^c first`` from position ``2 W_c`` to ``8 W_c``: from there on
    a stage adds a seventh to a half of the rows before it, so a cluster of
    any size is allocated in stages that grow geometrically, each predicted
    from most of the rows allocated by its end.

    Parameters
    ----------
    n_rows : int
        Rows, padding included.
    first : int, optional
        Positions per stage of the first class; default ``ceil(n_rows / 2048)``.

    Returns
    -------
    tuple of (int, int)
    """
    if first is None:
        first = max(1, math.ceil(n_rows / _FIRST_STAGES))
    plan = [(first, min(8, math.ceil(n_rows / first)))]
    end, width = plan[0][0] * plan[0][1], first
    while end < n_rows:
        width *= 4
        n = min(6, math.ceil((n_rows - end) / width))
        plan.append((width, n))
        end += n * width
    return tuple(plan)


def _log_target(stats, e0, prior, beta, fam):
    """``log p(z | K, e0, X)`` up to terms a split or merge does not change."""
    counts, sums, outer = stats
    labels = jnp.sum(gammaln(counts + e0) - gammaln(e0), axis=-1)
    return labels + _conjugate.log_evidence(prior, beta * counts, beta * sums, beta * outer, fam)


def _side_log_prob(x, side_stats, e0, prior2, beta, fam):
    """``log (n + e0) N(x | m, V)`` of each side for the rows ``x`` (m, D): (m, 2)."""
    counts, sums, outer = side_stats
    post = _conjugate.posterior(prior2, beta * counts, beta * sums, beta * outer, fam)
    inflate = (1.0 + 1.0 / post.mean_precision) / post.dof
    chol = _linalg.cholesky(post.scale * inflate[:, None, None])
    prec = _linalg.precision_cholesky(chol)
    logdet = _linalg.logdet_from_cholesky(chol)
    # whitened residuals per side; for two sides this beats the one-GEMM layout
    y = jnp.einsum("ncd,cde->nce", x[:, None, :] - post.means, prec)
    maha = jnp.sum(y * y, axis=-1)
    return jnp.log(counts + e0) - 0.5 * (logdet + maha)


def _order(n_rows: int):
    """A fixed random permutation of the rows and multipliers prime to ``n_rows``.

    A move visits the rows in the order ``base[(m * t + c) % n_rows]``,
    ``t = 0, 1, ...``, with ``m`` drawn from the multipliers and ``c`` uniform:
    a fresh order every move without sorting (a sort of 10^4 keys costs more
    than the whole move on a CPU). Any order drawn independently of the
    allocation keeps the move exact; these are constants of the program
    (4 bytes a row), depending on the number of rows only.
    """
    rng = np.random.default_rng(n_rows)
    base = rng.permutation(n_rows).astype(np.int32)
    candidates = rng.integers(1, max(n_rows, 2), size=4 * _MULTIPLIERS)
    units = [int(m) for m in candidates if math.gcd(int(m), n_rows) == 1][:_MULTIPLIERS]
    return base, np.asarray(units or [1], dtype=np.int64)


def _index(u, n, dtype):
    """``floor(u n)`` as an integer in ``0 .. n - 1`` for a uniform ``u``."""
    return jnp.minimum(jnp.floor(u * n).astype(dtype), n - 1)


def _pick(u, cum, avoid=None):
    """Real rows from uniforms ``u`` (``cum``: running count of real rows), never ``avoid``."""
    n = cum[-1] if avoid is None else cum[-1] - 1
    r = _index(u, n, cum.dtype)
    if avoid is not None:  # skip over the rank of ``avoid``
        r = jnp.where(r >= cum[avoid] - 1, r + 1, r)
    return jnp.searchsorted(cum, r + 1)


def _pair(u, X, cum):
    """The move's rows ``i`` and ``j`` from ``_CANDIDATES + 2`` uniforms ``u``.

    ``i`` uniform; ``j`` with probability 1/2 uniform among the other rows,
    otherwise the nearest to ``x_i`` of ``_CANDIDATES`` uniform draws from
    them: a row of the same cluster, so that two components sharing one
    cluster are often proposed for a merge. The rule ignores the labels, so
    a move and its reverse (same ordered pair) are proposed with the same
    probability, which cancels from the ratio without being computed.
    """
    i = _pick(u[0], cum)
    cand = _pick(u[2:], cum, avoid=i)
    dist = jnp.sum((X[cand] - X[i]) ** 2, axis=-1)
    j = jnp.where(u[1] < 0.5, cand[jnp.argmin(dist)], cand[0])
    return i, j


def _allocate(carry, start, width, data, split, e0, prior2, beta, fam):
    """One stage: the rows at positions ``start .. start + width - 1`` choose a side."""
    side_stats, log_q = carry
    perm, X, member, current_side, log_u = data
    idx = jax.lax.dynamic_slice(perm, (start,), (width,))
    x, mem = X[idx], member[idx]
    lp = _side_log_prob(x, side_stats, e0, prior2, beta, fam)
    lp = lp - logsumexp(lp, axis=1, keepdims=True)
    drawn = jax.lax.dynamic_slice(log_u, (start,), (width,)) < lp[:, 1]
    side = jnp.where(split, drawn, current_side[idx])
    log_q += jnp.sum(jnp.where(mem, jnp.where(side, lp[:, 1], lp[:, 0]), 0.0))
    onehot = (mem[:, None] & (side[:, None] == jnp.array([False, True]))).astype(x.dtype)
    side_stats = (
        side_stats[0] + onehot.sum(0),
        side_stats[1] + onehot.T @ x,
        side_stats[2] + jnp.einsum("mc,md,me->cde", onehot, x, x),
    )
    return (side_stats, log_q), side


def _one_move(key, z, X, real, cum, stats, K, e0, prior, prior2, beta, fam, plan, order):
    """One split or merge proposal for one chain; returns ``(z, stats, accepted)``."""
    counts, sums, outer = stats
    k_max = counts.shape[0]
    R, D = X.shape
    dt = X.dtype
    base, units = order
    n_pos = sum(width * n for width, n in plan)
    key_s, key_a = jax.random.split(key)
    u = jax.random.uniform(key_s, (_CANDIDATES + 6,), dtype=dt)
    i, j = _pair(u[: _CANDIDATES + 2], X, cum)
    a, c = z[i], z[j]
    split = a == c
    empty = (counts == 0) & (jnp.arange(k_max) < K)
    n_empty = empty.sum()
    nth = jnp.floor(u[-1] * n_empty)  # a uniform empty label for a split
    b = jnp.where(split, jnp.argmax(jnp.cumsum(empty) > nth), c).astype(z.dtype)
    rows = jnp.arange(R)
    member = real & ((z == a) | (z == c)) & (rows != i) & (rows != j)
    current_side = z == c  # the merge's reverse: rows of c go to side 1

    # this move's order: position t holds row base[(m t + shift) % R]; past R a padding row
    m = units[
        jnp.minimum(jnp.floor(u[-2] * units.shape[0]).astype(units.dtype), units.shape[0] - 1)
    ]
    shift = jnp.minimum(jnp.floor(u[-3] * R).astype(units.dtype), R - 1)
    perm = base[(m * jnp.arange(R, dtype=units.dtype) + shift) % R]
    perm = jnp.concatenate([perm, jnp.full(n_pos - R, R, perm.dtype)])  # R: padding
    data = (
        perm,
        jnp.concatenate([X, jnp.zeros((1, D), dt)]),
        jnp.concatenate([member, jnp.zeros(1, bool)]),
        jnp.concatenate([current_side, jnp.zeros(1, bool)]),
        jnp.log(jax.random.uniform(key_a, (n_pos,), dtype=dt)),
    )
    anchors = jnp.stack([X[i], X[j]])
    carry = ((jnp.ones(2, dt), anchors, anchors[:, :, None] * anchors[:, None, :]), 0.0)
    sides, start = [], 0
    for width, n in plan:
        stage = functools.partial(
            _allocate, width=width, data=data, split=split, e0=e0, prior2=prior2, beta=beta,
            fam=fam,
        )  # fmt: skip
        carry, side = jax.lax.scan(stage, carry, start + width * jnp.arange(n))
        sides.append(side.reshape(-1))
        start += width * n
    (n2, s2, o2), log_q = carry

    def put(full, first, second):
        return full.at[a].set(first).at[b].set(second)

    split_stats = (put(counts, n2[0], n2[1]), put(sums, s2[0], s2[1]), put(outer, o2[0], o2[1]))
    merged_stats = (
        put(counts, n2.sum(), 0.0),
        put(sums, s2.sum(0), jnp.zeros(D, dt)),
        put(outer, o2.sum(0), jnp.zeros((D, D), dt)),
    )
    both = jax.tree.map(lambda p, q: jnp.stack([p, q]), split_stats, merged_stats)
    target = _log_target(both, e0, prior, beta, fam)
    n_empty_merged = n_empty + jnp.where(split, 0, 1)
    log_ratio = target[0] - target[1] + jnp.log(n_empty_merged.astype(dt)) - log_q
    log_accept = jnp.where(split, log_ratio, -log_ratio)
    possible = jnp.where(split, n_empty > 0, True) & (cum[-1] >= 2)
    accept = possible & (jnp.log(u[-4]) < log_accept)
    proposed = jax.tree.map(lambda p, q: jnp.where(split, p, q), split_stats, merged_stats)
    stats = jax.tree.map(lambda p, q: jnp.where(accept, p, q), proposed, stats)

    # the rows' new labels: each position's side back to its row (the padding row dropped)
    to_b = jnp.zeros(R, bool).at[perm].set(jnp.concatenate(sides), mode="drop") & member
    z_split = jnp.where(to_b | (rows == j), b, z)
    z = jnp.where(accept, jnp.where(split, z_split, jnp.where(z == c, a, z)), z)
    return z, stats, accept


def chain_moves(key, z, X, w, stats, K, e0, prior, beta, fam, *, n_moves, plan=None):
    """``n_moves`` split-merge proposals for one chain.

    Parameters
    ----------
    key : jax.random key
    z : int array of shape (R,)
        Labels of the rows (any value where ``w`` is 0).
    X : array of shape (R, D)
    w : array of shape (R,)
        Weights 0 (padding, removed rows) or 1.
    stats : tuple of arrays (k_max,), (k_max, D), (k_max, D, D)
        Counts, sums and outer products of ``z``'s rows.
    K : int
        Active components (the first ``K``).
    e0 : float
    prior : Prior
        Component prior for ``k_max`` components.
    beta : float
        Likelihood temperature.
    fam : ConjugateFamily
    n_moves : int
    plan : tuple of (int, int), optional
        The allocation's stages; default :func:`stage_plan` of ``R``.

    Returns
    -------
    (z, stats, accept_rate)
        The new labels and their statistics, and the fraction accepted.
    """
    R = X.shape[0]
    real = w > 0
    cum = jnp.cumsum(real)
    prior2 = unchecked_replace(prior, weight_concentration=jnp.zeros(2, X.dtype))
    order = tuple(jnp.asarray(v) for v in _order(R))
    plan = stage_plan(R) if plan is None else plan
    args = (prior, prior2, beta, fam, plan, order)

    def body(m, carry):
        z, stats, n_acc = carry
        z, stats, acc = _one_move(jax.random.fold_in(key, m), z, X, real, cum, stats, K, e0, *args)
        return z, stats, n_acc + acc.astype(X.dtype)

    init = (z, stats, jnp.zeros((), X.dtype))
    z, stats, n_acc = jax.lax.fori_loop(0, n_moves, body, init)
    return z, stats, n_acc / n_moves


def moves(key, labels, X, w, stats, K, e0, prior, beta, fam, *, n_moves, per_chain_data):
    """``n_moves`` split-merge proposals in every chain, after the assignment step.

    Parameters
    ----------
    key : jax.random key
    labels : int array of shape (C, n_blocks, B)
        The assignments just drawn.
    X : array of shape (n_blocks, D, B), or (C, n_blocks, D, B) with ``per_chain_data``
        (the sampler's rows-last blocks; the moves take them back to rows)
    w : array of shape (n_blocks, B), or (C, n_blocks, B)
        Weights 0 (padding, removed rows) or 1.
    stats : tuple of arrays (C, k_max), (C, k_max, D), (C, k_max, D, D)
        Counts, sums and outer products of ``labels``.
    K : int array of shape (C,)
        Active components (the first ``K``).
    e0 : array of shape (C,)
    prior : Prior
        Component prior for ``k_max`` components.
    beta : float
        Likelihood temperature.
    fam : ConjugateFamily
    n_moves : int
    per_chain_data : bool

    Returns
    -------
    (stats, accept_rate)
        The statistics of the new partition (same shapes) and the fraction of
        the proposals accepted, shape (C,).
    """
    C = K.shape[0]
    D = X.shape[-2]
    X = jnp.swapaxes(X, -1, -2)  # (..., n_blocks, B, D), in the order of the labels

    def one(key, z, X, w, stats, K, e0):
        z, stats, rate = chain_moves(
            key, z.reshape(-1), X.reshape(-1, D), w.reshape(-1), stats, K, e0, prior, beta, fam,
            n_moves=n_moves,
        )  # fmt: skip
        return stats, rate

    data_axis = 0 if per_chain_data else None
    return jax.vmap(one, in_axes=(0, 0, data_axis, data_axis, 0, 0, 0))(
        jax.random.split(key, C), labels, X, w, stats, K, e0
    )
