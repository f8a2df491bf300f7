"""The one atomic-write helper: every file lossopt writes goes through :func:`atomic_path`.

A file is written to a temporary file in the destination folder, flushed to disk (``fsync``),
given the permissions an ordinary ``open(path, "w")`` would give it (``0o666`` minus the
process umask; ``tempfile.mkstemp`` alone creates ``0o600``, which collaborators sharing a
results folder could not read) and moved into place with ``os.replace``. A reader therefore
sees the previous file or the new one, never a partial one, and a failed write leaves the
previous file untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "file_mode"]

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (briefly process-wide)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from ``open(path, "w")``: ``0o666 & ~umask``.

    Example:
        >>> old = os.umask(0o027)
        >>> oct(file_mode())
        '0o640'
        >>> _ = os.umask(old)
    """
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, prefix: str | None = None, suffix: str = ".tmp"
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    Write the file's content to the yielded path (by name: ``savefig``, ``np.savez``,
    ``Path.write_text``). When the block succeeds the file is synced, given the mode
    :func:`file_mode` and renamed onto ``path``; when it raises, the temporary file is removed
    and ``path`` keeps its previous content. The parent folder is created if needed. The
    temporary file is named ``<prefix>XXXXXXXX<suffix>`` (``prefix`` defaults to
    ``.<name>.``), so a writer can find what a killed process left behind.

    Raises:
        OSError: the folder cannot be created or written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}." if prefix is None else prefix,
                               suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically; return the path.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> atomic_write(folder / "a.txt", "hello").read_text()
        'hello'
        >>> sorted(p.name for p in folder.iterdir())   # no temporary file is left behind
        ['a.txt']
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)
