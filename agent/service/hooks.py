"""TEST HOOKS for crash and signal tests: kill or pause the process at named points of a run.

Read from the environment (outside ``AGENT_*``, which is settings only); never set in production, and a no-op
(None) when unset.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

__all__ = ["CRASH_ENV", "PAUSE_ENV", "crash_hook_from_env"]

CRASH_ENV = "REBALANCE_AGENT_TEST_CRASH_AT"
PAUSE_ENV = "REBALANCE_AGENT_TEST_PAUSE_AT"


def _log() -> Any:
    from agent.logging import get_logger

    return get_logger("agent.daemon")  # one logger name for the service, as before the split


def crash_hook_from_env() -> Any:
    """TEST HOOKS (never set in production):

    REBALANCE_AGENT_TEST_CRASH_AT=<point>[@<slot>]: SIGKILL this process at that point of a run.
    REBALANCE_AGENT_TEST_PAUSE_AT=<point>:<seconds>: sleep there (to signal the daemon while a run is in flight).
    Points: before_commit, inside_commit, after_commit (inside `run_slot`), before_targets, mid_targets.
    """
    spec = os.environ.get(CRASH_ENV, "").strip()
    pause = os.environ.get(PAUSE_ENV, "").strip()
    if not spec and not pause:
        return None
    point, _, slot = spec.partition("@")
    p_point, _, p_secs = pause.partition(":")

    def hook(at: str, current_slot: str | None = None) -> None:
        if pause and at == p_point:
            _log().warning("test.pause", point=at, slot=current_slot, seconds=float(p_secs or 1))
            time.sleep(float(p_secs or 1))
        if spec and at == point and (not slot or current_slot is None or slot == current_slot):
            _log().warning("test.crash", point=at, slot=current_slot)
            os.kill(os.getpid(), signal.SIGKILL)

    return hook
