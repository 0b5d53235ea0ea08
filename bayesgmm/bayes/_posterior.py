"""The :class:`Posterior` container: posterior draws on the shared structure.

Produced by :func:`bayesgmm.sample_posterior`. This module holds no maths and
imports neither NumPyro nor ArviZ. Its methods :meth:`Posterior.relabel`,
:meth:`Posterior.membership` and :meth:`Posterior.to_arviz` are the one
documented upward convenience layer of the package: they import the
diagnostics layer (``bayesgmm.diagnostics``) when called, so that a user can
write ``post.relabel().to_arviz()``; nothing else in a lower layer imports a
higher one (``tests/test_layout.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior

__all__ = ["Posterior"]


@dataclass(frozen=True, repr=False, eq=False)
class Posterior:
    """Posterior draws of a Gaussian mixture, as ``GMMParams`` with ``(chain, draw)`` axes.

    Attributes
    ----------
    params : GMMParams
        weights (C, S, K), means (C, S, K, D), covariances (C, S, K, D, D).
    X : ndarray of shape (N, D)
        The data the posterior conditions on (a copy).
    sample_weight : ndarray of shape (N,)
        Weights that scaled each observation's log-likelihood.
    prior : Prior
    covariance_type : str
    reference : GMMParams or None
        The EM/MAP estimate the chains started from, if any; the default
        reference for relabelling and the point estimate carried to ArviZ.
    reference_kind : str or None
        ``"EM"`` or ``"MAP-EM"``: what ``reference`` is.
    sample_stats : dict of str to ndarray of shape (C, S)
        Sampler statistics (``diverging``, ``energy``, ``tree_depth``,
        ``accept_prob``, ``step_size``, ``potential_energy`` where available).
    permutations : ndarray of shape (C, S, K) or None
        The component permutation applied to each draw by :meth:`relabel`
        (``new[k] = old[perm[k]]``); None before relabelling.
    relabel_method : str or None
    fraction_permuted : float or None
        Fraction of draws whose labels were changed by relabelling.
    feature_names : tuple of str or None
        Names of the data's columns (``feature_names=``, a DataFrame's string
        column labels, or those of the ``EMResult`` the chains started from);
        the ``feature`` coordinates of :meth:`to_arviz` and the plots' labels.
    sampler : str
        ``"nuts"`` or ``"gibbs"``: the method of :func:`bayesgmm.sample_posterior`
        that drew the chains.
    cluster_prior : SparsePrior or None
        The prior of the number of clusters (:meth:`bayesgmm.Prior.sparse`)
        when the chains sampled it; its ``sample_stats`` then hold
        ``n_clusters`` (K+), ``n_components`` (K), ``e0``, ``e0_accept``,
        ``split_merge_accept`` (the fraction of a sweep's split-merge moves
        accepted) and ``cluster_sizes`` (C, S, k_max), and under its
        ``scale_prior`` ``prior_scale`` (C, S, D, D), the draws of the
        Inverse-Wishart scale.
    """

    params: GMMParams
    X: np.ndarray
    sample_weight: np.ndarray
    prior: Prior
    covariance_type: str
    reference: GMMParams | None = None
    reference_kind: str | None = None
    sample_stats: dict[str, np.ndarray] = field(default_factory=dict)
    permutations: np.ndarray | None = None
    relabel_method: str | None = None
    fraction_permuted: float | None = None
    feature_names: tuple[str, ...] | None = None
    sampler: str = "nuts"
    cluster_prior: object | None = None

    def __post_init__(self) -> None:
        if isinstance(self.params, GMMParams):  # NumPy arrays: see GMMParams
            object.__setattr__(self, "params", self.params._host())
        if isinstance(self.reference, GMMParams):
            object.__setattr__(self, "reference", self.reference._host())

    @property
    def num_chains(self) -> int:
        return int(self.params.batch_shape[0])

    @property
    def num_draws(self) -> int:
        return int(self.params.batch_shape[1])

    @property
    def n_components(self) -> int:
        return self.params.n_components

    @property
    def n_features(self) -> int:
        return self.params.n_features

    @property
    def num_divergences(self) -> int:
        div = self.sample_stats.get("diverging")
        return 0 if div is None else int(np.asarray(div).sum())

    @classmethod
    def from_draws(cls, weights, means, covariances, **fields) -> Posterior:
        """A posterior from an engine's draws, each ``(chain, draw, ...)``.

        The covariance draws are symmetrised (a sampler's arithmetic leaves them
        symmetric only to rounding); ``fields`` are the other fields.
        """
        covariances = np.asarray(covariances)
        symmetric = 0.5 * (covariances + np.swapaxes(covariances, -1, -2))
        params = GMMParams(weights=weights, means=means, covariances=symmetric)
        return cls(params=params, **fields)

    def replace(self, **changes) -> Posterior:
        """A copy with some fields changed (the original is never mutated)."""
        return replace(self, **changes)

    def relabel(self, reference: GMMParams | None = None, method: str = "hungarian") -> Posterior:
        """Undo label switching; a new Posterior (see :func:`bayesgmm.diagnostics.relabel`)."""
        from bayesgmm.diagnostics._relabel import relabel

        ref = self.reference if reference is None else reference
        result = relabel(self.params, reference=ref, method=method, X=self.X)
        return self.replace(
            params=result.params,
            permutations=result.permutations,
            relabel_method=method,
            fraction_permuted=result.fraction_permuted,
        )

    def membership(self, X=None, *, hdi_prob: float = 0.94):
        """Posterior membership probabilities: ``(mean, hdi_low, hdi_high)``, each (N, K).

        See :func:`bayesgmm.diagnostics.membership`; relabel first if labels switch.
        """
        from bayesgmm.diagnostics._membership import membership

        return membership(self, X, hdi_prob=hdi_prob)

    def n_clusters(self):
        """``K+``, the number of non-empty components, per draw: int array of shape (C, S).

        Needs a run with a :meth:`bayesgmm.Prior.sparse` prior (the assignments
        are not kept otherwise).
        """
        from bayesgmm.diagnostics._nclusters import n_clusters

        return n_clusters(self)

    def k_posterior(self):
        """Table of ``p(K+ | data)`` (and ``p(K | data)``) beside their priors.

        See :func:`bayesgmm.diagnostics.k_posterior`.
        """
        from bayesgmm.diagnostics._nclusters import k_posterior

        return k_posterior(self)

    def clustering(self, X=None, *, n_clusters: int | None = None):
        """A point estimate of the partition with per-row uncertainty.

        See :func:`bayesgmm.diagnostics.clustering`.
        """
        from bayesgmm.diagnostics._nclusters import clustering

        return clustering(self, X, n_clusters=n_clusters)

    def to_arviz(self, *, posterior_predictive: bool = False, seed: int = 0, feature_names=None):
        """ArviZ ``InferenceData`` (see :func:`bayesgmm.to_inference_data`).

        ``feature`` coordinates are ``feature_names``, else :attr:`feature_names`.
        """
        from bayesgmm.diagnostics._arviz_io import to_inference_data

        return to_inference_data(
            self, posterior_predictive=posterior_predictive, seed=seed, feature_names=feature_names
        )

    def __repr__(self) -> str:
        rl = "" if self.relabel_method is None else f", relabelled={self.relabel_method!r}"
        if self.sampler != "nuts":
            rl += f", sampler={self.sampler!r}"
        return (
            f"Posterior(chains={self.num_chains}, draws={self.num_draws}, "
            f"K={self.n_components}, D={self.n_features}, "
            f"covariance_type={self.covariance_type!r}, divergences={self.num_divergences}{rl})"
        )
