"""Atomic file writes: temp file in the same directory, fsync, rename, fsync the directory.

A crash at any point leaves the old file or the new one, never a torn one (DESIGN.md invariant 5). The one
implementation the store, the targets files, the decision log and the reports share. A full filesystem
(ENOSPC) is re-raised as an OSError that names the file and the free space, and the temp file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "free_space", "fsync_dir", "remove_stale_temps"]

_FULL = {errno.ENOSPC, errno.EDQUOT}


def free_space(path: Path | str) -> str:
    """Free bytes on the filesystem holding `path` (or its nearest existing parent), human-readable."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        free = float(shutil.disk_usage(p).free)
    except OSError:
        return "unknown free space"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            return f"{free:.0f} {unit} free" if unit == "bytes" else f"{free:.1f} {unit} free"
        free /= 1024
    return f"{free:.1f} TiB free"  # pragma: no cover


def _full_error(e: OSError, path: Path) -> OSError:
    """ENOSPC names the file being written and the free space left: one actionable line upstream."""
    return OSError(
        e.errno, f"{e.strerror or 'no space left'} writing {path} ({free_space(path.parent)})", str(path)
    )


def fsync_dir(d: Path) -> None:
    """Make a rename in `d` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError) and e.errno in _FULL:
            raise _full_error(e, path) from e
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temps(directory: Path | str) -> list[Path]:
    """Delete temp files a killed writer left in `directory` (`.<name>.<pid>.tmp`).

    Only for directories written under the state-directory lock, where no other writer can be mid-write."""
    removed = []
    d = Path(directory)
    if d.is_dir():
        for p in d.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed
