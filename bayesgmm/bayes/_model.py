"""The Bayesian Gaussian mixture as a plain NumPyro model: :func:`gmm_model`.

Dirichlet weights, one :class:`~bayesgmm.Prior` component prior per
covariance structure (the densities of :mod:`bayesgmm.covariance`, the same
that MAP-EM maximises), and the assignments summed out by
:class:`MixtureRows`, so NUTS sees no discrete site. Sampling lives in
:mod:`bayesgmm.bayes`.

This module imports NumPyro; ``import bayesgmm`` does not import it.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import logsumexp
from numpyro import handlers
from numpyro.distributions import constraints

from bayesgmm._core import _linalg
from bayesgmm._core import covariance as _cov
from bayesgmm._core._mixture import component_log_prob

__all__ = ["MixtureRows", "gmm_model"]


class MixtureRows(dist.Distribution):
    """Rows of a Gaussian mixture with the assignments summed out.

    ``log_prob(x)`` is the mixture log density of each row,
    ``logsumexp_k (log w_k + log N(x | mu_k, Sigma_k))``, computed with the
    precision-Cholesky GEMM of :func:`bayesgmm.density.component_log_prob`.
    Used inside ``plate("obs_id", N)`` it gives the pointwise log-likelihood that
    LOO and WAIC need.

    Parameters
    ----------
    log_weights : array of shape (K,)
    means : array of shape (K, D)
    chol : array of shape (K, D, D)
        Lower Cholesky factors of the covariances.
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    pytree_data_fields = ("log_weights", "means", "chol")

    def __init__(self, log_weights, means, chol, *, validate_args=None):
        self.log_weights = log_weights
        self.means = means
        self.chol = chol
        super().__init__(
            batch_shape=(), event_shape=jnp.shape(means)[-1:], validate_args=validate_args
        )

    def log_prob(self, value):
        return _mixture_log_prob(self.log_weights, self.means, self.chol, value)

    def sample(self, key, sample_shape=()):
        key_z, key_x = jax.random.split(key)
        labels = jax.random.categorical(key_z, self.log_weights, shape=sample_shape)
        eps = jax.random.normal(key_x, (*sample_shape, self.means.shape[-1]), self.means.dtype)
        return self.means[labels] + jnp.einsum("...de,...e->...d", self.chol[labels], eps)


# The quadratic-feature form needs a feature matrix of N x D (D + 3) / 2 values;
# it is used while that is no larger than the direct form's N x D x K whitened
# residuals, or small in absolute terms.
_EXPANDED_MAX_BYTES = 64 * 2**20


def _use_expanded(n_rows: int, D: int, K: int, dtype) -> bool:
    """Whether :func:`_expanded_joint` computes the mixture density (static shapes only).

    Only in float64: the expanded quadratic form loses about ``eps * x' Lambda x``
    to cancellation, harmless at float64's 1e-16 but not at float32's 1e-7.
    """
    if jnp.dtype(dtype) != jnp.float64:
        return False
    n_features = D * (D + 3) // 2
    return n_features <= D * K or n_rows * n_features * 8 <= _EXPANDED_MAX_BYTES


def _direct_joint(log_weights, means, chol, flat):
    """``log w_k + log N(x_n | mu_k, Sigma_k)`` by whitening every residual, (N, K)."""
    prec = _linalg.precision_cholesky(chol)
    logdet = _linalg.logdet_from_cholesky(chol)
    return component_log_prob(flat, means, prec, logdet) + log_weights


def _expanded_joint(log_weights, means, chol, flat):
    """The same (N, K) matrix as :func:`_direct_joint`, as one GEMM on quadratic features.

    ``(x - mu)' Lambda (x - mu) = x' Lambda x - 2 x' Lambda mu + mu' Lambda mu``
    is linear in the features ``[x_i x_j (i <= j), x_i]`` of each row, so the
    whole (N, K) matrix is ``F @ W`` with ``F`` of shape (N, D (D + 3) / 2)
    fixed by the data and ``W`` a small function of the parameters; its
    gradient is ``F.T @ (responsibility-weighted seeds)``, one more GEMM. On
    ``N = 10,000, D = 5, K = 4`` this value and gradient take about a third of
    the time of the direct form, which materialises N x D x K residuals.

    The rows are first centred and scaled by their own column means and
    standard deviations, and the parameters mapped with them (the Mahalanobis
    distance is unchanged by a shared affine map, the log-determinant is
    taken from ``Sigma`` itself), so the cancellation in the expansion works
    on numbers of order one whatever the data's location and units. What is
    left is a rounding error in each row's log density of about
    ``5e-16 * (r / s)**2``, for data of spread ``r`` and a component whose
    narrowest standard deviation is ``s`` (measured against an 80-bit
    reference: 1e-10 at ``r / s = 500``, 2e-8 at 5,000, 1.5e-6 at 50,000,
    where the direct form errs by 3e-13 to 2e-11). That is the sampler's
    target only: the pointwise log-likelihood reported in ArviZ's
    ``log_likelihood`` group and every density of :class:`GMMParams` use the
    direct form.
    """
    D = flat.shape[-1]
    shift = jnp.mean(flat, axis=0)
    spread = jnp.std(flat, axis=0)
    spread = jnp.where(spread > 0, spread, jnp.ones_like(spread))
    z = (flat - shift) / spread
    m = (means - shift) / spread
    prec = _linalg.precision_cholesky(chol) * spread[:, None]  # whitening of z: diag(s) L^-T
    lam = prec @ jnp.swapaxes(prec, -1, -2)  # (K, D, D) precision matrices of z
    lin = jnp.einsum("kde,ke->kd", lam, m)  # Lambda_k m_k
    rows, cols = np.triu_indices(D)
    quad_coef = np.where(rows == cols, -0.5, -1.0).astype(flat.dtype)
    weights = jnp.concatenate([lam[:, rows, cols] * quad_coef, lin], axis=1)  # (K, P)
    features = jnp.concatenate([z[:, rows] * z[:, cols], z], axis=1)  # (N, P)
    logdet = _linalg.logdet_from_cholesky(chol)
    const = log_weights - 0.5 * (D * _linalg.LOG_2PI + logdet + jnp.sum(lin * m, axis=-1))
    return features @ weights.T + const


