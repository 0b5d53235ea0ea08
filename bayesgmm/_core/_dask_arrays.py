"""Telling a Dask collection apart without importing Dask.

``import bayesgmm`` must not import Dask (an optional extra, ``bayesgmm[dask]``),
so the fitters recognise a dask array (or DataFrame) by the module its class
comes from, and only then import :mod:`bayesgmm.em._dask`, which imports Dask
and says what to install when it is missing.
"""

from __future__ import annotations

__all__ = ["is_dask_collection", "map_rows"]


def is_dask_collection(X) -> bool:
    """True when ``X`` is a Dask collection (array, DataFrame, Series); imports nothing."""
    module = type(X).__module__ or ""
    return module.split(".")[0] in ("dask", "dask_expr")


def map_rows(fn, X, n_columns: int | None, dtype):
    """``fn`` on each chunk of rows of the Dask collection ``X``, lazily: a dask array.

    Parameters
    ----------
    fn : callable
        Takes a NumPy chunk of shape (n, D) and returns (n, n_columns), or (n,)
        when ``n_columns`` is None (a bound method of a ``GMMParams``: it
        travels to the workers with the parameters).
    X : dask array of shape (N, D) or (N,), or dask DataFrame
    n_columns : int or None
    dtype : numpy dtype of the result

    Returns
    -------
    dask array of shape (N, n_columns) or (N,), chunked by rows as ``X``
    """
    try:
        import dask.array  # noqa: F401  (the extra's presence, with a message)
    except ImportError as err:
        raise ImportError(
            "X is a Dask collection, which needs the optional extra: pip install 'bayesgmm[dask]'."
        ) from err
    if hasattr(X, "to_dask_array"):
        X = X.to_dask_array(lengths=True)
    if X.ndim == 1:
        X = X[:, None]
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    if n_columns is None:
        return X.map_blocks(fn, drop_axis=1, dtype=dtype)
    return X.map_blocks(fn, chunks=(X.chunks[0], (n_columns,)), dtype=dtype)
