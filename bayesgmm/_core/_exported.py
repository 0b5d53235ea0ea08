"""Traced programs kept on disk beside the compiled ones, so a fresh process skips tracing.

JAX's persistent compilation cache (:mod:`bayesgmm._core._cache`) keys a
compiled program by its lowered text, so a process that finds the program on
disk must still trace and lower it to compute that key: for the vectorised
NUTS programs about 3 s of CPU in every fresh process, more than loading and
running them, and about 0.5 s for each EM program (one per static
configuration: K and D classes, restarts, history length, prior or not).
This module keeps the traced and lowered program as well, serialised with
:mod:`jax.export` (StableHLO), in the folder ``exported`` inside the
compilation-cache folder. A fresh process deserialises it (milliseconds),
lowers the call to it (no Python tracing of the model, of NUTS or of EM) and
finds the compiled program in JAX's cache.

An entry is found under a hash of everything that can change the program:

- the code that is traced: every ``.py`` file of bayesgmm, and the versions of
  JAX, jaxlib and NumPyro (:func:`fingerprint`);
- the JAX settings that change what a trace gives (:data:`_TRACE_SETTINGS`:
  64-bit types, the PRNG implementation, matmul precision, ...);
- the caller's name for the program and its static settings, and the shapes,
  dtypes and tree structure of its arguments.

So only programs whose Python code is bayesgmm's own may be kept (a user's
model is traced every time); a stale entry is never found, only left unused.
The program run is the one JAX traced, so results are those of tracing it
directly (tested bit for bit). Entries are written by JAX's own serialisation
(``Exported.serialize``: StableHLO bytecode and the calling convention in a
flatbuffer), which holds no Python objects: reading an entry runs no code
(no pickle). With the compilation cache off nothing is kept;
an entry that cannot be read or written is traced again, and nothing else
changes. Deleting the folder costs one tracing.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import inspect
import os
import tempfile
from importlib import metadata
from pathlib import Path

import jax

from bayesgmm._core import _memory_maps

__all__ = ["bind", "call", "fingerprint", "folder", "jit", "program"]

_SUBFOLDER = "exported"
# JAX settings that change the traced program, read when a key is made.
_TRACE_SETTINGS = (
    "jax_enable_x64",
    "jax_default_prng_impl",
    "jax_threefry_partitionable",
    "jax_default_matmul_precision",
    "jax_numpy_dtype_promotion",
    "jax_numpy_rank_promotion",
    "jax_debug_nans",
    "jax_debug_infs",
    "jax_enable_checks",
)
# In this process: key -> jitted call of the exported program, the latest _KEEP.
_LOADED: collections.OrderedDict[str, object] = collections.OrderedDict()
_KEEP = 64


def folder() -> Path | None:
    """Where traced programs are kept: ``exported/`` in JAX's cache folder; None when off."""
    cache = jax.config.jax_compilation_cache_dir
    if not cache or jax.config.jax_disable_jit:
        return None
    return Path(cache) / _SUBFOLDER


@functools.cache
def fingerprint() -> str:
    """A hash of bayesgmm's source files and the versions of JAX, jaxlib and NumPyro."""
    digest = hashlib.sha256()
    for name in ("jax", "jaxlib", "numpyro"):
        try:
            digest.update(f"{name}={metadata.version(name)};".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=?;".encode())
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _key(name: str, static, args) -> str:
    leaves, treedef = jax.tree.flatten(args)
    avals = [(tuple(jax.numpy.shape(x)), str(jax.numpy.result_type(x))) for x in leaves]
    settings = [(s, str(getattr(jax.config, s))) for s in _TRACE_SETTINGS]
    where = jax.default_backend()
    text = repr((fingerprint(), where, settings, name, static, str(treedef), avals))
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()}"


def program(name: str, static, function, args, options=()):
    """``function`` as a jitted call of its exported program for arguments like ``args``.

    Parameters
    ----------
    name : str
        What the program is (a file-name prefix, and part of the key).
    static : hashable with a stable repr
        Everything the program depends on besides bayesgmm's code and the
        arguments' shapes: the model's name, settings closed over.
    function : callable
        Traceable on ``args``; it must take and return pytrees of tuples,
        lists, dicts and arrays only (what :mod:`jax.export` serialises).
    args : tuple
        Example arguments (only their shapes, dtypes and structure are used).
    options : tuple of (str, value) pairs
        XLA's compiler options for the call (part of the key).

    Returns
    -------
    callable or None
        The program, called like ``function``; None when the compilation
        cache is off or the program cannot be exported (then trace
        ``function`` as usual).
    """
    where = folder()
    if where is None:
        return None
    key = _key(name, (static, tuple(options)), args)
    loaded = _LOADED.get(key)
    if loaded is not None:
        _LOADED.move_to_end(key)
        return loaded
    exported = _read(where / key)
    if exported is None:
        try:
            exported = jax.export.export(jax.jit(function))(*args)
        except Exception:  # what jax.export refuses (an unlisted custom call): trace as usual
            return None
        _write(where / key, exported)

    def run(*args):
        return exported.call(*args)

    run.__name__ = run.__qualname__ = name  # in JAX's logs and cache keys: jit_<name>
    loaded = _LOADED[key] = jax.jit(run, compiler_options=dict(options) or None)
    if len(_LOADED) > _KEEP:
        _LOADED.popitem(last=False)
    return loaded


