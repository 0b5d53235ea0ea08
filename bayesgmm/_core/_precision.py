"""Precision handling: float64 by default, float32 only when asked for.

JAX computes in float32 unless ``jax_enable_x64`` is on, a global switch that
belongs to the user. Every public entry point of bayesgmm runs under
:func:`x64`, which turns 64-bit types on for the duration of the call only, and
casts the data to an explicit dtype, so the user's JAX setting never changes
the precision of a result silently.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

_ALLOWED = (np.dtype(np.float64), np.dtype(np.float32))


def x64(fn: F) -> F:
    """Run ``fn`` with JAX 64-bit types enabled, restoring the user's setting after."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def resolve_dtype(dtype: Any = None, data: Any = None) -> np.dtype:
    """The floating dtype a computation runs in.

    Parameters
    ----------
    dtype : {None, "float64", "float32", numpy dtype}
        What the user asked for. ``None`` means float64, unless ``data`` is
        already float32, which is kept (as scikit-learn does).
    data : array-like, optional
        The user's data, consulted only when ``dtype`` is None.

    Returns
    -------
    numpy.dtype
        ``float64`` or ``float32``.
    """
    if dtype is None:
        data_dtype = getattr(data, "dtype", None)
        if data_dtype is not None and np.dtype(data_dtype) == np.float32:
            return np.dtype(np.float32)
        return np.dtype(np.float64)
    try:
        resolved = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"dtype must be 'float64' or 'float32'; got {dtype!r}.") from err
    if resolved not in _ALLOWED:
        raise ValueError(f"dtype must be 'float64' or 'float32'; got {resolved}.")
    return resolved
