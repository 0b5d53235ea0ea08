"""The prior of a sparse finite mixture and of the number of components K.

A :class:`SparsePrior` adds to a component :class:`~bayesgmm.Prior` built for
``k_max`` components what the number of clusters needs:

- ``e0``: the symmetric Dirichlet concentration ``weights ~ Dirichlet_K(e0)``,
  fixed, or with a Gamma hyperprior ``e0 ~ Gamma(shape, rate)``;
- optionally a prior ``p(K)`` on the number of components ``K = 1..k_max``
  (a mixture of finite mixtures, sampled by the telescoping sampler of
  Frühwirth-Schnatter, Malsiner-Walli & Grün 2021). Without it ``K = k_max``:
  the sparse finite mixture of Malsiner-Walli, Frühwirth-Schnatter & Grün (2016);
- optionally the hierarchical component prior of those papers: a Wishart
  hyperprior on the Inverse-Wishart scale ``Psi`` (their ``C0 = Psi / 2``),
  and component means independent of the covariances, ``mu_k ~ N(m0, B0)``,
  instead of the conjugate ``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa)``
  (:func:`component_hyperpriors`).

``K+``, the number of *non-empty* components (data clusters), has a prior
implied by these and the number of rows ``N``; :func:`prior_n_clusters`
computes it exactly (the partition's exchangeable probability summed with
generalised Stirling numbers). This module holds no sampler; it imports
neither NumPyro nor SciPy at import time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["SparsePrior", "component_hyperpriors", "k_prior_log_pmf", "prior_n_clusters"]

_NUMBER = r"\s*([0-9.eE+-]+)\s*"
_SPECS = {
    "uniform": re.compile(r"^uniform$"),
    "bnb": re.compile(rf"^bnb\({_NUMBER},{_NUMBER},{_NUMBER}\)$"),
    "poisson": re.compile(rf"^poisson\({_NUMBER}\)$"),
    "geometric": re.compile(rf"^geometric\({_NUMBER}\)$"),
}
_K_PRIOR_HELP = (
    "k_prior must be None (K = k_max, a sparse finite mixture), 'uniform', "
    "'bnb(a_lambda, a_pi, b_pi)' (K - 1 ~ beta-negative-binomial; 'bnb(1, 4, 3)' is the "
    "telescoping paper's choice), 'poisson(lambda)' (K - 1 ~ Poisson), 'geometric(p)' "
    "(K - 1 ~ Geometric, P(K - 1 = j) = p (1 - p)^j), or a vector of k_max probabilities "
    "of K = 1..k_max"
)


def _lbeta(a, b):
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def k_prior_log_pmf(k_prior, k_max: int) -> tuple[np.ndarray, str]:
    """Log prior of ``K = 1..k_max`` (truncated to ``k_max`` and renormalised) and its name.

    Parameters
    ----------
    k_prior : None, str or array-like of shape (k_max,)
        See :meth:`bayesgmm.Prior.sparse`.
    k_max : int

    Returns
    -------
    log_pk : ndarray of shape (k_max,)
        ``log p(K = k + 1)``; ``-inf`` where the prior has no mass.
    name : str
    """
    j = np.arange(k_max, dtype=np.float64)  # K - 1
    if k_prior is None:
        log_pk = np.full(k_max, -np.inf)
        log_pk[-1] = 0.0
        return log_pk, f"fixed K={k_max}"
    if isinstance(k_prior, str):
        spec = k_prior.replace(" ", "").lower()
        found = [(name, m) for name, pattern in _SPECS.items() if (m := pattern.match(spec))]
        if not found:
            raise ValueError(f"{_K_PRIOR_HELP}; got {k_prior!r}.")
        kind, m = found[0]
        args = [float(g) for g in m.groups()]
        if any(a <= 0 for a in args) or (kind == "geometric" and args[0] >= 1):
            raise ValueError(f"the parameters of k_prior must be positive; got {k_prior!r}.")
        if kind == "uniform":
            log_pk = np.zeros(k_max)
        elif kind == "bnb":
            r, a, b = args
            log_pk = np.array(
                [
                    math.lgamma(r + x)
                    - math.lgamma(x + 1)
                    - math.lgamma(r)
                    + _lbeta(a + r, b + x)
                    - _lbeta(a, b)
                    for x in j
                ]
            )
        elif kind == "poisson":
            (lam,) = args
            log_pk = j * math.log(lam) - lam - np.array([math.lgamma(x + 1) for x in j])
        else:
            (p,) = args
            log_pk = math.log(p) + j * math.log1p(-p)
        name = k_prior.replace(" ", "")
    else:
        pk = np.asarray(k_prior, dtype=np.float64)
        if pk.shape != (k_max,) or not np.isfinite(pk).all() or (pk < 0).any() or pk.sum() <= 0:
            raise ValueError(f"{_K_PRIOR_HELP}; got an array of shape {pk.shape}.")
        with np.errstate(divide="ignore"):
            log_pk = np.log(pk)
        name = "custom"
    top = log_pk.max()
    log_pk = log_pk - (top + np.log(np.exp(log_pk - top).sum()))
    return log_pk, name


@dataclass(frozen=True, repr=False, eq=False)
class SparsePrior:
    """A component prior for ``k_max`` components plus the prior of the number of clusters.

    Build it with :meth:`bayesgmm.Prior.sparse`; pass it as ``prior=`` to
    :func:`bayesgmm.sample_posterior` with ``method="gibbs"``.

    Attributes
    ----------
    base : Prior
        The component prior (Normal-Inverse-Wishart and friends) for ``k_max``
        components; its ``weight_concentration`` is ``e0`` (the starting value
        when ``e0`` has a hyperprior).
    e0 : float
        The Dirichlet concentration (fixed), or where the sampler starts.
    e0_prior : tuple of float or None
        ``(shape, rate)`` of ``e0 ~ Gamma(shape, rate)``, or None for a fixed ``e0``.
    log_pk : ndarray of shape (k_max,)
        ``log p(K)`` for ``K = 1..k_max``; a point mass at ``k_max`` without a prior on K.
    k_prior_name : str
    scale_prior : (float, ndarray of shape (D, D)) or None
        ``(a, G)``: the Inverse-Wishart scale ``Psi`` of every component is
        itself random, ``Psi ~ Wishart(a, G^{-1})`` (density
        ``∝ |Psi|^{(a - D - 1)/2} exp(-tr(G Psi) / 2)``, mean ``a G^{-1}``),
        and ``base.scale`` is where the sampler starts (its prior mean). In the
        notation of Frühwirth-Schnatter, Malsiner-Walli & Grün,
        ``Sigma_k^{-1} ~ W(c0, C0)`` with ``C0 ~ W(g0, G0)`` is ``nu = 2 c0``,
        ``Psi = 2 C0``, ``a = 2 g0``, ``G = G0`` (in one dimension
        ``C0 ~ Gamma(g0, rate G0)``). None: ``Psi = base.scale`` fixed.
    mean_covariance : ndarray of shape (D, D) or None
        ``B0``: the component means are a priori ``N(base.mean, B0)``,
        independent of the covariances (``base.mean_precision`` unused). None:
        the conjugate ``mu_k | Sigma_k ~ N(base.mean, Sigma_k / base.mean_precision)``.
    split_merge : bool
        Whether the Gibbs sampler adds split-merge moves to every sweep
        (:mod:`bayesgmm.bayes._split_merge`); only with the conjugate component
        prior (neither ``scale_prior`` nor ``mean_covariance``).
    """

    base: object
    e0: float
    e0_prior: tuple[float, float] | None
    log_pk: np.ndarray
    k_prior_name: str
    scale_prior: tuple[float, np.ndarray] | None = None
    mean_covariance: np.ndarray | None = None
    split_merge: bool = True

    @property
    def k_max(self) -> int:
        return int(self.log_pk.shape[0])

    @property
    def has_k_prior(self) -> bool:
        """True when K itself has a prior (the telescoping sampler), not fixed at ``k_max``."""
        return bool(np.isfinite(self.log_pk[:-1]).any())

    def prior_k(self) -> np.ndarray:
        """``p(K = k)`` for ``k = 1..k_max``, array of shape (k_max,)."""
        return np.exp(self.log_pk)

    def prior_n_clusters(self, n_samples: int) -> np.ndarray:
        """``p(K+ = k)``, ``k = 1..k_max``, in ``n_samples`` rows (:func:`prior_n_clusters`)."""
        return prior_n_clusters(n_samples, self.log_pk, self.e0, self.e0_prior)

    @property
    def hierarchical_scale(self) -> bool:
        """True when the Inverse-Wishart scale has a hyperprior (``scale_prior``)."""
        return self.scale_prior is not None

    def __repr__(self) -> str:
        e0 = f"e0={self.e0:g}" if self.e0_prior is None else f"e0~Gamma{self.e0_prior}"
        extra = ""
        if self.scale_prior is not None:
            extra += f", scale~Wishart(dof={self.scale_prior[0]:g})"
        if self.mean_covariance is not None:
            extra += ", means independent"
        return (
            f"SparsePrior(k_max={self.k_max}, {e0}, k_prior={self.k_prior_name!r}{extra}, "
            f"D={self.base.n_features}{'' if self.split_merge else ', split_merge=False'})"
        )


def _spd(value, D: int, name: str) -> np.ndarray:
    """A (D, D) symmetric positive definite matrix from a matrix, or a positive scalar times I."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = float(arr) * np.eye(D)
    if (
        arr.shape != (D, D)
        or not np.isfinite(arr).all()
        or not np.allclose(arr, arr.T)
        or np.linalg.eigvalsh(0.5 * (arr + arr.T)).min() <= 0
    ):
        raise ValueError(
            f"{name} must be a positive number or a symmetric positive definite "
            f"({D}, {D}) matrix; got {value!r}."
        )
    return 0.5 * (arr + arr.T)


