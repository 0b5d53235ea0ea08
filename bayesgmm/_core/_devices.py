"""Rows split over the CPU devices JAX has: both cores for one EM pass or Gibbs sweep.

XLA's CPU runtime runs one program's loop over the blocks of the data on one
thread. When JAX was started with more than one CPU device
(``numpyro.set_host_device_count(n)`` or
``XLA_FLAGS=--xla_force_host_platform_device_count=n`` before JAX is first
used), the blocked passes of EM and the assignment step of the Gibbs samplers
(:mod:`bayesgmm.bayes._assign`) run on every device at once, each over its
share of the blocks, and their sufficient statistics are summed
(:func:`sum_over_row_shards`); what follows (the M-step, the conjugate draws)
is small and runs replicated. The Gibbs draws of a block use a key derived
from the block's index in the whole data, so the same rows get the same
uniforms whatever the number of devices. With one device (JAX's default)
nothing changes. Sums in another order change results only at rounding level.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["n_shards", "place_rows", "round_blocks", "row_mesh", "sum_over_row_shards"]

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


def round_blocks(n_blocks: int) -> int:
    """``n_blocks`` rounded up to a multiple of :func:`n_shards` (blocks split evenly)."""
    return -(-n_blocks // n_shards()) * n_shards()


def place_rows(*arrays):
    """Put blocked arrays (leading axis: blocks) on the devices, split by blocks."""
    mesh = row_mesh()
    if mesh is None:
        return tuple(jax.device_put(a) for a in arrays)
    sharding = NamedSharding(mesh, P(AXIS))
    return tuple(jax.device_put(a, sharding) for a in arrays)


def sum_over_row_shards(fold, init, X, w, n_used, *, offset=False, block_axis=None):
    """``fold(init, X, w, n_used)`` over the blocks, split over the devices, summed.

    ``fold`` reads the first ``n_used`` blocks of its ``X`` and ``w`` (None:
    all) and returns a pytree of sums. Each device folds its own consecutive
    blocks (as many of them as lie below ``n_used``), then the sums are added
    across devices. Without a mesh, or when the blocks do not split evenly,
    this is one ``fold`` over all of ``X``.

    With ``offset``, ``fold`` takes a fifth argument: the index in the whole
    ``X`` of its first block (0 without a mesh), for what must depend on a
    block's place in the data and not on the split (random keys). With
    ``block_axis`` (an int), ``fold`` returns ``(sums, per_block)``:
    ``per_block`` an array with its blocks along ``block_axis`` (as many as
    its ``X`` has), joined across devices instead of summed.
    """
    mesh = row_mesh()
    if mesh is None or X.shape[0] % mesh.size:
        return fold(init, X, w, n_used, 0) if offset else fold(init, X, w, n_used)

    def local(init, X, w, n_used):
        per = X.shape[0]
        start = jax.lax.axis_index(AXIS) * per
        if n_used is not None:
            n_used = jax.numpy.clip(n_used - start, 0, per)
        out = fold(init, X, w, n_used, start) if offset else fold(init, X, w, n_used)
        sums, per_block = out if block_axis is not None else (out, None)
        sums = jax.tree.map(lambda a: jax.lax.psum(a, AXIS), sums)
        return sums if block_axis is None else (sums, per_block)

    out_specs = P()
    if block_axis is not None:
        out_specs = (P(), P(*([None] * block_axis), AXIS))
    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(), P(AXIS), P(AXIS), P()),
        out_specs=out_specs,
        check_vma=False,
    )(init, X, w, n_used)
