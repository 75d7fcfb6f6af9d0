"""The daemon: APScheduler's BlockingScheduler around `AgentRunner.ensure_latest`, with graceful shutdown.

Safety. SIGTERM/SIGINT stop new runs and let a run in progress finish (its ledger transaction commits or rolls
back), then exit 0. With `NOTIFY_SOCKET` set the daemon speaks the systemd notify protocol.

Catch-up. The APScheduler job store (`<state_dir>/scheduler.sqlite`) remembers the next planned fire time, so
after a restart the daemon logs what it missed; the ledger says which slots are done. `schedule.catch_up =
"latest"` runs the latest scheduled slot not in the ledger once (never a backlog: trading stale signals in a burst
is worse than skipping them); "skip" logs it and waits for the next slot. Job stores written before the service
package referenced ``agent.daemon:_fire``; `agent.daemon` re-exports these functions so they still resolve.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import threading
from typing import Any

from agent.errors import EXIT_OK
from agent.service.job import AgentRunner, RunOutcome
from agent.service.notify import sd_notify, watchdog_interval
from agent.service.slots import close_time, next_run_time, tz

__all__ = ["JOB_ID", "Daemon"]

JOB_ID = "rebalance"


def _log() -> Any:
    from agent.logging import get_logger

    return get_logger("agent.daemon")  # one logger name for the service, as before the split


_ACTIVE: Daemon | None = None


def _fire() -> None:
    """The scheduled job (referenced by name so the SQLite job store can persist it)."""
    if _ACTIVE is not None:
        _ACTIVE.on_fire()


def _catch_up() -> None:
    if _ACTIVE is not None:
        _ACTIVE.on_catch_up()


class Daemon:
    """APScheduler BlockingScheduler around `AgentRunner.ensure_latest`, with lock-free graceful shutdown."""

    def __init__(self, runner: AgentRunner, *, tick_seconds: float | None = None) -> None:
        self.runner = runner
        self.settings = runner.settings
        self.paths = runner.paths
        self.tick_seconds = tick_seconds
        self.scheduler: Any = None
        self._stop_started = threading.Event()
        self._finished = threading.Event()
        self.outcomes: list[RunOutcome] = []

    # -------------------------------------------------------------- jobs
    def on_fire(self) -> None:
        clock = self.runner.clock
        if self.runner.stopping.is_set():
            return
        if clock.simulated and not clock.advance():
            _log().debug("clock.end", day=str(getattr(clock, "day", "")))
            return
        self._record(self.runner.ensure_latest(trigger="schedule", catch_up=self.settings.schedule.catch_up))

    def on_catch_up(self) -> None:
        """At start: the explicit catch-up policy (logged either way)."""
        out = self.runner.ensure_latest(trigger="start", catch_up=self.settings.schedule.catch_up)
        _log().info(
            "catch_up.done", policy=self.settings.schedule.catch_up, status=out.status, message=out.message
        )
        self._record(out)

    def _record(self, out: RunOutcome) -> None:
        """After a job. Never calls into the scheduler: its shutdown(wait=True) holds the job-store lock while it
        waits for this very job, so a scheduler call here would deadlock a graceful stop."""
        self.outcomes.append(out)
        del self.outcomes[:-100]
        if out.status not in ("skipped",):
            sd_notify(f"STATUS={out.message[:200]}")
            from agent.ops import (
                after_run,  # metrics file + webhook (issue 14); never raises, never blocks a run
            )

            after_run(self.settings, out)
        if not self.runner.stopping.is_set():
            nxt = next_run_time(self.settings, self.runner.clock.now(), self.runner.anchor())
            _log().info("schedule.next", next_slot_run=nxt.isoformat() if nxt else None)

    def _next_run(self) -> str | None:
        with contextlib.suppress(Exception):
            job = self.scheduler.get_job(JOB_ID)
            if job is not None and job.next_run_time is not None:
                return job.next_run_time.isoformat()
        return None

    # -------------------------------------------------------------- setup
    def _missed_since(self) -> dt.datetime | None:
        """The persisted next fire time of the job if it lies in the past: what the stopped daemon missed."""
        import sqlite3

        p = self.paths.scheduler_db
        if not p.exists():
            return None
        try:
            con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
            try:
                row = con.execute(
                    "SELECT next_run_time FROM apscheduler_jobs WHERE id = ?", (JOB_ID,)
                ).fetchone()
            finally:
                con.close()
        except sqlite3.Error:
            return None
        if not row or row[0] is None:
            return None
        when = dt.datetime.fromtimestamp(float(row[0]), tz=dt.UTC)
        return when if when < self.runner.clock.now() else None

    def _trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        if self.runner.clock.simulated:
            return IntervalTrigger(seconds=float(self.tick_seconds or 1.0))
        t = close_time(self.settings)
        # every weekday at the run time; the job checks the exchange calendar and the schedule
        return CronTrigger(day_of_week="mon-fri", hour=t.hour, minute=t.minute, timezone=tz(self.settings))

    def _build_scheduler(self) -> Any:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.blocking import BlockingScheduler

        self.paths.root.mkdir(parents=True, exist_ok=True)
        sched = BlockingScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(url=f"sqlite:///{self.paths.scheduler_db}"),
                "volatile": MemoryJobStore(),  # the one-off start-up catch-up: never persisted
            },
            executors={"default": ThreadPoolExecutor(max_workers=1)},  # runs are serial, in firing order
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.settings.schedule.misfire_grace_seconds,
            },
            timezone=tz(self.settings),
        )

        def on_event(ev: Any) -> None:
            if ev.code == EVENT_SCHEDULER_STARTED:
                sd_notify("READY=1\nSTATUS=waiting for the next scheduled run")
                _log().info("daemon.ready", next_run=self._next_run())
                if self.runner.stopping.is_set():
                    self._begin_shutdown()
            elif ev.code == EVENT_JOB_MISSED:
                _log().warning(
                    "schedule.misfire",
                    job=ev.job_id,
                    scheduled=str(ev.scheduled_run_time),
                    grace_s=self.settings.schedule.misfire_grace_seconds,
                )
            elif ev.code == EVENT_JOB_ERROR:
                _log().error("job.error", job=ev.job_id, error=repr(ev.exception))

        sched.add_listener(on_event, EVENT_SCHEDULER_STARTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        return sched

    # -------------------------------------------------------------- signals
    def _on_signal(self, signum: int, _frame: Any) -> None:
        """Signal handler: flag only; the scheduler is shut down from another thread (never inside a handler)."""
        if self.runner.stopping.is_set():
            return
        self.runner.stopping.set()
        sd_notify("STOPPING=1")
        if self.scheduler is not None and self.scheduler.running:
            self._begin_shutdown()

    def _begin_shutdown(self) -> None:
        if self._stop_started.is_set():
            return
        self._stop_started.set()

        def stop() -> None:
            _log().info("daemon.stopping", note="no new runs; waiting for a run in progress to finish")
            with contextlib.suppress(Exception):
                self.scheduler.shutdown(wait=True)

        threading.Thread(target=stop, name="agent-shutdown", daemon=True).start()

    def _watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None or not os.environ.get("NOTIFY_SOCKET"):
            return

        def ping() -> None:
            while not self._finished.wait(interval):
                if self.scheduler is not None and self.scheduler.running:
                    sd_notify("WATCHDOG=1")

        threading.Thread(target=ping, name="agent-watchdog", daemon=True).start()

    # -------------------------------------------------------------- main
    def serve(self) -> int:
        global _ACTIVE
        log = _log()
        _ACTIVE = self
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.scheduler = sched = self._build_scheduler()
            clock = self.runner.clock
            if not clock.simulated:
                missed = self._missed_since()
                if missed is not None:
                    log.warning(
                        "daemon.missed", since=missed.isoformat(), policy=self.settings.schedule.catch_up
                    )
            sched.add_job(
                "agent.service.scheduler:_fire",
                trigger=self._trigger(),
                id=JOB_ID,
                name=f"rebalance {self.settings.profile}",
                replace_existing=True,
                jobstore="default",
            )
            sched.add_job(
                "agent.service.scheduler:_catch_up",
                trigger="date",
                run_date=None,
                id="catch_up",
                jobstore="volatile",
                misfire_grace_time=None,
            )
            log.info(
                "daemon.start",
                profile=self.settings.profile,
                frequency=self.settings.schedule.frequency,
                time=self.settings.schedule.time,
                timezone=self.settings.schedule.timezone,
                catch_up=self.settings.schedule.catch_up,
                state_dir=str(self.paths.root),
                simulated_clock=clock.simulated,
                clock_day=str(getattr(clock, "day", "")) or None,
                tick_seconds=self.tick_seconds,
            )
            self._watchdog()
            if self.runner.stopping.is_set():
                log.info("daemon.stopped", reason="signal before start")
                return EXIT_OK
            sched.start()  # blocks until shutdown
            # shutdown(wait=True) has joined the worker; the run lock confirms no run is in flight
            with self.runner.run_lock:
                pass
            log.info("daemon.stopped", runs=sum(1 for o in self.outcomes if o.status not in ("skipped",)))
            return EXIT_OK
        finally:
            self._finished.set()
            sd_notify("STOPPING=1")
            for s, h in old.items():
                signal.signal(s, h)
            _ACTIVE = None
