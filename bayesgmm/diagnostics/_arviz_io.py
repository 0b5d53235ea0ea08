"""ArviZ interchange: a :class:`~bayesgmm.Posterior` to and from ``InferenceData``.

Layout of the ``InferenceData`` written by :func:`to_inference_data`
(dims ``chain, draw, component, feature, feature_bis, obs_id``):

=======================  ===================================================================
group                    contents
=======================  ===================================================================
posterior                ``weights`` (chain, draw, component), ``means`` (..., component,
                         feature), ``covariances`` (..., component, feature, feature_bis);
                         attrs describe the run (see below)
sample_stats             sampler statistics, ArviZ names (``lp = -potential_energy``,
                         ``acceptance_rate``, ``n_steps``, ``diverging``, ...), plus
                         ``relabel_permutation`` (chain, draw, component) once relabelled
log_likelihood           ``obs`` (chain, draw, obs_id): ``w_n log p(x_n | theta)``
posterior_predictive     ``obs`` (chain, draw, obs_id, feature), only on request
observed_data            ``obs`` (obs_id, feature): the data ``X``
constant_data            ``sample_weight`` (obs_id)
point_estimate           the EM/MAP estimate (``Posterior.reference``): ``weights``
                         (component), ``means`` (component, feature), ``covariances``
                         (component, feature, feature_bis); absent without a reference
prior_hyperparameters    the :class:`~bayesgmm.Prior`: ``weight_concentration``
                         (component), ``mean`` (feature), ``mean_precision``, ``dof``,
                         ``scale`` (feature, feature_bis)
cluster_prior            the rest of a :class:`~bayesgmm.SparsePrior`
                         (``Posterior.cluster_prior``, whose ``base`` is the prior above):
                         ``log_pk`` (component), ``e0``, and where used ``e0_prior``
                         (shape, rate), ``scale_prior_dof`` with ``scale_prior_rate`` and
                         ``mean_covariance`` (feature, feature_bis); attrs ``k_prior_name``,
                         ``split_merge`` (0 or 1).
                         Only for a posterior sampled under ``Prior.sparse``
=======================  ===================================================================

``posterior.attrs`` carries the short description: ``covariance_type``,
``reference_kind`` (``"EM"``/``"MAP-EM"``), ``has_point_estimate``,
``relabel_method`` and ``fraction_permuted`` (when relabelled), ``prior`` (the
prior's repr), ``sampler`` (``"nuts"`` or ``"gibbs"``) and ``bayesgmm_version``.
The prior's hyperparameters are variables of their own group rather than
attributes (netCDF attributes cannot hold matrices), and that group is not
ArviZ's ``prior`` group, which is reserved for draws from the prior with
``chain``/``draw`` dims. ``point_estimate``, ``prior_hyperparameters`` and
``cluster_prior`` are non-standard groups: ArviZ keeps them (also through
``to_netcdf``/``from_netcdf``) without warnings.
"""

from __future__ import annotations

import numbers

import jax
import numpy as np

from bayesgmm._core._precision import x64
from bayesgmm._core._validation import check_seed
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.bayes._posterior import Posterior

__all__ = ["from_inference_data", "to_inference_data"]

POINT_ESTIMATE_GROUP = "point_estimate"
PRIOR_GROUP = "prior_hyperparameters"
CLUSTER_PRIOR_GROUP = "cluster_prior"
PERMUTATION_STAT = "relabel_permutation"

# NumPyro statistic -> ArviZ name (as arviz.from_numpyro renames them).
_STAT_RENAMES = {"accept_prob": "acceptance_rate", "num_steps": "n_steps"}
_PARAM_DIMS = {
    "weights": ("component",),
    "means": ("component", "feature"),
    "covariances": ("component", "feature", "feature_bis"),
}
_PRIOR_DIMS = {
    "weight_concentration": ("component",),
    "mean": ("feature",),
    "mean_precision": (),
    "dof": (),
    "scale": ("feature", "feature_bis"),
}