def component_hyperpriors(scale_prior, mean_covariance, *, ranges, dof: float):
    """Resolve the hierarchical options of :meth:`bayesgmm.Prior.sparse`.

    Parameters
    ----------
    scale_prior : None, "mw2016" or (dof, mean)
        None: the Inverse-Wishart scale is fixed. ``(a, M)``: ``Psi ~ Wishart``
        with ``a`` degrees of freedom (``a > D - 1``) and mean ``M`` (a matrix,
        or a number times the identity). ``"mw2016"``: Malsiner-Walli,
        Frühwirth-Schnatter & Grün (2016) and the telescope package,
        ``g0 = 0.5 + (D - 1) / 2`` and ``G0 = 100 g0 / c0 diag(1 / R_j^2)``,
        that is ``a = D`` and ``M = nu / 100 diag(R_j^2)``.
    mean_covariance : None, "range" or (D, D) matrix
        ``B0`` of independent means ``mu_k ~ N(m0, B0)``; ``"range"`` is the
        papers' ``diag(R_j^2)``.
    ranges : ndarray of shape (D,)
        The data's range per column, ``R_j``.
    dof : float
        The components' Inverse-Wishart degrees of freedom ``nu``.

    Returns
    -------
    (scale_prior, start, mean_covariance)
        ``scale_prior`` as :attr:`SparsePrior.scale_prior` (``(a, G)``, ``G =
        a M^{-1}``) or None; ``start`` the prior mean ``M`` of the scale (None
        without a hyperprior); ``mean_covariance`` (D, D) or None.
    """
    D = ranges.shape[0]
    range_sq = np.diag(np.asarray(ranges, dtype=np.float64) ** 2)
    out_scale, start = None, None
    if isinstance(scale_prior, str):
        if scale_prior.lower() != "mw2016":
            raise ValueError(
                f"scale_prior must be None, 'mw2016' or (dof, mean); got {scale_prior!r}."
            )
        a, start = float(D), dof / 100.0 * range_sq
    elif scale_prior is not None:
        try:
            a, mean = scale_prior
            a = float(a)
        except (TypeError, ValueError):
            raise ValueError(
                f"scale_prior must be None, 'mw2016' or (dof, mean); got {scale_prior!r}."
            ) from None
        if not np.isfinite(a) or a <= D - 1:
            raise ValueError(
                f"the Wishart degrees of freedom of scale_prior must exceed D - 1 = {D - 1}; "
                f"got {a!r}."
            )
        start = _spd(mean, D, "the mean of scale_prior")
    if start is not None:
        out_scale = (a, a * np.linalg.inv(start))
    if isinstance(mean_covariance, str):
        if mean_covariance.lower() != "range":
            raise ValueError(
                f"mean_covariance must be None, 'range' or a (D, D) matrix; "
                f"got {mean_covariance!r}."
            )
        mean_covariance = range_sq
    elif mean_covariance is not None:
        mean_covariance = _spd(mean_covariance, D, "mean_covariance")
    return out_scale, start, mean_covariance


