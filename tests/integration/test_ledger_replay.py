"""A replay's ledger is the daemon's ledger, row for row (issue 12, item 3).

The backtest writes its ledger with the replay's durability settings: ``synchronous=OFF`` and one commit per
``REPLAY_COMMIT_EVERY`` slots (``agent.runner.replay_in_batches``; each slot's own transaction nests as a
savepoint). The daemon commits every slot with ``synchronous=FULL``, in a new Ledger object (``run --once``: a
new process) each time. Both run the same code, so every table must come out the same, wall-clock columns
aside: here the backtest (batches of 5 slots, so several commits and a partial last batch) against the same
slots committed one by one, each through a freshly opened durable ledger, decided by the real engine.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import agent.runner as runner
from agent.backtest import run_backtest
from agent.data.store import PriceStore
from agent.engine import EngineContext
from agent.runner import open_ledger, replay_in_batches, run_slot
from agent.settings import Settings, load_settings
from tests.synthetic import SECTORS

WALL_CLOCK = {"runs": ("started_at", "committed_at")}


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a ledger file in key order, wall-clock columns blanked, plus its identity pragmas."""
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall():
            cols = [r[1] for r in c.execute(f"PRAGMA table_info({t})")]
            sel = ", ".join("NULL" if col in WALL_CLOCK.get(t, ()) else col for col in cols)
            out[t] = c.execute(f"SELECT {sel} FROM {t} ORDER BY 1, 2").fetchall()
        for p in ("application_id", "user_version", "journal_mode"):
            out[f"pragma:{p}"] = [tuple(c.execute(f"PRAGMA {p}").fetchone())]
        return out
    finally:
        c.close()


def slot_by_slot(
    settings: Settings, frame: pd.DataFrame, out: Path, slots: list[str], start: dt.date, end: dt.date
):
    """The daemon's way: each slot through a newly opened durable ledger, committed on its own."""
    store = PriceStore.from_frame(frame, validate=False)
    ctx = EngineContext.create(settings, store)
    for slot in slots:
        ledger = open_ledger(out / "ledger.sqlite", settings, durable=True)
        try:
            assert ledger.pragmas() == {"journal_mode": "wal", "synchronous": 2}
            res = run_slot(ledger, ctx, dt.date.fromisoformat(slot), mark_from=start, keep_timings=False)
            assert not res.skipped
        finally:
            ledger.close()
    ledger = open_ledger(out / "ledger.sqlite", settings, durable=True)
    try:
        with ledger.transaction():
            ledger.advance(
                store.load().loc[pd.Timestamp(start) : pd.Timestamp(end), list(settings.universe.tickers)],
                upto=end,
            )
    finally:
        ledger.close()


def compare(
    settings: Settings, frame: pd.DataFrame, tmp_path: Path, a: dt.date, b: dt.date, monkeypatch
) -> int:
    monkeypatch.setattr(runner, "REPLAY_COMMIT_EVERY", 5)
    store = PriceStore.from_frame(frame, validate=False)
    res = run_backtest(settings, store, a, b, tmp_path / "bt", write_report=False)
    ref = tables(tmp_path / "bt" / "ledger.sqlite")
    slots = [r[2] for r in ref["runs"]]  # (run_id, profile, slot, ...)
    assert len(slots) == res.n_decisions > 5 and len(slots) % 5 != 0  # several batches, the last one partial
    slot_by_slot(settings, frame, tmp_path / "daemon", slots, res.start, res.end)
    mine = tables(tmp_path / "daemon" / "ledger.sqlite")
    assert sorted(mine) == sorted(ref)
    for t in ref:
        assert mine[t] == ref[t], t
    return len(ref["fills"])


def test_batched_replay_ledger_equals_slot_by_slot_commits(
    tmp_path: Path, gbm_frame: pd.DataFrame, monkeypatch
) -> None:
    """Synthetic prices (no shared data): max-Sharpe with groups, a fixed cost per trade, the execution rules."""
    s = Settings(
        profile="synthetic",
        universe={"tickers": SECTORS, "benchmark": ""},
        risk={"method": "ewma"},
        allocation={"method": "max_sharpe", "expected_returns": "historical", "mvo_window": 252},
        forecast={"model": "none"},
        execution={"fixed_cost": 1.0, "cost_bps": 5.0},
        backtest={"baselines": ("equal_weight",)},
    )
    n_fills = compare(s, gbm_frame, tmp_path, dt.date(2020, 1, 2), dt.date(2020, 5, 29), monkeypatch)
    assert n_fills > 20


@pytest.mark.shared_data
@pytest.mark.slow
def test_default_profile_replay_ledger_equals_slot_by_slot_commits(
    tmp_path: Path, sector_prices: pd.DataFrame, monkeypatch
) -> None:
    """The shipped default (skill-aware, overlays, execution rules) on real prices, 2024-01 .. 2024-04."""
    s = load_settings(profile="default")
    n_fills = compare(s, sector_prices, tmp_path, dt.date(2024, 1, 1), dt.date(2024, 4, 30), monkeypatch)
    assert n_fills > 0


def test_replay_in_batches_commits_whole_batches_and_rolls_back_a_failing_one(tmp_path: Path) -> None:
    """A failure inside a batch rolls back that batch's slots (a replay is rerun); earlier batches stay."""
    s = Settings(
        profile="synthetic", universe={"tickers": SECTORS, "benchmark": ""}, forecast={"model": "none"}
    )
    ledger = open_ledger(tmp_path / "ledger.sqlite", s, durable=False)
    seen: list[int] = []

    def step(i: int) -> None:
        with ledger.transaction() as c:  # a slot: its own transaction, nested in the batch
            c.execute("INSERT INTO state (key, json) VALUES (?, ?)", (f"k{i}", str(i)))
        seen.append(i)
        if i == 7:
            raise RuntimeError("killed mid-batch")

    try:
        with pytest.raises(RuntimeError):
            replay_in_batches(ledger, range(10), step, every=3)
        keys = {k for (k,) in ledger._conn.execute("SELECT key FROM state WHERE key LIKE 'k%'")}
    finally:
        ledger.close()
    assert seen == list(range(8))
    assert keys == {f"k{i}" for i in range(6)}  # batches [0-2] and [3-5] committed, [6-8] rolled back
