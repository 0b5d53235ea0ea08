"""Keep a long-running process under the kernel's limit on memory maps.

JAX keeps every program it compiles, and on Linux each loaded XLA program
holds memory maps of its own: one :func:`bayesgmm.sample_posterior` call adds
about 1,400, and deleting its result frees none of them (JAX's internal
caches keep the programs alive until ``jax.clear_caches()``). A process may
hold ``vm.max_map_count`` maps (65,530 by default); past that, the next XLA
compilation crashes the interpreter with a segmentation fault. A notebook or
script that compares many models would reach it after about 45 calls.

:func:`release_if_near_limit` is called before each NUTS run and after each
EM fit that compiled a new program (a new K, D, structure or shape class;
scikit-learn's own test module, run on our estimator, holds ~27,000): when
the process holds more than :data:`FRACTION` of its limit it clears JAX's
caches, with a warning that says why. Results do not change; functions
compiled earlier compile again on their next call. On systems without
``/proc`` it does nothing.
"""

from __future__ import annotations

from pathlib import Path

import jax

from bayesgmm._core._warnings import warn

FRACTION = 0.7  # of vm.max_map_count: ~10 NUTS runs of headroom at the default limit


def map_count() -> int | None:
    """Memory maps this process holds now (lines of ``/proc/self/maps``), or None."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return None


def max_map_count() -> int | None:
    """The kernel's limit ``vm.max_map_count``, or None where there is none to read."""
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return None


def release_if_near_limit() -> bool:
    """Clear JAX's caches, with a warning, if the process is near its map limit.

    Returns whether it cleared them.
    """
    used, limit = map_count(), max_map_count()
    if used is None or limit is None or used <= FRACTION * limit:
        return False
    jax.clear_caches()
    warn(
        f"this process held {used:,} memory maps of the {limit:,} the kernel allows "
        "(vm.max_map_count), mostly JAX's cached compiled programs (a NUTS sampler adds about "
        "1,400, an EM program tens to hundreds); past the limit XLA compilation crashes. "
        "bayesgmm cleared JAX's caches: "
        "results are unchanged, functions compiled earlier compile again on their next call. "
        "To keep them, raise the limit (sysctl vm.max_map_count) or run fewer samplers per "
        "process.",
        UserWarning,
    )
    return True
