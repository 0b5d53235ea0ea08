"""The EM engine: maximum likelihood and MAP-EM fits of Gaussian mixtures.

- :func:`fit_em` and :class:`EMResult` (``_fit``): validation, the
  standardising map, restarts, the result object.
- ``_core``: the pure functional EM (``e_step``, ``m_step``, ``run_em`` in a
  ``lax.while_loop``, restarts one after another under ``lax.map``). The M-step of each covariance
  structure is an entry of :mod:`bayesgmm.covariance`'s registry.
- ``_threaded``: large fits with EM's loop on the host (``_driver``, shared
  with the Dask engine) and each E-step split over one thread per core.
- :func:`fit_vb` and :class:`VBResult` (``_vb``): mean-field variational Bayes
  under the shared conjugate prior; ``_vb_core`` its pure loop, on the EM
  E-step and the conjugate update of :mod:`bayesgmm._core._conjugate`.
- ``_init``: k-means++, k-means and random initial responsibilities.
- ``_dask``, ``_dask_vb`` (``_dask_chunks`` on the workers): :func:`fit_em` and
  :func:`fit_vb` on a dask array, chunk by chunk on a Dask cluster, and
  :func:`from_npy`, a ``.npy`` file as a dask array read in chunks
  (``pip install 'bayesgmm[dask]'``; Dask is imported on first use).
- :class:`GaussianMixture` (``_estimator``): the scikit-learn estimator.
"""

from bayesgmm.em._fit import EMResult, fit_em, n_parameters

__all__ = [
    "EMResult",
    "GaussianMixture",
    "VBResult",
    "fit_em",
    "fit_vb",
    "from_npy",
    "n_parameters",
]


def __getattr__(name):
    if name in ("VBResult", "fit_vb"):
        from bayesgmm.em import _vb

        return getattr(_vb, name)
    if name == "from_npy":
        from bayesgmm.em._dask import from_npy

        return from_npy
    # The estimator imports scikit-learn's base classes: loaded on first use.
    if name == "GaussianMixture":
        from bayesgmm.em._estimator import GaussianMixture

        return GaussianMixture
    raise AttributeError(f"module 'bayesgmm.em' has no attribute {name!r}")
