"""Saving and loading: EM results and specifications as JSON, posteriors as netCDF.

``save(obj, path)`` writes any of them; ``load(path)`` reads any of them back
(JSON files carry a ``"kind"`` field; ``.nc`` files are ArviZ netCDF).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bayesgmm._core._precision import x64
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.em._fit import EMResult
from bayesgmm.selection._specs import ModelSpec

__all__ = ["load", "save"]

_FORMAT_VERSION = 1


def _arr(x) -> list:
    return np.asarray(x).tolist()


def _params_to_dict(p: GMMParams) -> dict:
    return {k: _arr(v) for k, v in p.to_numpy().items()} | {"dtype": str(p.dtype)}


@x64
def _params_from_dict(d: dict) -> GMMParams:
    dt = np.dtype(d.get("dtype", "float64"))
    return GMMParams(*(np.asarray(d[k], dtype=dt) for k in ("weights", "means", "covariances")))


def _prior_to_dict(p: Prior | None) -> dict | None:
    if p is None:
        return None
    names = ("weight_concentration", "mean", "mean_precision", "dof", "scale")
    return {n: _arr(getattr(p, n)) for n in names}


@x64
def _prior_from_dict(d: dict | None) -> Prior | None:
    return None if d is None else Prior(**{k: np.asarray(v) for k, v in d.items()})


def em_result_to_dict(result: EMResult) -> dict:
    """A JSON-compatible dict holding everything in an :class:`EMResult`."""
    return {
        "kind": "EMResult",
        "format_version": _FORMAT_VERSION,
        "params": _params_to_dict(result.params),
        "log_likelihood": result.log_likelihood,
        "log_posterior": result.log_posterior,
        "converged": result.converged,
        "n_iter": result.n_iter,
        "history": _arr(result.history),
        "history_log_posterior": None
        if result.history_log_posterior is None
        else _arr(result.history_log_posterior),
        "covariance_type": result.covariance_type,
        "prior": _prior_to_dict(result.prior),
        "n_samples": result.n_samples,
        "reg_covar": result.reg_covar,
        "restart_objectives": [
            None if np.isnan(v) else v for v in _arr(result.restart_objectives)
        ],
        "best_restart": result.best_restart,
        "hard_log_resp": result._hard_log_resp,
        "bic": result.bic,
        "aic": result.aic,
        "icl": result.icl,
    }


def em_result_from_dict(d: dict) -> EMResult:
    """Inverse of :func:`em_result_to_dict`."""
    hist_post = d["history_log_posterior"]
    return EMResult(
        params=_params_from_dict(d["params"]),
        log_likelihood=d["log_likelihood"],
        log_posterior=d["log_posterior"],
        converged=d["converged"],
        n_iter=d["n_iter"],
        history=np.asarray(d["history"], dtype=float),
        history_log_posterior=None if hist_post is None else np.asarray(hist_post, dtype=float),
        covariance_type=d["covariance_type"],
        prior=_prior_from_dict(d["prior"]),
        n_samples=d["n_samples"],
        reg_covar=d["reg_covar"],
        restart_objectives=np.asarray(
            [np.nan if v is None else v for v in d["restart_objectives"]], dtype=float
        ),
        best_restart=d["best_restart"],
        _hard_log_resp=d["hard_log_resp"],
    )


def save(obj, path, *, overwrite: bool = False) -> Path:
    """Save an ``EMResult`` or ``ModelSpec`` (JSON) or a ``Posterior`` (netCDF).

    Parameters
    ----------
    obj : EMResult, ModelSpec or Posterior
    path : str or Path
        ``.json`` for EM results and specifications, ``.nc`` for posteriors.
    overwrite : bool
        Refuse to replace an existing file unless True.

    Returns
    -------
    Path
    """
    from bayesgmm.bayes._posterior import Posterior

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it")
    if isinstance(obj, Posterior):
        if path.suffix != ".nc":
            raise ValueError(f"a Posterior is saved as netCDF: use a .nc path, not {path.name}")
        obj.to_arviz().to_netcdf(str(path))
        return path
    if isinstance(obj, EMResult):
        payload = em_result_to_dict(obj)
    elif isinstance(obj, ModelSpec):
        payload = {"kind": "ModelSpec", "format_version": _FORMAT_VERSION, **obj.to_dict()}
    else:
        raise TypeError(f"save takes an EMResult, ModelSpec or Posterior; got {type(obj)}")
    if path.suffix != ".json":
        raise ValueError(f"{type(obj).__name__} is saved as JSON: use a .json path")
    path.write_text(json.dumps(payload, indent=1))
    return path


def load(path):
    """Read back what :func:`save` wrote: ``EMResult``, ``ModelSpec`` or ``Posterior``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".nc":
        import arviz as az

        from bayesgmm.diagnostics._arviz_io import from_inference_data

        return from_inference_data(az.from_netcdf(str(path)))
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a bayesgmm JSON file ({err})") from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "EMResult":
        return em_result_from_dict(data)
    if kind == "ModelSpec":
        spec = {k: v for k, v in data.items() if k not in ("kind", "format_version")}
        return ModelSpec.from_dict(spec, source=str(path))
    raise ValueError(f"{path}: unknown kind {kind!r}; expected 'EMResult' or 'ModelSpec'")