def _log_stirling(n_samples: int, k_max: int, gammas: np.ndarray) -> np.ndarray:
    """``log S_gamma(N, k)``, shape (G, k_max + 1): the sum over set partitions of N rows
    into k blocks of ``prod_j Gamma(n_j + gamma) / Gamma(gamma)``.

    Adding row ``n + 1`` to one of ``k`` blocks multiplies the sum by ``n + k gamma``,
    opening a new block by ``gamma``: ``S(n + 1, k) = (n + k gamma) S(n, k) + gamma S(n, k - 1)``.
    """
    G = gammas.shape[0]
    k = np.arange(k_max + 1, dtype=np.float64)
    log_s = np.full((G, k_max + 1), -np.inf)
    log_s[:, 0] = 0.0
    log_g = np.log(gammas)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        for n in range(n_samples):
            stay = np.log(n + k[None, :] * gammas[:, None]) + log_s
            new = np.concatenate([np.full((G, 1), -np.inf), log_g + log_s[:, :-1]], axis=1)
            log_s = np.logaddexp(stay, new)
    return log_s


def prior_n_clusters(n_samples: int, log_pk, e0: float, e0_prior=None, *, n_quad: int = 200):
    """The prior of the number of non-empty components ``K+`` in ``n_samples`` rows.

    ``p(K+ = k | N) = sum_K p(K) K! / (K - k)! Gamma(K e0) / Gamma(N + K e0) S_e0(N, k)``
    (Frühwirth-Schnatter, Malsiner-Walli & Grün 2021, eq. for the exchangeable
    partition probability of a finite mixture), with ``S_e0(N, k)`` the sum over
    the set partitions of the rows into ``k`` blocks of ``prod Gamma(N_j + e0) / Gamma(e0)``.
    With ``e0 ~ Gamma(shape, rate)`` the result is averaged over ``n_quad``
    quantiles of that Gamma (midpoint rule on the probability scale).

    Parameters
    ----------
    n_samples : int
        ``N``, the number of rows.
    log_pk : array of shape (k_max,)
        ``log p(K = 1..k_max)``.
    e0 : float
    e0_prior : (shape, rate) or None
    n_quad : int

    Returns
    -------
    ndarray of shape (k_max,)
        ``p(K+ = k)`` for ``k = 1..k_max`` (sums to 1 when ``n_samples >= 1``).
    """
    log_pk = np.asarray(log_pk, dtype=np.float64)
    k_max = log_pk.shape[0]
    if e0_prior is None:
        gammas = np.array([float(e0)])
    else:
        from scipy.stats import gamma as gamma_dist

        shape, rate = e0_prior
        probs = (np.arange(n_quad) + 0.5) / n_quad
        gammas = gamma_dist.ppf(probs, shape, scale=1.0 / rate)
    log_s = _log_stirling(n_samples, k_max, gammas)[:, 1:]  # (G, k): k = 1..k_max
    from scipy.special import gammaln, logsumexp

    K = np.arange(1, k_max + 1, dtype=np.float64)
    kp = K  # K+ values
    # log K! / (K - k)! for k <= K, else -inf: (K, k)
    with np.errstate(invalid="ignore"):
        diff = K[:, None] - kp[None, :]
        falling = np.where(
            diff >= 0, gammaln(K[:, None] + 1) - gammaln(np.maximum(diff, 0) + 1), -np.inf
        )
    ratio = gammaln(K[None, :] * gammas[:, None]) - gammaln(
        n_samples + K[None, :] * gammas[:, None]
    )
    # (G, K, k)
    log_terms = log_pk[None, :, None] + falling[None] + ratio[:, :, None] + log_s[:, None, :]
    per_gamma = logsumexp(log_terms, axis=1)  # (G, k)
    return np.exp(logsumexp(per_gamma, axis=0) - np.log(gammas.shape[0]))
