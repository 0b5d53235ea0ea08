"""The one parameter structure shared by EM, MAP and every posterior draw."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm._core import _blocks, _mixture, _pytree
from bayesgmm._core._dask_arrays import is_dask_collection, map_rows
from bayesgmm._core._linalg import LOG_2PI as _LOG_2PI
from bayesgmm._core._precision import resolve_dtype, x64
from bayesgmm._core._validation import check_data, check_positive_int


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


@dataclass(frozen=True, repr=False, eq=False)
class GMMParams:
    """Parameters of a Gaussian mixture, with optional leading batch axes.

    An EM fit, a MAP fit and a posterior sample are all ``GMMParams``; they differ
    only in their batch axes (none for a point estimate, ``(chain, draw)`` for
    MCMC output). Covariances are always stored as full matrices, whatever the
    covariance structure of the model that produced them.

    ``GMMParams`` is a JAX pytree: ``jax.jit``, ``jax.vmap`` and ``jax.tree.map``
    work on it. It is validated on construction from concrete values (shapes,
    weights on the simplex, covariances symmetric positive definite), never under
    ``jit``. Pytree operations (``tree.map``, ``vmap`` outputs) bypass validation.

    Built from concrete values, and as returned by every fitter, the three
    arrays are NumPy arrays (copies of what was given), and the methods return
    NumPy arrays: arithmetic on a result keeps its float64 whatever the
    session's ``jax_enable_x64`` setting.

    Parameters
    ----------
    weights : array-like of shape (..., K)
        Mixing weights: non-negative, summing to one along the last axis.
    means : array-like of shape (..., K, D)
        Component means.
    covariances : array-like of shape (..., K, D, D)
        Component covariance matrices, symmetric positive definite.

    Examples
    --------
    >>> import numpy as np, jax
    >>> from bayesgmm import GMMParams
    >>> p = GMMParams(weights=[0.3, 0.7], means=[[0.0], [4.0]],
    ...               covariances=[[[1.0]], [[0.5]]])
    >>> p
    GMMParams(weights (2,), means (2, 1), covariances (2, 1, 1), dtype=float64)
    >>> p.log_prob(np.array([[0.0], [4.0]])).shape
    (2,)
    >>> X, labels = p.sample(jax.random.key(0), 5)
    >>> X.shape, labels.shape
    ((5, 1), (5,))
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    @x64
    def __post_init__(self) -> None:
        leaves = (self.weights, self.means, self.covariances)
        if any(_is_tracer(leaf) for leaf in leaves):
            return
        w, m, c = _validate(*leaves)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", m)
        object.__setattr__(self, "covariances", c)

    # -- construction without validation (pytree unflattening, internal use) --
    @classmethod
    def _unchecked(cls, weights, means, covariances) -> GMMParams:
        return _pytree.unchecked(cls, weights, means, covariances)

    def __reduce__(self):
        # Pickle as NumPy arrays and rebuild under x64, so float64 survives
        # unpickling whatever the user's JAX setting is.
        return (
            _pytree.restore,
            (GMMParams, *(np.asarray(leaf) for leaf in jax.tree.leaves(self))),
        )

    # -- shape information --
    @property
    def n_components(self) -> int:
        """Number of mixture components ``K``."""
        return int(self.weights.shape[-1])

    @property
    def n_features(self) -> int:
        """Dimension ``D`` of the data."""
        return int(self.means.shape[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading batch axes, e.g. ``(chain, draw)``; ``()`` for a point estimate."""
        return tuple(self.weights.shape[:-1])

    @property
    def dtype(self) -> np.dtype:
        """Floating dtype of the parameters."""
        return np.dtype(self.means.dtype)

    def __repr__(self) -> str:
        return (
            f"GMMParams(weights {tuple(self.weights.shape)}, means {tuple(self.means.shape)}, "
            f"covariances {tuple(self.covariances.shape)}, dtype={self.dtype})"
        )

    def __getitem__(self, index) -> GMMParams:
        """Index the batch axes: ``post.params[0, 10]`` is chain 0, draw 10.

        Indexes as NumPy does: an index out of range raises ``IndexError``.
        """
        if not self.batch_shape:
            raise IndexError("these GMMParams have no batch axes to index")
        idx = index if isinstance(index, tuple) else (index,)
        if any(i is Ellipsis for i in idx):
            raise IndexError("indexing GMMParams with ... is ambiguous; index batch axes only")
        if len(idx) > len(self.batch_shape):
            raise IndexError(
                f"too many indices ({len(idx)}) for batch shape {self.batch_shape}; "
                "GMMParams indexing selects draws, not components"
            )
        if not any(_is_tracer(i) for i in idx):
            # JAX clamps out-of-range integers (params[0, 100] of 50 draws would be draw
            # 49); index a zero-stride stand-in of the batch shape as NumPy does, to raise.
            try:
                np.broadcast_to(np.empty((), np.bool_), self.batch_shape)[idx]
            except IndexError as err:
                raise IndexError(
                    f"{err} (GMMParams with batch shape {self.batch_shape}, e.g. (chain, draw))"
                ) from None
        return jax.tree.map(lambda leaf: leaf[idx], self)

    def flatten_batch(self) -> GMMParams:
        """The same parameters with all batch axes merged into one.

        Returns
        -------
        GMMParams with batch shape ``(prod(batch_shape),)``
            ``(1,)`` for unbatched parameters; draws in C order (chain-major).
        """
        nb = len(self.batch_shape)
        return jax.tree.map(lambda leaf: leaf.reshape((-1, *leaf.shape[nb:])), self)

    def _pad_components(self, n_components: int) -> GMMParams:
        """These parameters with components of weight 0, mean 0, covariance I appended.

        The padding of a component class (:func:`bayesgmm._core._blocks.component_class`):
        every density and responsibility of the first K components is unchanged.
        """
        extra = n_components - self.n_components
        if extra <= 0:
            return self
        batch, D = self.batch_shape, self.n_features
        xp = jnp if any(_is_tracer(x) for x in jax.tree.leaves(self)) else np
        eye = xp.broadcast_to(xp.eye(D, dtype=self.dtype), (*batch, extra, D, D))
        return GMMParams._unchecked(
            xp.concatenate([self.weights, xp.zeros((*batch, extra), self.dtype)], axis=-1),
            xp.concatenate([self.means, xp.zeros((*batch, extra, D), self.dtype)], axis=-2),
            xp.concatenate([self.covariances, eye], axis=-3),
        )

    def _take_components(self, n_components: int) -> GMMParams:
        """The first ``n_components`` components (undoes :meth:`_pad_components`)."""
        if n_components == self.n_components:
            return self
        return GMMParams._unchecked(
            self.weights[..., :n_components],
            self.means[..., :n_components, :],
            self.covariances[..., :n_components, :, :],
        )

    def _pad_features(self, n_features: int) -> GMMParams:
        """These parameters in ``n_features`` dimensions: the new ones mean 0, variance 1.

        The padding of a feature class (:func:`bayesgmm._core._blocks.feature_class`):
        the new coordinates are independent of the others in every component, so
        the density of a row padded with zeros is its own times
        ``(2 pi) ** (-(n_features - D) / 2)`` and every responsibility is unchanged.
        """
        extra = n_features - self.n_features
        if extra <= 0:
            return self
        D, dt = self.n_features, self.dtype
        xp = jnp if any(_is_tracer(x) for x in jax.tree.leaves(self)) else np
        means = xp.concatenate(
            [self.means, xp.zeros((*self.means.shape[:-1], extra), dt)], axis=-1
        )
        cov = xp.zeros((*self.covariances.shape[:-2], n_features, n_features), dt)
        if xp is np:
            cov[..., :D, :D] = self.covariances
        else:
            cov = cov.at[..., :D, :D].set(self.covariances)
        cov = xp.where(np.arange(n_features) >= D, xp.eye(n_features, dtype=dt), cov)
        return GMMParams._unchecked(self.weights, means, cov)

    def _take_features(self, n_features: int) -> GMMParams:
        """The first ``n_features`` coordinates (undoes :meth:`_pad_features`)."""
        if n_features == self.n_features:
            return self
        D = n_features
        return GMMParams._unchecked(
            self.weights, self.means[..., :D], self.covariances[..., :D, :D]
        )

    def to_numpy(self) -> dict[str, np.ndarray]:
        """The three arrays as a dict of NumPy arrays."""
        return {
            "weights": np.asarray(self.weights),
            "means": np.asarray(self.means),
            "covariances": np.asarray(self.covariances),
        }

    def astype(self, dtype) -> GMMParams:
        """A copy in another floating dtype (``"float64"`` or ``"float32"``)."""
        dt = resolve_dtype(dtype)
        if any(_is_tracer(leaf) for leaf in jax.tree.leaves(self)):
            with jax.enable_x64(True):
                return jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype=dt), self)
        return jax.tree.map(lambda leaf: np.asarray(leaf, dtype=dt), self)

    def _host(self) -> GMMParams:
        """The same parameters with NumPy arrays as leaves (tracers are left alone)."""
        if any(_is_tracer(leaf) for leaf in jax.tree.leaves(self)):
            return self
        return jax.tree.map(np.asarray, self)

    # -- densities and sampling (the maths is in bayesgmm._core._mixture) --
    def _rows(self, X):
        return jax.numpy.asarray(check_data(X, dtype=self.dtype, n_features=self.n_features))

    def _lazy(self, method: str, X, *, per_component: bool):
        """``self.method(chunk)`` on each chunk of the dask array ``X``: a dask array."""
        if self.batch_shape:
            raise ValueError(
                f"{method} of a dask array needs parameters without batch axes; got batch "
                f"shape {self.batch_shape}. Select one set, e.g. params[0, -1]."
            )
        K = self.n_components if per_component else None
        return map_rows(getattr(self._host(), method), X, K, self.dtype)

    def _per_row(self, fn, X, *, per_component: bool, density: bool = True) -> np.ndarray:
        """``fn(params, rows)`` on ``X`` padded to its shape class, cut back to N (and K).

        Rows are padded up to their :func:`~bayesgmm._core._blocks.row_class`
        (copies of the first row); for unbatched parameters, components up to
        their :func:`~bayesgmm._core._blocks.component_class` and features up
        to their :func:`~bayesgmm._core._blocks.feature_class` (columns of
        zeros, see :meth:`_pad_features`), so that scoring data of similar
        size, or fits of another K or D, reuse one compiled program. ``density``
        says ``fn`` returns log densities, which the padding coordinates lower
        by ``log(2 pi) / 2`` each: that is added back.
        """
        data = check_data(X, dtype=self.dtype, n_features=self.n_features)
        if any(_is_tracer(leaf) for leaf in jax.tree.leaves(self)):
            return fn(self, data)
        N, D = data.shape
        K = self.n_components
        params, width = self, D
        if not self.batch_shape:
            width = _blocks.feature_class(N, K, D)
            params = self._pad_features(width)
            params = params._pad_components(_blocks.component_class(N, K, width))
        n = _blocks.row_class(N, params.n_components, width)
        rows = np.zeros((n, width), data.dtype)
        rows[:N, :D] = data
        rows[N:, :D] = data[:1]
        # NumPy arguments go to the compiled program as they are: jnp.asarray
        # would compile a small copying program for every new shape.
        out = np.asarray(fn(params, rows))
        out = out[..., :N, :K] if per_component else out[..., :N]
        if density and width > D:
            out = out + np.asarray(0.5 * (width - D) * _LOG_2PI, out.dtype)
        return out

    @x64
    def log_prob_components(self, X) -> np.ndarray:
        """Joint log density ``log w_k + log N(x_n | mu_k, Sigma_k)`` of each row and component.

        Parameters
        ----------
        X : array-like of shape (N, D), or dask array (then the result is a lazy dask array)

        Returns
        -------
        ndarray of shape (..., N, K)
        """
        if is_dask_collection(X):
            return self._lazy("log_prob_components", X, per_component=True)
        return self._per_row(_mixture.log_prob_components_jit, X, per_component=True)

    @x64
    def log_prob(self, X) -> np.ndarray:
        """Log density of each row of ``X`` under the mixture.

        Parameters
        ----------
        X : array-like of shape (N, D), or dask array (then the result is a lazy dask array)
            A 1-D array is read as N values of one feature when ``D == 1``.

        Returns
        -------
        ndarray of shape (..., N)
            One value per row, for each set of parameters in the batch.
        """
        if is_dask_collection(X):
            return self._lazy("log_prob", X, per_component=False)
        return self._per_row(_mixture.log_prob_jit, X, per_component=False)

    @x64
    def responsibilities(self, X) -> np.ndarray:
        """Posterior membership probabilities ``P(z = k | x)`` of each row.

        Parameters
        ----------
        X : array-like of shape (N, D), or dask array (then the result is a lazy dask array)

        Returns
        -------
        ndarray of shape (..., N, K)
            Finite, rows summing to one. A row far from every component
            (``log_prob`` ``-inf``) gets the limit: all its weight on the
            component nearest in Mahalanobis terms (shared in proportion to
            the weights among components whose distances are equal to working
            precision).

        Raises
        ------
        ValueError
            When a row lies so far away that even its whitened residual
            overflows (``|x|`` near the largest float), with the rows named.
        """
        if is_dask_collection(X):  # lazily, chunk by chunk where the chunks live
            return self._lazy("responsibilities", X, per_component=True)
        resp = self._per_row(_mixture.responsibilities_jit, X, per_component=True, density=False)
        ok = np.isfinite(resp).all(axis=-1)
        if not ok.all():
            bad = np.flatnonzero(~ok.reshape(-1, ok.shape[-1]).all(axis=0))
            big = float(np.abs(np.asarray(self._rows(X))[bad]).max())
            raise ValueError(
                f"the responsibilities of {bad.size} row(s) of X, first row {bad[0]}, cannot "
                f"be computed in {self.dtype}: the rows lie so far from every component (values "
                f"up to {big:.3g}) that their whitened distances overflow, and their log_prob "
                "is -inf. Remove such rows, or rescale the data and refit."
            )
        return resp

    @x64
    def sample(self, key: jax.Array, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw new data from the mixture.

        Parameters
        ----------
        key : jax.random key
        n_samples : int

        Returns
        -------
        X : ndarray of shape (..., n_samples, D)
        labels : int ndarray of shape (..., n_samples)
            The component each row was drawn from; each set of parameters in
            the batch draws its own data set.
        """
        X, labels = _mixture.sample_batched(key, self, check_positive_int("n_samples", n_samples))
        return np.asarray(X), np.asarray(labels)


_pytree.register(GMMParams)


def _validate(weights, means, covariances):
    """Check shapes and constraints of concrete parameters; return NumPy copies."""
    arrays = {}
    for name, value in (("weights", weights), ("means", means), ("covariances", covariances)):
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"GMMParams.{name} must be real numbers; got dtype {arr.dtype}.")
        arrays[name] = arr
    dtype = np.result_type(*arrays.values(), np.float32)
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float64)
    w, m, c = (np.asarray(a, dtype=dtype) for a in arrays.values())

    if w.ndim < 1:
        raise ValueError("GMMParams.weights must have shape (..., K); got a scalar.")
    batch, K = w.shape[:-1], w.shape[-1]
    if K < 1:
        raise ValueError("GMMParams needs at least one component; weights has K = 0.")
    if m.ndim != w.ndim + 1 or m.shape[:-1] != w.shape:
        raise ValueError(
            f"GMMParams.means must have shape (..., K, D) = {(*batch, K)} + (D,) to match "
            f"weights {w.shape}; got {m.shape}."
        )
    D = m.shape[-1]
    if D < 1:
        raise ValueError(
            f"GMMParams needs at least one feature; means has shape {m.shape}, D = 0. "
            "A mixture over zero-dimensional data has no density to evaluate."
        )
    if c.shape != (*batch, K, D, D):
        raise ValueError(
            f"GMMParams.covariances must have shape (..., K, D, D) = {(*batch, K, D, D)} "
            f"(always full matrices, whatever the covariance structure); got {c.shape}."
        )
    for name, arr in (("weights", w), ("means", m), ("covariances", c)):
        if not np.isfinite(arr).all():
            raise ValueError(f"GMMParams.{name} contains NaN or infinite values.")

    tol = float(np.sqrt(np.finfo(dtype).eps))
    if (w < 0).any():
        raise ValueError(f"GMMParams.weights must be non-negative; smallest is {w.min():g}.")
    total = w.sum(axis=-1)
    if np.abs(total - 1).max() > tol * max(K, 1):
        worst = total.ravel()[np.argmax(np.abs(total - 1).ravel())]
        raise ValueError(
            f"GMMParams.weights must sum to 1 over components; a set sums to {worst:.10g}. "
            "Normalise with weights / weights.sum(-1, keepdims=True)."
        )
    scale = np.abs(c).max(axis=(-2, -1), keepdims=True)
    asym = np.abs(c - np.swapaxes(c, -1, -2)) > tol * np.maximum(scale, np.finfo(dtype).tiny)
    if asym.any():
        where = np.argwhere(asym.any(axis=(-2, -1)))[0]
        raise ValueError(
            f"GMMParams.covariances[{', '.join(map(str, where))}] is not symmetric; "
            "pass (C + C.T) / 2 if the asymmetry is rounding."
        )
    try:
        chol = np.linalg.cholesky(c.astype(np.float64))
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvalsh(c.astype(np.float64))
        where = np.argwhere(eig.min(axis=-1) <= 0)[0]
        raise ValueError(
            f"GMMParams.covariances[{', '.join(map(str, where))}] is not positive definite "
            f"(smallest eigenvalue {eig.min():.3g}); add a small multiple of the identity "
            "(as reg_covar does) or fix the matrix."
        ) from None
    # XLA flushes subnormal numbers to zero: a pivot of the Cholesky factorisation
    # below the smallest normal number would be a zero pivot there (NaN densities).
    pivots = np.square(np.diagonal(chol, axis1=-2, axis2=-1))
    tiny = np.finfo(dtype).tiny
    if (pivots < tiny).any():
        where = np.argwhere((pivots < tiny).any(axis=-1))[0]
        raise ValueError(
            f"GMMParams.covariances[{', '.join(map(str, where))}] is too close to singular for "
            f"{dtype}: a variance (Cholesky pivot {pivots.min():.3g}) lies below the smallest "
            f"normal {dtype} number ({tiny:.3g}), which JAX flushes to zero. Rescale the data "
            "so that variances are far from this limit, or add a small multiple of the identity."
        )
    return w.copy(), m.copy(), c.copy()
