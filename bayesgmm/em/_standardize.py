"""The affine map EM runs in: centred, one global scale; and the one host copy of the data."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import numpy as np

from bayesgmm._core._pytree import unchecked_replace
from bayesgmm._core._validation import ColumnStats
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior

__all__ = ["Standardizer"]


@dataclass(frozen=True)
class Standardizer:
    """Affine map ``x -> (x - center) / scale`` that EM runs in, and its inverse.

    Centring and a single global scale make the raw-moment sufficient statistics
    well conditioned for data of any magnitude; EM is equivariant under the map
    (``reg_covar`` and the prior are mapped with it), so results are unchanged.
    """

    center: np.ndarray
    scale: float

    @classmethod
    def from_stats(cls, stats: ColumnStats):
        scale = float(np.sqrt(stats.var.mean()))
        if not np.isfinite(scale) or scale <= 0:
            scale = 1.0
        return cls(stats.mean, scale)

    def blocks(
        self, X: np.ndarray, n_blocks: int, block_size: int, width: int | None = None
    ) -> jax.Array:
        """Standardised data, zero-padded to ``(n_blocks, block_size, width)``, on the device.

        ``width`` (default D) pads the rows with columns of zeros (a feature
        class, :func:`bayesgmm._core._blocks.feature_class`).

        The host buffer is the only copy of the data made: it is filled in place
        a chunk of rows at a time and, being 64-byte aligned, handed to the CPU
        device without another copy (``jax.device_put`` aliases aligned memory).
        Its padding is never written: a large buffer comes zeroed from the
        operating system (``calloc``), and its pages that are only read stay out
        of resident memory (the padding of the shape class, up to 19% of the
        rows: 14 MiB at N=10^6, D=10).
        """
        N, D = X.shape
        width = D if width is None else width
        buf = _aligned_zeros((n_blocks * block_size, width), X.dtype)
        real = buf[:, :D]
        for start in range(0, N, _FILL_CHUNK_ROWS):
            rows = slice(start, min(start + _FILL_CHUNK_ROWS, N))
            np.subtract(X[rows], self.center, out=real[rows])
            np.divide(real[rows], self.scale, out=real[rows])
        return jax.device_put(buf.reshape(n_blocks, block_size, width))

    # The maps below work in NumPy on purpose: each eager jax.numpy operation
    # would compile and load a small XLA program of its own (~1.5 MiB each).
    def params_in(self, p: GMMParams) -> GMMParams:
        means, cov = np.asarray(p.means), np.asarray(p.covariances)
        return GMMParams._unchecked(
            np.asarray(p.weights),
            ((means - self.center) / self.scale).astype(means.dtype),
            (cov / self.scale**2).astype(cov.dtype),
        )

    def params_out(self, p: GMMParams) -> GMMParams:
        means, cov = np.asarray(p.means), np.asarray(p.covariances)
        return GMMParams._unchecked(
            np.asarray(p.weights),
            (means * self.scale + self.center).astype(means.dtype),
            (cov * self.scale**2).astype(cov.dtype),
        )

    def prior_in(self, prior: Prior | None) -> Prior | None:
        if prior is None:
            return None
        mean, scale = np.asarray(prior.mean), np.asarray(prior.scale)
        return unchecked_replace(
            prior,
            mean=((mean - self.center) / self.scale).astype(mean.dtype),
            scale=(scale / self.scale**2).astype(scale.dtype),
        )


_FILL_CHUNK_ROWS = 1 << 15


def _aligned_zeros(shape: tuple[int, ...], dtype, align: int = 64) -> np.ndarray:
    """A zeroed C-ordered array whose data start on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.zeros(nbytes + align, dtype=np.uint8)
    offset = -raw.ctypes.data % align
    return raw[offset : offset + nbytes].view(dtype).reshape(shape)
