"""The SQLite paper ledger, as a package of small modules with one job each.

- :mod:`agent.ledger.schema` — tables, constants, header checks, value helpers.
- :mod:`agent.ledger.readers` — every query (:class:`LedgerReads`) and the read-only :class:`LedgerReader`.
- :mod:`agent.ledger.tx` — the all-or-nothing write transaction.
- :mod:`agent.ledger.book` — fills at the exec close and daily NAV marking (:class:`AdvanceResult`).
- :mod:`agent.ledger.runs` — committing decisions (hash-chained via :mod:`agent.hashchain`) and failures.
- :mod:`agent.ledger.core` — :class:`Ledger`, the writer composed of the above.
"""

from __future__ import annotations

from agent.ledger.book import AdvanceResult
from agent.ledger.core import Ledger
from agent.ledger.readers import LedgerReader, LedgerReads, open_reader
from agent.ledger.schema import APPLICATION_ID, DECIMALS, SCHEMA_VERSION

__all__ = [
    "APPLICATION_ID",
    "DECIMALS",
    "SCHEMA_VERSION",
    "AdvanceResult",
    "Ledger",
    "LedgerReader",
    "LedgerReads",
    "open_reader",
]
