"""The paper broker shared by the backtest and the daemon: one SQLite file per (profile, universe).

:class:`Ledger` is the writer: it opens (or creates) the file, checks that it belongs to this profile and
universe, and composes the mixins that do the work — :mod:`agent.ledger.book` (fills and NAV marking),
:mod:`agent.ledger.runs` (decisions, orders, failures), :mod:`agent.ledger.tx` (transactions) and
:mod:`agent.ledger.readers` (every query). Readers that must not write use :func:`agent.ledger.open_reader`.

Crash safety and determinism. Every write happens inside :meth:`Ledger.transaction` (``BEGIN IMMEDIATE`` …
``COMMIT``, ``ROLLBACK`` on any exception, nested calls become savepoints), so a run's advance, decision and
orders commit together or not at all. Only the wall-clock columns (``started_at``, ``committed_at``) differ
between identical runs; ``committed_at`` can be passed in for byte-identical replays.

Durability: ``durable=True`` (daemon) uses WAL + ``synchronous=FULL``; ``durable=False`` (backtest) uses WAL +
``synchronous=OFF``, and the backtest commits once per :data:`agent.runner.REPLAY_COMMIT_EVERY` slots
(:func:`agent.runner.replay_in_batches`: each slot's transaction nests as a savepoint, so the rows are the same;
a killed replay is rerun from an empty ledger). Nothing else differs: the same code writes the same rows.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import LedgerError
from agent.ledger.book import LedgerBook
from agent.ledger.runs import LedgerRuns
from agent.ledger.schema import check_header, create_schema

if TYPE_CHECKING:
    from agent.costs import CostModel
    from agent.execution import ExecutionRules

__all__ = ["Ledger"]


class Ledger(LedgerBook, LedgerRuns):
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

    def _open(self, initial_capital: float) -> None:
        c = self._conn
        fresh = check_header(c, self.path)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'OFF'}")
        if fresh:
            with self.transaction() as tc:
                create_schema(tc, profile=self.profile, tickers=self.tickers, initial_capital=initial_capital)
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

    def pragmas(self) -> dict[str, Any]:
        """The connection's journal mode and synchronous level (0 OFF, 1 NORMAL, 2 FULL), for checks and status."""
        c = self._conn
        return {
            "journal_mode": c.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": int(c.execute("PRAGMA synchronous").fetchone()[0]),
        }

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