def _coords(posterior: Posterior, feature_names) -> dict[str, np.ndarray]:
    K, D = posterior.n_components, posterior.n_features
    if feature_names is None:
        feature_names = posterior.feature_names
    if feature_names is None:
        features = np.arange(D)
    else:
        features = np.asarray(list(feature_names))
        if features.shape != (D,) or len(set(features.tolist())) != D:
            raise ValueError(
                f"feature_names must be {D} distinct names, one per feature; "
                f"got {list(feature_names)!r}."
            )
    return {
        "chain": np.arange(posterior.num_chains),
        "draw": np.arange(posterior.num_draws),
        "component": np.arange(K),
        "feature": features,
        "feature_bis": features.copy(),
        "obs_id": np.arange(np.asarray(posterior.X).shape[0]),
    }


def _params_dataset(params: GMMParams, batch_dims: tuple[str, ...], coords, attrs=None):
    import xarray as xr

    arrays = params.to_numpy()
    data_vars = {name: ((*batch_dims, *dims), arrays[name]) for name, dims in _PARAM_DIMS.items()}
    used = {d for dims in _PARAM_DIMS.values() for d in dims} | set(batch_dims)
    return xr.Dataset(
        data_vars, coords={k: v for k, v in coords.items() if k in used}, attrs=attrs or {}
    )


def _sample_stats_dataset(posterior: Posterior, coords):
    import xarray as xr

    C, S = posterior.num_chains, posterior.num_draws
    stats, renamed = {}, []
    for name, value in posterior.sample_stats.items():
        arr = np.asarray(value)
        if arr.shape[:2] != (C, S):
            raise ValueError(
                f"sample_stats[{name!r}] must have leading shape (chain, draw) = {(C, S)}; "
                f"got {arr.shape}."
            )
        stats[name] = arr
    if "potential_energy" in stats and "lp" not in stats:
        stats["lp"] = -stats.pop("potential_energy")
        renamed.append("lp=-potential_energy")
    for old, new in _STAT_RENAMES.items():
        if old in stats and new not in stats:
            stats[new] = stats.pop(old)
            renamed.append(f"{new}={old}")
    if posterior.permutations is not None:
        perm = np.asarray(posterior.permutations)
        if perm.shape != (C, S, posterior.n_components):
            raise ValueError(
                f"Posterior.permutations must have shape {(C, S, posterior.n_components)}; "
                f"got {perm.shape}."
            )
        stats[PERMUTATION_STAT] = perm.astype(np.int64)
    data_vars = {}
    for name, arr in stats.items():
        dims = ("chain", "draw", *(f"{name}_dim_{i}" for i in range(arr.ndim - 2)))
        if name == PERMUTATION_STAT:
            dims = ("chain", "draw", "component")
        data_vars[name] = (dims, arr)
    used = {"chain", "draw"} | ({"component"} if PERMUTATION_STAT in stats else set())
    return xr.Dataset(
        data_vars,
        coords={k: v for k, v in coords.items() if k in used},
        attrs={"bayesgmm_renamed": ";".join(renamed)} if renamed else {},
    )


def _posterior_attrs(posterior: Posterior) -> dict:
    import bayesgmm

    attrs = {
        "covariance_type": str(posterior.covariance_type),
        "has_point_estimate": int(posterior.reference is not None),
        "prior": repr(posterior.prior),
        "sampler": str(posterior.sampler),
        "bayesgmm_version": bayesgmm.__version__,
    }
    if posterior.reference_kind is not None:
        attrs["reference_kind"] = str(posterior.reference_kind)
    if posterior.relabel_method is not None:
        attrs["relabel_method"] = str(posterior.relabel_method)
    if posterior.fraction_permuted is not None:
        attrs["fraction_permuted"] = float(posterior.fraction_permuted)
    return attrs


