"""Saving and loading: EM results and specifications as JSON, posteriors as netCDF.

``save(obj, path)`` writes any of them; ``load(path)`` reads any of them back
(JSON files carry a ``"kind"`` field; ``.nc`` files are ArviZ netCDF).

``save`` never writes through a symbolic link and never leaves a partial file:
it writes a temporary file in the target's folder and renames it into place.
``load`` checks every field of what it reads and names the file and the field
in its error.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bayesgmm._core import covariance as _cov
from bayesgmm._core._precision import x64
from bayesgmm._core._validation import check_feature_names
from bayesgmm._core.params import GMMParams
from bayesgmm._core.priors import Prior
from bayesgmm.em._fit import EMResult
from bayesgmm.selection._specs import ModelSpec

__all__ = ["check_writable", "load", "save", "write_file"]

_FORMAT_VERSION = 1


def _arr(x) -> list:
    return np.asarray(x).tolist()


def _params_to_dict(p: GMMParams) -> dict:
    return {k: _arr(v) for k, v in p.to_numpy().items()} | {"dtype": str(p.dtype)}


def _prior_to_dict(p: Prior | None) -> dict | None:
    if p is None:
        return None
    names = ("weight_concentration", "mean", "mean_precision", "dof", "scale")
    return {n: _arr(getattr(p, n)) for n in names}


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
        "feature_names": None if result.feature_names is None else list(result.feature_names),
    }


# Every field em_result_to_dict writes; load requires exactly these.
_EM_FIELDS = (
    "kind",
    "format_version",
    "params",
    "log_likelihood",
    "log_posterior",
    "converged",
    "n_iter",
    "history",
    "history_log_posterior",
    "covariance_type",
    "prior",
    "n_samples",
    "reg_covar",
    "restart_objectives",
    "best_restart",
    "hard_log_resp",
    "bic",
    "aic",
    "icl",
)
# Written since 0.1.0's column names; a file without them reads as unnamed.
_EM_OPTIONAL_FIELDS = ("feature_names",)
_PARAM_FIELDS = ("weights", "means", "covariances", "dtype")
_PRIOR_FIELDS = ("weight_concentration", "mean", "mean_precision", "dof", "scale")


def _failer(source: str):
    def fail(field: str, msg: str):
        raise ValueError(f"{source}: {field}: {msg}") from None

    return fail


def _finite_number(v) -> bool:
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def _integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_format_version(data: dict, fail) -> None:
    version = data.get("format_version")
    if "format_version" not in data:
        fail("format_version", "missing field (the file is damaged or was not written by save)")
    if not _integer(version) or version != _FORMAT_VERSION:
        fail(
            "format_version",
            f"this bayesgmm reads format {_FORMAT_VERSION}; got {version!r} "
            "(written by another version of bayesgmm, or edited)",
        )


def _number_list(value, field: str, fail, length: int | None, allow_none: bool = False):
    if not isinstance(value, list) or not all(
        (allow_none and v is None) or _finite_number(v) for v in value
    ):
        what = "finite numbers or null" if allow_none else "finite numbers"
        fail(field, f"must be a list of {what}")
    if length is not None and len(value) != length:
        fail(field, f"must have {length} entries (n_iter + 1); got {len(value)}")
    return value


@x64
def _checked_params(d, fail) -> GMMParams:
    if not isinstance(d, dict):
        fail("params", "must be an object with weights, means, covariances and dtype")
    for key in _PARAM_FIELDS:
        if key not in d:
            fail(f"params.{key}", "missing field")
    unknown = sorted(set(d) - set(_PARAM_FIELDS))
    if unknown:
        fail(f"params.{unknown[0]}", "unknown field")
    if d["dtype"] not in ("float32", "float64"):
        fail("params.dtype", f"must be 'float32' or 'float64'; got {d['dtype']!r}")
    dt = np.dtype(d["dtype"])
    arrays = {}
    for key, ndim in (("weights", 1), ("means", 2), ("covariances", 3)):
        try:
            arr = np.asarray(d[key], dtype=dt)
        except (ValueError, TypeError):
            fail(f"params.{key}", "must be a rectangular array of numbers")
        if arr.ndim != ndim:
            fail(f"params.{key}", f"must be a {ndim}-D array; got shape {arr.shape}")
        arrays[key] = arr
    try:
        return GMMParams(**arrays)
    except ValueError as err:
        fail("params", str(err))


@x64
def _checked_prior(d, fail, K: int, D: int) -> Prior | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        fail("prior", "must be null or an object with the prior's hyperparameters")
    for key in _PRIOR_FIELDS:
        if key not in d:
            fail(f"prior.{key}", "missing field")
    unknown = sorted(set(d) - set(_PRIOR_FIELDS))
    if unknown:
        fail(f"prior.{unknown[0]}", "unknown field")
    try:
        prior = Prior(**{k: np.asarray(v) for k, v in d.items()})
    except ValueError as err:
        fail("prior", str(err))
    if prior.n_components != K:
        fail(
            "prior.weight_concentration",
            f"a prior for K={prior.n_components} components, but params have K={K}",
        )
    if prior.n_features != D:
        fail("prior.mean", f"a prior for D={prior.n_features} features, but params have D={D}")
    return prior


def em_result_from_dict(d: dict, source: str = "<dict>") -> EMResult:
    """Inverse of :func:`em_result_to_dict`, checking every field.

    Raises ``ValueError`` naming ``source`` and the field for a missing,
    unknown or malformed field, a format version this bayesgmm does not read,
    a prior for another K or D, and stored BIC/AIC/ICL that the parameters,
    log-likelihood and sample count do not reproduce (an edited file).
    """
    fail = _failer(source)
    if not isinstance(d, dict):
        fail("(top level)", "must be a JSON object")
    for key in _EM_FIELDS:
        if key not in d:
            fail(key, "missing field (the file is damaged or not an EMResult)")
    unknown = sorted(set(d) - set(_EM_FIELDS) - set(_EM_OPTIONAL_FIELDS))
    if unknown:
        fail(unknown[0], "unknown field")
    _check_format_version(d, fail)
    ct = d["covariance_type"]
    if ct not in _cov.COVARIANCE_TYPES:
        fail("covariance_type", f"must be one of {list(_cov.COVARIANCE_TYPES)}; got {ct!r}")
    params = _checked_params(d["params"], fail)
    K, D = params.n_components, params.n_features
    prior = _checked_prior(d["prior"], fail, K, D)
    names = d.get("feature_names")
    if names is not None:
        if not isinstance(names, list):
            fail("feature_names", f"must be a list of {D} strings or null; got {names!r}")
        try:
            names = check_feature_names(names, None, D)
        except (TypeError, ValueError) as err:
            fail("feature_names", str(err))
    for key in ("log_likelihood", "hard_log_resp", "bic", "aic", "icl"):
        if not _finite_number(d[key]):
            fail(key, f"must be a finite number; got {d[key]!r}")
    if prior is None and d["log_posterior"] is not None:
        fail("log_posterior", "must be null for an EM fit without a prior")
    if prior is not None and not _finite_number(d["log_posterior"]):
        fail("log_posterior", f"must be a finite number under a prior; got {d['log_posterior']!r}")
    if not isinstance(d["converged"], bool):
        fail("converged", f"must be true or false; got {d['converged']!r}")
    n_iter = d["n_iter"]
    if not _integer(n_iter) or n_iter < 0:
        fail("n_iter", f"must be an integer >= 0; got {n_iter!r}")
    history = _number_list(d["history"], "history", fail, n_iter + 1)
    hist_post = d["history_log_posterior"]
    if prior is None and hist_post is not None:
        fail("history_log_posterior", "must be null for an EM fit without a prior")
    if prior is not None:
        _number_list(hist_post, "history_log_posterior", fail, n_iter + 1)
    if not _finite_number(d["n_samples"]) or d["n_samples"] <= 0:
        fail("n_samples", f"must be a number > 0; got {d['n_samples']!r}")
    if not _finite_number(d["reg_covar"]) or d["reg_covar"] < 0:
        fail("reg_covar", f"must be a number >= 0; got {d['reg_covar']!r}")
    objectives = _number_list(
        d["restart_objectives"], "restart_objectives", fail, None, allow_none=True
    )
    best = d["best_restart"]
    if not _integer(best) or not 0 <= best < len(objectives) or objectives[best] is None:
        fail(
            "best_restart",
            f"must index a successful restart of the {len(objectives)} in "
            f"restart_objectives; got {best!r}",
        )
    result = EMResult(
        params=params,
        log_likelihood=d["log_likelihood"],
        log_posterior=d["log_posterior"],
        converged=d["converged"],
        n_iter=n_iter,
        history=np.asarray(history, dtype=float),
        history_log_posterior=None if hist_post is None else np.asarray(hist_post, dtype=float),
        covariance_type=ct,
        prior=prior,
        n_samples=d["n_samples"],
        reg_covar=d["reg_covar"],
        restart_objectives=np.asarray(
            [np.nan if v is None else v for v in objectives], dtype=float
        ),
        best_restart=best,
        _hard_log_resp=d["hard_log_resp"],
        feature_names=names,
    )
    for key in ("bic", "aic", "icl"):
        stored, derived = d[key], getattr(result, key)
        if not math.isclose(stored, derived, rel_tol=1e-9, abs_tol=1e-9):
            fail(
                key,
                f"stored {stored!r}, but the file's parameters (K={K}, D={D}, {ct!r}), "
                f"log_likelihood and n_samples give {derived!r}: the file was edited or "
                "is damaged",
            )
    return result


def check_writable(path, *, overwrite: bool, force_hint: str = "pass overwrite=True") -> Path:
    """Raise unless a file can be written at ``path``; the checks :func:`save` makes.

    ``path`` must not be a symbolic link (dangling or not) or a folder, its
    folder must exist, and an existing file is refused unless ``overwrite``
    (the error says ``force_hint``: how the caller replaces it).
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise ValueError(f"{path}: cannot be written ({err.strerror})") from None
    if mode is not None:
        if stat.S_ISLNK(mode):
            raise ValueError(
                f"{path} is a symbolic link; bayesgmm does not write through links "
                "(remove the link or choose another path)"
            )
        if stat.S_ISDIR(mode):
            raise ValueError(f"{path} is a folder; give a file name")
        if not stat.S_ISREG(mode):
            raise ValueError(f"{path} exists and is not a regular file")
        if not overwrite:
            raise FileExistsError(f"{path} exists; {force_hint} to replace it")
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"{path}: the folder {folder} {what}")
    return path


