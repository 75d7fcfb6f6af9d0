"""Read a paper book (ledger.sqlite of a state directory) READ-ONLY, as plain frames and records.

Why not `agent.ledger.Ledger`: opening a Ledger may create or migrate the file; a report or a metrics exporter
must never change the book it describes. SQLite is opened with `mode=ro`, so a write is impossible here.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Book", "read_book"]


@dataclass
class Book:
    """What the ledger holds: daily NAV, runs (with their decision records), executions, fills, failures."""

    path: Path
    meta: dict[str, str]
    nav: pd.DataFrame  # index date; nav, cash, invested, peak, drawdown
    runs: list[dict[str, Any]]  # in run order; "decision" is the parsed decision record
    executions: pd.DataFrame  # run_id, exec_date, nav_before, traded, turnover, cost, n_trades
    fills: pd.DataFrame  # run_id, exec_date, ticker, shares, price, notional, cost
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def profile(self) -> str:
        return self.meta.get("profile", "") or (str(self.runs[-1].get("profile")) if self.runs else "")

    @property
    def initial_capital(self) -> float | None:
        v = self.meta.get("initial_capital")
        try:
            return float(v) if v is not None else None
        except ValueError:
            return None


def _rows(con: sqlite3.Connection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def read_book(state_dir: Path | str) -> Book:
    """The book of `<state_dir>/ledger.sqlite` (or of a ledger file given directly); DataError when unreadable."""
    import pandas as pd

    p = Path(state_dir).expanduser()
    path = p if p.suffix == ".sqlite" else p / "ledger.sqlite"
    if not path.is_file():
        raise DataError(f"no ledger at {path}", hint="give the state directory `agent run` writes to")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise DataError(f"cannot open {path} read-only: {e}") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        needed = {"meta", "runs", "nav", "executions", "fills"}
        if not needed <= tables:
            raise DataError(
                f"{path} is not an agent ledger (missing tables: {', '.join(sorted(needed - tables))})"
            )
        meta = {str(k): str(v) for k, v in con.execute("SELECT key, value FROM meta").fetchall()}
        nav_rows = _rows(
            con, "SELECT date, nav, cash, invested, peak_nav AS peak, drawdown FROM nav ORDER BY date"
        )
        runs = _rows(
            con,
            "SELECT run_id, profile, slot, asof, status, reason, exec_date, started_at, committed_at, "
            "decision_json FROM runs ORDER BY run_id",
        )
        ex = _rows(
            con,
            "SELECT run_id, exec_date, nav_before, traded, turnover, cost, n_trades FROM executions ORDER BY exec_date",
        )
        fills = _rows(
            con,
            "SELECT run_id, exec_date, ticker, shares, price, notional, cost FROM fills ORDER BY exec_date, fill_id",
        )
        failures = (
            _rows(con, "SELECT slot, asof, started_at, failed_at, reason FROM failures ORDER BY failure_id")
            if "failures" in tables
            else []
        )
    except sqlite3.Error as e:
        raise DataError(f"cannot read {path}: {e}") from None
    finally:
        con.close()
    for r in runs:
        try:
            r["decision"] = json.loads(r.pop("decision_json") or "{}")
        except json.JSONDecodeError:
            r["decision"] = {}
    nav = pd.DataFrame(nav_rows, columns=["date", "nav", "cash", "invested", "peak", "drawdown"])
    nav.index = pd.DatetimeIndex(pd.to_datetime(nav.pop("date")), name="date")
    return Book(
        path=path,
        meta=meta,
        nav=nav.astype("float64"),
        runs=runs,
        executions=pd.DataFrame(
            ex, columns=["run_id", "exec_date", "nav_before", "traded", "turnover", "cost", "n_trades"]
        ),
        fills=pd.DataFrame(
            fills, columns=["run_id", "exec_date", "ticker", "shares", "price", "notional", "cost"]
        ),
        failures=failures,
    )
