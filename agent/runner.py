"""One scheduled run, the unit both drivers repeat: advance the paper book, decide, commit, then log.

`run_slot` is the single path shared by `agent backtest` and `agent run`: prices up to asof → the ledger
executes due orders and marks NAV → `decide()` → the decision, its pending orders and the new stop state
commit in ONE SQLite transaction keyed by (profile, slot) → the hash-chained log record is appended after the
commit (and re-derived from the ledger if the process died in between). A rerun of a committed slot changes
nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agent.engine import EngineContext, decide, decision_without_timings

if TYPE_CHECKING:
    import pandas as pd

    from agent.decision import Decision, PortfolioState
    from agent.decisionlog import DecisionLog
    from agent.ledger import AdvanceResult, Ledger
    from agent.settings import Settings

__all__ = [
    "REPLAY_COMMIT_EVERY",
    "SlotResult",
    "commit_decision",
    "open_book",
    "open_ledger",
    "replay_in_batches",
    "run_slot",
]

T = TypeVar("T")


@dataclass(frozen=True)
class SlotResult:
    slot: str
    asof: dt.date
    skipped: bool  # the slot was already committed: nothing done
    decision: Decision | None
    exec_date: dt.date | None
    timings_ms: dict[str, float] | None = None  # per stage, incl. ledger and log


def open_ledger(path: Any, settings: Settings, *, durable: bool) -> Ledger:
    from agent.costs import CostModel
    from agent.execution import ExecutionRules
    from agent.ledger import Ledger

    return Ledger(
        path,
        profile=settings.profile,
        tickers=settings.universe.tickers,
        initial_capital=settings.execution.initial_capital,
        cost_model=CostModel(settings.execution.cost_bps, settings.execution.fixed_cost),
        durable=durable,
        execution_rules=ExecutionRules.from_settings(settings),
    )


def run_slot(
    ledger: Ledger,
    ctx: EngineContext,
    asof: dt.date,
    *,
    log: DecisionLog | None = None,
    slot: str | None = None,
    mark_from: dt.date | None = None,
    keep_timings: bool = True,
    crash_hook: Any = None,
) -> SlotResult:
    """Run the slot for `asof` exactly once. `crash_hook(point)` lets crash tests kill the process mid-run."""
    settings = ctx.settings
    slot = slot or asof.isoformat()
    if ledger.has_run(slot):
        if log is not None:
            log.sync_from_ledger(ledger)
        return SlotResult(slot=slot, asof=asof, skipped=True, decision=None, exec_date=None)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    prices = ctx.store.snapshot(asof, tickers=list(settings.universe.tickers))
    if mark_from is not None:
        import pandas as pd

        prices = prices.loc[pd.Timestamp(mark_from) :]
    _hook(crash_hook, "before_commit")
    t0 = time.perf_counter()
    with ledger.transaction():
        advanced, state = open_book(ledger, prices, asof)
        t1 = time.perf_counter()
        decision = decide(asof, state, settings, ctx)
        t2 = time.perf_counter()
        timings = dict(decision.record.get("timings_ms") or {})
        if not keep_timings:
            decision = _strip_timings(decision)
        decision, exec_date = commit_decision(
            ledger, settings, slot, asof, decision, advanced, started_at=started
        )
        _hook(crash_hook, "inside_commit")
    t3 = time.perf_counter()
    _hook(crash_hook, "after_commit")
    if log is not None:
        log.sync_from_ledger(ledger)
    timings["ledger"] = (t1 - t0 + t3 - t2) * 1e3
    timings["decision_log"] = (time.perf_counter() - t3) * 1e3
    return SlotResult(
        slot=slot, asof=asof, skipped=False, decision=decision, exec_date=exec_date, timings_ms=timings
    )


def open_book(ledger: Ledger, prices: pd.DataFrame, asof: dt.date) -> tuple[AdvanceResult, PortfolioState]:
    """The ledger's half of a slot before the decision (call inside the slot's transaction): execute due orders
    and mark NAV up to `asof`, then the book the decision sees (with the previous decision's date)."""
    advanced = ledger.advance(prices, upto=asof)
    state = ledger.portfolio_state(asof)
    last = ledger.last_run()
    if last is not None and last.get("asof"):
        state = dataclasses.replace(state, last_decision=dt.date.fromisoformat(str(last["asof"])[:10]))
    return advanced, state


def commit_decision(
    ledger: Ledger,
    settings: Settings,
    slot: str,
    asof: dt.date,
    decision: Decision,
    advanced: AdvanceResult,
    *,
    started_at: str | None = None,
    committed_at: str | None = None,
) -> tuple[Decision, dt.date | None]:
    """The ledger's half of a slot after the decision (inside the slot's transaction): the decision, with the
    corporate actions the advance booked, its exec date (`lag_sessions` after the slot's `asof`) and its pending
    orders go into the ledger.
    Returns the decision as committed and its exec date (None unless it rebalances)."""
    from agent.data.calendar import next_session

    decision = _with_corporate_actions(decision, advanced.events)
    exec_date = (
        next_session(asof, settings.execution.lag_sessions, calendar=settings.schedule.calendar)
        if decision.status == "rebalance"
        else None
    )
    ledger.record_decision(slot, decision, exec_date, started_at=started_at, committed_at=committed_at)
    return decision, exec_date


# slots per write transaction in a replay: a durability setting (see replay_in_batches)
REPLAY_COMMIT_EVERY = 64


def replay_in_batches(
    ledger: Ledger, items: Iterable[T], step: Callable[[T], object], every: int = REPLAY_COMMIT_EVERY
) -> float:
    """Call ``step(item)`` for each item, `every` items to one write transaction of `ledger`; returns the seconds
    spent outside the steps (opening and committing the transactions).

    The replay's durability setting, next to ``durable=False`` (synchronous=OFF). Each slot's own transaction
    (``run_slot``) nests as a savepoint, so a slot is still all-or-nothing and the ledger's rows are the ones a
    commit per slot writes; only the commit (the WAL write) is shared by `every` slots. A replay killed mid-batch
    loses its uncommitted slots, which costs nothing: a backtest starts from an empty ledger and is simply rerun.
    The daemon never batches: every `run` slot commits (synchronous=FULL) before its log record is written.
    """
    it = iter(items)
    end = object()
    item: Any = next(it, end)
    outside = 0.0
    while item is not end:
        t0 = time.perf_counter()
        inside = 0.0
        with ledger.transaction():
            for _ in range(max(1, int(every))):
                t1 = time.perf_counter()
                step(item)
                inside += time.perf_counter() - t1
                item = next(it, end)
                if item is end:
                    break
        outside += time.perf_counter() - t0 - inside
    return outside


def _with_corporate_actions(decision: Decision, events: tuple[dict[str, Any], ...]) -> Decision:
    """Positions the ledger rebased for re-adjusted history in this run go into the decision record (and so the
    hash-chained log) under ``corporate_actions``; a record without any is unchanged, byte for byte."""
    acts = [
        {"date": e["date"], "ticker": e["ticker"], **e["detail"]}
        for e in events
        if e.get("kind") == "corporate_action"
    ]
    if not acts:
        return decision
    return dataclasses.replace(decision, record={**decision.record, "corporate_actions": acts})


def _strip_timings(decision: Decision) -> Decision:
    return dataclasses.replace(decision, record=decision_without_timings(decision.record))


def _hook(hook: Any, point: str) -> None:
    if hook is not None:
        hook(point)
