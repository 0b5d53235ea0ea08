"""JAX's persistent compilation cache, on request: a second process reuses the first's programs.

bayesgmm compiles one program per shape class (EM, NUTS, densities). XLA's
compilation takes seconds on a small CPU, and JAX can keep the compiled
programs on disk and load them in the next process instead. Ask for it with
``BAYESGMM_CACHE_DIR=/some/folder`` (read on ``import bayesgmm``) or
:func:`bayesgmm.set_compilation_cache`; :func:`default_dir` is a good folder
(``$XDG_CACHE_HOME/bayesgmm/jax``, by default ``~/.cache/bayesgmm/jax``).

It is off by default: with jaxlib 0.10 on CPU, reading an entry of a cache
folder that other processes were writing at the same time crashed the reading
process (a segmentation fault inside ``compilation_cache.get_executable_and_time``,
seen with concurrent test processes sharing one folder). Use one folder per
concurrently running job. A user's own JAX setting (``jax_compilation_cache_dir``)
is never changed unless ``BAYESGMM_CACHE_DIR`` is set.

The setting is JAX's, so it is process-wide: programs of other JAX code that
take longer than 0.1 s to compile are cached there too. Entries are keyed by
JAX version, XLA flags and the program, so a stale entry is never used;
deleting the folder only costs recompilation. ``BAYESGMM_CACHE_DIR=off`` (or
unset) leaves JAX's setting as it is.
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
    """Turn the cache on at import when ``BAYESGMM_CACHE_DIR`` names a folder."""
    value = os.environ.get(ENV_VAR)
    if value is None or value.strip().lower() in _OFF:
        current = jax.config.jax_compilation_cache_dir
        return Path(current) if current else None  # JAX's setting, unchanged
    try:
        return set_compilation_cache(value)
    except OSError:
        return None  # an unwritable folder: no disk cache, nothing else changes