@x64
def to_inference_data(
    posterior: Posterior,
    *,
    posterior_predictive: bool = False,
    seed: int = 0,
    feature_names=None,
):
    """Convert a :class:`~bayesgmm.Posterior` to ``arviz.InferenceData``.

    The groups and attributes are listed in the module docstring. The
    pointwise log-likelihood is computed in closed form from the draws:
    ``log_likelihood["obs"][c, s, n] = w_n log p(x_n | theta_cs)`` with
    ``w_n`` the sample weight of row ``n`` (1 without weights), so its sum
    over ``obs_id`` is the weighted log-likelihood the model conditioned on,
    and PSIS-LOO/WAIC (``az.loo``, ``az.waic``) treat a row of weight ``w`` as
    ``w`` replicated observations left out together. Rows of weight 0
    contribute 0.

    Parameters
    ----------
    posterior : Posterior
        Draws with ``(chain, draw)`` batch axes.
    posterior_predictive : bool
        Also draw, for every posterior draw, a replicated data set of the same
        size as ``X`` (memory ``chain x draw x N x D``).
    seed : int
        Seed of the posterior predictive draws.
    feature_names : sequence of str, optional
        Coordinates of ``feature`` and ``feature_bis``; default
        ``posterior.feature_names``, else ``0..D-1``. Read back by
        :func:`from_inference_data` as ``Posterior.feature_names``.

    Returns
    -------
    arviz.InferenceData

    Examples
    --------
    >>> import numpy as np, jax
    >>> import bayesgmm as bg
    >>> from bayesgmm.posterior import Posterior
    >>> X = bg.datasets.make_four_gaussians_2d(100)
    >>> truth = bg.datasets.true_params_four_gaussians_2d()
    >>> draws = jax.tree.map(lambda a: np.broadcast_to(a, (2, 10, *a.shape)), truth)
    >>> post = Posterior(params=draws, X=X, sample_weight=np.ones(100),
    ...                  prior=bg.Prior.default(X, 4), covariance_type="full")
    >>> idata = post.to_arviz()
    >>> idata.posterior["means"].dims
    ('chain', 'draw', 'component', 'feature')
    >>> idata.log_likelihood["obs"].shape
    (2, 10, 100)
    """
    import arviz as az
    import xarray as xr

    if not isinstance(posterior, Posterior):
        raise TypeError(f"expected a bayesgmm Posterior; got {type(posterior).__name__}.")
    params = posterior.params
    if len(params.batch_shape) != 2:
        raise ValueError(
            f"Posterior.params must have batch axes (chain, draw); got {params.batch_shape}."
        )
    X = np.asarray(posterior.X)
    if X.ndim != 2 or X.shape[1] != posterior.n_features:
        raise ValueError(
            f"Posterior.X must have shape (N, D={posterior.n_features}); got {X.shape}."
        )
    N = X.shape[0]
    weight = np.asarray(posterior.sample_weight)
    if weight.shape != (N,):
        raise ValueError(f"Posterior.sample_weight must have shape ({N},); got {weight.shape}.")
    seed = check_seed(seed) or 0
    coords = _coords(posterior, feature_names)
    chain_draw = ("chain", "draw")

    groups = {
        "posterior": _params_dataset(params, chain_draw, coords, _posterior_attrs(posterior)),
        "sample_stats": _sample_stats_dataset(posterior, coords),
    }
    pointwise = np.asarray(params.log_prob(X)) * weight
    groups["log_likelihood"] = xr.Dataset(
        {"obs": (("chain", "draw", "obs_id"), pointwise)},
        coords={k: coords[k] for k in ("chain", "draw", "obs_id")},
    )
    if posterior_predictive:
        replicated, _ = params.sample(jax.random.key(seed), N)
        groups["posterior_predictive"] = xr.Dataset(
            {"obs": (("chain", "draw", "obs_id", "feature"), np.asarray(replicated))},
            coords={k: coords[k] for k in ("chain", "draw", "obs_id", "feature")},
            attrs={"seed": seed},
        )
    groups["observed_data"] = xr.Dataset(
        {"obs": (("obs_id", "feature"), X)},
        coords={k: coords[k] for k in ("obs_id", "feature")},
    )
    groups["constant_data"] = xr.Dataset(
        {"sample_weight": (("obs_id",), weight)}, coords={"obs_id": coords["obs_id"]}
    )
    if posterior.reference is not None:
        ref = posterior.reference
        if ref.batch_shape or (ref.n_components, ref.n_features) != (
            posterior.n_components,
            posterior.n_features,
        ):
            raise ValueError(
                "Posterior.reference must be unbatched GMMParams with the draws' K and D; "
                f"got {ref!r}."
            )
        groups[POINT_ESTIMATE_GROUP] = _params_dataset(
            ref, (), coords, {"reference_kind": str(posterior.reference_kind or "")}
        )
    prior = posterior.prior
    if prior is not None:
        groups[PRIOR_GROUP] = xr.Dataset(
            {name: (dims, np.asarray(getattr(prior, name))) for name, dims in _PRIOR_DIMS.items()},
            coords={k: coords[k] for k in ("component", "feature", "feature_bis")},
        )
    if posterior.cluster_prior is not None:
        groups[CLUSTER_PRIOR_GROUP] = _cluster_prior_dataset(posterior.cluster_prior, coords)
    return az.InferenceData(**groups)


