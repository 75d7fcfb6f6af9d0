"""The ledger's write transaction: all-or-nothing, nestable, one writer at a time.

Why a module of its own: the book (marking, fills) and the runs (decisions, failures) both write inside the
same transaction so that a run's advance, decision and orders commit together or not at all; each mixin
depends on this one contract instead of on the other.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agent.errors import LedgerError
from agent.ledger.readers import LedgerReads

__all__ = ["LedgerWrites"]


class LedgerWrites(LedgerReads):
    """Mixin: :meth:`transaction` (``BEGIN IMMEDIATE`` … ``COMMIT``; nested calls are savepoints) and state writes."""

    _lock: threading.RLock
    _depth: int
    _memo_version: int | None = None  # PRAGMA data_version the in-memory book is valid for

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
                    # another connection committed since the in-memory book was written: read the file again
                    version = c.execute("PRAGMA data_version").fetchone()[0]
                    if version != self._memo_version:
                        self._memo = None
                        self._memo_version = version
                    yield c
                    c.execute("COMMIT")
                except BaseException as exc:
                    self._memo = None
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
                    self._memo = None
                    c.execute(f"ROLLBACK TO {name}")
                    c.execute(f"RELEASE {name}")
                    raise
                else:
                    c.execute(f"RELEASE {name}")
                finally:
                    self._depth -= 1

    def set_state(self, key: str, value: Any) -> None:
        """Persist a JSON-serializable value (canonical JSON) inside the current transaction."""
        from agent.decision import canonical_json
        from agent.ledger.schema import STATE_LAST_MARKED, STATE_LAST_PRICES, STATE_STOP

        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO state (key, json) VALUES (?, ?)", (key, canonical_json(value)))
            if key in (STATE_LAST_MARKED, STATE_LAST_PRICES, STATE_STOP):  # a book value: read it back from the file
                self._memo = None
