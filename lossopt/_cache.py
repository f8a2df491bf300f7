"""JAX's persistent compilation cache, on request: :func:`enable_compile_cache`.

Library code never changes JAX's global configuration on import; a script calls
:func:`enable_compile_cache` once (``lossopt run`` does it for itself) and every later process
that compiles the same program on the same machine loads it from disk instead of compiling.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir", "enable_compile_cache"]

# Programs that compiled faster than this are not written (a fast-mode solver loop compiles
# in a few tenths of a second; loading it back takes milliseconds).
MIN_COMPILE_TIME_S = 0.2


def default_cache_dir() -> Path | None:
    """``$LOSSOPT_CACHE_DIR`` if set (an empty value: no cache, None), else
    ``$XDG_CACHE_HOME/lossopt/jax`` (``~/.cache/lossopt/jax``)."""
    if "LOSSOPT_CACHE_DIR" in os.environ:
        value = os.environ["LOSSOPT_CACHE_DIR"]
        return Path(value) if value else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lossopt" / "jax"


def enable_compile_cache(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache for this process; return its folder.

    A compiled solver loop is then written to ``path`` and a later process (the next run of
    a script, a notebook restart) that compiles the same program -- same objective code,
    shapes, solver options, compile mode, JAX version and machine -- loads it instead of
    compiling. This is a process-wide JAX setting (``jax_compilation_cache_dir``): call it
    once, at the start of a script, before the first solve.

    Args:
        path: the cache folder (created when needed). ``None``: :func:`default_cache_dir`,
            i.e. ``$LOSSOPT_CACHE_DIR`` or ``~/.cache/lossopt/jax``, the folder ``lossopt
            run`` uses; when ``$LOSSOPT_CACHE_DIR`` is set but empty, nothing is turned on.

    Returns:
        The folder in use, or None when the cache stays off.

    Example:
        >>> import lossopt, tempfile
        >>> folder = lossopt.enable_compile_cache(tempfile.mkdtemp())  # doctest: +SKIP
    """
    import jax

    folder = Path(path) if path is not None else default_cache_dir()
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    return folder
