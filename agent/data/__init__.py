"""Prices: sources (yfinance, files, the offline demo set), validation, the NYSE calendar and the local store.

Importing this package loads pandas/numpy (not yfinance, exchange_calendars or skfolio: those load lazily).
`agent.cli` must not import it at start-up; command handlers import it inside the handler.
"""

from __future__ import annotations

from agent.data.calendar import (
    is_session,
    last_closed_session,
    last_session_of_week,
    next_session,
    previous_session,
    schedule,
    sessions,
    sessions_between,
    sessions_mask,
)
from agent.data.sources import (
    DemoSource,
    FileSource,
    PriceSource,
    YFinanceSource,
    read_price_file,
    resolve_prices_file,
    source_from_settings,
    to_price_frame,
)
from agent.data.store import PriceStore, UpdateResult
from agent.data.validate import Issue, ValidationReport, validate_prices

__all__ = [
    "DemoSource",
    "FileSource",
    "Issue",
    "PriceSource",
    "PriceStore",
    "UpdateResult",
    "ValidationReport",
    "YFinanceSource",
    "is_session",
    "last_closed_session",
    "last_session_of_week",
    "next_session",
    "previous_session",
    "read_price_file",
    "resolve_prices_file",
    "schedule",
    "sessions",
    "sessions_between",
    "sessions_mask",
    "source_from_settings",
    "to_price_frame",
    "validate_prices",
]
