"""Private key files, written atomically: the one writer behind both keyrings (jwt.json and pii.json).

A key file is never seen half-written: the bytes go to a temp file in the same folder (mode 0o600), are
fsynced, and only then take the file's name — renamed over it (``replace=True``, rotation) or hard-linked
into place (``replace=False``, exclusive create: FileExistsError when the file is already there, so two
workers starting at once on a fresh data dir can never each keep a key of their own). The folder is fsynced
after the name changes, so a crash right after cannot lose the new name.

Temp files are named ``.<name>.<random>.tmp``; one left by a crash does not stand in anyone's way and is
removed by a later write once it is older than ``STALE_TEMP_SECONDS``."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# far longer than any write takes, so a live writer's temp file is never taken for a crash's leftover
STALE_TEMP_SECONDS = 3600


def write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` with mode 0o600, atomically; ``replace=False`` creates exclusively and raises
    FileExistsError (leaving the file as it was) if ``path`` exists. Missing folders are created (the last one
    0o700)."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)  # mkstemp already makes it 0o600; said here so it does not depend on that
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and never over an existing file
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(path.parent)
    _remove_stale_temps(path)


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The file's bytes; if it is missing, first create it (exclusively) from ``make()``. Safe when several
    processes start at once: one creator wins and every caller reads the winner's bytes."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    with contextlib.suppress(FileExistsError):
        write_private(path, make(), replace=False)
    return path.read_bytes()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms whose folders cannot be opened
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse to fsync a folder
            os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    cutoff = time.time() - STALE_TEMP_SECONDS
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
