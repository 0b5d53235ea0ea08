"""Telling a Dask collection apart without importing Dask.

``import bayesgmm`` must not import Dask (an optional extra, ``bayesgmm[dask]``),
so the fitters recognise a dask array (or DataFrame) by the module its class
comes from, and only then import :mod:`bayesgmm.em._dask`, which imports Dask
and says what to install when it is missing.
"""

from __future__ import annotations

__all__ = ["is_dask_collection"]


def is_dask_collection(X) -> bool:
    """True when ``X`` is a Dask collection (array, DataFrame, Series); imports nothing."""
    module = type(X).__module__ or ""
    return module.split(".")[0] in ("dask", "dask_expr")