@jax.jit
def _mixture_log_prob(log_weights, means, chol, value):
    """Per-row mixture log density, shape ``value.shape[:-1]``.

    Compiled as one program, so that NumPyro's eager (op-by-op) initialisation
    of the chains compiles it once rather than primitive by primitive. In
    float64 it uses the quadratic-feature GEMM (:func:`_expanded_joint`), in
    float32 or when the feature matrix would be large the direct whitening.
    """
    K, D = means.shape[-2:]
    flat = jnp.reshape(value, (-1, D))
    if _use_expanded(flat.shape[0], D, K, flat.dtype):
        joint = _expanded_joint(log_weights, means, chol, flat)
    else:
        joint = _direct_joint(log_weights, means, chol, flat)
    return logsumexp(joint, axis=-1).reshape(jnp.shape(value)[:-1])


def gmm_model(X, n_components, prior, covariance_type="full", sample_weight=None):
    """NumPyro model of a Gaussian mixture under the prior MAP-EM uses.

    ``weights ~ Dirichlet(alpha)`` (site ``"weights"``); the component means and
    covariances are sampled by the covariance structure's registry entry
    (:attr:`bayesgmm.covariance.CovarianceStructure.numpyro_sample`) in the
    coordinates of :meth:`bayesgmm.Prior.log_prob`: for ``full``, ``Sigma_k ~
    InvWishart(dof, scale)`` (site ``"covariances"``) and ``mu_k | Sigma_k ~
    N(mean, Sigma_k / mean_precision)`` (site ``"means"``); ``tied`` has one
    shared site ``"covariance"``; ``diag`` and ``spherical`` have Inverse-Gamma
    ``"variances"``. Whatever the structure, the full (K, D, D) covariances are
    recorded as ``"covariances"``. The assignments are summed out
    (``logsumexp``), so NUTS sees no discrete site; the site ``"obs"`` in
    ``plate("obs_id", N)`` carries the pointwise mixture log density, each
    row's term scaled by its ``sample_weight``. (NumPyro records plates in the
    trace beside sites, so the plate cannot share the name ``"obs"``;
    ``"obs_id"`` is also the ArviZ dimension of the observations.)

    The log joint density of the sites is, term for term, the MAP-EM objective
    (``EMResult.log_posterior``): see :func:`log_joint`.

    The model computes in the dtype of ``X`` (the prior is cast to it). JAX
    gives float32 arrays unless 64-bit types are on: run it under
    ``jax.enable_x64(True)`` for float64, as :func:`sample_posterior` does.

    Parameters
    ----------
    X : array of shape (N, D)
        Validated data (:func:`sample_posterior` and :func:`find_map` validate
        their input as :func:`bayesgmm.fit_em` does; this function does not).
    n_components : int
    prior : Prior
        Built for ``n_components`` components in ``D`` features.
    covariance_type : {"full", "tied", "diag", "spherical"}
    sample_weight : array of shape (N,), optional
        Non-negative replication weights; a zero weight drops the row.

    Examples
    --------
    >>> import jax, bayesgmm as bg
    >>> from numpyro import handlers
    >>> from bayesgmm import gmm_model
    >>> X = bg.datasets.load_faithful()
    >>> prior = bg.Prior.default(X, 2)
    >>> with jax.enable_x64(True):  # as sample_posterior does: float64
    ...     tr = handlers.trace(handlers.seed(gmm_model, 0)).get_trace(X, 2, prior)
    >>> [name for name in tr if tr[name]["type"] == "sample"]
    ['weights', 'covariances', 'means', 'obs']
    """
    structure = _cov.get(covariance_type)
    X = jnp.asarray(X)
    N, D = X.shape
    if prior.weight_concentration.shape[-1] != n_components or prior.mean.shape[-1] != D:
        raise ValueError(
            f"the prior was built for K={prior.weight_concentration.shape[-1]}, "
            f"D={prior.mean.shape[-1]} but the model has K={n_components}, D={D}."
        )
    prior = jax.tree.map(lambda leaf: jnp.asarray(leaf, X.dtype), prior)  # one dtype throughout
    weights = numpyro.sample(
        "weights", dist.Dirichlet(prior.weight_concentration, validate_args=False)
    )
    means, covariances = structure.numpyro_sample(prior, n_components)
    rows = MixtureRows(jnp.log(weights), means, _linalg.cholesky(covariances), validate_args=False)
    with numpyro.plate("obs_id", N):
        if sample_weight is None:
            numpyro.sample("obs", rows, obs=X)
        else:
            w = jnp.asarray(sample_weight, X.dtype)
            used = w > 0
            # scale() must be positive: zero-weight rows are masked out instead.
            with handlers.mask(mask=used), handlers.scale(scale=jnp.where(used, w, 1.0)):
                numpyro.sample("obs", rows, obs=X)
