"""The paper broker shared by the backtest and the daemon: one SQLite file per (profile, universe).

Execution model (DESIGN.md invariant 2). A decision at the close of session t records *pending orders* (its
target weights, cash included) to execute at the close of ``exec_date`` (t + lag, chosen by the caller). Every
later run first calls :meth:`Ledger.advance`, which executes due orders at the close of their exec session and
marks NAV for every session up to the new asof. Between trades the book holds SHARES, so weights drift with
prices. A newer *rebalance* decision cancels (and records) any order still pending; 'hold' and 'no_trade'
decisions leave pending orders alone.

Fill sizing. At the exec close the book is worth V = cash + shares·price. Trading to weights w costs c (the
shared :class:`agent.costs.CostModel`, on traded notional against the DRIFTED holdings at that close, never the
last targets). New notional is w·(V − c), so the cash left is w_cash·(V − c) ≥ 0: costs never overdraw cash.
c depends on the trades, so the fixed point is solved by :func:`agent.execution.size_rebalance` (the same rule
as the vectorized baseline simulator; it converges geometrically at rate ≈ bps/1e4). Target shares are then
FLOORED to 10 decimals (never spend more than planned), each fill's cost is the cost model applied to that
fill alone (so the fills' costs sum exactly to the cash deducted), and a final guard trims the largest position
by a few 1e-10 shares should float dust still leave cash a hair below zero.

Crash safety and determinism. Every write happens inside :meth:`Ledger.transaction` (``BEGIN IMMEDIATE`` …
``COMMIT``, ``ROLLBACK`` on any exception, nested calls become savepoints), so a run's advance, decision and
orders commit together or not at all. Shares, prices, notionals, costs, cash and NAV are rounded to 10
decimals so that the same inputs give identical rows. Only the wall-clock columns (``started_at``,
``committed_at``) differ between identical runs; ``committed_at`` can be passed in for byte-identical replays.

Durability: ``durable=True`` (daemon) uses WAL + ``synchronous=FULL``; ``durable=False`` (backtest) uses WAL +
``synchronous=OFF``. Nothing else differs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import LedgerError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from agent.costs import CostModel
    from agent.decision import Decision, PortfolioState
    from agent.execution import ExecutionRules

__all__ = ["APPLICATION_ID", "DECIMALS", "SCHEMA_VERSION", "AdvanceResult", "Ledger"]

SCHEMA_VERSION = 1
APPLICATION_ID = 0x52424C47  # "RBLG": marks the SQLite file as a rebalance-agent ledger
DECIMALS = 10  # shares, prices, notionals, costs, cash and NAV are rounded to this many decimals
ZERO_HASH = "0" * 64
_STATE_LAST_MARKED = "ledger.last_marked"
_STATE_LAST_PRICES = "ledger.last_prices"
_STATE_STOP = "stop"
_STATUSES = ("rebalance", "hold", "no_trade")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY,            -- = seq of the decision-log record (1, 2, ...)
    profile TEXT NOT NULL,
    slot TEXT NOT NULL,
    asof TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    exec_date TEXT,
    started_at TEXT,
    committed_at TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    decision_json TEXT NOT NULL,           -- canonical JSON of Decision.record
    record_hash TEXT NOT NULL,             -- hash of this run's decision-log record (hash chain)
    UNIQUE (profile, slot)
);
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    ticker TEXT NOT NULL,                  -- a universe ticker or 'cash'
    target_weight REAL NOT NULL,
    exec_date TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'filled', 'cancelled')),
    filled_on TEXT,                        -- the session actually executed (= exec_date unless it was no session)
    cancelled_by INTEGER,                  -- the run whose decision superseded this order
    UNIQUE (run_id, ticker)
);
CREATE INDEX orders_status ON orders (status, exec_date);
CREATE TABLE fills (
    fill_id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    exec_date TEXT NOT NULL,
    ticker TEXT NOT NULL,
    shares REAL NOT NULL,                  -- signed shares traded
    price REAL NOT NULL,
    notional REAL NOT NULL,                -- signed: shares * price
    cost REAL NOT NULL,
    UNIQUE (exec_date, ticker)             -- fills for an exec date happen exactly once
);
CREATE TABLE executions (
    run_id INTEGER PRIMARY KEY REFERENCES runs(run_id),
    exec_date TEXT NOT NULL UNIQUE,
    nav_before REAL NOT NULL,
    traded REAL NOT NULL,                  -- sum |notional|
    turnover REAL NOT NULL,                -- traded / nav_before (one-way, every traded unit counted once)
    cost REAL NOT NULL,
    n_trades INTEGER NOT NULL
);
CREATE TABLE positions (ticker TEXT PRIMARY KEY, shares REAL NOT NULL);
CREATE TABLE cash (id INTEGER PRIMARY KEY CHECK (id = 1), amount REAL NOT NULL);
CREATE TABLE nav (
    date TEXT PRIMARY KEY,
    nav REAL NOT NULL,
    cash REAL NOT NULL,
    invested REAL NOT NULL,
    peak_nav REAL NOT NULL,
    drawdown REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE state (key TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE events (
    event_id INTEGER PRIMARY KEY,
    date TEXT,
    kind TEXT NOT NULL,                    -- ffill | exec_shift | unpriced | cancelled
    ticker TEXT,
    run_id INTEGER,
    detail TEXT NOT NULL
);
CREATE TABLE failures (
    failure_id INTEGER PRIMARY KEY,
    slot TEXT NOT NULL,
    asof TEXT,
    started_at TEXT,
    failed_at TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AdvanceResult:
    """What one :meth:`Ledger.advance` did (for logs and tests)."""

    marked: int = 0  # sessions whose NAV was written (a lag-0 exec session is re-marked after its fill)
    first_marked: dt.date | None = None
    last_marked: dt.date | None = None
    executed_runs: tuple[int, ...] = ()  # runs whose pending orders filled
    n_fills: int = 0
    costs: float = 0.0
    nav: float | None = None  # NAV at last_marked
    ffilled: tuple[
        tuple[dt.date, str], ...
    ] = ()  # (session, ticker): held, price missing, previous close used
    events: tuple[dict[str, Any], ...] = field(default=(), repr=False)


def _r(x: float) -> float:
    """Round a scalar to DECIMALS and drop negative zeros."""
    return round(float(x), DECIMALS) + 0.0


def _iso(d: Any) -> str:
    return _to_date(d).isoformat()


def _to_date(d: Any) -> dt.date:
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    if isinstance(d, str):
        return dt.date.fromisoformat(d[:10])
    if hasattr(d, "date"):  # pandas.Timestamp, numpy datetime64 via pandas
        return d.date()
    raise LedgerError(f"not a date: {d!r}")


def _timestamp(t: Any) -> str | None:
    if t is None:
        return None
    if isinstance(t, dt.datetime | dt.date):
        return t.isoformat()
    return str(t)


class Ledger:
    """SQLite paper broker: runs, orders, fills, positions (shares), cash, daily NAV and engine state."""

    def __init__(
        self,
        path: Path | str,
        *,
        profile: str,
        tickers: tuple[str, ...],
        initial_capital: float,
        cost_model: CostModel,
        durable: bool = True,
        execution_rules: ExecutionRules | None = None,
    ) -> None:
        self.path = Path(path)
        self.profile = str(profile)
        self.tickers = tuple(str(t) for t in tickers)
        if not self.tickers:
            raise LedgerError("a ledger needs at least one ticker")
        if "cash" in self.tickers:
            raise LedgerError("'cash' is reserved and cannot be a ticker")
        if not (math.isfinite(float(initial_capital)) and float(initial_capital) > 0):
            raise LedgerError(f"initial_capital must be > 0, got {initial_capital!r}")
        self.cost_model = cost_model
        self.execution_rules = execution_rules  # None: fills go straight to the targets (agent.execution)
        self.durable = bool(durable)
        self._tpos = {t: i for i, t in enumerate(self.tickers)}
        self._lock = threading.RLock()
        self._depth = 0
        self._col_cache: tuple[Any, Any] | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, timeout=30.0, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise LedgerError(f"cannot open ledger {self.path}: {e}") from None
        try:
            self._open(float(initial_capital))
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ opening
    def _open(self, initial_capital: float) -> None:
        c = self._conn
        try:
            app_id = c.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise LedgerError(f"{self.path} is not a ledger database ({e})") from None
        fresh = not tables and app_id == 0
        if not fresh:
            if app_id != APPLICATION_ID or "meta" not in tables:
                raise LedgerError(
                    f"{self.path} is not a rebalance-agent ledger (foreign SQLite file)",
                    hint="point --state-dir at the agent's state directory or move the file away",
                )
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise LedgerError(
                    f"{self.path} has ledger schema version {version}; this agent reads {SCHEMA_VERSION}"
                )
            try:
                check = c.execute("PRAGMA quick_check").fetchone()[0]
            except sqlite3.DatabaseError as e:
                raise LedgerError(f"ledger {self.path} is corrupt ({e})") from None
            if check != "ok":
                raise LedgerError(f"ledger {self.path} is corrupt (quick_check: {check})")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'OFF'}")
        if fresh:
            self._create(initial_capital)
        meta = dict(c.execute("SELECT key, value FROM meta"))
        if meta.get("profile") != self.profile:
            raise LedgerError(
                f"ledger {self.path} belongs to profile {meta.get('profile')!r}, not {self.profile!r}",
                hint="each profile needs its own state directory",
            )
        stored = tuple(json.loads(meta.get("tickers", "[]")))
        if stored != self.tickers:
            raise LedgerError(
                f"ledger {self.path} was created for universe {', '.join(stored)}; the settings say "
                f"{', '.join(self.tickers)}",
                hint="a ledger belongs to one universe: use a new state directory for a new universe",
            )
        self.initial_capital = float(meta["initial_capital"])

    def _create(self, initial_capital: float) -> None:
        from agent import __version__

        with self.transaction() as c:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
            c.execute(f"PRAGMA application_id={APPLICATION_ID}")
            c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            c.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("profile", self.profile),
                    ("tickers", json.dumps(list(self.tickers))),
                    ("initial_capital", repr(float(initial_capital))),
                    ("created_by", f"rebalance-agent {__version__}"),
                ],
            )
            c.executemany(
                "INSERT INTO positions (ticker, shares) VALUES (?, 0.0)", [(t,) for t in self.tickers]
            )
            c.execute("INSERT INTO cash (id, amount) VALUES (1, ?)", (float(initial_capital),))

    def pragmas(self) -> dict[str, Any]:
        """The connection's journal mode and synchronous level (0 OFF, 1 NORMAL, 2 FULL), for checks and status."""
        c = self._conn
        return {
            "journal_mode": c.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": int(c.execute("PRAGMA synchronous").fetchone()[0]),
        }

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing: BEGIN IMMEDIATE … COMMIT, ROLLBACK on any exception; nested calls are savepoints."""
        with self._lock:
            c = self._conn
            if self._depth == 0:
                try:
                    c.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as e:
                    raise LedgerError(f"cannot lock ledger {self.path} for writing ({e})") from None
                self._depth = 1
                try:
                    yield c
                    c.execute("COMMIT")
                except BaseException as exc:
                    if c.in_transaction:
                        c.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        raise LedgerError(f"ledger {self.path}: {exc}") from exc
                    raise
                finally:
                    self._depth = 0
            else:
                name = f"sp{self._depth}"
                c.execute(f"SAVEPOINT {name}")
                self._depth += 1
                try:
                    yield c
                except BaseException:
                    c.execute(f"ROLLBACK TO {name}")
                    c.execute(f"RELEASE {name}")
                    raise
                else:
                    c.execute(f"RELEASE {name}")
                finally:
                    self._depth -= 1

    # ------------------------------------------------------------------ state (JSON key/value)
    def get_state(self, key: str, default: Any = None) -> Any:
        """A JSON value persisted with :meth:`set_state` (engine caches, the StopState, ...)."""
        row = self._conn.execute("SELECT json FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_state(self, key: str, value: Any) -> None:
        """Persist a JSON-serializable value (canonical JSON) inside the current transaction."""
        from agent.decision import canonical_json

        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO state (key, json) VALUES (?, ?)", (key, canonical_json(value)))

    @property
    def last_marked(self) -> dt.date | None:
        """The last session whose NAV is marked (None before the first advance)."""
        v = self.get_state(_STATE_LAST_MARKED)
        return dt.date.fromisoformat(v) if v else None

    # ------------------------------------------------------------------ runs
    def has_run(self, slot: str) -> bool:
        """True once the slot's decision is committed: a rerun of the slot must change nothing."""
        row = self._conn.execute(
            "SELECT 1 FROM runs WHERE profile = ? AND slot = ?", (self.profile, str(slot))
        ).fetchone()
        return row is not None

    def run_for_slot(self, slot: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            f"SELECT {_RUN_COLS} FROM runs WHERE profile = ? AND slot = ?", (self.profile, str(slot))
        ).fetchone()
        return None if row is None else _run_dict(row, with_decision=True)

    def run(self, run_id: int) -> dict[str, Any] | None:
        row = self._conn.execute(f"SELECT {_RUN_COLS} FROM runs WHERE run_id = ?", (int(run_id),)).fetchone()
        return None if row is None else _run_dict(row, with_decision=True)

    def runs(self, *, after: int = 0, with_decision: bool = False) -> list[dict[str, Any]]:
        """Committed runs in order (run_id = decision-log seq), optionally only those with run_id > after."""
        rows = self._conn.execute(
            f"SELECT {_RUN_COLS} FROM runs WHERE run_id > ? ORDER BY run_id", (int(after),)
        ).fetchall()
        return [_run_dict(r, with_decision=with_decision) for r in rows]

    def run_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def last_run(self) -> dict[str, Any] | None:
        row = self._conn.execute(f"SELECT {_RUN_COLS} FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()
        return None if row is None else _run_dict(row, with_decision=False)

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
        from agent.decisionlog import chained_entry

        slot = str(slot)
        if decision.profile != self.profile:
            raise LedgerError(
                f"decision for profile {decision.profile!r} cannot go into the {self.profile!r} ledger"
            )
        if tuple(decision.tickers) != self.tickers:
            raise LedgerError("decision tickers do not match the ledger's universe")
        if decision.status not in _STATUSES:
            raise LedgerError(f"unknown decision status {decision.status!r}")
        asof = _to_date(decision.asof)
        with self.transaction() as c:
            if self.has_run(slot):
                raise LedgerError(f"slot {slot!r} is already committed (run it once: check has_run first)")
            prev = c.execute(
                "SELECT run_id, asof, record_hash FROM runs ORDER BY run_id DESC LIMIT 1"
            ).fetchone()
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
            _, chained = chained_entry(
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
            committed = _timestamp(committed_at) or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            c.execute(
                "INSERT INTO runs (run_id, profile, slot, asof, status, reason, exec_date, started_at, committed_at,"
                " agent_version, decision_json, record_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    self.profile,
                    slot,
                    asof.isoformat(),
                    decision.status,
                    str(decision.reason),
                    exec_iso,
                    _timestamp(started_at),
                    committed,
                    __version__,
                    record_json,
                    entry["hash"],
                ),
            )
            c.execute(
                "INSERT OR REPLACE INTO state (key, json) VALUES (?, ?)",
                (_STATE_STOP, canonical_json(decision.stop.to_dict())),
            )
            if decision.status == "rebalance":
                pending = c.execute(
                    "SELECT DISTINCT run_id, exec_date FROM orders WHERE status = 'pending' ORDER BY run_id"
                ).fetchall()
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
                    "INSERT INTO orders (run_id, ticker, target_weight, exec_date, status) VALUES (?, ?, ?, ?, 'pending')",
                    [(run_id, t, w, exec_iso) for t, w in targets],
                )
        return run_id

    def _check_exec_date(self, asof: dt.date, exec_date: dt.date | None) -> str:
        if exec_date is None:
            raise LedgerError("a 'rebalance' decision needs an exec_date")
        ex = _to_date(exec_date)
        if ex < asof:
            raise LedgerError(f"exec_date {ex} is before the decision date {asof}")
        lm = self.last_marked
        if lm is not None and ex < lm:
            raise LedgerError(f"exec_date {ex} is before the last marked session {lm}: the book has moved on")
        last_exec = self._conn.execute("SELECT MAX(exec_date) FROM executions").fetchone()[0]
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
        out.append(("cash", _r(max(0.0, 1.0 - float(w.sum())))))
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
                    _iso(asof) if asof else None,
                    _timestamp(started_at),
                    dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    str(reason),
                ),
            )

    # ------------------------------------------------------------------ advancing the book
    def advance(self, prices: pd.DataFrame, upto: dt.date) -> AdvanceResult:
        """Execute due orders at their exec close and mark NAV for every session in (last_marked, upto].

        `prices`: daily closes (tz-naive DatetimeIndex, a column per ticker; extra columns ignored); rows after
        `upto` are never read. A fresh ledger starts marking at the last session <= upto (or at the first
        pending exec session). A held ticker's missing close is forward-filled from its previous close and
        recorded as an event.
        """
        with self.transaction():
            return self._advance(prices, _to_date(upto))

    def _columns(self, prices: pd.DataFrame) -> Any:
        cols = prices.columns
        cached = self._col_cache
        if cached is not None and cached[0] is cols:
            return cached[1]
        idx = cols.get_indexer(list(self.tickers))
        self._col_cache = (cols, idx)
        return idx

    def _advance(self, prices: pd.DataFrame, upto: dt.date) -> AdvanceResult:
        import numpy as np

        c = self._conn
        index = prices.index
        if not index.is_monotonic_increasing or not index.is_unique:
            raise LedgerError("price index must be sorted and unique")
        vals = index.values
        if vals.size == 0:
            return AdvanceResult()
        if vals.dtype.kind != "M":  # dates as strings or objects: normalize once
            import pandas as pd

            try:
                vals = pd.DatetimeIndex(pd.to_datetime(index)).values
            except (TypeError, ValueError) as e:
                raise LedgerError(f"price index is not a date index ({e})") from None

        def pos(d: str, side: str) -> int:
            return int(np.searchsorted(vals, np.datetime64(d).astype(vals.dtype), side=side))

        hi = pos(upto.isoformat(), "right")  # rows < hi are <= upto
        state = dict(
            c.execute(
                "SELECT key, json FROM state WHERE key IN (?, ?)", (_STATE_LAST_MARKED, _STATE_LAST_PRICES)
            ).fetchall()
        )
        last_marked = json.loads(state[_STATE_LAST_MARKED]) if _STATE_LAST_MARKED in state else None
        if last_marked is not None and upto.isoformat() < last_marked:
            return AdvanceResult()
        lo = hi - 1 if last_marked is None else pos(last_marked, "right")
        # due orders, grouped by run, in exec order
        groups: list[tuple[int, int, str, np.ndarray]] = []  # (row, run_id, exec_date, weights)
        rows = c.execute(
            "SELECT run_id, exec_date, ticker, target_weight FROM orders WHERE status = 'pending' AND exec_date <= ?"
            " ORDER BY exec_date, run_id, order_id",
            (upto.isoformat(),),
        ).fetchall()
        by_run: dict[int, tuple[str, np.ndarray]] = {}
        for run_id, ex, ticker, w in rows:
            if run_id not in by_run:
                by_run[run_id] = (ex, np.zeros(len(self.tickers)))
            j = self._tpos.get(ticker)
            if j is not None:
                by_run[run_id][1][j] = w
        for run_id, (ex, w) in by_run.items():
            if last_marked is not None and ex < last_marked:
                raise LedgerError(f"pending orders of run {run_id} for {ex} predate the last marked session")
            e = pos(ex, "left")
            if e >= hi:  # no price row yet: stays pending
                continue
            if groups and groups[-1][0] == e:  # two runs due on one session: the newer supersedes
                old = groups.pop()[1]
                c.execute(
                    "UPDATE orders SET status = 'cancelled', cancelled_by = ? WHERE run_id = ? AND status = 'pending'",
                    (run_id, old),
                )
                detail = json.dumps({"superseded_by": run_id, "exec_date": by_run[old][0]}, sort_keys=True)
                c.execute(
                    "INSERT INTO events (date, kind, ticker, run_id, detail) VALUES (?, 'cancelled', NULL, ?, ?)",
                    (by_run[old][0], old, detail),
                )
            groups.append((e, run_id, ex, w))
        if groups:
            lo = min(lo, groups[0][0])
        if lo < 0 or lo >= hi:
            return AdvanceResult()

        n = len(self.tickers)
        colidx = self._columns(prices)
        arr = prices.to_numpy(dtype=float, copy=False)
        raw = np.full((hi - lo, n), np.nan)
        present = colidx >= 0
        if present.all():
            raw[:] = arr[lo:hi][:, colidx]
        elif present.any():
            raw[:, present] = arr[lo:hi][:, colidx[present]]
        # seed for the forward fill: the last close known at the previous mark
        if _STATE_LAST_PRICES in state:
            seed = np.array(
                [np.nan if v is None else v for v in json.loads(state[_STATE_LAST_PRICES])], dtype=float
            )
        else:
            seed = _last_valid(arr, colidx, lo, n)
        missing = np.isnan(raw)
        px = _ffill(raw, seed) if missing.any() else raw
        dates = np.datetime_as_string(vals[lo:hi], unit="D").tolist()

        shares = np.zeros(n)
        for t, s in c.execute("SELECT ticker, shares FROM positions"):
            j = self._tpos.get(t)
            if j is not None:
                shares[j] = s
        cash = float(c.execute("SELECT amount FROM cash WHERE id = 1").fetchone()[0])
        row = c.execute(
            "SELECT peak_nav FROM nav WHERE date < ? ORDER BY date DESC LIMIT 1", (dates[0],)
        ).fetchone()
        peak = float(row[0]) if row else -math.inf
        px0 = np.nan_to_num(px, nan=0.0)

        nav_rows: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        ffilled: list[tuple[dt.date, str]] = []
        executed: list[int] = []
        n_fills = 0
        total_cost = 0.0
        start = 0
        for e_abs, run_id, ex, w in [*groups, (hi, -1, "", None)]:
            e = e_abs - lo
            if e > start:
                peak = self._mark_block(px0[start:e], dates[start:e], shares, cash, peak, nav_rows)
                if missing[start:e].any():
                    self._note_ffill(missing[start:e], dates[start:e], px[start:e], shares, events, ffilled)
            if w is None:
                break
            before = shares
            shares, cash, nf, cost = self._execute(run_id, ex, dates[e], px[e], w, shares, cash, events)
            if missing[e].any():  # held before or after the fill: a stale close was used
                held = np.where(before != 0, before, shares)
                self._note_ffill(missing[e : e + 1], dates[e : e + 1], px[e : e + 1], held, events, ffilled)
            executed.append(run_id)
            n_fills += nf
            total_cost += cost
            peak = self._mark_block(px0[e : e + 1], dates[e : e + 1], shares, cash, peak, nav_rows)
            start = e + 1

        c.executemany(
            "INSERT OR REPLACE INTO nav (date, nav, cash, invested, peak_nav, drawdown) VALUES (?, ?, ?, ?, ?, ?)",
            nav_rows,
        )
        if events:
            c.executemany(
                "INSERT INTO events (date, kind, ticker, run_id, detail) VALUES (?, ?, ?, ?, ?)", events
            )
        new_last = dates[-1] if last_marked is None or dates[-1] > last_marked else last_marked
        last_px = [None if math.isnan(v) else v for v in px[-1].tolist()]
        c.executemany(
            "INSERT OR REPLACE INTO state (key, json) VALUES (?, ?)",
            [(_STATE_LAST_MARKED, json.dumps(new_last)), (_STATE_LAST_PRICES, json.dumps(last_px))],
        )
        last_nav = nav_rows[-1][1] if nav_rows else None
        return AdvanceResult(
            marked=len(nav_rows),
            first_marked=dt.date.fromisoformat(dates[0]),
            last_marked=dt.date.fromisoformat(dates[-1]),
            executed_runs=tuple(executed),
            n_fills=n_fills,
            costs=_r(total_cost),
            nav=last_nav,
            ffilled=tuple(ffilled),
            events=tuple(
                {"date": d, "kind": k, "ticker": t, "run_id": r, "detail": json.loads(x)}
                for d, k, t, r, x in events
            ),
        )

    @staticmethod
    def _mark_block(
        px0: np.ndarray,
        dates: list[str],
        shares: np.ndarray,
        cash: float,
        peak: float,
        out: list[tuple[Any, ...]],
    ) -> float:
        """NAV for a block of sessions with constant shares and cash: one vectorized pass, no per-row Python math."""
        import numpy as np

        invested = np.round((px0 * shares).sum(axis=1), DECIMALS) + 0.0
        nav = np.round(cash + invested, DECIMALS) + 0.0
        peaks = np.maximum.accumulate(np.concatenate(([peak], nav)))[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = np.where(peaks > 0, nav / peaks - 1.0, 0.0)
        dd = np.round(np.minimum(dd, 0.0), DECIMALS) + 0.0
        cash_r = _r(cash)
        out.extend(
            zip(
                dates,
                nav.tolist(),
                [cash_r] * len(dates),
                invested.tolist(),
                peaks.tolist(),
                dd.tolist(),
                strict=True,
            )
        )
        return float(peaks[-1])

    def _note_ffill(
        self,
        missing: np.ndarray,
        dates: list[str],
        px: np.ndarray,
        shares: np.ndarray,
        events: list[tuple[Any, ...]],
        ffilled: list[tuple[dt.date, str]],
    ) -> None:
        import numpy as np

        held = missing & (shares != 0)
        for i, j in zip(*np.nonzero(held), strict=True):
            d, t = dates[int(i)], self.tickers[int(j)]
            p = float(px[i, j])
            detail = {"price": None if math.isnan(p) else p, "reason": "missing close: previous close used"}
            events.append((d, "ffill", t, None, json.dumps(detail, sort_keys=True)))
            ffilled.append((dt.date.fromisoformat(d), t))

    def _execute(
        self,
        run_id: int,
        exec_date: str,
        session: str,
        px: np.ndarray,
        w: np.ndarray,
        shares: np.ndarray,
        cash: float,
        events: list[tuple[Any, ...]],
    ) -> tuple[np.ndarray, float, int, float]:
        """Fill one run's orders at `session`'s closes. Returns (shares, cash, n_fills, cost)."""
        import numpy as np

        from agent.costs import TRADE_EPS, CostModel
        from agent.execution import plan_rebalance

        c = self._conn
        cm = self.cost_model
        if session != exec_date:
            events.append(
                (
                    session,
                    "exec_shift",
                    None,
                    run_id,
                    json.dumps({"exec_date": exec_date, "filled_on": session}),
                )
            )
        priced = np.isfinite(px) & (px > 0)
        for j in np.nonzero(~priced & (w > 0))[0].tolist():
            detail = {"reason": "no price: target kept in cash", "target_weight": float(w[j])}
            events.append((session, "unpriced", self.tickers[j], run_id, json.dumps(detail, sort_keys=True)))
        w = np.where(priced, w, 0.0)
        p = np.where(priced, px, 0.0)
        holdings = shares * p
        value = cash + float(holdings.sum())
        plan = plan_rebalance(value, holdings, w, cm, self.execution_rules)
        new_notional = plan.notional
        if plan.notes:
            detail = {"notes": list(plan.notes), "kept": [self.tickers[j] for j in np.flatnonzero(plan.kept)]}
            events.append((session, "exec_rules", None, run_id, json.dumps(detail, sort_keys=True)))
        with np.errstate(divide="ignore", invalid="ignore"):
            target = np.where(priced, np.floor(new_notional / np.where(priced, p, 1.0) * 1e10) / 1e10, shares)
        target = np.maximum(target, 0.0) + 0.0
        target = np.where(plan.kept, shares, target)  # kept as held: exactly the same shares, no dust fill

        def settle(target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
            d_sh = target - shares
            notional = np.round(d_sh * p, DECIMALS) + 0.0
            tiny = np.abs(notional) <= TRADE_EPS
            target = np.where(tiny, shares, target)
            d_sh = np.where(tiny, 0.0, np.round(d_sh, DECIMALS)) + 0.0
            notional = np.where(tiny, 0.0, notional) + 0.0
            costs = np.round(per_fill_cost(notional), DECIMALS) + 0.0
            new_cash = _r(cash - float(notional.sum()) - float(costs.sum()))
            return target, d_sh, notional, costs, new_cash

        def per_fill_cost(notional: np.ndarray) -> np.ndarray:
            if type(cm) is CostModel:  # vectorized, the same arithmetic as CostModel.cost on one fill
                a = np.abs(notional)
                return cm.rate * a + cm.fixed * (a > TRADE_EPS)
            return np.array([cm.cost(np.array([x])) if x != 0.0 else 0.0 for x in notional.tolist()])

        target, d_sh, notional, costs, new_cash = settle(target)
        for _ in range(8):  # float dust only: trim the largest position by a few 1e-10 shares
            if new_cash >= 0.0 or not np.any(target * p > 0):
                break
            j = int(np.argmax(target * p))
            cut = math.ceil((-new_cash * 1.01) / p[j] * 1e10 + 1) / 1e10
            target = target.copy()
            target[j] = max(0.0, target[j] - cut)
            target, d_sh, notional, costs, new_cash = settle(target)
        if new_cash < 0.0:
            raise LedgerError(f"fill for run {run_id} would overdraw cash by {-new_cash}")

        traded = np.nonzero(notional)[0]
        c.executemany(
            "INSERT INTO fills (run_id, exec_date, ticker, shares, price, notional, cost) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    session,
                    self.tickers[j],
                    float(d_sh[j]),
                    _r(p[j]),
                    float(notional[j]),
                    float(costs[j]),
                )
                for j in traded.tolist()
            ],
        )
        new_shares = np.round(target, DECIMALS) + 0.0
        c.executemany(
            "UPDATE positions SET shares = ? WHERE ticker = ?",
            [(float(new_shares[j]), self.tickers[j]) for j in traded.tolist()],
        )
        c.execute("UPDATE cash SET amount = ? WHERE id = 1", (new_cash,))
        c.execute(
            "UPDATE orders SET status = 'filled', filled_on = ? WHERE run_id = ? AND status = 'pending'",
            (session, run_id),
        )
        gross = _r(float(np.abs(notional).sum()))
        cost = _r(float(costs.sum()))
        c.execute(
            "INSERT INTO executions (run_id, exec_date, nav_before, traded, turnover, cost, n_trades)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, session, _r(value), gross, _r(gross / value) if value > 0 else 0.0, cost, len(traded)),
        )
        shares_out = shares.copy()
        shares_out[traded] = new_shares[traded]
        return shares_out, new_cash, len(traded), cost

    # ------------------------------------------------------------------ the book
    def portfolio_state(self, asof: dt.date | None = None) -> PortfolioState:
        """The book at the last marked session <= asof: drifted weights, NAV, peak, stop state, last rebalance.

        Call :meth:`advance` up to `asof` first; a book already marked past `asof` cannot describe it.
        """
        import numpy as np

        from agent.decision import PortfolioState, StopState

        c = self._conn
        asof_d = _to_date(asof) if asof is not None else None
        lm = self.last_marked
        stop_raw = self.get_state(_STATE_STOP)
        stop = StopState.from_dict(stop_raw) if stop_raw else StopState(peak_nav=self.initial_capital)
        if lm is None:
            base = PortfolioState.initial(self.tickers, self.initial_capital)
            return PortfolioState(
                asof=asof_d,
                tickers=self.tickers,
                weights=base.weights,
                nav=base.nav,
                peak_nav=base.peak_nav,
                stop=stop,
            )
        if asof_d is not None and asof_d < lm:
            raise LedgerError(
                f"the book is marked to {lm}, after asof {asof_d}: cannot describe an earlier state"
            )
        nav, peak = c.execute("SELECT nav, peak_nav FROM nav WHERE date = ?", (lm.isoformat(),)).fetchone()
        px = np.array([np.nan if v is None else v for v in self.get_state(_STATE_LAST_PRICES)], dtype=float)
        shares = self._shares()
        values = np.where(shares != 0, shares * np.nan_to_num(px), 0.0)
        weights = np.round(values / nav, DECIMALS) + 0.0 if nav > 0 else np.zeros(len(self.tickers))
        last_reb = c.execute("SELECT MAX(exec_date) FROM executions").fetchone()[0]
        since = 0
        if last_reb is not None:
            since = int(
                c.execute(
                    "SELECT COUNT(*) FROM nav WHERE date > ? AND date <= ?",
                    (last_reb, (asof_d or lm).isoformat()),
                ).fetchone()[0]
            )
        return PortfolioState(
            asof=asof_d or lm,
            tickers=self.tickers,
            weights=weights,
            nav=float(nav),
            peak_nav=float(peak),
            stop=stop,
            last_rebalance=dt.date.fromisoformat(last_reb) if last_reb else None,
            sessions_since_rebalance=since,
        )

    def _shares(self) -> np.ndarray:
        import numpy as np

        out = np.zeros(len(self.tickers))
        for t, s in self._conn.execute("SELECT ticker, shares FROM positions"):
            j = self._tpos.get(t)
            if j is not None:
                out[j] = s
        return out

    # ------------------------------------------------------------------ readers
    def positions(self) -> dict[str, float]:
        """Current shares per ticker, in universe order (zeros included)."""
        return dict(zip(self.tickers, self._shares().tolist(), strict=True))

    def cash(self) -> float:
        return float(self._conn.execute("SELECT amount FROM cash WHERE id = 1").fetchone()[0])

    def pending_orders(self) -> list[dict[str, Any]]:
        return self.orders(status="pending")

    def orders(self, *, status: str | None = None, run_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT order_id, run_id, ticker, target_weight, exec_date, status, filled_on, cancelled_by FROM orders"
        cond, args = [], []
        if status is not None:
            cond.append("status = ?")
            args.append(status)
        if run_id is not None:
            cond.append("run_id = ?")
            args.append(int(run_id))
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        keys = (
            "order_id",
            "run_id",
            "ticker",
            "target_weight",
            "exec_date",
            "status",
            "filled_on",
            "cancelled_by",
        )
        return [dict(zip(keys, r, strict=True)) for r in self._conn.execute(sql + " ORDER BY order_id", args)]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT event_id, date, kind, ticker, run_id, detail FROM events"
        rows = self._conn.execute(
            sql + (" WHERE kind = ?" if kind else "") + " ORDER BY event_id", (kind,) if kind else ()
        )
        return [
            {"event_id": i, "date": d, "kind": k, "ticker": t, "run_id": r, "detail": json.loads(x)}
            for i, d, k, t, r, x in rows
        ]

    def failures(self) -> list[dict[str, Any]]:
        keys = ("failure_id", "slot", "asof", "started_at", "failed_at", "reason")
        rows = self._conn.execute(f"SELECT {', '.join(keys)} FROM failures ORDER BY failure_id")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def nav_frame(self) -> pd.DataFrame:
        """Daily book: index `date`, columns nav, cash, invested, peak, drawdown (non-positive fraction)."""
        rows = self._conn.execute(
            "SELECT date, nav, cash, invested, peak_nav, drawdown FROM nav ORDER BY date"
        ).fetchall()
        return _frame(rows, ["date", "nav", "cash", "invested", "peak", "drawdown"], "date")

    def fills_frame(self) -> pd.DataFrame:
        """One row per fill: run_id, exec_date, ticker, shares (signed), price, notional (signed), cost."""
        rows = self._conn.execute(
            "SELECT run_id, exec_date, ticker, shares, price, notional, cost FROM fills ORDER BY exec_date, fill_id"
        ).fetchall()
        df = _frame(rows, ["run_id", "exec_date", "ticker", "shares", "price", "notional", "cost"], None)
        return df

    def executions_frame(self) -> pd.DataFrame:
        """One row per execution: run_id, exec_date, nav_before, traded, turnover, cost, n_trades."""
        rows = self._conn.execute(
            "SELECT run_id, exec_date, nav_before, traded, turnover, cost, n_trades FROM executions ORDER BY exec_date"
        ).fetchall()
        return _frame(
            rows, ["run_id", "exec_date", "nav_before", "traded", "turnover", "cost", "n_trades"], None
        )


_RUN_COLS = (
    "run_id, profile, slot, asof, status, reason, exec_date, started_at, committed_at, agent_version, record_hash,"
    " decision_json"
)
_RUN_KEYS = (
    "run_id",
    "profile",
    "slot",
    "asof",
    "status",
    "reason",
    "exec_date",
    "started_at",
    "committed_at",
    "agent_version",
    "record_hash",
    "decision_json",
)


def _run_dict(row: tuple[Any, ...], *, with_decision: bool) -> dict[str, Any]:
    d = dict(zip(_RUN_KEYS, row, strict=True))
    if not with_decision:
        d.pop("decision_json")
    return d


def _frame(rows: list[tuple[Any, ...]], columns: list[str], index: str | None) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame.from_records(rows, columns=columns)
    if df.empty:
        df = df.astype({c: "float64" for c in columns if c not in ("date", "exec_date", "ticker")})
    for col in ("date", "exec_date"):
        if col in df.columns:
            df[col] = pd.to_datetime(df[col], format="%Y-%m-%d")
    if index is not None:
        df = df.set_index(index)
    return df


def _last_valid(arr: np.ndarray, colidx: np.ndarray, lo: int, n: int) -> np.ndarray:
    """Per ticker, the last non-NaN close in rows before `lo` (the ffill seed for a fresh ledger)."""
    import numpy as np

    seed = np.full(n, np.nan)
    if lo <= 0:
        return seed
    for j, k in enumerate(colidx.tolist()):
        if k < 0:
            continue
        col = arr[:lo, k]
        ok = np.nonzero(~np.isnan(col))[0]
        if ok.size:
            seed[j] = col[ok[-1]]
    return seed


def _ffill(raw: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs down each column, starting from `seed` (the previous close)."""
    import numpy as np

    stacked = np.vstack([seed[None, :], raw])
    rows = np.where(np.isnan(stacked), 0, np.arange(stacked.shape[0])[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    return stacked[rows, np.arange(stacked.shape[1])][1:]