def write_file(
    path,
    write: Callable[[Path], None],
    *,
    overwrite: bool,
    force_hint: str = "pass overwrite=True",
) -> Path:
    """Write a file safely: ``write(tmp)`` fills a new file in ``path``'s folder, then it
    is renamed onto ``path``.

    Nothing is written through a symbolic link (a link at ``path`` is refused,
    and a rename replaces a name, it never follows it), a failure leaves no
    partial file, and without ``overwrite`` a file that appeared meanwhile is
    not replaced.
    """
    path = check_writable(path, overwrite=overwrite, force_hint=force_hint)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    os.close(os.open(tmp, flags, 0o666))  # the umask applies, as for any new file
    try:
        write(tmp)
        if not overwrite:
            try:  # atomic "create if absent": fails on any existing name, links included
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path} exists; {force_hint} to replace it") from None
            except OSError:  # no hard links on this file system
                check_writable(path, overwrite=False, force_hint=force_hint)
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
        else:
            check_writable(path, overwrite=True, force_hint=force_hint)
            os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def save(obj, path, *, overwrite: bool = False) -> Path:
    """Save an ``EMResult`` or ``ModelSpec`` (JSON) or a ``Posterior`` (netCDF).

    The file is written under a temporary name in the same folder and renamed
    into place, so an interrupted save leaves no partial file. A symbolic link
    at ``path`` is refused (``ValueError``), even with ``overwrite=True``.

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
    if isinstance(obj, Posterior):
        if path.suffix != ".nc":
            raise ValueError(f"a Posterior is saved as netCDF: use a .nc path, not {path.name}")
        check_writable(path, overwrite=overwrite)
        idata = obj.to_arviz()
        return write_file(path, lambda tmp: idata.to_netcdf(str(tmp)), overwrite=overwrite)
    if isinstance(obj, EMResult):
        payload = em_result_to_dict(obj)
    elif isinstance(obj, ModelSpec):
        payload = {"kind": "ModelSpec", "format_version": _FORMAT_VERSION, **obj.to_dict()}
    else:
        raise TypeError(f"save takes an EMResult, ModelSpec or Posterior; got {type(obj)}")
    if path.suffix != ".json":
        raise ValueError(f"{type(obj).__name__} is saved as JSON: use a .json path")
    text = json.dumps(payload, indent=1)
    return write_file(path, lambda tmp: tmp.write_text(text), overwrite=overwrite)


def load(path):
    """Read back what :func:`save` wrote: ``EMResult``, ``ModelSpec`` or ``Posterior``.

    Every field is checked; a damaged, truncated or edited file raises
    ``ValueError`` naming the file and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".nc":
        return _load_posterior(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a bayesgmm JSON file ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: not a bayesgmm JSON file (nested too deeply)") from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "EMResult":
        return em_result_from_dict(data, source=str(path))
    if kind == "ModelSpec":
        _check_format_version(data, _failer(str(path)))
        spec = {k: v for k, v in data.items() if k not in ("kind", "format_version")}
        return ModelSpec.from_dict(spec, source=str(path))
    raise ValueError(f"{path}: kind: unknown kind {kind!r}; expected 'EMResult' or 'ModelSpec'")


def _load_posterior(path: Path):
    import arviz as az

    from bayesgmm.diagnostics._arviz_io import from_inference_data

    try:
        idata = az.from_netcdf(str(path))
    except Exception as err:  # the HDF5/netCDF readers raise OSError, ValueError, KeyError ...
        raise ValueError(
            f"{path}: not a readable netCDF file ({type(err).__name__}: {err})"
        ) from None
    try:
        return from_inference_data(idata)
    except (ValueError, TypeError, KeyError, IndexError, OSError, RuntimeError) as err:
        raise ValueError(f"{path}: {err}") from None