def _cluster_prior_dataset(sparse, coords):
    """The :class:`~bayesgmm.SparsePrior` fields other than ``base``, as one Dataset."""
    import xarray as xr

    matrix = ("feature", "feature_bis")
    data_vars = {
        "log_pk": (("component",), np.asarray(sparse.log_pk, dtype=np.float64)),
        "e0": ((), float(sparse.e0)),
    }
    if sparse.e0_prior is not None:
        data_vars["e0_prior"] = (("shape_rate",), np.asarray(sparse.e0_prior, dtype=np.float64))
    if sparse.scale_prior is not None:
        data_vars["scale_prior_dof"] = ((), float(sparse.scale_prior[0]))
        data_vars["scale_prior_rate"] = (matrix, np.asarray(sparse.scale_prior[1]))
    if sparse.mean_covariance is not None:
        data_vars["mean_covariance"] = (matrix, np.asarray(sparse.mean_covariance))
    return xr.Dataset(
        data_vars,
        coords={k: coords[k] for k in ("component", *matrix)},
        attrs={"k_prior_name": str(sparse.k_prior_name), "split_merge": int(sparse.split_merge)},
    )


def _cluster_prior_from(idata, prior):
    """The SparsePrior of :func:`_cluster_prior_dataset` on ``prior`` (its ``base``), or None."""
    from bayesgmm._core._sparse import SparsePrior

    if CLUSTER_PRIOR_GROUP not in idata.groups():
        return None
    ds = idata[CLUSTER_PRIOR_GROUP]
    missing = [name for name in ("log_pk", "e0") if name not in ds]
    if missing:
        raise ValueError(f"{CLUSTER_PRIOR_GROUP}: variable {missing[0]!r} is missing.")
    if prior is None:
        raise ValueError(
            f"{CLUSTER_PRIOR_GROUP}: needs the {PRIOR_GROUP!r} group (the components' prior)."
        )
    log_pk = np.asarray(ds["log_pk"].values, dtype=np.float64)
    e0 = float(ds["e0"].values)
    if (
        log_pk.shape != (prior.n_components,)
        or np.isnan(log_pk).any()
        or not np.isclose(np.exp(log_pk).sum(), 1.0)
        or not (np.isfinite(e0) and e0 > 0)
    ):
        raise ValueError(
            f"{CLUSTER_PRIOR_GROUP}: log_pk must be the log probabilities of K = 1.."
            f"{prior.n_components} and e0 positive; got shape {log_pk.shape}, e0={e0!r}."
        )
    e0_prior = None
    if "e0_prior" in ds:
        e0_prior = tuple(float(v) for v in np.asarray(ds["e0_prior"].values))
    scale_prior = None
    if "scale_prior_dof" in ds:
        scale_prior = (
            float(ds["scale_prior_dof"].values),
            np.asarray(ds["scale_prior_rate"].transpose("feature", "feature_bis").values),
        )
    mean_cov = None
    if "mean_covariance" in ds:
        mean_cov = np.asarray(ds["mean_covariance"].transpose("feature", "feature_bis").values)
    name = str(ds.attrs.get("k_prior_name", "custom"))
    conjugate = scale_prior is None and mean_cov is None
    split_merge = bool(int(ds.attrs.get("split_merge", conjugate))) and conjugate
    return SparsePrior(prior, e0, e0_prior, log_pk, name, scale_prior, mean_cov, split_merge)


