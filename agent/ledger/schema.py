"""The ledger's SQLite schema, its constants and the small value helpers every ledger module shares.

Why its own module: the read-only reader (``status``, ``audit``) must recognise a ledger file (application id,
schema version, meta) without the writer's code, and the writer must create exactly the schema the reader
expects. Changing the schema means bumping :data:`SCHEMA_VERSION` here and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from agent.errors import LedgerError, LedgerUnusableError

__all__ = [
    "APPLICATION_ID",
    "DECIMALS",
    "SCHEMA_VERSION",
    "STATE_EXEC_RISK",
    "STATE_LAST_MARKED",
    "STATE_LAST_PRICES",
    "STATE_STOP",
    "STATUSES",
    "check_header",
    "create_schema",
    "iso",
    "r10",
    "timestamp",
    "to_date",
]

SCHEMA_VERSION = 1
APPLICATION_ID = 0x52424C47  # "RBLG": marks the SQLite file as a rebalance-agent ledger
DECIMALS = 10  # shares, prices, notionals, costs, cash and NAV are rounded to this many decimals
STATE_LAST_MARKED = "ledger.last_marked"
STATE_LAST_PRICES = "ledger.last_prices"
STATE_STOP = "stop"
# + run_id: the Σ and VaR limit a pending rebalance is executed under (agent.decision.ExecRisk), kept in `state`
# until its orders fill or are cancelled; a ledger written before it existed simply has none (no VaR re-check)
STATE_EXEC_RISK = "orders.exec_risk."
STATUSES = ("rebalance", "hold", "no_trade")

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
    kind TEXT NOT NULL,                    -- ffill | exec_shift | unpriced | cancelled | corporate_action
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


def r10(x: float) -> float:
    """Round a scalar to DECIMALS and drop negative zeros."""
    return round(float(x), DECIMALS) + 0.0


def iso(d: Any) -> str:
    return to_date(d).isoformat()


def to_date(d: Any) -> dt.date:
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    if isinstance(d, str):
        return dt.date.fromisoformat(d[:10])
    if hasattr(d, "date"):  # pandas.Timestamp, numpy datetime64 via pandas
        return d.date()
    raise LedgerError(f"not a date: {d!r}")


def timestamp(t: Any) -> str | None:
    if t is None:
        return None
    if isinstance(t, dt.datetime | dt.date):
        return t.isoformat()
    return str(t)


def check_header(c: sqlite3.Connection, path: Path) -> bool:
    """Validate an existing ledger file's identity, version and integrity; True when the file is still empty.

    Read-only: it runs only SELECTs and read pragmas, so the reader can call it on a ``mode=ro`` connection.
    """
    try:
        app_id = c.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise LedgerUnusableError(f"{path} is not a ledger database ({e})") from None
    if not tables and app_id == 0:
        return True
    if app_id != APPLICATION_ID or "meta" not in tables:
        raise LedgerUnusableError(
            f"{path} is not a rebalance-agent ledger (foreign SQLite file)",
            hint="point --state-dir at the agent's state directory or move the file away",
        )
    version = c.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise LedgerUnusableError(f"{path} has ledger schema version {version}; this agent reads {SCHEMA_VERSION}")
    try:
        check = c.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise LedgerUnusableError(f"ledger {path} is corrupt ({e})") from None
    if check != "ok":
        raise LedgerUnusableError(f"ledger {path} is corrupt (quick_check: {check})")
    return False


def create_schema(
    c: sqlite3.Connection, *, profile: str, tickers: tuple[str, ...], initial_capital: float
) -> None:
    """Create the tables and the opening book (all cash). Call inside a write transaction."""
    from agent import __version__

    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            c.execute(stmt)
    c.execute(f"PRAGMA application_id={APPLICATION_ID}")
    c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    c.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [
            ("schema_version", str(SCHEMA_VERSION)),
            ("profile", profile),
            ("tickers", json.dumps(list(tickers))),
            ("initial_capital", repr(float(initial_capital))),
            ("created_by", f"rebalance-agent {__version__}"),
        ],
    )
    c.executemany("INSERT INTO positions (ticker, shares) VALUES (?, 0.0)", [(t,) for t in tickers])
    c.execute("INSERT INTO cash (id, amount) VALUES (1, ?)", (float(initial_capital),))
