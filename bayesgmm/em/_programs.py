"""EM's compiled programs, kept on disk whole: a new process loads them without tracing.

JAX's persistent compilation cache (:mod:`bayesgmm._core._cache`) saves XLA's
compilation, not the work before it: to compute its key JAX traces the Python
function and lowers it to StableHLO, every process, every program. For the EM
program that is most of what remains of a fit once the cache is populated
(GridSearchCV on Old Faithful in a fresh process: 0.21 s of tracing and
0.35 s of lowering in 0.88 s of CPU, on one core of a loaded machine).

:func:`call` keys a compiled program by what determines it without tracing:
the program's name, a hash of bayesgmm's source, the JAX and jaxlib
versions, the device, the CPU, ``XLA_FLAGS``, JAX's tracing configuration,
the compiler options, the static arguments and the shapes and dtypes of the
others. The first process to need a program traces, lowers and compiles it
(through JAX's cache, which may hold XLA's part), then writes the executable
(:mod:`jax.experimental.serialize_executable`) to the folder
``bayesgmm-programs`` inside JAX's cache folder; later processes load it
from there. Within a process the loaded programs are kept in a dictionary.
With JAX's cache off (``BAYESGMM_CACHE_DIR=off``, or
:func:`bayesgmm.set_compilation_cache` (None)) nothing is read or written and
the program is an ordinary ``jax.jit`` call. A file that cannot be read,
written or loaded costs only the compilation; the key names everything a file
depends on, so a stale one is never used.

A file holds a compiled program, native code, and reading it unpickles the
calling convention: it must be as trusted as bayesgmm itself. So a file is
read only when it and its folder belong to the user running Python and no
one else may write to them (:func:`_trusted`); a folder shared with others
(``BAYESGMM_CACHE_DIR`` on a group-writable disk) costs compilations, never
someone else's code.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import logging
import math
import os
import pickle
import platform
import tempfile
from pathlib import Path

import jax
from jax._src import config as _jax_config

from bayesgmm._core import _exported, _memory_maps

__all__ = ["FOLDER", "bind", "call", "clear"]

FOLDER = "bayesgmm-programs"
#: Keeping executables on disk is off unless this is set to 1: with jaxlib 0.10.2 a
#: process that ran executables read back from these files crashed (a segmentation
#: fault in two of ~800 tests of the suite's second run, after a first run had
#: written them), and JAX's own loader had already shown an incomplete serialisation
#: (see :func:`_jitted`). Off, every program goes through ``jax.jit`` and JAX's cache.
ENV_VAR = "BAYESGMM_STORE_EXECUTABLES"
_LOG = logging.getLogger("bayesgmm")
_FIXED: list[str] = []  # the parts of the key that do not change within a process


class _Memory:
    """The programs loaded in this process; ``jax.clear_caches()`` empties it too."""

    def __init__(self):
        self.programs: dict[str, jax.stages.Compiled] = {}

    def cache_clear(self) -> None:
        self.programs.clear()

    def cache_info(self) -> str:
        return f"{len(self.programs)} programs"

    def cache_keys(self):
        return list(self.programs)


_MEMORY = _Memory()
try:  # cleared with JAX's own caches (the memory-map guard, a test module's end)
    from jax._src import util as _jax_util

    _jax_util.register_cache(_MEMORY, "bayesgmm.em._programs")
except (ImportError, AttributeError):  # another JAX: cleared by clear() only
    pass


_CACHE_HITS = [0]


def _count_cache_hits(event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _CACHE_HITS[0] += 1


jax.monitoring.register_event_listener(_count_cache_hits)


def clear() -> None:
    """Forget the programs loaded in this process (the files stay)."""
    _MEMORY.cache_clear()


def _folder() -> Path | None:
    if os.environ.get(ENV_VAR, "") != "1":
        return None
    base = jax.config.jax_compilation_cache_dir
    return Path(base) / FOLDER if base else None


@functools.cache
def _jitted(fn, static: tuple, options: tuple, stored: bool):
    """``fn`` under ``jax.jit``; renamed ``<name>_stored`` for the programs kept here.

    The stored programs are compiled past JAX's own cache, with a name of
    their own so that no entry of JAX's matches them: an executable that JAX
    loaded from its cache comes out of ``serialize`` incomplete (jaxlib
    0.10.2: loading it again fails at run time with "Function
    bitcast_concatenate_fusion.9 not found").
    """
    target = fn
    if stored:

        @functools.wraps(fn)
        def target(*args, **kwargs):
            return fn(*args, **kwargs)

        target.__name__ = target.__qualname__ = f"{fn.__name__}_stored"
    return jax.jit(target, static_argnames=static, compiler_options=dict(options))


def call(fn, name: str, args: tuple, kwargs: dict, static: tuple, options: dict, out_tree=None):
    """``jax.jit(fn)(*args, **kwargs)``, its compiled program from memory or disk when there.

    ``name`` names the program's files; ``static`` are the names of the static
    keyword arguments (the positional ones are all dynamic); ``options`` are
    XLA's compiler options. With ``out_tree`` (the tree structure of what
    ``fn`` returns, known without tracing it) and the store of executables off
    (the default), the program is the exported one kept on disk
    (:mod:`bayesgmm._core._exported`): a fresh process deserialises it and finds
    XLA's compilation in JAX's cache, without tracing ``fn``.
    """
    folder = _folder()
    options_key = tuple(sorted(options.items()))
    if folder is None and out_tree is not None:
        out = _exported.call(fn, name, args, kwargs, static, out_tree, options_key)
        if out is not None:
            return out
    if folder is None:
        jitted = _jitted(fn, static, options_key, False)
        programs = jitted._cache_size()
        out = jitted(*args, **kwargs)
        if jitted._cache_size() != programs:  # this call compiled one
            _memory_maps.release_if_near_limit()
        return out
    dynamic = {k: v for k, v in kwargs.items() if k not in static}
    key = _key(name, args, dynamic, {k: kwargs[k] for k in static}, options)
    compiled = _MEMORY.programs.get(key)
    if compiled is None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        path = folder / f"{name}-{digest}.bin"
        compiled = _load(path, key)
        if compiled is None:
            lowered = _jitted(fn, static, options_key, True).trace(*args, **kwargs).lower()
            hits = _CACHE_HITS[0]
            # JAX neither writes this program to its cache nor (by its name) reads it
            with _jax_config.persistent_cache_min_compile_time_secs(math.inf):
                compiled = lowered.compile()
            if _CACHE_HITS[0] == hits:  # compiled here, not loaded by JAX: complete
                _store(path, key, compiled)
        _memory_maps.release_if_near_limit()  # clears JAX's caches and this one
        _MEMORY.programs[key] = compiled
    return compiled(*args, **dynamic)


def bind(fn, name: str, args: tuple, kwargs: dict, static: tuple, options: dict, out_tree):
    """:func:`call` for arguments like these, as a function of them, looked up once.

    The exported program kept on disk where there is one
    (:func:`bayesgmm._core._exported.bind`), else ``jax.jit(fn)``. The
    returned function takes arguments of the same shapes and static values;
    it may be called from several threads at once.
    """
    options_key = tuple(sorted(options.items()))
    run = None
    if _folder() is None:
        run = _exported.bind(fn, name, args, kwargs, static, out_tree, options_key)
    return _jitted(fn, static, options_key, False) if run is None else run


def _key(name, args, dynamic, static, options) -> str:
    leaves, tree = jax.tree.flatten((args, dynamic))
    avals = []
    for leaf in leaves:
        aval = jax.typeof(leaf)
        avals.append(f"{aval.str_short()}{'~' if getattr(aval, 'weak_type', False) else ''}")
    parts = [
        name,
        *_fixed(),
        repr(sorted(options.items())),
        repr(sorted(static.items())),
        str(tree),
        ",".join(avals),
    ]
    return "\n".join(parts)


def _fixed() -> list[str]:
    if not _FIXED:
        import jaxlib

        device = jax.devices()[0]
        _FIXED.extend(
            [
                _source_hash(),
                f"jax {jax.__version__} jaxlib {jaxlib.__version__}",
                f"{device.client.platform} {device.client.platform_version} {device.device_kind}",
                _cpu(),
                os.environ.get("XLA_FLAGS", ""),
            ]
        )
    return [*_FIXED, _trace_context()]


def _source_hash() -> str:
    """A hash of every module of bayesgmm: any change of the source is a new key."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _cpu() -> str:
    """The processor the executables are compiled for: model and instruction-set flags."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = [
                line.strip()
                for line in info
                if line.startswith(("model name", "flags", "Features", "CPU part"))
            ]
        return hashlib.sha256("\n".join(sorted(set(lines))).encode()).hexdigest()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _trace_context() -> str:
    """JAX's configuration that tracing reads (x64, PRNG, matmul precision, ...)."""
    from jax._src import config

    values = []
    for value in config.trace_context():
        if value is None or isinstance(value, bool | int | float | str | enum.Enum | tuple):
            values.append(repr(value))
    return ",".join(values)


