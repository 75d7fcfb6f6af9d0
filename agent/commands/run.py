"""`agent run`: the paper-trading daemon, or `agent run --once [--asof DATE]` for cron / systemd timers."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from agent.commands.common import preflight_run, settings_from_args

__all__ = ["register"]

_DESC = """\
Paper-trade a profile on its schedule. Each run updates prices (yfinance incrementally; a configured file or the
demo set is re-imported, so every profile runs offline), makes the same decision as the backtest, commits it with
its orders in the ledger (<state_dir>/ledger.sqlite) keyed by the schedule slot, appends the hash-chained record
to <state_dir>/decisions.jsonl and writes <state_dir>/targets/<date>.json, .csv and latest.json.

A slot is a scheduled session (schedule.frequency) whose run time (schedule.time in schedule.timezone) has passed.
A committed slot is never traded twice: rerunning it prints that it is done and exits 0.

Without --once the agent runs as a daemon (APScheduler): it fires at schedule.time on weekdays and runs when that
session is a scheduled slot; on start it applies schedule.catch_up (latest: run the latest missed slot once; skip:
log it). One agent per state directory (<state_dir>/agent.lock). SIGTERM/SIGINT let a run in progress finish, then
exit 0. Under systemd (Type=notify) it sends READY/WATCHDOG/STOPPING notifications.
"""

_EPI = """\
examples:
  agent run --once                          # the latest slot whose run time has passed (cron, systemd timer)
  agent run --once --asof 2024-06-28        # catch up one slot by hand (the latest slot on or before that date)
  agent run --config /etc/rebalance-agent/agent.toml   # the daemon

exit codes: 0 ok (or slot already done), 1 run failed (recorded in the ledger's failures), 2 usage or
configuration error (also: another agent holds the state directory -> 1), 3 data error (e.g. offline and no prices)
"""


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[parent],
        help="the paper-trading daemon, or one scheduled run with --once",
        description=_DESC,
        epilog=_EPI,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--once", action="store_true", help="one scheduled run, then exit (for cron / systemd timers)"
    )
    p.add_argument(
        "--asof",
        metavar="YYYY-MM-DD",
        help="with --once: run the latest scheduled slot on or before this date",
    )
    # TEST HOOK (hidden): a simulated clock that jumps to the next scheduled slot every --tick-seconds, so tests
    # run the real daemon job over several historical slots in seconds.
    p.add_argument("--clock-start", metavar="YYYY-MM-DD", help=argparse.SUPPRESS)
    p.add_argument("--clock-end", metavar="YYYY-MM-DD", help=argparse.SUPPRESS)
    p.add_argument("--clock-step", choices=["slot", "session"], default="slot", help=argparse.SUPPRESS)
    p.add_argument("--tick-seconds", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=_run)


def _date(value: str | None, flag: str) -> dt.date | None:
    from agent.errors import UsageError

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{flag} expects YYYY-MM-DD, got {value!r}") from None


def _run(args: argparse.Namespace) -> int:
    from agent.commands.common import configure_from_settings
    from agent.errors import UsageError
    from agent.service.clock import SimulatedClock
    from agent.service.job import AgentRunner, run_once
    from agent.service.lock import StateLock
    from agent.service.paths import StatePaths
    from agent.service.scheduler import Daemon

    asof = _date(args.asof, "--asof")
    clock_start = _date(args.clock_start, "--clock-start")
    clock_end = _date(args.clock_end, "--clock-end")
    if asof is not None and not args.once:
        raise UsageError("--asof needs --once (the daemon follows the clock)")
    if clock_start is None and clock_end is not None:
        raise UsageError("--clock-end needs --clock-start")
    if args.tick_seconds <= 0:
        raise UsageError("--tick-seconds must be > 0")
    settings = settings_from_args(args)
    paths = StatePaths.from_settings(settings)
    preflight_run(settings, asof)  # before the lock: a bad state/data dir or date is one line, nothing written
    with StateLock(paths.root):
        configure_from_settings(settings, file=settings.logging.file or paths.log_file)
        clock = None
        if clock_start is not None:
            runner = AgentRunner(settings)
            clock = SimulatedClock(settings, clock_start, clock_end, args.clock_step, anchor_fn=runner.anchor)
        if args.once:
            out = _once_deferring_sigterm(lambda: run_once(settings, asof, clock=clock))
            from agent.ops import after_run  # ops hooks (issue 14): metrics file + webhook; never fails a run

            after_run(settings, out)
            if out.exit_code == 0:
                print(out.message, flush=True)
            else:
                print(f"agent: error: {out.message}", file=sys.stderr, flush=True)
            return out.exit_code
        runner = AgentRunner(settings, clock)
        if clock is not None:
            clock.anchor_fn = runner.anchor
        return Daemon(runner, tick_seconds=args.tick_seconds if clock is not None else None).serve()


def _once_deferring_sigterm(fn: Any) -> Any:
    """SIGTERM during `--once` (a systemd stop, a shutdown): finish the run, then exit, as the daemon does.
    (Killing it would also be safe - the transaction rolls back and the next run redoes the slot - but wasteful.)
    SIGINT keeps its default: Ctrl-C aborts at once (rolled back)."""
    import signal

    from agent.logging import get_logger

    def on_term(signum: int, _frame: Any) -> None:
        get_logger("agent.run").warning(
            "signal.deferred", signal=signum, note="exiting after the run in progress"
        )

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        return fn()
    finally:
        signal.signal(signal.SIGTERM, old)
