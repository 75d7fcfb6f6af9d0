"""The paper-trading driver: one scheduled run (`agent run --once`) and the long-running daemon (`agent run`).

Both call the same job, `AgentRunner.run_slot_for(slot)`: update prices → `runner.run_slot` (the backtest's own
step: advance the book, `decide()`, commit decision + orders in one SQLite transaction keyed by (profile, slot),
append the hash-chained log record) → write `targets/` atomically. A committed slot is never run again, so cron,
a systemd timer, a restarted daemon and a human catching up by hand can all fire the same slot safely.

Time. Where "now" comes from is the only thing the daemon adds: a `SystemClock`, or (test hook) a
`SimulatedClock` that jumps to the next scheduled session on every tick so tests replay weeks in seconds through
the very same job function. A slot is a scheduled session (`calendar.schedule`) whose close (schedule.time in
schedule.timezone) has passed.

Safety. One process per state directory (`<state_dir>/agent.lock`, an exclusive `flock` holding the owner's
pid). SIGTERM/SIGINT stop new runs and let a run in progress finish (its ledger transaction commits or rolls
back), then exit 0. With `NOTIFY_SOCKET` set the daemon speaks the systemd notify protocol (READY, WATCHDOG,
STOPPING, STATUS) with a plain datagram: no dependency.

Catch-up. The APScheduler job store (`<state_dir>/scheduler.sqlite`) remembers the next planned fire time, so
after a restart the daemon logs what it missed; the ledger says which slots are done. `schedule.catch_up =
"latest"` runs the latest scheduled slot not in the ledger once (never a backlog: trading stale signals in a burst
is worse than skipping them); "skip" logs it and waits for the next slot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import EXIT_DATA, EXIT_OK, EXIT_RUN_FAILED, AgentError, LockError, UsageError

if TYPE_CHECKING:
    from agent.data.store import PriceStore
    from agent.engine import EngineContext
    from agent.ledger import Ledger, LedgerReader
    from agent.settings import Settings

__all__ = [
    "CRASH_ENV",
    "AgentRunner",
    "Daemon",
    "RunOutcome",
    "SimulatedClock",
    "StateLock",
    "StatePaths",
    "SystemClock",
    "close_time",
    "latest_closed_session",
    "latest_slot",
    "lock_holder",
    "next_run_time",
    "open_existing_ledger",
    "run_once",
    "sd_notify",
    "slot_anchor",
]

# test hooks, outside AGENT_* (that namespace is settings only): see _crash_hook_from_env
CRASH_ENV = "REBALANCE_AGENT_TEST_CRASH_AT"
PAUSE_ENV = "REBALANCE_AGENT_TEST_PAUSE_AT"
JOB_ID = "rebalance"
_MAX_LOOKBACK_DAYS = 400


def _log() -> Any:
    from agent.logging import get_logger

    return get_logger("agent.daemon")


# ----------------------------------------------------------------------------------------------------------------
# paths


@dataclass(frozen=True)
class StatePaths:
    """Everything the agent keeps in its state directory."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StatePaths:
        return cls(Path(settings.paths.state_dir).expanduser())

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def log(self) -> Path:
        return self.root / "decisions.jsonl"

    @property
    def targets(self) -> Path:
        return self.root / "targets"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs / "agent.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / "agent.lock"

    @property
    def scheduler_db(self) -> Path:
        return self.root / "scheduler.sqlite"


# ----------------------------------------------------------------------------------------------------------------
# single instance per state directory


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


# ----------------------------------------------------------------------------------------------------------------
# systemd notify (sd_notify(3)): one datagram per message