def _trusted(path: Path) -> bool:
    """Whether ``path`` and its folder are this user's and writable by no one else."""
    if not hasattr(os, "getuid"):  # no POSIX owners (Windows): the user's own profile
        return True
    try:
        for where in (path, path.parent):
            st = where.stat()
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True


def _load(path: Path, key: str):
    from jax.experimental import serialize_executable

    if not _trusted(path):
        return None
    try:
        with open(path, "rb") as file:
            stored_key, payload, in_tree, out_tree = pickle.load(file)
        if stored_key != key:
            return None
        compiled = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
    except Exception:  # missing, partly written, or from another build: compile instead
        return None
    _LOG.debug("bayesgmm: loaded the compiled program %s from %s", path.stem, path.parent)
    return compiled


def _store(path: Path, key: str, compiled) -> None:
    from jax.experimental import serialize_executable

    temporary = None
    try:
        payload, in_tree, out_tree = serialize_executable.serialize(compiled)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as file:
            temporary = file.name
            pickle.dump((key, payload, in_tree, out_tree), file)
        os.replace(temporary, path)  # whole or not at all, whoever else writes it
    except Exception:  # not serialisable, or an unwritable folder: compiled next time
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        return
    _LOG.debug("bayesgmm: wrote the compiled program %s to %s", path.stem, path.parent)
