"""The writer's in-memory book (agent.ledger.memo) always equals what a fresh read of the file gives.

After every step of a book with fills, a lag-0 re-mark, a forward-filled close, an exec shift and a vendor
re-adjustment, the memo the writer carries equals one loaded from the file; the reads served from it
(portfolio_state, last_run) equal the reads from SQLite; another connection's commit and any rollback make the
writer read the file again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agent.ledger import Ledger
from agent.ledger.memo import load_memo
from tests.unit.test_ledger import DAYS, PX, decision, frame, open_ledger


def _view(m: Any) -> dict[str, Any]:
    d = dataclasses.asdict(m)
    d["shares"] = np.asarray(m.shares).tobytes()
    return d


def _state(st: Any) -> dict[str, Any]:
    d = dataclasses.asdict(st)
    d["weights"] = np.asarray(st.weights).tobytes()
    return d


def _check(led: Ledger, asof: dt.date) -> None:
    """Inside a transaction: the carried memo against the file, and the reads served from each."""
    with led.transaction():
        carried = led._memo_now()
        assert carried is not None
        state_mem, last_mem = _state(led.portfolio_state(asof)), led.last_run()
        fresh = load_memo(led._conn, led._tpos, led._last_run_sql())
        a, b = _view(carried), _view(fresh)
        if a["since"] is not None and a["last_exec"] is not None:  # a count the loader leaves to SQLite
            n = led._conn.execute(
                "SELECT COUNT(*) FROM nav WHERE date > ? AND date <= ?", (a["last_exec"], a["last_marked"])
            ).fetchone()[0]
            assert a["since"] == n
        a["since"] = b["since"] = None
        assert a == b
        led._memo = None  # the same reads straight from the file
        assert _state(led.portfolio_state(asof)) == state_mem
        assert led.last_run() == last_mem


def _step(led: Ledger, px: pd.DataFrame, asof: dt.date, dec: Any, ex: dt.date | None) -> None:
    with led.transaction():
        led.advance(px, asof)
        led.portfolio_state(asof)
        if dec is not None:
            led.record_decision(asof.isoformat(), dec, ex, started_at="t", committed_at="t")
    _check(led, asof)


def test_memo_equals_the_file_after_every_step(tmp_path: Path) -> None:
    days = [*DAYS, dt.date(2024, 1, 9), dt.date(2024, 1, 10)]
    px = frame(
        {
            "A": [100.0, 110.0, 121.0, float("nan"), 100.0, 102.0, 103.0],
            "B": [50.0, 50.0, 40.0, 50.0, 55.0, 56.0, 57.0],
        },
        days,
    )
    led = open_ledger(tmp_path / "l.sqlite")
    try:
        _check(led, days[0])
        _step(led, px, days[0], decision(days[0]), days[1])
        _step(led, px, days[1], decision(days[1], "hold"), None)
        _step(led, px, days[2], decision(days[2], w=(0.7, 0.2)), days[2])  # lag 0: fills and re-marks days[2]
        # A's close is missing on days[3] (forward-filled); Jan 6 is no session: the fill shifts to days[4]
        _step(led, px, days[3], decision(days[3], w=(0.3, 0.6)), dt.date(2024, 1, 6))
        _step(led, px, days[4], decision(days[4], "no_trade"), None)
        _step(led, px, days[5], None, None)
        adjusted = px.copy()
        adjusted.loc[: pd.Timestamp(days[5]), "B"] /= 2.0  # a 2:1 split re-adjusts B's history
        _step(led, adjusted, days[6], decision(days[6], w=(0.5, 0.4)), days[6])
        _step(led, adjusted, days[6], None, None)  # lag 0 again: the fill at days[6] re-marks it
        assert {"ffill", "exec_shift", "corporate_action"} <= {e["kind"] for e in led.events()}
        assert len(led.executions_frame()) == 4
    finally:
        led.close()


def test_reopened_ledger_reads_the_same_book(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    led = open_ledger(path)
    _step(led, PX, DAYS[0], decision(DAYS[0]), DAYS[1])
    _step(led, PX, DAYS[2], decision(DAYS[2], "hold"), None)
    with led.transaction():
        before = (_state(led.portfolio_state(DAYS[2])), led.last_run())
    led.close()
    led = open_ledger(path)
    try:
        with led.transaction():
            assert (_state(led.portfolio_state(DAYS[2])), led.last_run()) == before
    finally:
        led.close()


def test_another_connections_commit_makes_the_writer_read_the_file(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    a, b = open_ledger(path), open_ledger(path)
    try:
        _step(a, PX, DAYS[0], decision(DAYS[0]), DAYS[1])
        assert a._memo is not None
        _step(b, PX, DAYS[1], decision(DAYS[1], "hold"), None)  # another writer commits run 2
        # a's memo still says run 1; the data_version check at BEGIN drops it, so a continues the chain
        _step(a, PX, DAYS[2], decision(DAYS[2], "hold"), None)
        assert [r["run_id"] for r in a.runs()] == [1, 2, 3]
    finally:
        a.close()
        b.close()


def test_a_rollback_drops_the_memo(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "l.sqlite")
    try:
        _step(led, PX, DAYS[0], decision(DAYS[0]), DAYS[1])
        with pytest.raises(RuntimeError), led.transaction():
            led.advance(PX, DAYS[2])  # fills run 1 in memory and in the file ...
            raise RuntimeError("... and is rolled back")
        assert led._memo is None
        _check(led, DAYS[0])
        with led.transaction():  # a savepoint rolled back inside a transaction that commits
            with pytest.raises(RuntimeError), led.transaction():
                led.advance(PX, DAYS[2])
                raise RuntimeError("rolled back to the savepoint")
            assert led._memo is None
        _step(led, PX, DAYS[2], decision(DAYS[2], "hold"), None)
        assert len(led.fills_frame()) == 2
    finally:
        led.close()


def test_chained_hash_is_the_hash_of_chained_entry() -> None:
    from agent.hashchain import ZERO_HASH, chained_entry, chained_hash

    for seq, asof, rec in [(1, "2024-01-02", '{"a":1}'), (7, dt.date(2024, 3, 1), '{"é":[1.5,null]}')]:
        kw: dict[str, Any] = dict(
            seq=seq, run_id=seq, slot=str(asof), asof=asof, profile="p", prev_hash=ZERO_HASH, record_json=rec
        )
        assert chained_hash(**kw) == chained_entry(**kw)[1]
