"""Compatibility re-export: the daemon's jobs live in :mod:`agent.service` (one module each).

Kept because APScheduler job stores written by earlier versions reference ``agent.daemon:_fire`` and
``agent.daemon:_catch_up``, and because scripts may import the old names. New code imports from
``agent.service.<module>``.
"""

from __future__ import annotations

from agent.service.clock import SimulatedClock, SystemClock
from agent.service.hooks import CRASH_ENV, PAUSE_ENV
from agent.service.job import AgentRunner, RunOutcome, open_existing_ledger, run_once
from agent.service.lock import StateLock, lock_holder, lock_is_held
from agent.service.notify import sd_notify, watchdog_interval
from agent.service.paths import StatePaths
from agent.service.scheduler import JOB_ID, Daemon, _catch_up, _fire
from agent.service.slots import (
    close_time,
    latest_closed_session,
    latest_slot,
    next_run_time,
    next_slot_after,
    scheduled_between,
    slot_anchor,
)

__all__ = [
    "CRASH_ENV",
    "JOB_ID",
    "PAUSE_ENV",
    "AgentRunner",
    "Daemon",
    "RunOutcome",
    "SimulatedClock",
    "StateLock",
    "StatePaths",
    "SystemClock",
    "_catch_up",
    "_fire",
    "close_time",
    "latest_closed_session",
    "latest_slot",
    "lock_holder",
    "lock_is_held",
    "next_run_time",
    "next_slot_after",
    "open_existing_ledger",
    "run_once",
    "scheduled_between",
    "sd_notify",
    "slot_anchor",
    "watchdog_interval",
]
