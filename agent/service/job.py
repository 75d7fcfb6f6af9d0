"""The job both drivers run: one scheduled slot (`agent run --once`) or the daemon's next due slot.

`AgentRunner.run_slot_for(slot)`: update prices → `runner.run_slot` (the backtest's own step: advance the book,
`decide()`, commit decision + orders in one SQLite transaction keyed by (profile, slot), append the hash-chained
log record) → write `targets/` atomically. A committed slot is never run again, so cron, a systemd timer, a
restarted daemon and a human catching up by hand can all fire the same slot safely.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import EXIT_DATA, EXIT_OK, EXIT_RUN_FAILED, AgentError, UsageError
from agent.service.clock import SystemClock
from agent.service.hooks import crash_hook_from_env
from agent.service.paths import StatePaths
from agent.service.slots import latest_closed_session, latest_slot

if TYPE_CHECKING:
    from agent.data.store import PriceStore
    from agent.engine import EngineContext
    from agent.ledger import Ledger, LedgerReader, LedgerReads
    from agent.settings import Settings

__all__ = ["AgentRunner", "RunOutcome", "open_existing_ledger", "run_once"]


def _log() -> Any:
    from agent.logging import get_logger

    return get_logger("agent.daemon")  # one logger name for the service, as before the split


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
        # the ledger run_id the in-memory skill tracker reflects (None: unknown or possibly dirty, rebuild)
        self._skill_run_id: int | None = None
        self._crash = crash_hook_from_env()

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

    def anchor(self, ledger: LedgerReads | None = None) -> dt.date | None:
        """The every_n_sessions anchor: the first committed slot (None for calendar frequencies)."""
        if self.settings.schedule.frequency != "every_n_sessions":
            return None
        if ledger is not None:
            first = ledger.run(1)
        else:
            reader = open_existing_ledger(self.paths.ledger)
            if reader is None:
                return None
            try:
                first = reader.run(1)
            finally:
                reader.close()
        return dt.date.fromisoformat(first["slot"][:10]) if first else None

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
                last_id = int(last["run_id"]) if last is not None else 0
                if self._skill_run_id != last_id:  # a new process, or a run that did not commit
                    _restore_skill(ctx, ledger)
                    self._skill_run_id = last_id
                _restore_static_fit(ctx, ledger)
                # a model for this date must exist: a missing model is a fixable failure (the slot stays open),
                # not a decision to hold
                check_models(ctx, slot_date)
            except AgentError as e:
                self._record_failure(ledger, slot, slot_date, started, e.one_line())
                log.error("run.failed", error=e.one_line(), exit_code=e.exit_code)
                return RunOutcome(
                    "failed", e.exit_code, f"slot {slot}: run failed: {e.one_line()}", slot_date
                )
            self._skill_run_id = None  # the decision updates the tracker before its commit
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
            if run.get("run_id") is not None:  # committed: the tracker holds exactly the ledger's records
                self._skill_run_id = int(run["run_id"])
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
        """Best effort (the run already failed; the slot stays open either way), but never silent."""
        try:
            ledger.record_failure(slot, reason, asof=asof, started_at=started)
        except Exception as e:
            _log().error("run.failure_not_recorded", reason=reason, error=f"{type(e).__name__}: {e}")

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


def _iso(d: Any) -> str | None:
    """A date-like (date, datetime, pandas Timestamp) as YYYY-MM-DD."""
    if d is None:
        return None
    return (
        d.date().isoformat()
        if hasattr(d, "date") and callable(d.date)
        else dt.date.fromisoformat(str(d)[:10]).isoformat()
    )


def _restore_skill(ctx: EngineContext, ledger: LedgerReads) -> None:
    """The skill tracker exactly as the committed decisions left it (issue 9), rebuilt when it may differ.

    Each decision records its tracker delta inside the same ledger transaction as the decision, so the ledger is
    the one source of truth: a new process per slot, a restarted daemon and a run after a failed (uncommitted)
    slot all see the state a continuous backtest would (the runner rebuilds only when its tracker is not known to
    reflect the ledger's last run). A no-op when skill tracking is off.
    """
    if getattr(ctx, "skill", None) is None:
        return
    import json

    from agent.skill.store import tracker_from_records

    records = [json.loads(r["decision_json"]) for r in ledger.runs(with_decision=True) if r.get("decision_json")]
    ctx.skill.tracker = tracker_from_records(records, ctx.settings.skill.halflife)


def _restore_static_fit(ctx: EngineContext, ledger: LedgerReads) -> None:
    """Static MVO is fit once, at the book's first decision: a new process adopts that recorded fit instead of
    fitting on its own first date, so `run --once` per slot holds what a continuous replay holds (issue 10)."""
    from agent.allocate.registry import StaticMvoAllocator

    alloc = getattr(ctx, "allocator", None)
    if not isinstance(alloc, StaticMvoAllocator) or alloc.weights is not None:
        return
    import json

    for summary in ledger.runs():  # the fit is at the first allocating decision: read records one at a time
        run = ledger.run(int(summary["run_id"])) or {}
        fit = json.loads(run.get("decision_json") or "{}").get("optimizer") or {}
        if fit.get("method_used") == "static_mvo" and fit.get("fit_weights"):
            alloc.restore(fit)
            return
