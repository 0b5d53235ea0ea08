"""Frozen dataclasses as JAX pytrees, written once for ``GMMParams`` and ``Prior``.

Both classes validate concrete values in ``__post_init__``. JAX rebuilds a
pytree after every ``jax.tree.map``, ``vmap`` or ``jit``, often from
intermediate values (a stack of restarts, a slice of draws) that must not be
validated again, so the registration here rebuilds instances without calling
``__init__`` (``jax.tree_util.register_dataclass`` would call it).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["register", "restore", "unchecked", "unchecked_replace"]


def _names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def unchecked(cls, *values, **fields):
    """An instance of the frozen dataclass ``cls`` from its fields, without validation."""
    obj = object.__new__(cls)
    for name, value in zip(_names(cls), values, strict=False):
        object.__setattr__(obj, name, value)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


def unchecked_replace(obj, **changes):
    """A copy of ``obj`` with some fields changed, without validation (``obj`` is unchanged)."""
    cls = type(obj)
    return unchecked(cls, **{name: changes.get(name, getattr(obj, name)) for name in _names(cls)})


def restore(cls, *leaves):
    """Rebuild ``cls`` from pickled NumPy leaves, keeping their dtype (float64 included)."""
    with jax.enable_x64(True):
        return unchecked(cls, *(jnp.asarray(np.asarray(leaf)) for leaf in leaves))


def register(cls):
    """Register the frozen dataclass ``cls`` as a pytree whose leaves are its fields."""
    names = _names(cls)
    jax.tree_util.register_pytree_node(
        cls,
        lambda obj: (tuple(getattr(obj, name) for name in names), None),
        lambda _aux, children: unchecked(cls, *children),
    )
    return cls
