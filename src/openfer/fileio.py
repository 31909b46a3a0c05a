"""Atomic file writing: a file is either complete or absent, never half-written.

Data are written to a temporary file in the destination's directory, flushed and fsync'ed,
then moved over the destination with :func:`os.replace` (atomic on POSIX), and the directory
entry is fsync'ed. A process killed at any point leaves the previous version intact.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

from .errors import FileWriteError


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block ends without error."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes only ('wb' or 'w'), got mode {mode!r}")
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _commit(tmp, path)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_with(path: str | Path, writer: Callable[[str], None]) -> None:
    """Atomically create ``path`` with a library function that writes to a file name.

    ``writer(tmp_name)`` writes the whole file (e.g. ``safetensors.torch.save_file``); the
    temporary file then replaces ``path``.
    """
    path = Path(path)
    fd, tmp = _temporary(path)
    os.close(fd)
    try:
        writer(tmp)
    except BaseException as exc:
        _abandon(tmp, path, exc)
        raise
    _commit(tmp, path)


def make_parent(path: Path) -> None:
    """Create the folder of ``path`` (and those above it); a place where it cannot be is a
    :class:`FileWriteError` naming ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileWriteError(path, exc) from exc


def _temporary(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path`` (its folder created); an unwritable place is a
    :class:`FileWriteError` naming ``path``."""
    make_parent(path)
    try:
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise FileWriteError(path, exc) from exc


def _commit(tmp: str, path: Path) -> None:
    """fsync the finished temporary file, give it normal permissions, move it into place."""
    try:
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        _abandon(tmp, path, exc)
        raise
    _fsync_directory(path.parent)


def _abandon(tmp: str, path: Path, exc: BaseException) -> None:
    """Remove the temporary file of a write that failed with ``exc``; an :class:`OSError`
    (writing it, or moving it into place) is raised as a :class:`FileWriteError` naming
    ``path``, and anything else is left for the caller to re-raise."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    if isinstance(exc, OSError) and not isinstance(exc, FileWriteError):
        raise FileWriteError(path, exc) from exc


def _umask_mode() -> int:
    """The permissions ``open()`` would give a new file (mkstemp makes them 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
