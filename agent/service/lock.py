"""One agent per state directory: an exclusive ``flock`` on ``<state_dir>/agent.lock`` holding the owner's pid."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from agent.errors import LockError

__all__ = ["StateLock", "lock_holder", "lock_is_held"]


class StateLock:
    """An exclusive `flock` on `<state_dir>/agent.lock` that records the holder's pid.

    Why flock and not filelock: filelock truncates the file when it *tries* to lock, wiping the holder's pid that
    the refusal message needs. The kernel drops the lock when the process dies (even on SIGKILL), so a crash never
    leaves a stale lock; the file itself is never deleted (deleting would let two processes lock two inodes).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / "agent.lock"
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockError(f"cannot lock {self.path}: {e.strerror}") from None
            pid = lock_holder(self.state_dir)
            raise LockError(f"another agent holds {self.state_dir} (pid {pid if pid else '?'})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(state_dir: Path) -> int | None:
    """The pid written by the process that holds (or last held, if it was killed) the state lock."""
    try:
        text = (Path(state_dir) / "agent.lock").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def lock_is_held(state_dir: Path) -> bool:
    """True when the process recorded in the lock file is alive. Never touches the lock itself: a probing flock
    could make a daemon that starts at that instant refuse to run. (The holder clears the pid on a clean exit; a
    killed holder leaves a pid that is no longer alive.)"""
    pid = lock_holder(state_dir)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user (e.g. the service's dynamic user)
        return True
    return True
