"""The core layer: what every engine shares, and nothing that depends on an engine.

- :mod:`~bayesgmm._core.params`: :class:`~bayesgmm.GMMParams`, the one
  parameter structure (a JAX pytree; batch axes in front).
- :mod:`~bayesgmm._core._mixture` and :mod:`~bayesgmm._core.density`: log
  densities, responsibilities and sampling (maths, and its public functions).
- :mod:`~bayesgmm._core.covariance`: the registry of covariance structures
  (M-step, free parameters, prior density, NumPyro parameterisation).
- :mod:`~bayesgmm._core.priors`: :class:`~bayesgmm.Prior`, shared by MAP-EM and NUTS.
- Private helpers: ``_linalg`` (Cholesky, triangular solves; no inverses),
  ``_validation`` (checks at the boundary), ``_warnings`` (warning classes and
  the stack-level helper), ``_precision`` (float64 whatever JAX's setting),
  ``_blocks`` (block sizes), ``_pytree`` (dataclass pytrees), ``_memory_maps``.

The package is private: its public names are re-exported by :mod:`bayesgmm`.
"""
