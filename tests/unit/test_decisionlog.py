"""Decision log: hash chain, tamper detection (edit/delete/insert/reorder), torn lines, re-derivation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.costs import CostModel
from agent.decision import Decision, StopState, canonical_json
from agent.decisionlog import ZERO_HASH, DecisionLog, make_entry
from agent.errors import LedgerError, UsageError
from agent.ledger import Ledger

TICKERS = ("A", "B")
DAYS = list(pd.bdate_range("2024-01-01", periods=8).date)
PX = pd.DataFrame(
    {"A": np.linspace(100, 110, 8), "B": np.linspace(50, 45, 8)},
    index=pd.DatetimeIndex(pd.to_datetime([d.isoformat() for d in DAYS]), name="date"),
)
N = 5


def _decision(i: int) -> Decision:
    w = np.array([0.2 + 0.1 * i, 0.5 - 0.05 * i])
    status = "rebalance" if i % 2 == 0 else "hold"
    record = {
        "asof": DAYS[i],
        "targets": {"A": w[0], "B": w[1], "cash": 1 - w.sum()},
        "risk": {"cov": np.array([[0.0004, 0.0001], [0.0001, 0.0009]]), "method": "ewma", "fallbacks": []},
        "forecast": {"mu": {"A": 1e-4 * i, "B": float("nan")}},
        "note": "ünïcode ✓",
    }
    return Decision(DAYS[i], "p", status, f"run {i}", TICKERS, w, StopState(), record)  # type: ignore[arg-type]


def _ledger(path: Path) -> Ledger:
    return Ledger(
        path, profile="p", tickers=TICKERS, initial_capital=1e6, cost_model=CostModel(10.0), durable=False
    )


def _run(ledger: Ledger, i: int, log: DecisionLog | None) -> None:
    with ledger.transaction():
        ledger.advance(PX, DAYS[i])
        dec = _decision(i)
        exec_date = DAYS[i + 1] if dec.status == "rebalance" else None
        ledger.record_decision(f"slot-{i}", dec, exec_date, started_at="s", committed_at="c")
    if log is not None:
        log.sync_from_ledger(ledger)


@pytest.fixture()
def book(tmp_path: Path) -> tuple[Ledger, DecisionLog]:
    ledger = _ledger(tmp_path / "ledger.sqlite")
    log = DecisionLog(tmp_path / "decisions.jsonl")
    for i in range(N):
        _run(ledger, i, log)
    return ledger, log


def _lines(log: DecisionLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(log: DecisionLog, lines: list[str]) -> None:
    log.path.write_text("".join(lines), encoding="utf-8")


def _rehash_from(lines: list[str], k: int) -> list[str]:
    """A careful forger: recompute every hash from record k on so the chain itself is consistent."""
    out = list(lines)
    prev = json.loads(out[k - 2])["hash"] if k > 1 else ZERO_HASH
    for i in range(k - 1, len(out)):
        rec = json.loads(out[i])
        rec.pop("hash")
        rec["prev_hash"] = prev
        rec = make_entry(**rec)
        out[i] = canonical_json(rec) + "\n"
        prev = rec["hash"]
    return out


# ----------------------------------------------------------------------------------------------- format and chain
def test_records_are_chained_and_hash_the_canonical_json_without_hash(book) -> None:
    ledger, log = book
    recs = list(log.records())
    assert [r["seq"] for r in recs] == list(range(1, N + 1)) == [r["run_id"] for r in recs]
    assert recs[0]["prev_hash"] == "0" * 64
    for prev, rec, line in zip([None, *recs[:-1]], recs, _lines(log), strict=True):
        body = {k: v for k, v in rec.items() if k != "hash"}
        assert rec["hash"] == hashlib.sha256(canonical_json(body).encode()).hexdigest()
        assert prev is None or rec["prev_hash"] == prev["hash"]
        assert line == canonical_json(rec) + "\n"
    assert [r["record_hash"] for r in ledger.runs()] == [r["hash"] for r in recs]
    assert recs[2]["record"]["forecast"]["mu"]["B"] is None and recs[2]["record"]["note"] == "ünïcode ✓"
    assert (
        recs[1]["slot"] == "slot-1" and recs[1]["asof"] == DAYS[1].isoformat() and recs[1]["profile"] == "p"
    )
    assert log.verify() == log.verify(ledger)
    res = log.verify(ledger)
    assert res.ok and res.n_records == N and res.first_bad_seq is None


def test_append_refuses_a_record_that_does_not_continue_the_chain(book) -> None:
    _, log = book
    last = list(log.records())[-1]
    good = make_entry(
        seq=N + 1, run_id=N + 1, slot="x", asof="2024-02-01", profile="p", prev_hash=last["hash"], record={}
    )
    for bad in (
        {**good, "seq": N + 2},
        {**good, "prev_hash": ZERO_HASH},
        {**good, "hash": "0" * 64},
        {k: v for k, v in good.items() if k != "slot"},
    ):
        with pytest.raises(LedgerError):
            log.append(bad)
    log.append(good)
    assert log.verify().ok and not log.verify(book[0]).ok  # the ledger does not know this record


# ----------------------------------------------------------------------------------------------- tampering
@pytest.mark.parametrize("field", ["seq", "run_id", "slot", "asof", "profile", "prev_hash", "record", "hash"])
@pytest.mark.parametrize("k", [1, 3, N])
def test_editing_any_field_of_any_record_is_found(book, field: str, k: int) -> None:
    ledger, log = book
    lines = _lines(log)
    rec = json.loads(lines[k - 1])
    rec[field] = {
        "seq": k + 10,
        "run_id": 99,
        "slot": "forged",
        "asof": "1999-01-01",
        "profile": "other",
        "prev_hash": "f" * 64,
        "record": {**rec["record"], "targets": {"A": 1.0, "B": 0.0, "cash": 0.0}},
        "hash": "e" * 64,
    }[field]
    lines[k - 1] = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    _write(log, lines)
    for res in (log.verify(), log.verify(ledger)):
        assert not res.ok and res.first_bad_seq == k, res
        assert str(k) in res.problem


def test_a_consistently_rehashed_edit_is_caught_by_the_ledger(book) -> None:
    ledger, log = book
    lines = _lines(log)
    rec = json.loads(lines[2])
    rec["record"]["targets"]["A"] = 0.99
    lines[2] = canonical_json(rec) + "\n"
    _write(log, _rehash_from(lines, 3))
    assert log.verify().ok  # self-consistent chain: only an anchor can tell
    res = log.verify(ledger)
    assert not res.ok and res.first_bad_seq == 3 and "record" in res.problem


@pytest.mark.parametrize("k", [1, 2, 4])
def test_deleting_a_record_is_found(book, k: int) -> None:
    ledger, log = book
    lines = _lines(log)
    del lines[k - 1]
    _write(log, lines)
    for res in (log.verify(), log.verify(ledger)):
        assert not res.ok and res.first_bad_seq == k and "deleted, inserted or moved" in res.problem


def test_deleting_the_last_record_is_found_against_the_ledger(book) -> None:
    ledger, log = book
    _write(log, _lines(log)[:-1])
    assert log.verify().ok  # a shorter chain is still a valid chain
    res = log.verify(ledger)
    assert not res.ok and res.first_bad_seq == N and "missing" in res.problem


@pytest.mark.parametrize("k", [1, 3, N + 1])
def test_inserting_a_record_is_found(book, k: int) -> None:
    ledger, log = book
    lines = _lines(log)
    prev = json.loads(lines[k - 2])["hash"] if k > 1 else ZERO_HASH
    forged = make_entry(
        seq=k, run_id=k, slot="forged", asof="2024-01-03", profile="p", prev_hash=prev, record={}
    )
    lines.insert(k - 1, canonical_json(forged) + "\n")
    _write(log, lines)
    res = log.verify(ledger)
    assert not res.ok and res.first_bad_seq == k, res
    if k <= N:
        assert (
            not log.verify().ok and log.verify().first_bad_seq == k + 1
        )  # the displaced record no longer fits
    else:
        assert log.verify().ok and "not in the ledger" in res.problem


@pytest.mark.parametrize(("i", "j"), [(1, 2), (2, 4), (4, 5)])
def test_reordering_records_is_found(book, i: int, j: int) -> None:
    ledger, log = book
    lines = _lines(log)
    lines[i - 1], lines[j - 1] = lines[j - 1], lines[i - 1]
    _write(log, lines)
    for res in (log.verify(), log.verify(ledger)):
        assert not res.ok and res.first_bad_seq == i


def test_garbage_line_is_reported(book) -> None:
    _, log = book
    lines = _lines(log)
    lines[1] = "{not json\n"
    _write(log, lines)
    res = log.verify()
    assert not res.ok and res.first_bad_seq == 2 and "not valid JSON" in res.problem


# ----------------------------------------------------------------------------------------------- crash recovery
def _reference_bytes(tmp_path: Path, n: int) -> bytes:
    ledger = _ledger(tmp_path / "ref.sqlite")
    log = DecisionLog(tmp_path / "ref.jsonl")
    for i in range(n):
        _run(ledger, i, log)
    return log.path.read_bytes()


def test_sync_from_ledger_rederives_missing_records_byte_identically(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "l.sqlite")
    log = DecisionLog(tmp_path / "d.jsonl")
    for i in range(N):
        _run(ledger, i, log if i < 2 else None)  # the process "died" after each commit from run 3 on
    assert len(_lines(log)) == 2 and not log.verify(ledger).ok and log.verify(ledger).first_bad_seq == 3
    res = log.sync_from_ledger(ledger)
    assert (res.appended, res.n_records, res.truncated_bytes) == (N - 2, N, 0)
    assert log.path.read_bytes() == _reference_bytes(tmp_path, N)
    assert log.sync_from_ledger(ledger).appended == 0 and log.verify(ledger).ok
    # a log that was never written at all is rebuilt from scratch, also byte-identically
    fresh = DecisionLog(tmp_path / "fresh.jsonl")
    assert fresh.sync_from_ledger(ledger).appended == N
    assert fresh.path.read_bytes() == log.path.read_bytes()


def test_torn_last_line_is_detected_and_repaired(book, tmp_path: Path) -> None:
    ledger, log = book
    _run(ledger, N, None)  # commit run 6, then crash half-way through writing its line
    entry = DecisionLog(tmp_path / "x.jsonl")  # the same log, written without a crash
    entry.sync_from_ledger(ledger)
    line6 = _lines(entry)[-1].encode()
    with open(log.path, "ab") as f:
        f.write(line6[: len(line6) // 2])
    res = log.verify(ledger)
    assert not res.ok and res.first_bad_seq == N + 1 and "torn" in res.problem
    assert len(list(log.records())) == N  # readers skip the torn tail
    sync = log.sync_from_ledger(ledger)
    assert sync.truncated_bytes == len(line6) // 2 and sync.appended == 1
    assert log.path.read_bytes() == entry.path.read_bytes()
    assert log.verify(ledger).ok


def test_sync_refuses_a_log_that_is_not_a_prefix_of_the_ledger(book, tmp_path: Path) -> None:
    ledger, log = book
    lines = _lines(log)
    rec = json.loads(lines[-1])
    rec["record"]["note"] = "forged"
    lines[-1] = canonical_json(rec) + "\n"
    _write(log, _rehash_from(lines, N))
    with pytest.raises(LedgerError, match="diverges"):
        log.sync_from_ledger(ledger)
    other = _ledger(tmp_path / "other.sqlite")
    _run(other, 0, None)
    with pytest.raises(LedgerError, match="only 1 runs"):
        DecisionLog(log.path).sync_from_ledger(other)


def test_ledger_rejects_a_record_hash_that_does_not_chain(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "l.sqlite")
    ledger.advance(PX, DAYS[0])
    dec = _decision(1)
    expected = make_entry(
        seq=1,
        run_id=1,
        slot="s",
        asof=dec.asof,
        profile="p",
        prev_hash=ZERO_HASH,
        record=json.loads(canonical_json(dec.record)),
    )["hash"]
    with pytest.raises(LedgerError, match="record_hash"):
        ledger.record_decision("s", dec, None, record_hash="0" * 64)
    assert ledger.record_decision("s", dec, None, record_hash=expected) == 1
    assert ledger.run(1)["record_hash"] == expected


# ----------------------------------------------------------------------------------------------- show
def test_show_by_seq_run_id_slot_asof_and_hash(book) -> None:
    _, log = book
    recs = list(log.records())
    assert log.show(3) == recs[2] and log.show("3") == recs[2]
    assert log.show("slot-4") == recs[4]
    assert log.show(DAYS[1].isoformat()) == recs[1]
    assert log.show(recs[3]["hash"][:12]) == recs[3]
    with pytest.raises(UsageError):
        log.show("no-such-slot")
    with pytest.raises(UsageError):
        log.show(99)


def test_empty_log(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "none.jsonl")
    assert list(log.records()) == [] and log.verify().ok and log.verify().n_records == 0
    assert log.repair() == 0


def test_fast_entry_json_is_byte_identical_to_the_canonical_entry() -> None:
    """The string-assembled entry (used on the hot path) equals canonical_json(make_entry(...)) exactly."""
    import datetime as _dt

    from agent.decision import canonical_json
    from agent.decisionlog import chained_entry, make_entry

    record = {"z": [1.5, None, {"é": "ü"}], "a": {"cov": {"X": {"X": 1e-4}}}, "n": 3, "ok": True}
    kw = {
        "seq": 7,
        "run_id": 7,
        "slot": "2024-01-05",
        "asof": _dt.date(2024, 1, 5),
        "profile": "démo",
        "prev_hash": "ab" * 32,
    }
    slow = make_entry(**kw, record=record)
    line, h = chained_entry(**kw, record_json=canonical_json(record))
    assert h == slow["hash"]
    assert line == canonical_json(slow)
