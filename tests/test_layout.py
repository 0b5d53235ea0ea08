"""The house plan: public API, module sizes, import direction, private helpers, warnings.

These read the package's source with ``ast`` (nothing is run but the imports
the public-API test needs), so a change that breaks the layout of
``DESIGN.md`` fails here with the module and line that broke it.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import bayesgmm as bg

PACKAGE = Path(bg.__file__).parent
MAX_LINES = 600

# Every public name of bayesgmm, as listed in __all__. A name added or removed
# must be added or removed here on purpose.
PUBLIC_API = {
    "COVARIANCE_TYPES",
    "ConvergenceWarning",
    "DataWarning",
    "EMResult",
    "GMMParams",
    "GaussianMixture",
    "ModelSpec",
    "Posterior",
    "Prior",
    "SparsePrior",
    "SpecError",
    "VBResult",
    "__version__",
    "bayes",
    "calibration",
    "compare_models",
    "covariance",
    "datasets",
    "density",
    "diagnostics",
    "em",
    "em_vs_posterior",
    "em_vs_posterior_summary",
    "find_map",
    "fit_em",
    "fit_vb",
    "from_inference_data",
    "gmm_model",
    "load",
    "load_spec",
    "load_specs",
    "log_joint",
    "n_parameters",
    "plots",
    "ppc_statistics",
    "report",
    "sample_posterior",
    "save",
    "selection",
    "set_compilation_cache",
    "to_inference_data",
}

# Public names before 0.1.0 that moved: old name -> what it is now.
DEPRECATED = {
    "compare": "em_vs_posterior",
    "compare_model": "em_vs_posterior_summary",
    "relabel": "diagnostics",
    "membership": "diagnostics",
    "sbc": "calibration",
    "prior_sampling": "calibration",
}

# The documented on-call imports against the layers: Posterior's methods relabel,
# summarise and convert themselves with the diagnostics (imported inside the
# methods, on call); fit_em and fit_vb hand a dask array to the Dask engine,
# which builds their results with their own helpers (imported on call, so that
# `import bayesgmm` never imports Dask, an optional extra). Every other import
# points down the layers.
CONVENIENCE = {
    ("bayesgmm.bayes._posterior", "bayesgmm.diagnostics"),
    ("bayesgmm.em._fit", "bayesgmm.em._dask"),
    ("bayesgmm.em._vb", "bayesgmm.em._dask"),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level:
        base = module.split(".")
        if not MODULES[module].name == "__init__.py":
            base = base[:-1]
        base = base[: len(base) - node.level + 1]
        return ".".join([*base, node.module] if node.module else base)
    return node.module or ""


def _imports(module: str):
    """(target module, imported names, line, at module level?) of every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        level = id(node) in top
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bayesgmm"):
                    yield alias.name, [], node.lineno, level
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if not target.startswith("bayesgmm"):
                continue
            names = [a.name for a in node.names]
            # `from bayesgmm.x import y` where y is a module: an import of bayesgmm.x.y
            submodules = [n for n in names if f"{target}.{n}" in MODULES]
            for n in submodules:
                yield f"{target}.{n}", [], node.lineno, level
            others = [n for n in names if n not in submodules]
            if others or not submodules:
                yield target, others, node.lineno, level


def _edges(module_level_only: bool):
    edges = {}
    for module in MODULES:
        for target, _names, _line, level in _imports(module):
            if module_level_only and not level:
                continue
            if target in MODULES and target != module:
                edges.setdefault(module, set()).add(target)
    return edges


def _cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_public_api_is_listed_and_importable():
    assert set(bg.__all__) == PUBLIC_API
    for name in sorted(PUBLIC_API):
        assert getattr(bg, name) is not None, name
    assert set(dir(bg)) >= PUBLIC_API


@pytest.mark.parametrize("old", sorted(DEPRECATED))
def test_old_public_names_still_work_with_a_warning(old):
    with pytest.warns(FutureWarning, match=DEPRECATED[old]) as caught:
        obj = getattr(bg, old)
    assert caught[0].filename == __file__  # the warning points at the user's line
    new = getattr(bg, DEPRECATED[old])
    assert obj is new


def test_subpackages_export_what_they_list():
    for name in ("em", "bayes", "diagnostics", "selection", "calibration", "plots"):
        package = importlib.import_module(f"bayesgmm.{name}")
        for attr in package.__all__:
            assert getattr(package, attr) is not None, f"bayesgmm.{name}.{attr}"


def test_no_module_is_over_600_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_implementation_modules_are_private():
    """Inside a layer folder every module but __init__ is private (``_name.py``)."""
    for module, path in MODULES.items():
        parts = module.split(".")
        if len(parts) < 3 or path.name == "__init__.py" or parts[1] in ("_core", "datasets"):
            continue
        assert parts[-1].startswith("_"), f"{module} is a public module inside a layer folder"


def test_no_import_cycles_at_import_time():
    assert _cycles(_edges(module_level_only=True)) == []


def test_no_import_cycles_apart_from_the_posterior_conveniences():
    edges = _edges(module_level_only=False)
    for source, target_prefix in CONVENIENCE:
        edges[source] = {t for t in edges.get(source, ()) if not t.startswith(target_prefix)}
    assert _cycles(edges) == []


def test_no_private_helper_is_taken_from_a_public_face():
    """``from m import _name`` only where m is a private module made to share it."""
    offences = []
    for module in MODULES:
        for target, names, line, _ in _imports(module):
            private = [n for n in names if n.startswith("_") and f"{target}.{n}" not in MODULES]
            if private and not target.split(".")[-1].startswith("_"):
                offences.append(f"{module}:{line} takes {private} from {target}")
    assert not offences, offences


def test_import_bayesgmm_loads_no_heavy_optional_dependency():
    """Nor does a fit that warns ConvergenceWarning (scikit-learn: 1.4 s, 97 MiB)."""
    code = (
        "import sys, warnings, numpy as np, bayesgmm as bg; bg.fit_em; bg.Posterior\n"
        "heavy = ('numpyro', 'arviz', 'matplotlib', 'sklearn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    bg.fit_em(np.random.default_rng(0).normal(size=(20, 2)), 2, max_iter=1)\n"
        "print([w.category.__name__ for w in caught], 'sklearn' in sys.modules)\n"
        "from sklearn.exceptions import ConvergenceWarning as S\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    warnings.filterwarnings('ignore', category=S)\n"
        "    bg.fit_em(np.random.default_rng(0).normal(size=(20, 2)), 2, max_iter=1)\n"
        "print(len(caught), issubclass(bg.ConvergenceWarning, S))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "[]",
        "['ConvergenceWarning'] False",  # warned, without loading scikit-learn
        "0 True",  # then scikit-learn's filter silences it: its subclass
    ], out.stdout + out.stderr


def test_constant_column_warns_once_at_the_callers_line():
    """sample_posterior(init="em") validates once: one DataWarning, pointing here."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=60), np.full(60, 3.0)])
    # Prior.default refuses a singular data covariance: give the prior's scale.
    prior = bg.Prior(np.ones(1), np.array([0.0, 3.0]), 0.01, 4.0, np.eye(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bg.sample_posterior(
            X,
            1,
            prior=prior,
            covariance_type="diag",
            init="em",
            num_chains=1,
            num_warmup=20,
            num_samples=100,
            progress_bar=False,
        )
    data = [w for w in caught if issubclass(w.category, bg.DataWarning)]
    assert len(data) == 1, [str(w.message) for w in data]
    assert data[0].filename == __file__