def _read(path: Path):
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        return jax.export.deserialize(bytearray(blob))
    except Exception:  # a truncated or foreign file: trace again and replace it
        return None


def _write(path: Path, exported) -> None:
    # vjp_order=0: the engines never differentiate the program itself
    blob = exported.serialize(vjp_order=0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as f:
            f.write(blob)
        os.replace(f.name, path)  # atomic: a reader sees the whole entry or none
    except OSError:
        with contextlib.suppress(OSError, NameError):
            os.unlink(f.name)  # an unwritable folder: traced again next time


def call(fn, name: str, args: tuple, kwargs: dict, static: tuple, out_tree, options=()):
    """``fn(*args, **kwargs)`` through its exported program; None where there is none.

    ``static`` names the keyword arguments that are static (everything else is
    an array or a pytree of arrays); ``out_tree`` is the tree structure of what
    ``fn`` returns, known without tracing it. JAX keys (typed) are passed as
    their raw data and wrapped again inside the program. One device only: the
    programs that split their blocks over several CPU devices are traced as
    usual (an exported program fixes its devices).
    """
    run = bind(fn, name, args, kwargs, static, out_tree, options)
    if run is None:
        return None
    programs = run.program._cache_size()
    out = run(*args, **kwargs)
    if run.program._cache_size() != programs:  # this call compiled (or loaded) one
        _memory_maps.release_if_near_limit()
    return out


def bind(fn, name: str, args: tuple, kwargs: dict, static: tuple, out_tree, options=()):
    """:func:`call`'s program for arguments like these, as a function of them; None where none.

    The program is looked up once (a hash of the arguments' shapes and of the
    static ones); the returned function, called with arguments of the same
    shapes and the same static values, only flattens them and runs it: for a
    loop on the host that calls one program many times, from several threads.
    Its ``program`` attribute is the jitted exported program.
    """
    if folder() is None or jax.device_count() > 1:
        return None
    defaults = _defaults(fn)
    static_kwargs = {k: kwargs[k] if k in kwargs else defaults[k] for k in static}
    dynamic = {k: v for k, v in kwargs.items() if k not in static}
    leaves, tree = jax.tree.flatten((args, dynamic))
    impls = [_key_impl(leaf) for leaf in leaves]

    def flat(*leaves):
        leaves = [
            x if i is None else jax.random.wrap_key_data(x, impl=i)
            for x, i in zip(leaves, impls, strict=True)
        ]
        a, d = tree.unflatten(leaves)
        return jax.tree.leaves(fn(*a, **d, **static_kwargs))

    flat.__name__ = flat.__qualname__ = fn.__name__  # what JAX's logs name when it traces
    setting = (repr(sorted(static_kwargs.items())), str(tree), repr([str(i) for i in impls]))
    found = program(name, setting, flat, tuple(_key_data(leaves, impls)), options)
    if found is None:
        return None

    def run(*args, **kwargs):
        dynamic = {k: v for k, v in kwargs.items() if k not in static}
        return out_tree.unflatten(found(*_key_data(jax.tree.leaves((args, dynamic)), impls)))

    run.program = found
    return run


def _key_data(leaves, impls):
    """The leaves with each typed JAX key replaced by its raw data."""
    return [x if i is None else jax.random.key_data(x) for x, i in zip(leaves, impls, strict=True)]


@functools.cache
def _defaults(fn) -> dict:
    """The default values of ``fn``'s keyword arguments."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def _key_impl(leaf):
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return jax.random.key_impl(leaf)
    return None


def jit(fn, name: str, static_argnames: tuple, out_tree_of):
    """``jax.jit(fn, static_argnames=...)``, through :func:`call` where it can.

    ``out_tree_of(kwargs)`` gives the tree structure of ``fn``'s output for the
    call's keyword arguments (the static ones decide it) without tracing ``fn``.
    The returned function has the jitted one as ``.jitted``.
    """
    jitted = jax.jit(fn, static_argnames=static_argnames)

    def run(*args, **kwargs):
        out = call(fn, name, args, kwargs, static_argnames, out_tree_of(kwargs))
        return jitted(*args, **kwargs) if out is None else out

    run.jitted = jitted
    run.__name__ = run.__qualname__ = fn.__name__
    return run
