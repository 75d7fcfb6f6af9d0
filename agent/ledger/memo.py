"""The writer's book between its own commits, kept in memory: what a slot reads back is what it last wrote.

Why. Every slot used to read the book back from SQLite (the state rows, positions, cash, the last NAV row, the
last run, the last execution, the pending runs: ~12 queries and their JSON) although the same connection had
written those values one slot earlier. :class:`BookMemo` holds exactly those values; the writer updates it
right after its own writes, inside the same transaction, and serves reads from it.

Why it cannot drift from the file:
- it is loaded from SQLite (:func:`load_memo`, the same queries the readers run), so a new process — ``run
  --once``, a restarted daemon — starts from the file, and every read returns what a fresh reader would;
- it is used only inside a write transaction (the write lock held: nobody else can commit meanwhile);
- at every ``BEGIN IMMEDIATE`` the connection's ``PRAGMA data_version`` is compared with the one the memo was
  valid for: a commit by any other connection (another process, the skill store) drops it;
- any rollback (of the transaction or of a nested savepoint) drops it, and so does any write that does not
  update it (a corporate-action rebase, ``set_state`` of a book key): the next read reloads from the file.
Only reads change: every statement that writes is the same, with the same values, in the same order.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.ledger.schema import STATE_LAST_MARKED, STATE_LAST_PRICES, STATE_STOP

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BookMemo", "load_memo"]


@dataclass
class BookMemo:
    """The values the slot path reads back, as SQLite holds them after this connection's last write."""

    last_marked: str | None  # state 'ledger.last_marked' (decoded)
    last_prices: list[float | None] | None  # state 'ledger.last_prices' (decoded)
    stop_json: str | None  # state 'stop', as stored
    shares: np.ndarray  # positions, in universe order
    cash: float
    last_nav: tuple[str, float, float] | None  # (date, nav, peak_nav) of the nav row at last_marked
    last_exec: str | None  # MAX(exec_date) of executions
    since: int | None  # nav rows after last_exec up to last_marked (None: count them in SQLite)
    last_run: dict[str, Any] | None  # the last run's columns, as LedgerReads.last_run returns them
    pending: list[tuple[int, str]]  # (run_id, exec_date) of the runs with pending orders, by run_id


def load_memo(c: sqlite3.Connection, tpos: dict[str, int], last_run: dict[str, Any] | None) -> BookMemo:
    """The memo from the file (the writer's own connection, inside its transaction)."""
    import numpy as np

    state = dict(
        c.execute(
            "SELECT key, json FROM state WHERE key IN (?, ?, ?)",
            (STATE_LAST_MARKED, STATE_LAST_PRICES, STATE_STOP),
        ).fetchall()
    )
    lm = json.loads(state[STATE_LAST_MARKED]) if STATE_LAST_MARKED in state else None
    lp = json.loads(state[STATE_LAST_PRICES]) if STATE_LAST_PRICES in state else None
    shares = np.zeros(len(tpos))
    for t, s in c.execute("SELECT ticker, shares FROM positions"):
        j = tpos.get(t)
        if j is not None:
            shares[j] = s
    cash = float(c.execute("SELECT amount FROM cash WHERE id = 1").fetchone()[0])
    last_nav = None
    if lm:
        row = c.execute("SELECT nav, peak_nav FROM nav WHERE date = ?", (lm,)).fetchone()
        if row is not None:
            last_nav = (str(lm), float(row[0]), float(row[1]))
    last_exec = c.execute("SELECT MAX(exec_date) FROM executions").fetchone()[0]
    pending = [
        (int(r), str(e))
        for r, e in c.execute(
            "SELECT DISTINCT run_id, exec_date FROM orders WHERE status = 'pending' ORDER BY run_id"
        ).fetchall()
    ]
    return BookMemo(
        last_marked=lm,
        last_prices=lp,
        stop_json=state.get(STATE_STOP),
        shares=shares,
        cash=cash,
        last_nav=last_nav,
        last_exec=last_exec,
        since=None,
        last_run=last_run,
        pending=pending,
    )
