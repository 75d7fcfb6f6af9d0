"""Runs: committing a decision (with its pending orders and the new stop state) and recording failures.

A run's decision-log hash is computed inside its commit from :mod:`agent.hashchain` (the same pure functions
the decision log uses), chained to the previous run's, so the log can always be re-derived byte-identically
from the ledger. A 'rebalance' cancels (and records) any order still pending; 'hold' and 'no_trade' leave
pending orders alone.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from agent.decision import cash_weight
from agent.errors import LedgerError
from agent.hashchain import ZERO_HASH, chained_hash
from agent.ledger.readers import RUN_KEYS as _RUN_KEYS
from agent.ledger.schema import DECIMALS, STATE_EXEC_RISK, STATE_STOP, STATUSES, iso, r10, timestamp, to_date
from agent.ledger.tx import LedgerWrites

if TYPE_CHECKING:
    from agent.decision import Decision

__all__ = ["LedgerRuns"]


class LedgerRuns(LedgerWrites):
    """Mixin: :meth:`record_decision` and :meth:`record_failure`."""

    def record_decision(
        self,
        slot: str,
        decision: Decision,
        exec_date: dt.date | None = None,
        record_hash: str | None = None,
        started_at: dt.datetime | str | None = None,
        *,
        committed_at: dt.datetime | str | None = None,
    ) -> int:
        """Commit a run: its decision record, the new StopState and, for 'rebalance', pending orders.

        The run's decision-log hash is computed here (chained to the previous run's), so the log can always be
        re-derived byte-identically from the ledger; a `record_hash` passed in must equal it. Returns run_id.
        """
        from agent import __version__
        from agent.decision import canonical_json

        slot = str(slot)
        if decision.profile != self.profile:
            raise LedgerError(
                f"decision for profile {decision.profile!r} cannot go into the {self.profile!r} ledger"
            )
        if tuple(decision.tickers) != self.tickers:
            raise LedgerError("decision tickers do not match the ledger's universe")
        if decision.status not in STATUSES:
            raise LedgerError(f"unknown decision status {decision.status!r}")
        asof = to_date(decision.asof)
        with self.transaction() as c:
            if self.has_run(slot):
                raise LedgerError(f"slot {slot!r} is already committed (run it once: check has_run first)")
            m = self._memo_now()
            assert m is not None  # inside the transaction
            last = m.last_run
            prev = None if last is None else (last["run_id"], last["asof"], last["record_hash"])
            if prev is not None and asof.isoformat() < prev[1]:
                raise LedgerError(f"decision asof {asof} is before the last committed run's asof {prev[1]}")
            run_id = 1 if prev is None else int(prev[0]) + 1
            prev_hash = ZERO_HASH if prev is None else str(prev[2])
            exec_iso: str | None = None
            targets: list[tuple[str, float]] = []
            if decision.status == "rebalance":
                exec_iso = self._check_exec_date(asof, exec_date)
                targets = self._check_targets(decision)
            record_json = canonical_json(decision.record)
            chained = chained_hash(
                seq=run_id,
                run_id=run_id,
                slot=slot,
                asof=asof,
                profile=self.profile,
                prev_hash=prev_hash,
                record_json=record_json,
            )
            entry = {"hash": chained}
            if record_hash is not None and record_hash != entry["hash"]:
                raise LedgerError(
                    f"record_hash {record_hash[:12]}… does not match the chained hash {entry['hash'][:12]}…"
                )
            committed = timestamp(committed_at) or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            row = (
                run_id,
                self.profile,
                slot,
                asof.isoformat(),
                decision.status,
                str(decision.reason),
                exec_iso,
                timestamp(started_at),
                committed,
                __version__,
                record_json,
                entry["hash"],
            )
            c.execute(
                "INSERT INTO runs (run_id, profile, slot, asof, status, reason, exec_date, started_at, committed_at,"
                " agent_version, decision_json, record_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            stop_json = canonical_json(decision.stop.to_dict())
            c.execute("INSERT OR REPLACE INTO state (key, json) VALUES (?, ?)", (STATE_STOP, stop_json))
            # the in-memory book: the run as last_run() reads it back, the stop state as stored
            m.last_run = dict(zip(_RUN_KEYS[:11], (*row[:10], row[11]), strict=True))
            m.stop_json = stop_json
            if decision.status == "rebalance":
                pending = list(m.pending)  # SELECT DISTINCT run_id, exec_date ... WHERE status = 'pending'
                if pending:
                    c.execute(
                        "UPDATE orders SET status = 'cancelled', cancelled_by = ? WHERE status = 'pending'",
                        (run_id,),
                    )
                    c.executemany(
                        "INSERT INTO events (date, kind, ticker, run_id, detail) VALUES (?, 'cancelled', NULL, ?, ?)",
                        [
                            (ex, old, json.dumps({"superseded_by": run_id, "exec_date": ex}, sort_keys=True))
                            for old, ex in pending
                        ],
                    )
                    c.executemany(
                        "DELETE FROM state WHERE key = ?",
                        [(f"{STATE_EXEC_RISK}{old}",) for old, _ in pending],
                    )
                c.executemany(
                    "INSERT INTO orders (run_id, ticker, target_weight, exec_date, status) VALUES (?, ?, ?, ?, 'pending')",
                    [(run_id, t, w, exec_iso) for t, w in targets],
                )
                if decision.exec_risk is not None:  # what the execution re-checks (agent.execution)
                    c.execute(
                        "INSERT OR REPLACE INTO state (key, json) VALUES (?, ?)",
                        (f"{STATE_EXEC_RISK}{run_id}", decision.exec_risk.to_json()),
                    )
                m.pending = [(run_id, str(exec_iso))]  # every older pending order was cancelled above
        return run_id

    def _check_exec_date(self, asof: dt.date, exec_date: dt.date | None) -> str:
        if exec_date is None:
            raise LedgerError("a 'rebalance' decision needs an exec_date")
        ex = to_date(exec_date)
        if ex < asof:
            raise LedgerError(f"exec_date {ex} is before the decision date {asof}")
        m = self._memo_now()
        assert m is not None
        lm = dt.date.fromisoformat(m.last_marked) if m.last_marked else None
        if lm is not None and ex < lm:
            raise LedgerError(f"exec_date {ex} is before the last marked session {lm}: the book has moved on")
        last_exec = m.last_exec
        if last_exec is not None and ex.isoformat() <= last_exec:
            raise LedgerError(f"exec_date {ex} is not after the last execution {last_exec}")
        return ex.isoformat()

    def _check_targets(self, decision: Decision) -> list[tuple[str, float]]:
        import numpy as np

        w = np.asarray(decision.targets, dtype=float).ravel()
        if w.shape != (len(self.tickers),):
            raise LedgerError(f"decision has {w.size} target weights for {len(self.tickers)} tickers")
        if not np.all(np.isfinite(w)):
            raise LedgerError("decision targets contain NaN or inf")
        if np.any(w < -1e-9) or float(w.sum()) > 1.0 + 1e-9:
            raise LedgerError("decision targets must be long-only and sum to at most 1")
        w = np.clip(np.round(w, DECIMALS), 0.0, None) + 0.0
        out = [(t, float(x)) for t, x in zip(self.tickers, w, strict=True)]
        out.append(("cash", r10(cash_weight(w))))
        return out

    def record_failure(
        self,
        slot: str,
        reason: str,
        *,
        asof: dt.date | None = None,
        started_at: dt.datetime | str | None = None,
    ) -> None:
        """Record a failed run (outside the hash chain; the slot stays open so a rerun can complete it)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO failures (slot, asof, started_at, failed_at, reason) VALUES (?, ?, ?, ?, ?)",
                (
                    str(slot),
                    iso(asof) if asof else None,
                    timestamp(started_at),
                    dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    str(reason),
                ),
            )
