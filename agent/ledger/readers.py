"""Reading a ledger: the queries both the writer and the read-only reader share, and the read-only reader itself.

Why a separate reader: ``agent status`` and ``agent audit`` inspect whatever a state directory holds (a live
daemon's book, a backtest's output for another profile) and must change nothing: :func:`open_reader` opens the
file with a ``mode=ro`` URI, writes no pragma, never creates the schema, and takes profile, universe and capital
from the file's own ``meta`` table. It imports neither the writer nor the scheduler.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import LedgerError
from agent.ledger.schema import (
    DECIMALS,
    STATE_LAST_MARKED,
    STATE_LAST_PRICES,
    STATE_STOP,
    check_header,
    to_date,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from agent.decision import PortfolioState, StopState
    from agent.ledger.memo import BookMemo

__all__ = ["LedgerReader", "LedgerReads", "open_reader"]


class LedgerReads:
    """Every query on a ledger connection (mixin): runs, the book, positions, orders, events, frames."""

    path: Path
    profile: str
    tickers: tuple[str, ...]
    initial_capital: float
    _conn: sqlite3.Connection
    _tpos: dict[str, int]
    _memo: BookMemo | None = None  # the writer's book between its own commits (agent.ledger.memo)

    def close(self) -> None:
        self._conn.close()

    def _memo_now(self) -> BookMemo | None:
        """The in-memory book, inside the writer's transaction only (loaded from the file when absent); None
        outside a transaction and always for the read-only reader: those read SQLite."""
        if not getattr(self, "_depth", 0):
            return None
        if self._memo is None:
            from agent.ledger.memo import load_memo

            self._memo = load_memo(self._conn, self._tpos, self._last_run_sql())
        return self._memo

    def get_state(self, key: str, default: Any = None) -> Any:
        """A JSON value persisted with :meth:`set_state` (engine caches, the StopState, ...)."""
        row = self._conn.execute("SELECT json FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    @property
    def last_marked(self) -> dt.date | None:
        """The last session whose NAV is marked (None before the first advance)."""
        v = self.get_state(STATE_LAST_MARKED)
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
        cols = _RUN_COLS if with_decision else _RUN_COLS_NO_RECORD
        rows = self._conn.execute(
            f"SELECT {cols} FROM runs WHERE run_id > ? ORDER BY run_id", (int(after),)
        ).fetchall()
        return [_run_dict(r, with_decision=with_decision) for r in rows]

    def run_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def last_run(self) -> dict[str, Any] | None:
        m = self._memo_now()
        if m is not None:
            return None if m.last_run is None else dict(m.last_run)
        return self._last_run_sql()

    def _last_run_sql(self) -> dict[str, Any] | None:
        row = self._conn.execute(
            f"SELECT {_RUN_COLS_NO_RECORD} FROM runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _run_dict(row, with_decision=False)

    # ------------------------------------------------------------------ the book
    def portfolio_state(self, asof: dt.date | None = None) -> PortfolioState:
        """The book at the last marked session <= asof: drifted weights, NAV, peak, stop state, last rebalance.

        Call :meth:`advance` up to `asof` first; a book already marked past `asof` cannot describe it.
        """
        import numpy as np

        from agent.decision import PortfolioState, StopState

        c = self._conn
        asof_d = to_date(asof) if asof is not None else None
        m = self._memo_now()
        if m is not None:
            lm_raw, lp, stop_json = m.last_marked, m.last_prices, m.stop_json
        else:
            state = dict(
                c.execute(
                    "SELECT key, json FROM state WHERE key IN (?, ?, ?)",
                    (STATE_LAST_MARKED, STATE_LAST_PRICES, STATE_STOP),
                ).fetchall()
            )
            lm_raw = json.loads(state[STATE_LAST_MARKED]) if STATE_LAST_MARKED in state else None
            lp = json.loads(state.get(STATE_LAST_PRICES) or "null")
            stop_json = state.get(STATE_STOP)
        lm = dt.date.fromisoformat(lm_raw) if lm_raw else None
        stop_raw = json.loads(stop_json) if stop_json is not None else None
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
        upto = (asof_d or lm).isoformat()
        if m is not None and m.last_nav is not None and m.last_nav[0] == lm_raw:
            nav, peak = m.last_nav[1], m.last_nav[2]
        else:
            nav, peak = c.execute("SELECT nav, peak_nav FROM nav WHERE date = ?", (lm.isoformat(),)).fetchone()
        px = np.array([np.nan if v is None else float(v) for v in lp or ()], dtype=np.float64)
        shares = m.shares if m is not None else self._shares()
        values = np.where(shares != 0, shares * (px if np.isfinite(px).all() else np.nan_to_num(px)), 0.0)
        weights = np.round(values / nav, DECIMALS) + 0.0 if nav > 0 else np.zeros(len(self.tickers))
        if m is not None and (m.last_exec is None or m.since is not None):
            last_reb, since = m.last_exec, (m.since or 0) if m.last_exec is not None else 0
        else:
            # the last execution and the sessions marked since it (none executed yet: 0), in one query
            last_reb, since = c.execute(
                "SELECT e.d, (SELECT COUNT(*) FROM nav WHERE date > e.d AND date <= ?)"
                " FROM (SELECT MAX(exec_date) AS d FROM executions) AS e",
                (upto,),
            ).fetchone()
            if m is not None:
                m.since = int(since or 0)
        since = int(since or 0)
        return PortfolioState(
            asof=asof_d or lm,
            tickers=self.tickers,
            weights=weights,
            nav=float(nav),
            peak_nav=float(peak),
            stop=stop,
            last_rebalance=dt.date.fromisoformat(last_reb) if last_reb else None,
            sessions_since_rebalance=since,
            peak_since_reset=self._peak_since_reset(stop, asof_d or lm, (lm.isoformat(), float(peak))),
        )

    def _peak_since_reset(
        self, stop: StopState, upto: dt.date, last: tuple[str, float] | None = None
    ) -> float | None:
        """The daily peak NAV from the drawdown stop's last re-entry (its transition 'YYYY-MM-DD:…->reentered').

        `last`: (the last marked session, its running peak), with `upto` on or after it. The running peak is the
        maximum NAV of every session so far (``peak_nav``), so when it rose above the peak before the re-entry
        it is the peak since the re-entry: two indexed lookups instead of a scan of every session since."""
        resets = [t.split(":", 1)[0] for t in stop.transitions if "->reentered" in t]
        if not resets:
            return None
        if last is not None and resets[-1] <= last[0] and upto.isoformat() >= last[0]:
            row = self._conn.execute(
                "SELECT peak_nav FROM nav WHERE date < ? ORDER BY date DESC LIMIT 1", (resets[-1],)
            ).fetchone()
            if row is None or last[1] > float(row[0]):
                return last[1]
        row = self._conn.execute(
            "SELECT MAX(nav) FROM nav WHERE date >= ? AND date <= ?", (resets[-1], upto.isoformat())
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _shares(self) -> np.ndarray:
        import numpy as np

        out = np.zeros(len(self.tickers))
        for t, s in self._conn.execute("SELECT ticker, shares FROM positions"):
            j = self._tpos.get(t)
            if j is not None:
                out[j] = s
        return out

    # ------------------------------------------------------------------ tables
    def positions(self) -> dict[str, float]:
        """Current shares per ticker, in universe order (zeros included)."""
        return dict(zip(self.tickers, self._shares().tolist(), strict=True))

    def cash(self) -> float:
        return float(self._conn.execute("SELECT amount FROM cash WHERE id = 1").fetchone()[0])

    def pending_orders(self) -> list[dict[str, Any]]:
        return self.orders(status="pending")

    def orders(self, *, status: str | None = None, run_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT order_id, run_id, ticker, target_weight, exec_date, status, filled_on, cancelled_by FROM orders"
        cond: list[str] = []
        args: list[Any] = []
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


class LedgerReader(LedgerReads):
    """A read-only view of a ledger file (``mode=ro``): identity from the file's ``meta``; no writes at all."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, timeout=30.0, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise LedgerError(f"cannot open ledger {self.path} read-only: {e}") from None
        try:
            check_header(self._conn, self.path)
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as e:
            self._conn.close()
            raise LedgerError(f"{self.path} is not a rebalance-agent ledger ({e})") from None
        except BaseException:
            self._conn.close()
            raise
        self.profile = str(meta.get("profile", ""))
        self.tickers = tuple(str(t) for t in json.loads(meta.get("tickers", "[]")))
        self.initial_capital = float(meta.get("initial_capital", "1"))
        self._tpos = {t: i for i, t in enumerate(self.tickers)}

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_reader(path: Path | str) -> LedgerReader | None:
    """A read-only reader of the ledger at `path`, or None when there is none yet.

    None also for a file that exists but holds no table yet: a first run is creating the ledger right now, and
    a caller polling it (status, tests) must read that as "no runs yet", not as a foreign file.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as e:
        raise LedgerError(f"{path} is not a rebalance-agent ledger ({e})") from None
    if "meta" not in tables:
        if not tables:
            return None
        raise LedgerError(f"{path} is not a rebalance-agent ledger (foreign SQLite file)")
    return LedgerReader(path)


_RUN_COLS = (
    "run_id, profile, slot, asof, status, reason, exec_date, started_at, committed_at, agent_version, record_hash,"
    " decision_json"
)
# the same columns without reading the ~13 kB record (a NULL in its place, dropped by _run_dict)
_RUN_COLS_NO_RECORD = _RUN_COLS.replace("decision_json", "NULL")
RUN_KEYS = (
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
    d = dict(zip(RUN_KEYS, row, strict=True))
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