def _require(idata, group: str):
    if group not in idata.groups():
        raise ValueError(
            f"this InferenceData has no {group!r} group; from_inference_data reads what "
            "bayesgmm.to_inference_data (Posterior.to_arviz) writes."
        )
    return idata[group]


def _params_from(ds, batch_dims: tuple[str, ...]) -> GMMParams:
    arrays = {}
    for name, dims in _PARAM_DIMS.items():
        if name not in ds:
            raise ValueError(
                f"variable {name!r} is missing from the group; cannot rebuild params."
            )
        arrays[name] = np.asarray(ds[name].transpose(*batch_dims, *dims).values)
    return GMMParams(**arrays)


def _sample_stats_from(idata) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    if "sample_stats" not in idata.groups():
        return {}, None
    ds = idata["sample_stats"]
    stats = {name: np.asarray(ds[name].values) for name in ds.data_vars}
    permutations = stats.pop(PERMUTATION_STAT, None)
    renamed = ds.attrs.get("bayesgmm_renamed", "")
    for rule in filter(None, str(renamed).split(";")):
        new, old = rule.split("=")
        if new in stats:
            value = stats.pop(new)
            stats[old.lstrip("-")] = -value if old.startswith("-") else value
    return stats, permutations


def _check_read(params, X, sample_weight, reference, prior, stats, permutations, attrs) -> None:
    """Refuse what ``to_inference_data`` never writes; each message names the group."""
    from bayesgmm._core.covariance import COVARIANCE_TYPES

    ct = attrs["covariance_type"]
    if ct not in COVARIANCE_TYPES:
        raise ValueError(
            f"posterior.attrs.covariance_type: must be one of {list(COVARIANCE_TYPES)}; "
            f"got {ct!r}."
        )
    if len(params.batch_shape) != 2:
        raise ValueError(f"posterior: draws must have axes (chain, draw); got {params!r}.")
    C, S = params.batch_shape
    K, D = params.n_components, params.n_features
    if X.ndim != 2 or X.shape[1] != D or X.dtype.kind not in "iuf" or not np.isfinite(X).all():
        raise ValueError(
            f"observed_data.obs: must be finite numbers of shape (N, D={D}); got {X.shape}."
        )
    w = sample_weight
    if (
        w.shape != (X.shape[0],)
        or w.dtype.kind not in "iuf"
        or not (np.isfinite(w) & (w >= 0)).all()
    ):
        raise ValueError(
            f"constant_data.sample_weight: must be {X.shape[0]} finite weights >= 0; "
            f"got shape {w.shape}."
        )
    if reference is not None and (
        reference.batch_shape or (reference.n_components, reference.n_features) != (K, D)
    ):
        raise ValueError(f"{POINT_ESTIMATE_GROUP}: must hold one estimate with K={K}, D={D}.")
    if prior is not None and (prior.n_components, prior.n_features) != (K, D):
        raise ValueError(
            f"{PRIOR_GROUP}: a prior for K={prior.n_components}, D={prior.n_features}; "
            f"the draws have K={K}, D={D}."
        )
    for name, value in stats.items():
        if value.shape[:2] != (C, S):
            raise ValueError(
                f"sample_stats.{name}: must have leading shape (chain, draw) = {(C, S)}; "
                f"got {value.shape}."
            )
    if permutations is not None:
        perm = np.asarray(permutations)
        if (
            perm.shape != (C, S, K)
            or perm.dtype.kind not in "iu"
            or not (np.sort(perm, axis=-1) == np.arange(K)).all()
        ):
            raise ValueError(
                f"sample_stats.{PERMUTATION_STAT}: every entry must be a permutation of "
                f"0..{K - 1} with shape {(C, S, K)}; got shape {perm.shape} and values "
                f"{np.unique(perm)[:10].tolist()}."
            )
    fraction = attrs.get("fraction_permuted")
    if fraction is not None and not (
        isinstance(fraction, numbers.Real) and 0 <= float(fraction) <= 1
    ):
        raise ValueError(
            f"posterior.attrs.fraction_permuted: must be in [0, 1]; got {fraction!r}."
        )


