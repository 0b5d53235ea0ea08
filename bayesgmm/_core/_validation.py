"""Input validation at the boundary (never inside ``jit``).

Every check raises ``ValueError`` (or ``TypeError`` for the wrong kind of
object) with a message saying what was expected, what was given, and what to do.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from bayesgmm._core._warnings import DataWarning, warn


def check_data(
    X,
    *,
    dtype: np.dtype,
    n_features: int | None = None,
    name: str = "X",
    allow_1d: bool = True,
    copy: bool = True,
) -> np.ndarray:
    """Validate data and return it as a C-contiguous array of ``dtype``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), or (n_samples,)
        A 1-D array is read as ``n_samples`` values of a single feature when
        ``allow_1d`` and ``n_features`` is None or 1; otherwise it is rejected.
    dtype : numpy dtype
        Floating dtype of the returned array.
    n_features : int, optional
        Required number of columns (the fitted model's).
    name : str
        Name of the argument in messages.
    copy : bool
        Always copy (default). With False the caller's array itself is returned
        when it already has ``dtype`` and C order: for callers that only read
        it and keep no reference (EM on large data).

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        A copy unless ``copy=False``; the caller's array is never modified.
    """
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas objects
        X = X.to_numpy()
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} could not be read as a numeric array: {err}") from err
    if arr.dtype.kind in "OUSV" or arr.dtype.kind == "c":
        try:
            if arr.dtype.kind == "c":
                raise TypeError("complex")
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{name} must hold real numbers; got dtype {arr.dtype} with values that are "
                "not numbers. Convert text columns to numbers or drop them."
            ) from err
    if arr.ndim == 0:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features); got a scalar.")
    if arr.ndim == 1:
        if not allow_1d:
            raise ValueError(
                f"Expected a 2-D array for {name}, got a 1-D array of shape {arr.shape}. "
                "Reshape your data with X.reshape(-1, 1) if it has a single feature or "
                "X.reshape(1, -1) if it is a single sample."
            )
        if n_features not in (None, 1):
            raise ValueError(
                f"{name} is 1-D (shape {arr.shape}) but the model has {n_features} features; "
                f"pass a 2-D array of shape (n_samples, {n_features}) "
                "(a single sample is X.reshape(1, -1))."
            )
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features); got {arr.ndim}-D shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no rows (shape {arr.shape}); at least one sample is needed.")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no columns (shape {arr.shape}); at least one feature.")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but the model has {n_features}; "
            "pass data with the same columns the model was fitted on."
        )
    out = np.array(arr, dtype=dtype, order="C", copy=True if copy else None)
    if not np.isfinite(out).all():
        bad = ~np.isfinite(out)
        rows = np.flatnonzero(bad.any(axis=1))
        kind = "NaN" if np.isnan(out).any() else "infinite"
        overflow = np.isfinite(arr).all() if arr.dtype.kind == "f" else False
        hint = (
            f" (the values overflow {dtype}; rescale the data or use float64)"
            if overflow
            else "; remove or impute those rows first"
        )
        raise ValueError(
            f"{name} contains {kind} values (NaN or inf) in {rows.size} row(s), "
            f"first at row {rows[0]}{hint}."
        )
    return out


def check_n_components(n_components, n_samples: int) -> int:
    """``n_components`` must be an integer in ``[1, n_samples]``."""
    if isinstance(n_components, bool) or not isinstance(n_components, numbers.Integral):
        raise TypeError(
            f"n_components must be a positive integer; got {n_components!r} "
            f"of type {type(n_components).__name__}."
        )
    n_components = int(n_components)
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1; got {n_components}.")
    if n_components > n_samples:
        raise ValueError(
            f"n_components={n_components} is larger than the number of samples "
            f"({n_samples}); use at most {n_samples} components or more data."
        )
    return n_components


def check_sample_weight(sample_weight, n_samples: int, dtype: np.dtype) -> np.ndarray:
    """Non-negative finite weights of length ``n_samples`` with a positive sum (copy)."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be numeric; got dtype {w.dtype}.")
    w = np.array(w, dtype=dtype, copy=True)
    if w.ndim == 0:
        w = np.full(n_samples, w, dtype=dtype)
    if w.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per row of X; "
            f"got shape {w.shape}."
        )
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinite values.")
    if (w < 0).any():
        raise ValueError(
            f"sample_weight must be non-negative; {int((w < 0).sum())} weight(s) are negative "
            f"(smallest {w.min():g}). Weights act as replication counts."
        )
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to zero: at least one row needs a positive weight.")
    return w


