"""Helpers for tests that drive the agent as a real process against a temporary state directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["agent", "agent_env", "open_ledger", "run_count"]


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


def agent(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def open_ledger(state: Path) -> Any:
    from agent.ledger import open_reader

    return open_reader(state / "ledger.sqlite")


def run_count(state: Path) -> int:
    """Committed runs in the state directory's ledger (0 before the first run)."""
    led = open_ledger(state)
    if led is None:  # no ledger yet, or one being created
        return 0
    try:
        return led.run_count()
    finally:
        led.close()
