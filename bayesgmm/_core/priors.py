"""The conjugate prior shared by MAP-EM and the Bayesian (NumPyro) model."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, xlogy

from bayesgmm._core import _pytree
from bayesgmm._core import covariance as _cov
from bayesgmm._core._precision import resolve_dtype, x64
from bayesgmm._core._validation import check_data, check_n_components, check_sample_weight
from bayesgmm._core.params import GMMParams

__all__ = ["Prior", "default_prior", "log_prior"]


@dataclass(frozen=True, repr=False, eq=False)
class Prior:
    """Dirichlet prior on the weights, Normal-Inverse-Wishart on each component.

    ``weights ~ Dirichlet(weight_concentration)``; for the ``full`` structure
    ``Sigma_k ~ InvWishart(dof, scale)`` and ``mu_k | Sigma_k ~ N(mean,
    Sigma_k / mean_precision)``. The other structures use the matching
    conjugate pieces (see :mod:`bayesgmm.covariance`). The same object drives
    MAP-EM (``fit_em(..., prior=prior)``) and the NumPyro model, so the MAP-EM
    estimate is the mode of the posterior that NUTS samples.

    Parameters
    ----------
    weight_concentration : array of shape (K,)
        Dirichlet concentration ``alpha``; MAP-EM needs every ``alpha >= 1``
        (below 1 the mode sits on the boundary of the simplex).
    mean : array of shape (D,)
        Prior mean ``m0`` of the component means.
    mean_precision : float
        Shrinkage ``kappa > 0``: the prior on a mean is worth ``kappa`` observations.
    dof : float
        Inverse-Wishart degrees of freedom ``nu > D - 1``.
    scale : array of shape (D, D)
        Inverse-Wishart scale matrix ``Psi``, symmetric positive definite.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> X = bg.datasets.load_faithful()
    >>> prior = bg.Prior.default(X, n_components=3)
    >>> prior.n_components, prior.n_features, float(prior.dof)
    (3, 2, 4.0)
    """

    weight_concentration: jax.Array
    mean: jax.Array
    mean_precision: jax.Array
    dof: jax.Array
    scale: jax.Array

    @x64
    def __post_init__(self) -> None:
        leaves = (self.weight_concentration, self.mean, self.mean_precision, self.dof, self.scale)
        if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
            return
        for name, value in zip(
            ("weight_concentration", "mean", "mean_precision", "dof", "scale"), leaves, strict=True
        ):
            arr = np.asarray(value)
            if arr.dtype.kind not in "biuf" or not np.isfinite(arr).all():
                raise ValueError(f"Prior.{name} must be finite real numbers; got {value!r}.")
        dtype = np.result_type(np.asarray(self.mean), np.asarray(self.scale), np.float32)
        alpha = np.atleast_1d(np.asarray(self.weight_concentration, dtype=dtype))
        mean = np.asarray(self.mean, dtype=dtype)
        kappa = np.asarray(self.mean_precision, dtype=dtype)
        nu = np.asarray(self.dof, dtype=dtype)
        scale = np.asarray(self.scale, dtype=dtype)
        if alpha.ndim != 1 or (alpha <= 0).any():
            raise ValueError(
                f"Prior.weight_concentration must be a positive vector of length K; got {alpha}."
            )
        if mean.ndim != 1:
            raise ValueError(f"Prior.mean must have shape (D,); got {mean.shape}.")
        D = mean.shape[0]
        if scale.shape != (D, D):
            raise ValueError(f"Prior.scale must have shape (D, D) = {(D, D)}; got {scale.shape}.")
        if kappa.ndim != 0 or kappa <= 0:
            raise ValueError(f"Prior.mean_precision must be a positive scalar; got {kappa}.")
        if nu.ndim != 0 or nu <= D - 1:
            raise ValueError(
                f"Prior.dof must be a scalar greater than D - 1 = {D - 1}; got {nu}. "
                f"The default is D + 2 = {D + 2}."
            )
        if not np.allclose(scale, scale.T) or np.linalg.eigvalsh(scale).min() <= 0:
            raise ValueError("Prior.scale must be symmetric positive definite.")
        for name, value in (
            ("weight_concentration", alpha),
            ("mean", mean),
            ("mean_precision", kappa),
            ("dof", nu),
            ("scale", scale),
        ):
            # device_put, not jnp.asarray: no small program compiled per shape
            object.__setattr__(self, name, jax.device_put(value))

    @classmethod
    @x64
    def default(
        cls,
        X,
        n_components: int,
        *,
        sample_weight=None,
        weight_concentration: float = 1.0,
        mean_precision: float = 0.01,
        dof: float | None = None,
        dtype=None,
    ) -> Prior:
        """Weakly informative data-dependent prior in the style of Fraley & Raftery (2007).

        The prior mean is the (weighted) data mean with shrinkage
        ``mean_precision = 0.01``; the Inverse-Wishart has ``dof = D + 2`` and
        scale ``cov(X) / K^(2/D)``: a component is a priori about as wide as
        one of ``K`` equal cells that tile the data. Weights get a flat
        Dirichlet (``weight_concentration = 1``).

        Parameters
        ----------
        X : array-like of shape (N, D)
        n_components : int
        sample_weight : array-like of shape (N,), optional
        weight_concentration, mean_precision, dof : float, optional
            Override the defaults.
        dtype : {None, "float64", "float32"}

        Returns
        -------
        Prior
        """
        dt = resolve_dtype(dtype, X)
        data = check_data(X, dtype=dt)
        K = check_n_components(n_components, max(data.shape[0], 1))
        w = check_sample_weight(sample_weight, data.shape[0], dt)
        return default_prior(
            data,
            w,
            K,
            weight_concentration=weight_concentration,
            mean_precision=mean_precision,
            dof=dof,
        )

    @classmethod
    def sparse(
        cls,
        X,
        k_max: int = 10,
        *,
        e0: float = 0.01,
        e0_prior: tuple[float, float] | None = None,
        k_prior=None,
        sample_weight=None,
        scale_factor: float = 0.5,
        mean_precision: float = 0.01,
        dof: float | None = None,
        dtype=None,
        scale_prior=None,
        mean_covariance=None,
        split_merge: bool | None = None,
    ):
        """The prior of an overfitted mixture whose number of clusters is inferred.

        ``weights ~ Dirichlet_K(e0)`` with a small ``e0`` empties the components
        the data do not need (a *sparse finite mixture*, Malsiner-Walli,
        Frühwirth-Schnatter & Grün 2016); the number of non-empty components
        ``K+`` per draw is then the posterior of the number of clusters. With
        ``k_prior`` the number of components ``K`` gets a prior of its own
        (a mixture of finite mixtures, sampled by the telescoping sampler of
        Frühwirth-Schnatter, Malsiner-Walli & Grün 2021), so ``p(K | data)``
        is reported beside ``p(K+ | data)``. Sample it with
        ``bayesgmm.sample_posterior(X, k_max, prior=..., method="gibbs")``.

        The components' prior is that of :meth:`Prior.default` except its
        scale: ``scale_factor * cov(X)`` (a priori ``E[Sigma_k] = cov(X) / 2``),
        not ``cov(X) / k_max^(2/D)``. An overfitted mixture needs components
        a priori as wide as a cluster, not as one of ``k_max`` cells, or it
        splits a Gaussian cluster in two and the sampler cannot merge them
        again; Malsiner-Walli et al. (2016) choose their hierarchical prior
        for the same reason (``E[Sigma_k]`` of the order of the data's
        variance). Empty components are drawn from this prior.

        ``scale_prior`` and ``mean_covariance`` give the hierarchical prior of
        those papers and of the R package telescope: the scale ``Psi`` learned
        from the data (``Psi ~ Wishart``, the papers' ``C0 = Psi / 2``; the
        sampler draws it given the non-empty components' covariances, then
        draws the empty components from the prior at the new ``Psi``), and
        component means independent of the covariances, ``mu_k ~ N(m0, B0)``
        (the sampler then draws ``Sigma_k | mu_k`` and ``mu_k | Sigma_k`` in
        turn). The papers' own choice is ``scale_prior="mw2016"``,
        ``mean_covariance="range"``, ``dof=D + 4`` and the column medians as
        ``m0``. Both need ``covariance_type="full"`` (in one dimension
        ``"diag"`` and ``"spherical"``, the same model, are accepted too).

        Parameters
        ----------
        X : array-like of shape (N, D)
        k_max : int
            Components allocated: an upper bound for ``K+`` and ``K``.
        e0 : float
            Dirichlet concentration (fixed), or where the sampler starts when
            ``e0_prior`` is given. 0.01 is the sparse default of the 2016 paper.
        e0_prior : (shape, rate), optional
            ``e0 ~ Gamma(shape, rate)``, updated in the sampler by a
            Metropolis-Hastings step on ``log e0`` given the partition;
            ``(1, 20)`` is the telescope package's choice (mean 0.05).
        k_prior : None, str or array-like of shape (k_max,)
            None: ``K = k_max`` (sparse finite mixture). Otherwise a prior on
            ``K = 1..k_max`` (truncated at ``k_max`` and renormalised):
            ``"uniform"``, ``"bnb(a_lambda, a_pi, b_pi)"`` (``K - 1`` is
            beta-negative-binomial; ``"bnb(1, 4, 3)"`` is the 2021 paper's
            recommendation), ``"poisson(lambda)"`` and ``"geometric(p)"`` for
            ``K - 1``, or the k_max probabilities themselves.
        scale_factor : float
            Inverse-Wishart scale as a multiple of the data covariance.
        sample_weight, mean_precision, dof, dtype
            As for :meth:`Prior.default`.
        scale_prior : None, "mw2016" or (dof, mean), optional
            None (default): the Inverse-Wishart scale is fixed at
            ``scale_factor * cov(X)``. ``(a, M)``: ``Psi ~ Wishart`` with ``a``
            degrees of freedom (``a > D - 1``) and mean ``M`` (a (D, D) matrix,
            or a number times the identity); in one dimension ``Psi ~
            Gamma(a / 2, rate a / (2 M))``. The telescope vignette's galaxy prior
            ``C0 ~ Gamma(0.2, rate 10 / R^2)`` is ``(0.4, 0.04 R^2)``.
            ``"mw2016"``: Malsiner-Walli et al. (2016), ``a = D`` and
            ``M = nu / 100 diag(R_j^2)`` (``R_j`` the data's range per column).
            The sampler starts at ``M``; the draws of ``Psi`` are the
            ``prior_scale`` sample statistic.
        mean_covariance : None, "range" or (D, D) matrix, optional
            None (default): the conjugate ``mu_k | Sigma_k ~ N(m0, Sigma_k /
            mean_precision)``. A matrix ``B0`` (or a number times the
            identity): ``mu_k ~ N(m0, B0)`` independent of ``Sigma_k``;
            ``"range"`` is the papers' ``diag(R_j^2)``.
        split_merge : bool, optional
            Add two split-merge Metropolis-Hastings moves to every Gibbs sweep
            (:mod:`bayesgmm.bayes._split_merge`): a cluster shared by two
            components is merged, or one held by a single component split,
            in one step, which the row-by-row assignments cannot do at large
            N (without them, four Gaussians in 10,000 rows gave p(K+ = 4) =
            0.14). Exact (the posterior is unchanged); a sweep takes about 1.9
            times as long. The moves integrate the component parameters out,
            which needs the conjugate component prior: None (default) turns
            them on unless ``scale_prior`` or ``mean_covariance`` is given;
            True with either is refused. False gives the plain sampler.

        Returns
        -------
        SparsePrior

        Examples
        --------
        >>> import bayesgmm as bg
        >>> X = bg.datasets.make_four_gaussians_2d(200)
        >>> bg.Prior.sparse(X, k_max=10, e0=0.01)
        SparsePrior(k_max=10, e0=0.01, k_prior='fixed K=10', D=2)
        """
        from bayesgmm._core._sparse import SparsePrior, component_hyperpriors, k_prior_log_pmf

        hierarchical = scale_prior is not None or mean_covariance is not None
        if split_merge is None:
            split_merge = not hierarchical
        elif split_merge and hierarchical:
            raise ValueError(
                "split_merge=True needs the conjugate component prior: its moves integrate "
                "the components out, which scale_prior / mean_covariance do not allow. "
                "Leave split_merge unset (off with them) or drop the hierarchical options."
            )

        e0 = float(e0)
        if not np.isfinite(e0) or e0 <= 0:
            raise ValueError(f"e0 must be a positive number; got {e0!r}.")
        if e0_prior is not None:
            shape_rate = tuple(float(v) for v in np.ravel(e0_prior))
            if len(shape_rate) != 2 or not all(np.isfinite(v) and v > 0 for v in shape_rate):
                raise ValueError(
                    f"e0_prior must be (shape, rate) of a Gamma, both positive; got {e0_prior!r}."
                )
            e0_prior = shape_rate
        one = cls.default(
            X, 1, sample_weight=sample_weight, mean_precision=mean_precision, dof=dof, dtype=dtype
        )
        k_max = check_n_components(k_max, np.inf)
        dt = np.asarray(one.scale).dtype
        scale = float(scale_factor) * np.asarray(one.scale)
        if scale_prior is not None or mean_covariance is not None:
            data = check_data(X, dtype=dt)
            used = data[check_sample_weight(sample_weight, data.shape[0], dt) > 0]
            scale_prior, start, mean_covariance = component_hyperpriors(
                scale_prior,
                mean_covariance,
                ranges=used.max(axis=0) - used.min(axis=0),
                dof=float(one.dof),
            )
            if start is not None:
                scale = start
        base = cls(
            weight_concentration=np.full(k_max, e0, dtype=dt),
            mean=one.mean,
            mean_precision=one.mean_precision,
            dof=one.dof,
            scale=np.asarray(scale, dtype=dt),
        )
        log_pk, name = k_prior_log_pmf(k_prior, base.n_components)
        return SparsePrior(
            base, e0, e0_prior, log_pk, name, scale_prior, mean_covariance, bool(split_merge)
        )

    def __reduce__(self):
        # Pickle as NumPy arrays, rebuilt under x64 (float64 survives unpickling).
        return (_pytree.restore, (Prior, *(np.asarray(leaf) for leaf in jax.tree.leaves(self))))

    @property
    def n_components(self) -> int:
        return int(self.weight_concentration.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    def __repr__(self) -> str:
        alpha = np.asarray(self.weight_concentration)
        a = f"{alpha[0]:g}" if np.all(alpha == alpha[0]) else str(alpha)
        return (
            f"Prior(K={self.n_components}, D={self.n_features}, weight_concentration={a}, "
            f"mean_precision={float(self.mean_precision):g}, dof={float(self.dof):g})"
        )

    def check(self, n_components: int, n_features: int, *, for_map: bool = False) -> Prior:
        """Raise ``ValueError`` unless this prior fits ``K`` components in ``D`` features."""
        if self.n_features != n_features or self.n_components != n_components:
            raise ValueError(
                f"the prior was built for K={self.n_components}, D={self.n_features} but the "
                f"model has K={n_components}, D={n_features}; build it with "
                "Prior.default(X, n_components) for this data and K."
            )
        if for_map and bool((np.asarray(self.weight_concentration) < 1).any()):
            raise ValueError(
                "MAP-EM needs weight_concentration >= 1: below 1 the posterior mode of the "
                "weights lies on the boundary of the simplex. Use weight_concentration=1 "
                "for MAP-EM (the NumPyro model accepts any positive value)."
            )
        return self

    def astype(self, dtype) -> Prior:
        with jax.enable_x64(True):
            return jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype=resolve_dtype(dtype)), self)

    @x64
    def log_prob(self, params: GMMParams, covariance_type: str = "full") -> jax.Array:
        """Log prior density of unbatched ``params`` under ``covariance_type``.

        The density is with respect to the weights, means and the free entries
        of the covariance structure (full matrices for ``full``/``tied``,
        variances for ``diag``/``spherical``).
        """
        return log_prior_jit(self, params, _cov.get(covariance_type))


# Prior.default refuses a data covariance whose smallest eigenvalue is below this
# fraction of its trace (condition number above about 1e12).
_ILL_CONDITIONED = 1e-12
_EXPLICIT = (
    "build a Prior with an explicit scale "
    "(bayesgmm.Prior(weight_concentration, mean, mean_precision, dof, scale))"
)


def _well_conditioned(cov) -> bool:
    return np.linalg.eigvalsh(cov).min() > _ILL_CONDITIONED * max(np.trace(cov), 1e-300)


def _weighted_cov(data, w):
    mean = (w @ data) / w.sum()
    diff = data - mean
    return (diff * w[:, None]).T @ diff / w.sum()


def _why_singular(data: np.ndarray, w: np.ndarray, cov: np.ndarray) -> str:
    """What makes the data covariance (nearly) singular, and what to do: for Prior.default.

    Truly singular data (a constant column, fewer distinct rows than
    features, linearly dependent columns) are told apart from ill-conditioned
    ones (one outlier, columns on very different scales, nearly collinear
    columns), whose covariance is invertible but too close to singular.
    """
    used = data[w > 0]
    D = data.shape[1]
    spread = used.max(axis=0) - used.min(axis=0)
    absmax = np.abs(used).max(axis=0)
    constant = np.flatnonzero(spread <= 1e-12 * np.maximum(absmax, np.finfo(data.dtype).tiny))
    if constant.size:
        return (
            f"Prior.default: column(s) {constant.tolist()} of X are constant, so the data "
            f"covariance is singular. Drop constant columns, or {_EXPLICIT}."
        )
    n_distinct = np.unique(used, axis=0).shape[0]
    if n_distinct <= D:
        return (
            f"Prior.default: X has only {n_distinct} distinct row(s) with positive weight for "
            f"{D} features, so the data covariance is singular (rank at most "
            f"{n_distinct - 1}). Use more rows or fewer features, or {_EXPLICIT}."
        )
    eig = np.linalg.eigvalsh(cov)
    with np.errstate(divide="ignore", over="ignore"):
        condition = f"{eig[-1] / eig[0]:.1e}" if eig[0] > 0 else "infinite"
    # One outlier: the row farthest from the column medians in robust units.
    median = np.median(used, axis=0)
    mad = 1.4826 * np.median(np.abs(used - median), axis=0)
    robust_scale = np.where(mad > 0, mad, np.sqrt(np.diag(cov)))
    z = np.abs(data - median) / robust_scale
    z[w <= 0] = 0.0
    row, col = np.unravel_index(np.argmax(z), z.shape)
    rest = w.copy()
    rest[row] = 0.0
    if z[row, col] > 10.0 and _well_conditioned(_weighted_cov(data, rest)):
        return (
            f"Prior.default: the data covariance is nearly singular (condition number "
            f"{condition}) because of one outlier: row {row} lies {z[row, col]:.3g} robust "
            f"standard deviations from the median of column {col}; without that row the "
            "covariance is well conditioned. Remove or correct the row, or "
            f"{_EXPLICIT}."
        )
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    corr_eig, corr_vec = np.linalg.eigh(corr)
    rounding = 10 * D * np.finfo(np.float64).eps  # of the correlations' eigenvalues
    if corr_eig[0] <= rounding:
        weak = corr_vec[:, 0]
        cols = np.flatnonzero(np.abs(weak) > 0.05 * np.abs(weak).max()).tolist()
        rank = int((corr_eig > rounding).sum())
        return (
            f"Prior.default: columns {cols} of X are linearly dependent, or so nearly that "
            "float64 cannot tell (one is a linear combination of the others), so the data "
            f"covariance is singular (numerical rank {rank} < D = {D}). Drop one of them, or "
            f"{_EXPLICIT}."
        )
    if corr_eig[0] > 1e-6:
        lo, hi = int(np.argmin(sd)), int(np.argmax(sd))
        return (
            f"Prior.default: the data covariance is ill-conditioned (condition number "
            f"{condition}), not singular: the columns are on very different scales "
            f"(standard deviation {sd[lo]:.3g} in column {lo}, {sd[hi]:.3g} in column {hi}). "
            "Standardise the columns first, e.g. (X - X.mean(axis=0)) / X.std(axis=0), or "
            f"{_EXPLICIT}."
        )
    weak = corr_vec[:, 0]
    cols = np.flatnonzero(np.abs(weak) > 0.05 * np.abs(weak).max()).tolist()
    return (
        f"Prior.default: the data covariance is ill-conditioned (condition number "
        f"{condition}), not singular: columns {cols} are nearly collinear (their correlation "
        f"matrix has condition number {corr_eig[-1] / corr_eig[0]:.1e}). Drop or combine "
        f"them (e.g. keep one, or use principal components), or {_EXPLICIT}."
    )


def default_prior(
    data: np.ndarray,
    w: np.ndarray,
    n_components: int,
    *,
    weight_concentration: float = 1.0,
    mean_precision: float = 0.01,
    dof: float | None = None,
) -> Prior:
    """:meth:`Prior.default` on data and weights that are already validated (no copy)."""
    dt = data.dtype
    D = data.shape[1]
    mean = (w @ data) / w.sum()
    diff = data - mean
    cov = (diff * w[:, None]).T @ diff / w.sum()
    if not _well_conditioned(cov):
        raise ValueError(_why_singular(data, w, cov))
    return Prior(
        weight_concentration=np.full(n_components, weight_concentration, dtype=dt),
        mean=mean,
        mean_precision=np.asarray(mean_precision, dtype=dt),
        dof=np.asarray(D + 2.0 if dof is None else dof, dtype=dt),
        scale=cov / n_components ** (2.0 / D),
    )


def log_dirichlet(weights, concentration):
    """Log density of ``Dirichlet(concentration)`` at ``weights`` (last axis)."""
    return (
        gammaln(concentration.sum(-1))
        - gammaln(concentration).sum(-1)
        + xlogy(concentration - 1.0, weights).sum(-1)
    )


def log_prior(prior: Prior, params: GMMParams, covariance_type: str = "full"):
    """Log prior density of unbatched ``params`` (jit-compatible)."""
    structure = _cov.get(covariance_type)
    return log_dirichlet(params.weights, prior.weight_concentration) + structure.log_prior(
        params.means, params.covariances, prior
    )


#: :func:`log_prior` compiled as one program (one compilation per shape and
#: structure, instead of one per primitive when it is called eagerly).
log_prior_jit = jax.jit(log_prior, static_argnames="covariance_type")


_pytree.register(Prior)