def check_fit_inputs(X, n_components, sample_weight, dtype: np.dtype, *, copy: bool = True):
    """The validation every fitter starts with (EM, MAP-EM, NUTS).

    Returns
    -------
    data : ndarray of shape (N, D) in ``dtype``, a copy unless ``copy=False``
    w : ndarray of shape (N,), the sample weights (ones by default)
    K : int
    """
    data = check_data(X, dtype=dtype, copy=copy)
    K = check_n_components(n_components, data.shape[0])
    w = check_sample_weight(sample_weight, data.shape[0], dtype)
    if int((w > 0).sum()) < K:
        raise ValueError(
            f"only {int((w > 0).sum())} row(s) have a positive sample_weight, fewer than "
            f"n_components={K}; use fewer components or give more rows weight."
        )
    return data, w, K


def check_feature_names(feature_names, X, n_features: int) -> tuple[str, ...] | None:
    """The names of the data's columns: given, or a pandas DataFrame's, or None.

    ``feature_names`` wins when given (``n_features`` distinct, non-empty
    strings). Otherwise a DataFrame whose column labels are all strings gives
    them, as scikit-learn's ``feature_names_in_`` does (integer labels are
    positions, not names), and a named Series gives its name.
    """
    if feature_names is None:
        columns = getattr(X, "columns", None)
        if columns is None and getattr(X, "ndim", None) == 1 and hasattr(X, "index"):
            columns = [X.name] if getattr(X, "name", None) is not None else None
        if columns is None or not all(isinstance(c, str) for c in columns):
            return None
        feature_names = list(columns)
        source = "the DataFrame's columns"
    else:
        source = "feature_names"
    if isinstance(feature_names, str):
        feature_names = [feature_names]
    try:
        names = tuple(feature_names)
    except TypeError:
        raise TypeError(
            f"feature_names must be a sequence of {n_features} strings; "
            f"got {type(feature_names).__name__}."
        ) from None
    if not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"{source} must be non-empty strings; got {list(names)!r}.")
    if len(names) != n_features or len(set(names)) != n_features:
        raise ValueError(
            f"{source} must be {n_features} distinct names, one per feature of the data; "
            f"got {list(names)!r}."
        )
    return names


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """A finite real number, > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}.")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not np.isfinite(value) or not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}; got {value!r}.")
    return value


def check_positive_int(name: str, value) -> int:
    """An integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    return int(value)


_SEED_LIMIT = 2**63