def sd_notify(message: str) -> bool:
    """Send `message` (e.g. "READY=1") to $NOTIFY_SOCKET. False when not under systemd or on any socket error."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr[0] == "@":  # abstract namespace
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(message.encode("utf-8"))
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Half of $WATCHDOG_USEC in seconds (systemd's advice), if the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1e6 / 2.0


# ----------------------------------------------------------------------------------------------------------------
# schedule arithmetic (dates are exchange-local calendar dates)


def close_time(settings: Settings) -> dt.time:
    h, m = settings.schedule.time.split(":")
    return dt.time(int(h), int(m))


def _tz(settings: Settings) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(settings.schedule.timezone)


def latest_closed_session(settings: Settings, now: dt.datetime) -> dt.date:
    """The latest session whose scheduled run time (schedule.time in schedule.timezone) has passed at `now`."""
    from agent.data.calendar import is_session, previous_session

    local = now.astimezone(_tz(settings))
    d = local.date()
    cal = settings.schedule.calendar
    if is_session(d, calendar=cal) and local.time() >= close_time(settings):
        return d
    return previous_session(d, calendar=cal).date()


def slot_anchor(settings: Settings, first_slot: dt.date | None) -> dt.date | None:
    """every_n_sessions counts from the first committed slot (as the backtest counts from its first date)."""
    return first_slot if settings.schedule.frequency == "every_n_sessions" else None


def scheduled_between(
    settings: Settings, start: dt.date, end: dt.date, anchor: dt.date | None
) -> list[dt.date]:
    from agent.data.calendar import schedule

    s = settings.schedule
    idx = schedule(s.frequency, start, end, every_n=s.every_n, anchor=anchor, calendar=s.calendar)
    return [ts.date() for ts in idx]


def latest_slot(settings: Settings, asof: dt.date, anchor: dt.date | None) -> dt.date | None:
    """The latest scheduled session <= asof. With every_n_sessions and no anchor yet, the latest session."""
    from agent.data.calendar import is_session, previous_session

    s = settings.schedule
    if s.frequency == "every_n_sessions" and anchor is None:
        return (
            asof
            if is_session(asof, calendar=s.calendar)
            else previous_session(asof, calendar=s.calendar).date()
        )
    days = (
        max(_MAX_LOOKBACK_DAYS, 2 * s.every_n + 30)
        if s.frequency == "every_n_sessions"
        else _MAX_LOOKBACK_DAYS
    )
    start = asof - dt.timedelta(days=days)
    if anchor is not None:
        start = max(start, anchor)
        if anchor > asof:
            return None
    slots = scheduled_between(settings, start, asof, anchor)
    return slots[-1] if slots else None


def next_slot_after(settings: Settings, d: dt.date, anchor: dt.date | None) -> dt.date | None:
    from agent.data.calendar import next_session

    s = settings.schedule
    if s.frequency == "every_n_sessions" and anchor is None:
        return next_session(d, calendar=s.calendar).date()
    days = (
        max(_MAX_LOOKBACK_DAYS, 2 * s.every_n + 30)
        if s.frequency == "every_n_sessions"
        else _MAX_LOOKBACK_DAYS
    )
    slots = scheduled_between(settings, d + dt.timedelta(days=1), d + dt.timedelta(days=days), anchor)
    return slots[0] if slots else None


def next_run_time(settings: Settings, now: dt.datetime, anchor: dt.date | None) -> dt.datetime | None:
    """When the next scheduled slot's run is due (exchange-local time)."""
    d = latest_closed_session(settings, now)
    nxt = next_slot_after(settings, d, anchor)
    if nxt is None:
        return None
    return dt.datetime.combine(nxt, close_time(settings), tzinfo=_tz(settings))


# ----------------------------------------------------------------------------------------------------------------
# clocks


class SystemClock:
    """Wall-clock time (UTC-aware)."""

    simulated = False

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def advance(self) -> bool:  # pragma: no cover - only the simulated clock moves by itself
        return True


class SimulatedClock:
    """TEST HOOK (`agent run --clock-start D --tick-seconds S`): a clock that stands just after the scheduled
    run time of one date and jumps, on each tick, to the next scheduled slot (or session) up to `end`.

    The daemon under this clock runs exactly the production job, only faster than the calendar.
    """

    simulated = True

    def __init__(
        self,
        settings: Settings,
        start: dt.date,
        end: dt.date | None = None,
        step: str = "slot",
        anchor_fn: Any = None,
    ) -> None:
        self.settings = settings
        self.day = start
        self.end = end
        self.step = step
        self.anchor_fn = anchor_fn or (lambda: None)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            t = (
                dt.datetime.combine(dt.date(2000, 1, 1), close_time(self.settings)) + dt.timedelta(minutes=1)
            ).time()
            return dt.datetime.combine(self.day, t, tzinfo=_tz(self.settings))

    def advance(self) -> bool:
        """Move to the next slot/session; False (and stay) past `end`."""
        from agent.data.calendar import next_session

        with self._lock:
            if self.step == "session":
                nxt: dt.date | None = next_session(self.day, calendar=self.settings.schedule.calendar).date()
            else:
                nxt = next_slot_after(self.settings, self.day, self.anchor_fn())
            if nxt is None or (self.end is not None and nxt > self.end):
                return False
            self.day = nxt
            return True


# ----------------------------------------------------------------------------------------------------------------
# one run


@dataclass
class RunOutcome:
    """What a run did, for the exit code and the one-line summary."""

    status: str  # rebalance | hold | no_trade | already_done | skipped | failed
    exit_code: int
    message: str
    slot: dt.date | None = None
    run_id: int | None = None
    files: list[Path] = field(default_factory=list)


