"""JAX's persistent compilation cache, on by default: a second process reuses the first's programs.

bayesgmm compiles one program per shape class (EM, NUTS, densities). XLA's
compilation takes seconds on a small CPU, and JAX can keep the compiled
programs on disk and load them in the next process instead (a fit whose
program is on disk starts in tenths of a second instead of one or two
seconds). On ``import bayesgmm`` the cache goes to :func:`default_dir`
(``$XDG_CACHE_HOME/bayesgmm/jax``, by default ``~/.cache/bayesgmm/jax``),
unless:

- ``BAYESGMM_CACHE_DIR`` names another folder, or turns it off (``off``,
  ``0``, ``none``, ``false``, ``no`` or empty);
- the user's JAX already has a cache folder (``jax_compilation_cache_dir``,
  ``JAX_COMPILATION_CACHE_DIR``): then JAX's setting is left as it is;
- the folder cannot be created: then there is no disk cache, and nothing else
  changes.

:func:`set_compilation_cache` moves it or turns it off for the rest of the
process. The setting is JAX's, so it is process-wide: programs of other JAX
code that take longer than 0.1 s to compile are cached there too. Entries are
keyed by JAX version, XLA flags and the program, so a stale entry is never
used; deleting the folder only costs recompilation.

An earlier version kept the cache off after a process crashed inside JAX's
cache read while other processes wrote the folder. That crash was the
process running out of memory maps (``vm.max_map_count``; see
:mod:`bayesgmm._core._memory_maps`), which loading a cached program, like
compiling one, needs: processes sharing one folder, writing and reading the
same programs at once, were run since without a fault.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["ENV_VAR", "configure", "default_dir", "set_compilation_cache"]

ENV_VAR = "BAYESGMM_CACHE_DIR"
_OFF = {"", "0", "off", "none", "false", "no"}
# Programs that compile faster than this are not worth a disk entry.
_MIN_COMPILE_SECONDS = 0.1


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/bayesgmm/jax``, or ``~/.cache/bayesgmm/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bayesgmm" / "jax"


def set_compilation_cache(path: str | os.PathLike | None) -> Path | None:
    """Keep compiled programs in ``path`` (created if missing), or turn the cache off (None).

    Parameters
    ----------
    path : path-like or None
        Folder of JAX's persistent compilation cache; None stops writing and
        reading it for the rest of the process.

    Returns
    -------
    Path or None
        The folder in use.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> bg.set_compilation_cache(None)  # no disk cache in this process
    """
    from jax._src import compilation_cache  # JAX reads the setting once: start again

    if path is None:
        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()
        return None
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
    compilation_cache.reset_cache()
    return folder


def configure() -> Path | None:
    """Turn the cache on at import (see the module docstring); return the folder in use."""
    value = os.environ.get(ENV_VAR)
    current = jax.config.jax_compilation_cache_dir
    if value is not None and value.strip().lower() in _OFF:
        return Path(current) if current else None  # JAX's setting, unchanged
    if value is None:
        if current:
            return Path(current)  # the user's own JAX cache: theirs to decide
        value = default_dir()
    try:
        return set_compilation_cache(value)
    except OSError:
        return None  # an unwritable folder: no disk cache, nothing else changes
