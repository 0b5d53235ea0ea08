"""Variational Bayes for Gaussian mixtures: :func:`fit_vb` and :class:`VBResult`.

The shell around :mod:`bayesgmm.em._vb_core`: validation (shared with
:func:`bayesgmm.fit_em`), the standardising map, the blocked layout of the
data (one compiled program per shape class), restarts, the result object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import jax
import numpy as np

from bayesgmm._core import _conjugate, _memory_maps, _warnings
from bayesgmm._core import covariance as _cov
from bayesgmm._core._blocks import em_block_layout
from bayesgmm._core._dask_arrays import is_dask_collection
from bayesgmm._core._precision import resolve_dtype, x64
from bayesgmm._core._threads import single_threaded_blas
from bayesgmm._core._validation import (
    check_feature_names,
    check_fit_inputs,
    check_seed,
    column_stats,
    warn_data_problems,
)
from bayesgmm._core._warnings import warn
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior, default_prior
from bayesgmm.em import _vb_core
from bayesgmm.em._fit import MAX_ITER, TOL, check_em_settings
from bayesgmm.em._standardize import Standardizer

__all__ = ["VBResult", "fit_vb", "vb_result"]


@dataclass(frozen=True, repr=False, eq=False)
class VBResult:
    """The outcome of :func:`fit_vb`: the variational posterior ``q``.

    ``q(weights) = Dirichlet(weight_concentration)``; per component
    ``mu_k | Sigma_k ~ N(means_k, Sigma_k / mean_precision_k)`` and the
    covariances from ``dof`` and ``scale`` as :mod:`bayesgmm._core._conjugate`
    lays out for each structure (``Sigma_k ~ IW(dof_k, scale_k)`` for
    ``full``; one shared one for ``tied``; inverse-gamma variances for
    ``diag`` and ``spherical``).

    Attributes
    ----------
    params : GMMParams
        The parameters at the variational posterior mean: ``E_q[weights]``,
        ``E_q[means]`` and ``E_q[covariances]`` (no batch axes; see
        :func:`bayesgmm._core._conjugate.mean_params` for the rare case where
        the last does not exist).
    elbo : float
        Evidence lower bound of the final ``q``, exact (every constant
        included), in the user's units; ``<= log p(X)`` and equal to it when
        ``K = 1``.
    history : ndarray of shape (n_iter + 1,)
        ELBO of the initial ``q`` and after each iteration; never decreases.
    converged : bool
    n_iter : int
    weight_concentration : ndarray of shape (K,)
    mean_precision : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    dof : ndarray of shape (K,)
    scale : ndarray of shape (K, D, D)
        The variational hyperparameters (user's units).
    covariance_type : str
    prior : Prior
    n_samples : float
        Sum of the sample weights.
    restart_elbos : ndarray of shape (n_init,)
    best_restart : int
    feature_names : tuple of str or None
    """

    params: GMMParams
    elbo: float
    history: np.ndarray
    converged: bool
    n_iter: int
    weight_concentration: np.ndarray
    mean_precision: np.ndarray
    means: np.ndarray
    dof: np.ndarray
    scale: np.ndarray
    covariance_type: str
    prior: Prior
    n_samples: float
    restart_elbos: np.ndarray
    best_restart: int
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.params, GMMParams):
            object.__setattr__(self, "params", self.params._host())

    @property
    def n_components(self) -> int:
        return self.params.n_components

    @property
    def n_features(self) -> int:
        return self.params.n_features

    def _conjugate(self) -> _conjugate.Conjugate:
        return _conjugate.Conjugate(
            self.weight_concentration, self.mean_precision, self.means, self.dof, self.scale
        )

    @x64
    def sample(self, key: jax.Array, n_draws: int) -> GMMParams:
        """``n_draws`` independent draws from ``q``: GMMParams with batch shape (n_draws,).

        Parameters
        ----------
        key : jax.random key
        n_draws : int

        Returns
        -------
        GMMParams
            weights (n_draws, K), means (n_draws, K, D), covariances (n_draws, K, D, D).
        """
        if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
            raise ValueError(f"n_draws must be a positive integer; got {n_draws!r}.")
        fam = _cov.get(self.covariance_type).conjugate
        draws = _sample_jit(key, self._conjugate(), fam, (int(n_draws),))
        return draws._host()

    def predict_proba(self, X) -> np.ndarray:
        """The variational responsibilities ``q(z_n = k)`` of the rows of ``X``, (N, K)."""
        fam = _cov.get(self.covariance_type).conjugate
        with jax.enable_x64(True):
            log_w, means, cov = _conjugate.expected_params(self._conjugate(), fam)
            log_w = np.asarray(log_w)
        weights = np.exp(log_w - log_w.max())
        mixture = GMMParams(weights / weights.sum(), np.asarray(means), np.asarray(cov))
        return np.asarray(mixture.responsibilities(X))

    def predict(self, X) -> np.ndarray:
        """Most probable component of each row under ``q(z)``, shape (N,)."""
        return self.predict_proba(X).argmax(axis=1)

    def summary(self) -> str:
        """A readable multi-line summary of the fit."""
        p = self.params.to_numpy()
        lines = [
            f"VB fit: K={self.n_components}, D={self.n_features}, "
            f"covariance_type={self.covariance_type!r}, n_samples={self.n_samples:g}",
            f"  converged: {self.converged} after {self.n_iter} iterations",
            f"  ELBO: {self.elbo:.4f}",
        ]
        with np.printoptions(precision=4, suppress=True):
            for k in range(self.n_components):
                lines.append(
                    f"  component {k}: E[weight] {p['weights'][k]:.4f} "
                    f"(effective count {self.weight_concentration[k]:.4g})"
                )
                lines.append(f"    E[mean]        {p['means'][k]}")
                cov = np.array2string(p["covariances"][k], prefix="    E[covariance]  ")
                lines.append(f"    E[covariance]  {cov}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"VBResult(K={self.n_components}, covariance_type={self.covariance_type!r}, "
            f"elbo={self.elbo:.4f}, converged={self.converged}, n_iter={self.n_iter})"
        )


_sample_jit = jax.jit(_conjugate.sample, static_argnames=("fam", "shape"))


@x64
def fit_vb(
    X,
    n_components: int,
    *,
    prior: Prior | None = None,
    covariance_type: str = "full",
    sample_weight=None,
    init="kmeans++",
    n_init: int = 1,
    tol: float = TOL,
    max_iter: int = MAX_ITER,
    seed: int | None = 0,
    key: jax.Array | None = None,
    dtype=None,
    block_size: int | None = None,
    feature_names=None,
) -> VBResult:
    """Fit a Gaussian mixture by mean-field variational Bayes (coordinate ascent).

    The model is the one :func:`bayesgmm.sample_posterior` samples: the shared
    conjugate :class:`~bayesgmm.Prior` (Dirichlet weights, Normal-Inverse-
    Wishart components, Normal-Inverse-Gamma for ``diag``/``spherical``). The
    approximation is ``q(z) q(weights) q(means, covariances)``: the
    assignments apart from the parameters, each factor updated exactly in
    turn (Bishop 2006, section 10.2). Each iteration costs about one EM
    iteration (the same blocked kernel computes the statistics).

    Parameters
    ----------
    X : array-like of shape (N, D), or dask array
        A dask array (or DataFrame) is fitted chunk by chunk on the Dask
        cluster of the current ``Client`` (see :mod:`bayesgmm.em._dask_vb`;
        needs ``pip install 'bayesgmm[dask]'``).
    n_components : int
    prior : Prior, optional
        Default ``Prior.default(X, n_components)``. Any positive
        ``weight_concentration`` is accepted (below 1 empties unneeded
        components: a sparse, overfitted mixture).
    covariance_type : {"full", "tied", "diag", "spherical"}
        Every structure has an exact conjugate update, ``tied`` included (the
        shared covariance given the assignments is Inverse-Wishart with
        ``dof + N``; the means are not split from it).
    sample_weight : array-like of shape (N,), optional
        Replication weights: a row of weight 2 counts as a duplicated row
        (its log-likelihood and statistics are multiplied by 2).
    init : {"kmeans++", "kmeans", "random", "random_from_data"} or GMMParams
        Initial responsibilities by that method (as for :func:`fit_em`), or
        the responsibilities of a given mixture (then ``n_init`` is 1); the
        first update of ``q(theta)`` is computed from them.
    n_init : int
        Restarts; the largest final ELBO wins.
    tol : float, default 1e-5
        Stop when the ELBO per unit of sample weight changes by less than ``tol``.
    max_iter : int, default 500
    seed : int, optional
    key : jax.random key, optional
    dtype : {None, "float64", "float32"}
    block_size : int, optional
        Rows per block of the E-step.
    feature_names : sequence of str, optional

    Returns
    -------
    VBResult

    Notes
    -----
    scikit-learn's ``BayesianGaussianMixture`` with
    ``weight_concentration_prior_type="dirichlet_distribution"`` is the same
    model for ``covariance_type="full"`` under the mapping
    ``weight_concentration_prior = alpha`` (equal concentrations),
    ``mean_prior = prior.mean``, ``mean_precision_prior = prior.mean_precision``,
    ``degrees_of_freedom_prior = prior.dof``, ``covariance_prior = prior.scale``
    and ``reg_covar=0``: from the same responsibilities both reach the same
    fixed point, and ``elbo`` equals its ``lower_bound_`` plus a constant of
    the prior, N, D and K (scikit-learn drops the constants). For the other
    structures scikit-learn's updates are not those of this prior: ``tied``
    uses ``dof + N / K`` degrees of freedom, and ``diag``/``spherical`` use the
    Wishart's ``E[log |Lambda|]`` where the inverse-gamma variances have
    another, so the fixed points differ.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> X = bg.datasets.load_faithful()
    >>> vb = bg.fit_vb(X, 2, seed=0)
    >>> vb.converged, vb.params.weights.shape
    (True, (2,))
    >>> bool(vb.history[-1] >= vb.history[0])
    True
    """
    if is_dask_collection(X):  # chunk by chunk on the Dask cluster, the same arguments
        return _fit_vb_dask(**locals())
    dt = resolve_dtype(dtype, X)
    data, w, K = check_fit_inputs(X, n_components, sample_weight, dt, copy=False)
    D = data.shape[1]
    names = check_feature_names(feature_names, X, D)
    stats = column_stats(data, w)
    if prior is None:
        prior = default_prior(data, w, K)
    elif not isinstance(prior, Prior):
        raise TypeError(f"prior must be a bayesgmm.Prior or None; got {type(prior).__name__}.")
    prior = prior.check(K, D).astype(dt)
    settings = check_em_settings(
        data,
        K,
        covariance_type=covariance_type,
        prior=None,  # the prior is checked above (VB takes any positive concentration)
        init=init,
        n_init=n_init,
        tol=tol,
        max_iter=max_iter,
        reg_covar=None,  # unused: the conjugate update needs no regularisation
        block_size=block_size,
    )
    structure = settings["structure"]
    if _cov.get(structure).conjugate is None:
        raise ValueError(
            f"covariance_type={structure!r} has no conjugate update; fit_vb needs one "
            "(full, tied, diag, spherical)."
        )
    if key is None:
        seed = check_seed(seed)
        key = jax.random.key(0 if seed is None else seed)
    warn_data_problems(data, w, K, stats)
    result = _fit_vb_validated(
        data,
        w,
        K,
        structure=structure,
        prior=prior,
        init=settings["init"],
        n_init=settings["n_init"],
        tol=settings["tol"],
        max_iter=settings["max_iter"],
        block_size=settings["block_size"],
        key=key,
        stats=stats,
    )
    return result if names is None else replace(result, feature_names=names)


def _fit_vb_dask(**arguments) -> VBResult:  # Dask, an optional extra, is imported on call
    from bayesgmm.em._dask_vb import fit_vb as fit_vb_dask

    return fit_vb_dask(**arguments)


def _fit_vb_validated(
    data, w, K, *, structure, prior, init, n_init, tol, max_iter, block_size, key, stats
) -> VBResult:
    with single_threaded_blas():
        N, D = data.shape
        dt = data.dtype
        params0 = init if isinstance(init, GMMParams) else None
        if params0 is not None:
            n_init = 1
        std = Standardizer.from_stats(stats)
        n_blocks, n_used, B = em_block_layout(N, K, D, block_size)
        Xs = std.blocks(data, n_blocks, B)
        ws = np.concatenate([w, np.zeros(n_blocks * B - N, dt)]).reshape(n_blocks, B)
        programs = _vb_core.fit_vb_restarts_jit._cache_size()
        out = _vb_core.fit_vb_restarts_jit(
            jax.random.split(key, n_init),
            Xs,
            jax.device_put(ws),
            None if params0 is None else std.params_in(params0),
            n_components=K,
            method="given" if params0 is not None else init,
            structure=structure,
            prior=std.prior_in(prior),
            tol=np.asarray(tol, dt),
            max_iter=max_iter,
            n_used=np.asarray(n_used, np.int32),
        )
        if _vb_core.fit_vb_restarts_jit._cache_size() != programs:
            _memory_maps.release_if_near_limit()
    return vb_result(out, std, structure, prior, float(w.sum()), D, dt)


def vb_result(out, std, structure, prior, w_total: float, D: int, dt) -> VBResult:
    """The best restart of ``out`` (:class:`~bayesgmm.em._vb_core.VBOutput`, leading
    axis the restarts, standardised units) as a :class:`VBResult` in the user's units.

    ``w_total`` is the sum of the sample weights; a fit whose data never sit
    in one process (:mod:`bayesgmm.em._dask_vb`) uses it too.
    """
    failed = np.asarray(out.failed)
    if failed.all():
        raise ValueError(
            "variational Bayes broke down in every restart (a non-finite ELBO); try "
            "another init, fewer components or dtype='float64'."
        )
    log_jac = w_total * D * math.log(std.scale)
    elbos = np.where(failed, -np.inf, np.asarray(out.elbo))
    best = int(np.argmax(elbos))
    pick = jax.tree.map(lambda leaf: np.asarray(leaf)[best], out)
    n_iter = int(pick.n_iter)
    post = pick.post
    means = post.means * std.scale + std.center
    scale = post.scale * std.scale**2
    fam = _cov.get(structure).conjugate
    hyper = _conjugate.Conjugate(
        post.weight_concentration, post.mean_precision, means.astype(dt), post.dof, scale
    )
    with jax.enable_x64(True):
        params = _conjugate.mean_params(hyper, fam)
    converged = bool(pick.converged)
    if not converged:
        warn(
            f"VB did not converge in {n_iter} iterations; increase max_iter or loosen tol.",
            _warnings.ConvergenceWarning,
        )
    return VBResult(
        params=GMMParams(*(np.asarray(leaf) for leaf in jax.tree.leaves(params))),
        elbo=float(pick.elbo) - log_jac,
        history=np.asarray(pick.history[: n_iter + 1]) - log_jac,
        converged=converged,
        n_iter=n_iter,
        weight_concentration=hyper.weight_concentration,
        mean_precision=hyper.mean_precision,
        means=hyper.means,
        dof=hyper.dof,
        scale=hyper.scale,
        covariance_type=structure,
        prior=prior,
        n_samples=w_total,
        restart_elbos=np.where(failed, np.nan, np.asarray(out.elbo) - log_jac),
        best_restart=best,
    )
