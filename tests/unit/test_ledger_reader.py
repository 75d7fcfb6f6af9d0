"""The read-only ledger reader used by `status` and `audit`: same answers as the writer, and it changes nothing."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from agent.errors import LedgerError
from agent.ledger import LedgerReader, open_reader
from tests.unit.test_ledger import DAYS, PX, decision, open_ledger, step


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _book(path: Path) -> None:
    led = open_ledger(path)
    step(led, PX, DAYS[0], decision(DAYS[0]), DAYS[1])
    step(led, PX, DAYS[2], decision(DAYS[2], "hold"), None)
    step(led, PX, DAYS[3], decision(DAYS[3], w=(0.2, 0.3)), DAYS[4])
    led.close()


def test_reader_answers_like_the_writer_and_writes_nothing(tmp_path: Path) -> None:
    p = tmp_path / "ledger.sqlite"
    _book(p)
    writer = open_ledger(p)
    want = (
        writer.runs(with_decision=True),
        writer.positions(),
        writer.cash(),
        writer.pending_orders(),
        writer.events(),
        writer.portfolio_state(None),
        writer.nav_frame(),
    )
    writer.close()
    before = _digest(p)
    reader = open_reader(p)
    assert isinstance(reader, LedgerReader)
    with reader:
        assert (reader.profile, reader.tickers, reader.initial_capital) == ("p", ("A", "B"), 10_000.0)
        got = (
            reader.runs(with_decision=True),
            reader.positions(),
            reader.cash(),
            reader.pending_orders(),
            reader.events(),
            reader.portfolio_state(None),
            reader.nav_frame(),
        )
        assert got[:5] == want[:5]
        assert got[5].nav == want[5].nav and list(got[5].weights) == list(want[5].weights)
        assert got[6].equals(want[6])
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._conn.execute("INSERT INTO cash (id, amount) VALUES (2, 1.0)")
        assert not hasattr(reader, "transaction") and not hasattr(reader, "advance")
    assert _digest(p) == before


def test_open_reader_on_missing_empty_and_foreign_files(tmp_path: Path) -> None:
    assert open_reader(tmp_path / "none.sqlite") is None
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert open_reader(empty) is None  # a first run is creating it: "no ledger yet"
    assert empty.stat().st_size == 0
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="not a rebalance-agent ledger"):
        open_reader(foreign)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(LedgerError):
        open_reader(junk)