@x64
def from_inference_data(idata) -> Posterior:
    """Rebuild a :class:`~bayesgmm.Posterior` from :func:`to_inference_data` output.

    Reads the draws, the data, the sample weights, the point estimate, the
    sampler statistics (with NumPyro's names restored), the relabelling, the
    prior, the sampler and, for a sparse run, the prior of the number of
    clusters (so that ``n_clusters()`` and ``k_posterior()`` work on the copy),
    so that ``from_inference_data(az.from_netcdf(path))`` gives back the
    Posterior that was saved (the raw MCMC object excepted).

    Parameters
    ----------
    idata : arviz.InferenceData

    Returns
    -------
    Posterior

    Examples
    --------
    >>> import arviz as az                          # doctest: +SKIP
    >>> post.to_arviz().to_netcdf("run.nc")         # doctest: +SKIP
    >>> post2 = from_inference_data(az.from_netcdf("run.nc"))  # doctest: +SKIP
    """
    import arviz as az

    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"expected arviz.InferenceData; got {type(idata).__name__}.")
    post_ds = _require(idata, "posterior")
    attrs = dict(post_ds.attrs)
    if "covariance_type" not in attrs:
        raise ValueError(
            "posterior.attrs has no 'covariance_type': this InferenceData was not written by "
            "bayesgmm.to_inference_data."
        )
    params = _params_from(post_ds, ("chain", "draw"))
    X = np.asarray(_require(idata, "observed_data")["obs"].transpose("obs_id", "feature").values)
    if "constant_data" in idata.groups() and "sample_weight" in idata["constant_data"]:
        sample_weight = np.asarray(idata["constant_data"]["sample_weight"].values)
    else:
        sample_weight = np.ones(X.shape[0], dtype=X.dtype)
    reference = None
    if POINT_ESTIMATE_GROUP in idata.groups():
        reference = _params_from(idata[POINT_ESTIMATE_GROUP], ())
    prior = None
    if PRIOR_GROUP in idata.groups():
        prior_ds = idata[PRIOR_GROUP]
        missing = [name for name in _PRIOR_DIMS if name not in prior_ds]
        if missing:
            raise ValueError(f"{PRIOR_GROUP}: variable {missing[0]!r} is missing.")
        prior = Prior(**{name: np.asarray(prior_ds[name].values) for name in _PRIOR_DIMS})
    stats, permutations = _sample_stats_from(idata)
    fraction = attrs.get("fraction_permuted")
    _check_read(params, X, sample_weight, reference, prior, stats, permutations, attrs)
    sampler = str(attrs.get("sampler", "nuts"))
    if sampler not in ("nuts", "gibbs"):
        raise ValueError(f"posterior.attrs.sampler: must be 'nuts' or 'gibbs'; got {sampler!r}.")
    return Posterior(
        params=params,
        X=X,
        sample_weight=sample_weight,
        prior=prior,
        covariance_type=str(attrs["covariance_type"]),
        reference=reference,
        reference_kind=None if "reference_kind" not in attrs else str(attrs["reference_kind"]),
        sample_stats=stats,
        permutations=permutations,
        relabel_method=None if "relabel_method" not in attrs else str(attrs["relabel_method"]),
        fraction_permuted=None if fraction is None else float(fraction),
        feature_names=_names_from(post_ds, params.n_features),
        sampler=sampler,
        cluster_prior=_cluster_prior_from(idata, prior),
    )


def _names_from(post_ds, D: int) -> tuple[str, ...] | None:
    """The ``feature`` coordinates as names, or None where they are positions ``0..D-1``."""
    if "feature" not in post_ds.coords:
        return None
    values = post_ds.coords["feature"].values
    if values.dtype.kind in "iu":
        return None
    names = tuple(str(v) for v in values.tolist())
    return names if len(set(names)) == D else None
