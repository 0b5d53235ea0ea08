"""Model specifications: TOML files in ``models/`` that scripts and the CLI compare.

A specification names one covariance structure, one or more numbers of
components (each a *variant*), the prior and the EM / NUTS settings::

    name = "full"                       # required: letters, digits, - and _
    description = "unrestricted covariances"
    covariance_type = "full"            # full | tied | diag | spherical
    n_components = [1, 2, 3]            # an int, a list, or {start = 1, stop = 6}

    [prior]                             # optional; omitted keys keep Prior.default's
    weight_concentration = 1.0          # Dirichlet alpha (>= 1 for MAP-EM)
    mean_precision = 0.01               # kappa
    dof_extra = 2.0                     # dof = D + dof_extra  (> -1)
    scale_factor = 1.0                  # multiplies the default scale cov(X) / K^(2/D)

    [em]                                # keyword arguments of fit_em
    n_init = 5
    init = "kmeans++"
    tol = 1e-3
    max_iter = 200
    reg_covar = 1e-6
    map = false                         # true: MAP-EM under the prior above

    [nuts]                              # keyword arguments of sample_posterior
    enabled = true
    num_chains = 2
    num_warmup = 500
    num_samples = 500
    target_accept_prob = 0.8

    [model]                             # optional custom NumPyro model: runs code!
    file = "my_model.py"                # in the specification's folder (or below it)
    function = "model"

    [clusters]                          # optional: p(K+ | data) from one sparse Gibbs run
    enabled = true
    k_max = 6                           # default: the largest n_components
    e0 = 0.01                           # Prior.sparse's keywords ...
    e0_prior = [1.0, 20.0]              # (shape, rate), optional
    k_prior = "bnb(1,4,3)"              # optional: a prior on K (telescoping sampler)
    scale_factor = 0.5
    scale_prior = "mw2016"              # optional: the only value a file can give
    mean_covariance = "range"           # optional: likewise
    num_chains = 2                      # ... and sample_posterior's
    num_warmup = 500
    num_samples = 500

A ``[clusters]`` table adds to every variant's row the posterior probability
that the data hold that many clusters, from one run of
:meth:`~bayesgmm.Prior.sparse` with ``method="gibbs"`` per specification
(:func:`~bayesgmm.selection.compare_models`). That run uses the
specification's covariance structure and its ``prior.mean_precision`` and
``prior.dof_extra``; ``prior.weight_concentration`` and ``prior.scale_factor``
do not apply to it (``e0`` and ``clusters.scale_factor`` do). ``scale_prior`` and
``mean_covariance`` (the hierarchical prior of the telescope papers, see
:meth:`~bayesgmm.Prior.sparse`) need ``covariance_type = "full"``.

A custom model is a function ``model(X, n_components, prior, covariance_type,
sample_weight)`` that declares the shared sites: ``weights`` (K,), ``means``
(K, D) and ``covariances`` (K, D, D) (latent or ``numpyro.deterministic``) and
an observed site ``obs`` whose log-probability is per row (for LOO/WAIC).

Security: a ``[model]`` table makes :func:`~bayesgmm.selection.compare_models`
import and run the Python file it names, so it runs only when the caller says
so (``compare_models(..., allow_code=True)``, ``bayesgmm compare --allow-code``).
``model.file`` must be a relative path that stays inside the folder of the
specification file (no absolute paths, no ``..``, no link out of it); it is kept
relative, so saved specifications never carry the author's absolute paths.

Every value is checked when the file is read (numbers must be finite, at most
:data:`MAX_VARIANTS` numbers of components), so that a bad value fails before
the first fit rather than after the other variants ran.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayesgmm._core import covariance as _cov
from bayesgmm._core._validation import check_data, check_sample_weight
from bayesgmm._core.priors import Prior, default_prior
from bayesgmm.em._init import INIT_METHODS

__all__ = ["MAX_VARIANTS", "ModelSpec", "SpecError", "Variant", "load_spec", "load_specs"]

# Most numbers of components one specification may list (each is a fit, or two).
MAX_VARIANTS = 1000


class SpecError(ValueError):
    """A model specification is invalid; the message names the file and the key."""


def _real(v) -> bool:
    """A finite real number (not a bool): inf and nan fail here, before any fit."""
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def _int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


# key -> (check, what is allowed)
_PRIOR_KEYS = {
    "weight_concentration": (lambda v: _real(v) and v > 0, "a finite number > 0"),
    "mean_precision": (lambda v: _real(v) and v > 0, "a finite number > 0"),
    "dof_extra": (lambda v: _real(v) and v > -1, "a finite number > -1 (dof = D + dof_extra)"),
    "scale_factor": (lambda v: _real(v) and v > 0, "a finite number > 0"),
}
_EM_KEYS = {
    "n_init": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "init": (lambda v: v in INIT_METHODS, f"one of {list(INIT_METHODS)}"),
    "tol": (lambda v: _real(v) and v >= 0, "a finite number >= 0"),
    "max_iter": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "reg_covar": (lambda v: _real(v) and v >= 0, "a finite number >= 0"),
    "map": (lambda v: isinstance(v, bool), "true or false"),
}
_NUTS_KEYS = {
    "enabled": (lambda v: isinstance(v, bool), "true or false"),
    "num_chains": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "num_warmup": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "num_samples": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "target_accept_prob": (lambda v: _real(v) and 0 < v < 1, "a number in (0, 1)"),
}


def _relative_py(v) -> bool:
    if not isinstance(v, str) or not v.endswith(".py") or "\\" in v or "\0" in v:
        return False
    parts = v.split("/")
    return not v.startswith("/") and ".." not in parts and ":" not in parts[0]


def _k_prior_ok(v) -> bool:
    from bayesgmm._core._sparse import k_prior_log_pmf

    try:
        k_prior_log_pmf(v, 1)
    except ValueError:
        return False
    return isinstance(v, str)


_CLUSTERS_KEYS = {
    "enabled": (lambda v: isinstance(v, bool), "true or false"),
    "k_max": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "e0": (lambda v: _real(v) and v > 0, "a finite number > 0"),
    "e0_prior": (
        lambda v: isinstance(v, list) and len(v) == 2 and all(_real(x) and x > 0 for x in v),
        "[shape, rate], two finite numbers > 0",
    ),
    "k_prior": (
        _k_prior_ok,
        "'uniform', 'bnb(a, b, c)', 'poisson(lambda)' or 'geometric(p)'",
    ),
    "scale_factor": (lambda v: _real(v) and v > 0, "a finite number > 0"),
    "scale_prior": (lambda v: v == "mw2016", "'mw2016'"),
    "mean_covariance": (lambda v: v == "range", "'range'"),
    "num_chains": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "num_warmup": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "num_samples": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
}

_MODEL_KEYS = {
    "file": (
        _relative_py,
        "a relative path to a .py file in the specification's folder (no absolute path, "
        "no '..', '/' between folders)",
    ),
    "function": (lambda v: isinstance(v, str) and v.isidentifier(), "a Python identifier"),
}
_TOP_KEYS = {
    "name",
    "description",
    "covariance_type",
    "n_components",
    "prior",
    "em",
    "nuts",
    "model",
    "clusters",
}
_TABLES = {
    "prior": _PRIOR_KEYS,
    "em": _EM_KEYS,
    "nuts": _NUTS_KEYS,
    "model": _MODEL_KEYS,
    "clusters": _CLUSTERS_KEYS,
}


@dataclass(frozen=True)
class Variant:
    """One fit to run: a specification at one number of components."""

    spec: ModelSpec
    n_components: int

    @property
    def name(self) -> str:
        return f"{self.spec.name}-K{self.n_components}"


@dataclass(frozen=True)
class ModelSpec:
    """A validated model specification (see the module docstring for the format)."""

    name: str
    covariance_type: str
    n_components: tuple[int, ...]
    description: str = ""
    prior: dict[str, float] = field(default_factory=dict)
    em: dict[str, Any] = field(default_factory=dict)
    nuts: dict[str, Any] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    clusters: dict[str, Any] = field(default_factory=dict)
    source: str = "<dict>"

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> ModelSpec:
        """Validate a parsed specification; ``SpecError`` names ``source`` and the key."""

        def fail(key: str, msg: str):
            raise SpecError(f"{source}: {key}: {msg}")

        if not isinstance(data, dict):
            raise SpecError(f"{source}: a specification must be a table of keys")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            fail(unknown[0], f"unknown key; allowed keys are {sorted(_TOP_KEYS)}")
        for key in ("name", "covariance_type", "n_components"):
            if key not in data:
                fail(key, "missing required key")
        name = data["name"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            fail("name", f"must be letters, digits, '.', '-' or '_'; got {name!r}")
        ct = data["covariance_type"]
        if ct not in _cov.COVARIANCE_TYPES:
            fail("covariance_type", f"must be one of {list(_cov.COVARIANCE_TYPES)}; got {ct!r}")
        ks = cls._parse_components(data["n_components"], fail)
        tables = {}
        for table, allowed in _TABLES.items():
            values = data.get(table, {})
            if not isinstance(values, dict):
                fail(table, "must be a table ([" + table + "])")
            for key, value in values.items():
                if key not in allowed:
                    fail(f"{table}.{key}", f"unknown key; allowed keys are {sorted(allowed)}")
                check, what = allowed[key]
                if not check(value):
                    fail(f"{table}.{key}", f"must be {what}; got {value!r}")
            tables[table] = dict(values)
        if tables["model"] and set(tables["model"]) != {"file", "function"}:
            fail("model", "needs both 'file' and 'function'")
        for key in ("scale_prior", "mean_covariance"):
            if key in tables["clusters"] and ct != "full":
                fail(f"clusters.{key}", f"needs covariance_type = 'full'; got {ct!r}")
        if tables["em"].get("map") and tables["prior"].get("weight_concentration", 1.0) < 1:
            fail("prior.weight_concentration", "must be >= 1 when em.map = true")
        description = data.get("description", "")
        if not isinstance(description, str):
            fail("description", "must be a string")
        return cls(
            name=name,
            covariance_type=ct,
            n_components=ks,
            description=description,
            source=source,
            **tables,
        )

    @staticmethod
    def _parse_components(value, fail) -> tuple[int, ...]:
        if _int(value):
            ks = [value]
        elif isinstance(value, list):
            ks = value
        elif isinstance(value, dict):
            if set(value) != {"start", "stop"} or not all(_int(v) for v in value.values()):
                fail("n_components", "a range must be {start = int, stop = int} (stop included)")
            if value["stop"] - value["start"] + 1 > MAX_VARIANTS:
                fail(
                    "n_components",
                    f"the range {value['start']}..{value['stop']} has "
                    f"{value['stop'] - value['start'] + 1} numbers of components; at most "
                    f"{MAX_VARIANTS} per specification",
                )
            ks = list(range(value["start"], value["stop"] + 1))
        else:
            fail("n_components", f"must be an int, a list of ints or a range; got {value!r}")
        if len(ks) > MAX_VARIANTS:
            fail("n_components", f"lists {len(ks)} numbers of components; at most {MAX_VARIANTS}")
        if not ks or not all(_int(k) and k >= 1 for k in ks):
            fail("n_components", f"every number of components must be an integer >= 1; got {ks}")
        if len(set(ks)) != len(ks):
            fail("n_components", f"contains duplicates: {ks}")
        return tuple(int(k) for k in ks)

    def model_file(self) -> Path:
        """The custom model's file: ``model.file`` in the specification's folder.

        The folder is that of :attr:`source` (the current folder for a
        specification built from a dict). Raises ``SpecError`` if the file is
        missing or, links resolved, lies outside that folder. Reads nothing.
        """
        if not self.model:
            raise SpecError(f"{self.source}: model: this specification has no custom model")
        folder = Path(self.source).parent.resolve()
        path = (folder / self.model["file"]).resolve()
        if not path.is_relative_to(folder):
            raise SpecError(
                f"{self.source}: model.file: {self.model['file']!r} leads outside the "
                f"specification's folder {folder} (through a link); the model file must "
                "live in that folder"
            )
        if not path.is_file():
            raise SpecError(
                f"{self.source}: model.file: {folder / self.model['file']} does not exist"
            )
        return path

    def variants(self) -> list[Variant]:
        """One :class:`Variant` per number of components."""
        return [Variant(self, k) for k in self.n_components]

    def build_prior(self, X, n_components: int, sample_weight=None) -> Prior:
        """``Prior.default`` for this data and K, with this specification's overrides."""
        data = check_data(X, dtype=np.dtype(np.float64))
        w = check_sample_weight(sample_weight, data.shape[0], data.dtype)
        return self.prior_for(data, w, n_components)

    def prior_for(self, data: np.ndarray, w: np.ndarray, n_components: int) -> Prior:
        """:meth:`build_prior` on validated data and weights (no copy, no warnings)."""
        p = self.prior
        D = data.shape[1]
        prior = default_prior(
            data,
            w,
            n_components,
            weight_concentration=p.get("weight_concentration", 1.0),
            mean_precision=p.get("mean_precision", 0.01),
            dof=D + p.get("dof_extra", 2.0),
        )
        factor = p.get("scale_factor", 1.0)
        if factor == 1.0:
            return prior
        with np.errstate(over="ignore"):
            scale = np.asarray(prior.scale) * factor
        if not np.isfinite(scale).all():
            raise SpecError(
                f"{self.source}: prior.scale_factor: {factor!r} times the default scale "
                f"overflows for these data at K={n_components}"
            )
        return Prior(
            prior.weight_concentration, prior.mean, prior.mean_precision, prior.dof, scale
        )

    @property
    def runs_clusters(self) -> bool:
        """The specification has an enabled ``[clusters]`` table."""
        return bool(self.clusters) and self.clusters.get("enabled", True)

    def sparse_prior_for(self, data: np.ndarray, w: np.ndarray):
        """The :meth:`Prior.sparse` of the ``[clusters]`` table on validated data."""
        c, p = self.clusters, self.prior
        e0_prior = c.get("e0_prior")
        return Prior.sparse(
            data,
            c.get("k_max", max(self.n_components)),
            e0=c.get("e0", 0.01),
            e0_prior=None if e0_prior is None else tuple(e0_prior),
            k_prior=c.get("k_prior"),
            sample_weight=w,
            scale_factor=c.get("scale_factor", 0.5),
            mean_precision=p.get("mean_precision", 0.01),
            dof=data.shape[1] + p.get("dof_extra", 2.0),
            scale_prior=c.get("scale_prior"),
            mean_covariance=c.get("mean_covariance"),
        )

    def to_dict(self) -> dict:
        """A plain dict (JSON- and TOML-compatible) that :meth:`from_dict` reads back."""
        d = asdict(self)
        d.pop("source")
        d["n_components"] = list(self.n_components)
        return {k: v for k, v in d.items() if v not in ({}, "")}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def load_spec(path) -> ModelSpec:
    """Read and validate one TOML specification file."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"{path}: is a folder, not a specification file")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such specification file") from None
    except OSError as err:
        raise SpecError(f"{path}: cannot be read ({err.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: not valid TOML: {err}") from None
    except RecursionError:
        raise SpecError(f"{path}: not valid TOML: nested too deeply") from None
    spec = ModelSpec.from_dict(data, source=str(path))
    if spec.model:
        spec.model_file()  # exists and stays in the folder; kept relative in the spec
    return spec


def load_specs(paths) -> list[ModelSpec]:
    """Read several specifications; their names must be unique."""
    specs = [load_spec(p) for p in paths]
    seen: dict[str, str] = {}
    for s in specs:
        if s.name in seen:
            raise SpecError(f"{s.source}: name: {s.name!r} is also used by {seen[s.name]}")
        seen[s.name] = s.source
    return specs