def open_existing_ledger(path: Path) -> LedgerReader | None:
    """A read-only reader of the ledger at `path` (None when there is none): see `agent.ledger.open_reader`."""
    from agent.ledger import open_reader

    return open_reader(path)


def _crash_hook_from_env() -> Any:
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


class AgentRunner:
    """The job both drivers run. Holds the price store and the engine context across runs (daemon)."""

    def __init__(self, settings: Settings, clock: Any = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.paths = StatePaths.from_settings(settings)
        self.stopping = threading.Event()
        self.run_lock = threading.Lock()
        self._store: PriceStore | None = None
        self._ctx: EngineContext | None = None
        self._crash = _crash_hook_from_env()

    # -------------------------------------------------------------- helpers
    def _hook(self, point: str, slot: str | None = None) -> None:
        if self._crash is not None:
            self._crash(point, slot)

    def store(self) -> PriceStore:
        from agent.data.store import PriceStore

        if self._store is None:
            self._store = PriceStore(Path(self.settings.paths.data_dir).expanduser())
        return self._store

    def open_ledger(self) -> Ledger:
        from agent.runner import open_ledger

        return open_ledger(self.paths.ledger, self.settings, durable=True)

    def anchor(self, ledger: Ledger | None = None) -> dt.date | None:
        """The every_n_sessions anchor: the first committed slot (None for calendar frequencies)."""
        if self.settings.schedule.frequency != "every_n_sessions":
            return None
        own = ledger is None
        if own:
            ledger = open_existing_ledger(self.paths.ledger)
            if ledger is None:
                return None
        try:
            first = ledger.run(1)
            return dt.date.fromisoformat(first["slot"][:10]) if first else None
        finally:
            if own:
                ledger.close()

    def update_prices(self) -> str | None:
        """Bring the store up to date from the configured source, exactly as `agent backtest` syncs it (same
        tickers, start and validation), so the daemon and the backtest read identical stores. A failed fetch
        with cached prices is a warning, not a failure: the run proceeds and `decide()` records a no_trade
        decision if the asof row is missing. An empty store and no source is a data error (exit 3)."""
        from agent.data.sync import sync_store

        d = self.settings.data
        store = self.store()
        log = _log()
        t0 = time.perf_counter()
        out = sync_store(store, self.settings, refresh_remote=True)
        if out.warning is not None:
            log.warning("prices.update_failed", error=out.warning, note="proceeding with the cached prices")
            return out.warning
        res = out.update
        summary = res.summary() if hasattr(res, "summary") else str(res)
        log.info(
            "prices.updated",
            source=d.source,
            summary=summary,
            ms=round((time.perf_counter() - t0) * 1e3, 1),
        )
        return None

    def context(self) -> EngineContext:
        from agent.engine import EngineContext

        store = self.store()
        store.load()  # re-read if another process rewrote the store
        if self._ctx is None:
            self._ctx = EngineContext.create(self.settings, store)
        return self._ctx

    # -------------------------------------------------------------- the job
    def run_slot_for(self, slot_date: dt.date, *, trigger: str, note: str = "") -> RunOutcome:
        """Run (or confirm done) the slot for `slot_date`. Never raises for run trouble: records and reports it."""
        from agent.logging import bind_run, unbind_run

        with self.run_lock:
            slot = slot_date.isoformat()
            run_tag = f"{slot}-{uuid.uuid4().hex[:8]}"
            bind_run(run_tag, slot=slot, profile=self.settings.profile, trigger=trigger)
            try:
                return self._run(slot_date, slot, trigger, note)
            finally:
                unbind_run()

    def _run(self, slot_date: dt.date, slot: str, trigger: str, note: str) -> RunOutcome:
        from agent.decisionlog import DecisionLog
        from agent.engine import check_models
        from agent.errors import DataError, LedgerError
        from agent.runner import run_slot

        log = _log()
        ledger = self.open_ledger()
        dlog = DecisionLog(self.paths.log)
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        try:
            if ledger.has_run(slot):
                return self._already_done(ledger, dlog, slot, note)
            last = ledger.last_run()
            if last is not None and slot < str(last["slot"]):
                raise UsageError(
                    f"slot {slot} is before the last committed run (slot {last['slot']}): the book has moved on",
                    hint="a ledger only moves forward; use a new --state-dir to replay older dates",
                )
            log.info("run.start", note=note or None)
            fetch_warning = None
            try:
                fetch_warning = self.update_prices()
                missing = [t for t in self.settings.universe.tickers if t not in self.store().tickers]
                if missing:
                    raise DataError(
                        f"the price store has no prices for {', '.join(missing)}",
                        hint="check data.source / data.prices_file, or run `agent data fetch`",
                    )
                ctx = self.context()
                # a model for this date must exist: a missing model is a fixable failure (the slot stays open),
                # not a decision to hold
                check_models(ctx, slot_date)
            except AgentError as e:
                self._record_failure(ledger, slot, slot_date, started, e.one_line())
                log.error("run.failed", error=e.one_line(), exit_code=e.exit_code)
                return RunOutcome(
                    "failed", e.exit_code, f"slot {slot}: run failed: {e.one_line()}", slot_date
                )
            try:
                res = run_slot(
                    ledger,
                    ctx,
                    slot_date,
                    log=dlog,
                    slot=slot,
                    crash_hook=lambda point: self._hook(point, slot),
                )
            except LedgerError as e:
                if not ledger.has_run(slot):
                    raise
                # committed, but the log could not be brought in line (tampered or foreign log)
                files = self._write_targets(ledger, slot)
                log.error("run.log_sync_failed", error=e.one_line())
                return RunOutcome(
                    "failed",
                    EXIT_RUN_FAILED,
                    f"slot {slot}: decision committed, but the decision log is not in line with the ledger: "
                    f"{e.one_line()}",
                    slot_date,
                    files=files,
                )
            self._hook("before_targets", slot)
            files = self._write_targets(ledger, slot)
            run = ledger.run_for_slot(slot) or {}
            dec = res.decision
            status = dec.status if dec is not None else str(run.get("status"))
            reason = dec.reason if dec is not None else str(run.get("reason"))
            ms = round((time.perf_counter() - t0) * 1e3, 1)
            level = log.warning if status == "no_trade" else log.info
            level(
                "run.committed",
                ledger_run_id=run.get("run_id"),
                status=status,
                reason=reason,
                exec_date=_iso(res.exec_date),
                record_hash=run.get("record_hash"),
                fetch_warning=fetch_warning,
                ms=ms,
            )
            msg = f"slot {slot}: {status}: {reason}"
            if res.exec_date is not None:
                msg += f"; orders execute at the close of {_iso(res.exec_date)}"
            if fetch_warning:
                msg += f" (price update failed: {fetch_warning})"
            if note:
                msg = f"{note}; {msg}"
            return RunOutcome(status, EXIT_OK, msg, slot_date, run.get("run_id"), files)
        except UsageError:
            raise
        except AgentError as e:
            self._record_failure(ledger, slot, slot_date, started, e.one_line())
            log.error("run.failed", error=e.one_line(), exit_code=e.exit_code)
            code = e.exit_code if e.exit_code in (EXIT_DATA, EXIT_RUN_FAILED) else EXIT_RUN_FAILED
            return RunOutcome("failed", code, f"slot {slot}: run failed: {e.one_line()}", slot_date)
        except Exception as e:  # a bug: the transaction rolled back; record it and keep the daemon alive
            reason = f"{type(e).__name__}: {e}"
            self._record_failure(ledger, slot, slot_date, started, reason)
            log.exception("run.crashed", error=reason)
            return RunOutcome("failed", EXIT_RUN_FAILED, f"slot {slot}: run failed: {reason}", slot_date)
        finally:
            ledger.close()

    def _already_done(self, ledger: Ledger, dlog: Any, slot: str, note: str) -> RunOutcome:
        """A committed slot: finish what a crash may have left (log records, target files), change nothing else."""
        from agent.errors import LedgerError

        run = ledger.run_for_slot(slot) or {}
        problem = None
        try:
            dlog.sync_from_ledger(ledger)
        except LedgerError as e:
            problem = e.one_line()
        files = self._write_targets(ledger, slot, only_missing=True)
        msg = (
            f"slot {slot} already done (run {run.get('run_id')}, {run.get('status')}, committed "
            f"{run.get('committed_at')}): nothing to do"
        )
        if note:
            msg = f"{note}; {msg}"
        _log().info(
            "run.already_done", ledger_run_id=run.get("run_id"), repaired_files=[p.name for p in files]
        )
        if problem:
            _log().error("run.log_sync_failed", error=problem)
            return RunOutcome("failed", EXIT_RUN_FAILED, f"{msg}; but the decision log: {problem}", None)
        return RunOutcome(
            "already_done", EXIT_OK, msg, dt.date.fromisoformat(slot[:10]), run.get("run_id"), files
        )

    def _write_targets(self, ledger: Ledger, slot: str, *, only_missing: bool = False) -> list[Path]:
        from agent.targets import write_targets

        run = ledger.run_for_slot(slot)
        if run is None:
            return []
        return write_targets(
            self.paths.targets,
            run,
            only_missing=only_missing,
            between=lambda: self._hook("mid_targets", slot),
        )

    @staticmethod
    def _record_failure(ledger: Ledger, slot: str, asof: dt.date, started: str, reason: str) -> None:
        with contextlib.suppress(Exception):
            ledger.record_failure(slot, reason, asof=asof, started_at=started)

    # -------------------------------------------------------------- policies
    def ensure_latest(self, *, trigger: str, catch_up: str | None = None) -> RunOutcome:
        """Run the slot due now. `catch_up`: "latest" also runs the latest slot still missing from the ledger;
        "skip" runs only when the latest closed session is itself a slot."""
        log = _log()
        if self.stopping.is_set():
            return RunOutcome("skipped", EXIT_OK, "stopping: no new runs")
        policy = catch_up or self.settings.schedule.catch_up
        now = self.clock.now()
        asof = latest_closed_session(self.settings, now)
        anchor = self.anchor()
        slot = latest_slot(self.settings, asof, anchor)
        if slot is None:
            log.info("schedule.skip", asof=str(asof), reason="no scheduled slot yet")
            return RunOutcome("skipped", EXIT_OK, f"no scheduled slot on or before {asof}")
        if slot == asof:
            return self.run_slot_for(slot, trigger=trigger)
        ledger = open_existing_ledger(self.paths.ledger)
        done = ledger is not None and ledger.has_run(slot.isoformat())
        if ledger is not None:
            ledger.close()
        if done:
            log.info(
                "schedule.skip",
                asof=str(asof),
                reason=f"not a scheduled {self.settings.schedule.frequency} slot",
                latest_slot=str(slot),
            )
            return RunOutcome(
                "skipped", EXIT_OK, f"{asof} is not a scheduled slot; latest slot {slot} is done"
            )
        if policy == "latest":
            note = f"catching up missed slot {slot} (schedule.catch_up = latest)"
            log.info("catch_up.run", slot=str(slot), asof=str(asof), trigger=trigger)
            return self.run_slot_for(slot, trigger=f"{trigger}:catch_up", note=note)
        log.warning("catch_up.skip", slot=str(slot), asof=str(asof), reason="schedule.catch_up = skip")
        return RunOutcome("skipped", EXIT_OK, f"missed slot {slot} skipped (schedule.catch_up = skip)")


# ----------------------------------------------------------------------------------------------------------------
# agent run --once


def run_once(settings: Settings, asof: dt.date | None = None, *, clock: Any = None) -> RunOutcome:
    """Exactly one scheduled run: the slot for `asof` (default: the latest session whose run time has passed)."""
    runner = AgentRunner(settings, clock)
    now = runner.clock.now()
    latest = latest_closed_session(settings, now)
    if asof is None:
        asof = latest
    elif asof > latest:
        raise UsageError(
            f"--asof {asof}: its scheduled run time ({settings.schedule.time} {settings.schedule.timezone}) "
            f"has not passed yet (latest closed session: {latest})"
        )
    slot = latest_slot(settings, asof, runner.anchor())
    if slot is None:
        return RunOutcome("skipped", EXIT_OK, f"no scheduled slot on or before {asof}")
    note = ""
    if slot != asof:
        note = f"{asof} is not a scheduled {settings.schedule.frequency} slot; the latest slot on or before it is {slot}"
    return runner.run_slot_for(slot, trigger="once", note=note)


# ----------------------------------------------------------------------------------------------------------------
# the daemon

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
            _log().debug("clock.end", day=str(clock.day))
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
        return CronTrigger(day_of_week="mon-fri", hour=t.hour, minute=t.minute, timezone=_tz(self.settings))

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
            timezone=_tz(self.settings),
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
                "agent.daemon:_fire",
                trigger=self._trigger(),
                id=JOB_ID,
                name=f"rebalance {self.settings.profile}",
                replace_existing=True,
                jobstore="default",
            )
            sched.add_job(
                "agent.daemon:_catch_up",
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


def _iso(d: Any) -> str | None:
    """A date-like (date, datetime, pandas Timestamp) as YYYY-MM-DD."""
    if d is None:
        return None
    return (
        d.date().isoformat()
        if hasattr(d, "date") and callable(d.date)
        else dt.date.fromisoformat(str(d)[:10]).isoformat()
    )
