"""Helpers for tests that drive the agent as a real process against a temporary state directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DEADLINE", "agent", "agent_env", "log_has", "open_ledger", "run_count", "wait_for", "wait_ledger"]

# Generous: the tests must pass on a loaded machine (2 cores shared by many processes); a wait returns as soon as
# its condition holds, so the deadline costs nothing when things are fast.
DEADLINE = 300.0


def agent_env(tmp: Path, shared: Path, **extra: str) -> dict[str, str]:
    """A clean environment: the equal-weight profile on the shared sector file, state and data under `tmp`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    cfg = tmp / "agent.toml"
    if not cfg.exists():
        cfg.write_text(
            'profile = "equal-weight"\n[data]\nsource = "file"\n'
            f'prices_file = "{shared / "sector_etfs_daily.csv"}"\n'
        )
    env.update(
        AGENT_CONFIG=str(cfg),
        AGENT_STATE_DIR=str(tmp / "state"),
        AGENT_DATA_DIR=str(tmp / "data"),
        AGENT_SHARED_DATA=str(shared),
        AGENT_LOG_LEVEL="INFO",
        AGENT_NO_PROGRESS="1",
    )
    env.update(extra)
    return env


def agent(env: dict[str, str], *args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_for(
    cond: Callable[[], Any],
    what: str,
    *,
    timeout: float = DEADLINE,
    proc: subprocess.Popen[str] | None = None,
) -> Any:
    """Poll `cond` until it returns something truthy (returned); fail with `what` after `timeout` seconds, or at
    once if `proc` exits meanwhile. A condition, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited (rc {proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def open_ledger(state: Path) -> Any:
    """The state directory's ledger (read-only), or None when there is none yet (or it is being created)."""
    from agent.ledger import open_reader

    return open_reader(state / "ledger.sqlite")


def wait_ledger(state: Path, timeout: float = DEADLINE) -> Any:
    """The ledger, waiting while a first run is still creating it (retries until it opens)."""
    from agent.errors import LedgerError

    def attempt() -> Any:
        try:
            return open_ledger(state)
        except LedgerError:  # caught mid-creation (locked, or tables without their rows yet)
            return None

    return wait_for(attempt, f"a ledger in {state}", timeout=timeout)


def run_count(state: Path) -> int:
    """Committed runs in the state directory's ledger (0 before the first run, or while it is being created)."""
    from agent.errors import LedgerError

    for _ in range(50):
        try:
            led = open_ledger(state)
            if led is None:  # no ledger yet, or one being created
                return 0
            try:
                return int(led.run_count())
            finally:
                led.close()
        except LedgerError:  # a ledger caught mid-creation: read it again
            time.sleep(0.1)
    raise AssertionError(f"the ledger in {state} stayed unreadable")


def log_has(state: Path, event: str, count: int = 1) -> bool:
    """Whether the JSON log in the state directory holds `event` at least `count` times."""
    log = state / "logs" / "agent.jsonl"
    return log.exists() and log.read_text().count(f'"{event}"') >= count
