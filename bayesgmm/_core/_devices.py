"""Rows split over the CPU devices JAX has: both cores for one EM pass or Gibbs sweep.

XLA's CPU runtime runs one program's loop over the blocks of the data on one
thread. When JAX was started with more than one CPU device
(``numpyro.set_host_device_count(n)`` or
``XLA_FLAGS=--xla_force_host_platform_device_count=n`` before JAX is first
used), the blocked passes of EM and the assignment step of the Gibbs samplers
(:mod:`bayesgmm.bayes._assign`) run on every device at once, each over its
share of the blocks, and their sufficient statistics are summed
(:func:`sum_over_row_shards`); what follows (the M-step, the conjugate draws)
is small and runs replicated. Every device holds the whole blocked data
(:func:`place_rows`), so the one collective of a pass is its ``psum``. The
Gibbs draws of a block use a key derived from the block's index in the whole
data, so the same rows get the same uniforms whatever the number of devices.
With one device (JAX's default) nothing changes. Sums in another order change
results only at rounding level.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["n_shards", "place_rows", "release_rows", "row_mesh", "sum_over_row_shards"]

AXIS = "rows"


@functools.cache
def row_mesh() -> Mesh | None:
    """A mesh over JAX's CPU devices when there are two or more, else None."""
    if jax.default_backend() != "cpu":
        return None
    devices = jax.devices()
    if len(devices) < 2:
        return None
    return Mesh(np.array(devices), (AXIS,))


def n_shards() -> int:
    """How many parts the blocks of a pass are split into (1 without a mesh)."""
    mesh = row_mesh()
    return 1 if mesh is None else mesh.size


def place_rows(*arrays):
    """Put blocked arrays (leading axis: blocks) on the devices: a whole copy on each.

    Each device reads only its share of the blocks (:func:`sum_over_row_shards`);
    the copies keep everything outside those passes unsplit, so that XLA adds
    no communication of its own (splitting the arrays by blocks made EM's
    start read them through all-gathers, which could deadlock two devices).
    """
    mesh = row_mesh()
    if mesh is None:
        return tuple(jax.device_put(a) for a in arrays)
    sharding = NamedSharding(mesh, P())
    return tuple(jax.device_put(a, sharding) for a in arrays)


_ONE_BYTE = np.zeros(1, np.uint8)


def release_rows() -> None:
    """Let JAX free the blocked data of the program that has just run, now.

    :func:`place_rows` hands JAX the host memory of the blocked data without a
    copy, and jaxlib lets go of such a host array only at its next call into
    JAX (or a garbage collection): the blocked copy of the data (N=10^6,
    D=10: 90 MiB) stayed resident after ``fit_em`` returned, and the next
    fit's blocks were allocated beside it. A one-byte transfer is such a call
    (measured: resident memory after a second fit 502 -> 412 MiB). Call it
    once the program's results are on the host and the blocks are dropped.
    """
    jax.device_put(_ONE_BYTE).block_until_ready()


def sum_over_row_shards(fold, init, X, w, n_used):
    """``fold(init, X, w, lo, hi)`` over the used blocks, split over the devices, summed.

    ``fold`` reads blocks ``lo`` to ``hi - 1`` of ``X`` and ``w`` (indices in
    the whole arrays; ``lo = hi = None``: all of them) and returns a pytree
    of sums. Without a mesh this is one ``fold`` over the first ``n_used``
    blocks (None: all). With one, device ``d`` of ``n`` folds the ``d``-th of
    ``n`` consecutive runs of ``ceil(n_used / n)`` blocks (fewer for the last,
    none past ``n_used``) and the sums are added across devices. Anything
    that depends on a block's place in the data (a random key, a row's label)
    sees the same index ``i`` however the blocks are split.
    """
    mesh = row_mesh()
    if mesh is None:
        return fold(init, X, w, None if n_used is None else 0, n_used)
    n_used = jnp.asarray(X.shape[0] if n_used is None else n_used, jnp.int32)

    def local(init, X, w, n_used):
        per = -(-n_used // mesh.size)
        lo = jnp.minimum(jax.lax.axis_index(AXIS) * per, n_used)
        out = fold(init, X, w, lo, jnp.minimum(lo + per, n_used))
        return jax.tree.map(lambda a: jax.lax.psum(a, AXIS), out)

    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(), P(), P(), P()),
        out_specs=P(),
        check_vma=False,
    )(init, X, w, n_used)