def check_seed(seed, name: str = "seed") -> int | None:
    """A seed: None, or an integer in ``[0, 2**63)`` (JAX and NumPy take any of these).

    Raises ``TypeError`` for anything that is not an integer (a float, a bool,
    a NumPy ``Generator``, a JAX key) and ``ValueError`` for an integer out of
    range, saying what was expected, what was given, and what to pass.
    """
    if seed is None:
        return None
    expected = f"{name} must be an int in [0, 2**63) or None"
    if isinstance(seed, np.random.Generator | np.random.RandomState):
        raise TypeError(
            f"{expected}; got a numpy.random.{type(seed).__name__}. Draw a seed from it: "
            f"{name}=int(rng.integers(2**63))."
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        hint = ""
        if hasattr(seed, "dtype") and "key" in str(getattr(seed, "dtype", "")):
            hint = " A JAX random key goes to key=, not to seed=."
        elif isinstance(seed, numbers.Real) and float(seed).is_integer():
            hint = f" Pass {name}={int(seed)}."
        raise TypeError(f"{expected}; got {seed!r} of type {type(seed).__name__}.{hint}")
    value = int(seed)
    if not 0 <= value < _SEED_LIMIT:
        raise ValueError(f"{expected}; got {value}, outside that range.")
    return value


_STATS_CHUNK_ROWS = 1 << 15


@dataclass(frozen=True)
class ColumnStats:
    """Weighted column moments and ranges of the rows with positive weight.

    Computed in chunks of rows (:func:`column_stats`) so that large data never
    get an ``N x D`` temporary.
    """

    n_used: int
    mean: np.ndarray
    var: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @property
    def absmax(self) -> np.ndarray:
        return np.maximum(np.abs(self.min), np.abs(self.max))


def column_stats(X: np.ndarray, sample_weight: np.ndarray) -> ColumnStats:
    """Weighted mean and variance, minimum and maximum of each column (rows with w > 0)."""
    w = sample_weight / sample_weight.sum()
    mean = w @ X
    var = np.zeros_like(mean)
    lo = np.full_like(mean, np.inf)
    hi = np.full_like(mean, -np.inf)
    for start in range(0, X.shape[0], _STATS_CHUNK_ROWS):
        rows = slice(start, start + _STATS_CHUNK_ROWS)
        block, wb = X[rows], w[rows]
        var += wb @ np.square(block - mean)
        positive = wb > 0
        used = block if positive.all() else block[positive]  # no copy in the usual case
        if used.shape[0]:
            lo = np.minimum(lo, used.min(axis=0))
            hi = np.maximum(hi, used.max(axis=0))
    return ColumnStats(int((sample_weight > 0).sum()), mean, var, lo, hi)


def warn_data_problems(
    X: np.ndarray, sample_weight: np.ndarray, n_components: int, stats: ColumnStats | None = None
) -> None:
    """Warn (``DataWarning``) about constant columns and too few distinct rows.

    Neither is an error: a constant column gets variance ``reg_covar`` (or the
    prior's), which dominates the likelihood; fewer distinct rows than
    components leaves some components to collapse onto single points.
    """
    if stats is None:
        stats = column_stats(X, sample_weight)
    if stats.n_used > 1:
        spread = stats.max - stats.min
        scale = np.maximum(stats.absmax, 1.0)
        constant = np.flatnonzero(spread <= 1e-12 * scale)
        if constant.size:
            warn(
                f"column(s) {constant.tolist()} of X are constant; their variance is set by "
                "reg_covar (or the prior), which dominates the log-likelihood and BIC. "
                "Drop constant columns before fitting.",
                DataWarning,
            )
    used_rows = np.flatnonzero(sample_weight > 0)
    head = X[used_rows[: max(20 * n_components, 1000)]]
    if np.unique(head, axis=0).shape[0] >= n_components:
        return
    n_distinct = np.unique(X[used_rows], axis=0).shape[0]
    if n_distinct < n_components:
        warn(
            f"X has only {n_distinct} distinct row(s) with positive weight but "
            f"n_components={n_components}; some components will collapse. Use fewer "
            "components, or a prior (prior=Prior.default(X, K)) to keep them proper.",
            DataWarning,
        )


def warn_reg_covar_scale(
    X: np.ndarray, sample_weight: np.ndarray, reg_covar: float, stats: ColumnStats | None = None
) -> None:
    """Warn when ``reg_covar`` is not small next to a column's variance.

    ``reg_covar`` is absolute (in squared data units): for data of tiny
    magnitude it swamps the covariances and the fit describes ``reg_covar``,
    not the data.
    """
    if reg_covar <= 0:
        return
    if stats is None:
        stats = column_stats(X, sample_weight)
    var = stats.var
    scale = np.maximum(stats.absmax, 1e-300)
    varying = var > (1e-12 * scale) ** 2
    swamped = np.flatnonzero(varying & (reg_covar > 1e-2 * var))
    if swamped.size:
        j = int(swamped[0])
        warn(
            f"reg_covar={reg_covar:g} is not small compared with the variance of column {j} "
            f"({var[j]:.3g}); it will dominate the fitted covariances. Rescale the data "
            "(e.g. standardise the columns) or lower reg_covar.",
            DataWarning,
        )
