"""Tamper-evident decision log: JSON Lines, one record per committed run, SHA-256 hash chain.

Each line is the canonical JSON of ``{"seq", "run_id", "slot", "asof", "profile", "prev_hash", "record", "hash"}``
where ``hash`` = SHA-256 of the canonical JSON of the same object WITHOUT ``hash`` (so it covers ``prev_hash``,
chaining every record to the one before; the first record's ``prev_hash`` is 64 zeros).

The ledger is the source of truth: it computes each run's hash inside the commit (:func:`make_entry`) and stores
the decision JSON, so the log is appended AFTER the commit and, if the process died in between, re-derived
byte-identically by :meth:`DecisionLog.sync_from_ledger`. A torn last line (a crash mid-write) is truncated away
before re-deriving. :meth:`DecisionLog.verify` checks each record's hash, the chain, seq continuity and
agreement with the ledger, so an edit, deletion, insertion or reordering of any record is found. Without the
ledger, a log whose tail was rewritten with recomputed hashes (or whose last records were dropped) cannot be
told from a genuine one: pass the ledger to anchor the chain.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.atomic import fsync_dir
from agent.errors import LedgerError, UsageError
from agent.hashchain import ENTRY_KEYS, ZERO_HASH, chained_entry, entry_hash, entry_json, make_entry

if TYPE_CHECKING:
    from agent.ledger.readers import LedgerReads as Ledger

__all__ = [
    "ENTRY_KEYS",
    "ZERO_HASH",
    "DecisionLog",
    "SyncResult",
    "VerifyResult",
    "chained_entry",
    "entry_hash",
    "entry_json",
    "make_entry",
]


def _line(entry: dict[str, Any]) -> bytes:
    from agent.decision import canonical_json

    return (canonical_json(entry) + "\n").encode("utf-8")


@dataclass(frozen=True)
class VerifyResult:
    """`first_bad_seq` is the position (1-based) of the first record that fails; `problem` says why."""

    ok: bool
    n_records: int
    first_bad_seq: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class SyncResult:
    appended: int  # records re-derived from the ledger and appended
    n_records: int  # records in the log afterwards
    truncated_bytes: int = 0  # a torn last line that was cut away (0 when none)


@dataclass
class _Tail:
    size: int
    mtime_ns: int
    ino: int
    n: int
    last_hash: str


class DecisionLog:
    """Append-only JSONL file with a hash chain. `durable=False` skips fsync (backtest output)."""

    def __init__(self, path: Path | str, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = bool(durable)
        self._tail: _Tail | None = None

    # ------------------------------------------------------------------ reading
    def _read(self) -> tuple[list[bytes], bytes]:
        """Complete lines (without newline) and the torn remainder after the last newline."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], b""
        except OSError as e:
            raise LedgerError(f"cannot read decision log {self.path}: {e.strerror}") from None
        cut = data.rfind(b"\n") + 1
        body, torn = data[:cut], data[cut:]
        return (body.split(b"\n")[:-1] if body else []), torn

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete record in file order (a torn last line is skipped)."""
        lines, _ = self._read()
        for i, raw in enumerate(lines, 1):
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise LedgerError(f"decision log {self.path}: line {i} is not valid JSON") from None
            yield obj

    def show(self, key: int | str) -> dict[str, Any]:
        """One record by seq / run id (a number), hash prefix (>= 8 hex digits), slot, or asof date."""
        recs = list(self.records())
        text = str(key).strip()
        if isinstance(key, int) or text.isdigit():
            n = int(text)
            for field in ("seq", "run_id"):
                for r in recs:
                    if r.get(field) == n:
                        return r
        else:
            low = text.lower()
            if re.fullmatch(r"[0-9a-f]{8,64}", low):
                hits = [r for r in recs if str(r.get("hash", "")).startswith(low)]
                if len(hits) == 1:
                    return hits[0]
                if len(hits) > 1:
                    raise UsageError(f"hash prefix {text!r} matches {len(hits)} records: give more digits")
            for field in ("slot", "asof"):
                hits = [r for r in recs if str(r.get(field)) == text]
                if hits:
                    return hits[-1]
        raise UsageError(f"no decision record matches {text!r}", hint=f"the log has {len(recs)} records")

    def _tail_info(self) -> tuple[int, str]:
        """(number of records, last hash), cached while the file is unchanged (the backtest appends 1000s)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._tail = None
            return 0, ZERO_HASH
        t = self._tail
        if t is not None and (t.size, t.mtime_ns, t.ino) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return t.n, t.last_hash
        lines, _ = self._read()
        last_hash = ZERO_HASH
        if lines:
            try:
                last_hash = str(json.loads(lines[-1].decode("utf-8"))["hash"])
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                raise LedgerError(
                    f"decision log {self.path}: the last record is unreadable",
                    hint="run `agent audit verify`",
                ) from None
        self._remember(len(lines), last_hash)
        return len(lines), last_hash

    def _remember(self, n: int, last_hash: str) -> None:
        st = os.stat(self.path)
        self._tail = _Tail(st.st_size, st.st_mtime_ns, st.st_ino, n, last_hash)

    # ------------------------------------------------------------------ writing
    def repair(self) -> int:
        """Cut a torn last line (no trailing newline: a crash mid-write). Returns the bytes removed."""
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            return 0
        if size == 0:
            return 0
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return 0
            f.seek(0)
            data = f.read()
        keep = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        self._tail = None
        return size - keep

    def _write(self, payload: bytes) -> None:
        """One O_APPEND write of whole lines, then fsync: a crash leaves at most a torn last line."""
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(payload)
            while view:
                k = os.write(fd, view)
                view = view[k:]
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if new and self.durable:
            fsync_dir(self.path.parent)

    def append(self, entry: dict[str, Any]) -> None:
        """Append one record; it must continue the chain (seq = n + 1, prev_hash = last hash, valid hash)."""
        if set(entry) != ENTRY_KEYS:
            raise LedgerError(f"a decision-log record has exactly the fields {sorted(ENTRY_KEYS)}")
        self.repair()
        n, last = self._tail_info()
        if entry["seq"] != n + 1 or entry["prev_hash"] != last:
            raise LedgerError(f"record seq {entry['seq']} does not continue the log (at seq {n})")
        if entry_hash(entry) != entry["hash"]:
            raise LedgerError(f"record seq {entry['seq']} has a wrong hash")
        self._write(_line(entry))
        self._remember(n + 1, entry["hash"])

    def sync_from_ledger(self, ledger: Ledger) -> SyncResult:
        """Append the ledger's runs the log lacks, in order, byte-identical to a normal append.

        Refuses (LedgerError) when the log is not a prefix of the ledger's runs: that is tampering or a log
        from another ledger, for `agent audit verify` to diagnose, never something to paper over.
        """
        cut = self.repair()
        n, last = self._tail_info()
        total = ledger.run_count()
        if n > total:
            raise LedgerError(
                f"decision log {self.path} has {n} records but the ledger has only {total} runs",
                hint="run `agent audit verify`",
            )
        if n:
            head = ledger.run(n)
            if head is None or head["record_hash"] != last:
                raise LedgerError(
                    f"decision log {self.path} diverges from the ledger at seq {n}",
                    hint="run `agent audit verify`",
                )
        if n == total:
            return SyncResult(appended=0, n_records=n, truncated_bytes=cut)
        chunks: list[bytes] = []
        prev = last
        for run in ledger.runs(after=n, with_decision=True):
            line, h = chained_entry(
                seq=run["run_id"],
                run_id=run["run_id"],
                slot=run["slot"],
                asof=run["asof"],
                profile=run["profile"],
                prev_hash=prev,
                record_json=run["decision_json"],
            )
            if h != run["record_hash"]:
                raise LedgerError(
                    f"ledger run {run['run_id']}: its decision JSON does not match its record hash"
                )
            chunks.append((line + "\n").encode("utf-8"))
            prev = h
        self._write(b"".join(chunks))
        self._remember(n + len(chunks), prev)
        return SyncResult(appended=len(chunks), n_records=n + len(chunks), truncated_bytes=cut)

    # ------------------------------------------------------------------ auditing
    def verify(self, ledger: Ledger | None = None) -> VerifyResult:
        """Check hashes, the chain, seq continuity and (with `ledger`) agreement with the committed runs."""
        lines, torn = self._read()
        runs = ledger.runs(with_decision=True) if ledger is not None else None
        prev = ZERO_HASH
        n = len(lines)

        def bad(seq: int, problem: str) -> VerifyResult:
            return VerifyResult(ok=False, n_records=n, first_bad_seq=seq, problem=problem)

        for i, raw in enumerate(lines, 1):
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                return bad(i, f"record {i} (line {i}) is not valid JSON")
            if not isinstance(rec, dict) or set(rec) != ENTRY_KEYS:
                return bad(i, f"record {i} (line {i}) does not have the record fields")
            if rec["seq"] != i:
                return bad(
                    i,
                    f"record {i} (line {i}) has seq {rec['seq']!r}, expected {i}: "
                    "a record was deleted, inserted or moved here",
                )
            if entry_hash(rec) != rec["hash"]:
                return bad(i, f"record seq {i} (slot {rec['slot']!r}) does not match its hash: it was edited")
            if rec["prev_hash"] != prev:
                return bad(
                    i,
                    f"record seq {i} (slot {rec['slot']!r}): prev_hash does not match record {i - 1}'s hash",
                )
            if runs is not None:
                if i > len(runs):
                    return bad(
                        i, f"record seq {i} (slot {rec['slot']!r}) is not in the ledger ({len(runs)} runs)"
                    )
                run = runs[i - 1]
                want = _entry_from_run(run, runs[i - 2]["record_hash"] if i > 1 else ZERO_HASH)
                if want["hash"] != run["record_hash"]:
                    return bad(
                        i, f"ledger run {run['run_id']}: its decision JSON does not match its record hash"
                    )
                if rec["hash"] != run["record_hash"]:
                    diff = [k for k in ENTRY_KEYS - {"hash"} if rec[k] != want[k]]
                    return bad(
                        i,
                        f"record seq {i} (slot {rec['slot']!r}) differs from ledger run {run['run_id']} "
                        f"(slot {run['slot']!r}) in {', '.join(sorted(diff)) or 'hash'}",
                    )
            prev = rec["hash"]
        if torn:
            return bad(n + 1, f"torn last line after record {n} ({len(torn)} bytes, an interrupted write)")
        if runs is not None and len(runs) > n:
            return bad(
                n + 1,
                f"the log ends at seq {n} but the ledger has {len(runs)} runs (missing from seq {n + 1})",
            )
        return VerifyResult(ok=True, n_records=n)


def _entry_from_run(run: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    return make_entry(
        seq=run["run_id"],
        run_id=run["run_id"],
        slot=run["slot"],
        asof=run["asof"],
        profile=run["profile"],
        prev_hash=prev_hash,
        record=json.loads(run["decision_json"]),
    )
