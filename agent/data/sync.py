"""Bring the local price store up to date from the configured source: the one step the backtest and the
daemon share, so that both read identical stores (same tickers, start date and validation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.data.store import PriceStore
    from agent.settings import Settings

__all__ = ["SyncResult", "store_tickers", "sync_store"]


@dataclass(frozen=True)
class SyncResult:
    update: Any = None  # the store's UpdateResult, when an update ran
    warning: str | None = None  # a failed fetch that the cached prices covered


def store_tickers(settings: Settings) -> list[str]:
    """The universe plus the benchmark: what a decision and a report need in the store."""
    u = settings.universe
    return [t for t in dict.fromkeys([*u.tickers, u.benchmark or ""]) if t]


def sync_store(store: PriceStore, settings: Settings, *, refresh_remote: bool) -> SyncResult:
    """Update `store` incrementally from `settings.data`'s source (file and demo: offline; yfinance: network).

    `refresh_remote=False` (a backtest) leaves a store that already holds every ticker alone when the source
    is remote; the daemon always refreshes. A failed fetch is a warning when the store already covers the
    universe (the run proceeds on cached prices and `decide()` records a no_trade if asof is missing), else it
    raises (OfflineError / DataError: one line, exit 3).
    """
    from agent.data.sources import source_from_settings
    from agent.errors import DataError

    d = settings.data
    wanted = store_tickers(settings)
    if d.source == "yfinance" and not refresh_remote and set(wanted) <= set(store.tickers):
        return SyncResult()
    source = source_from_settings(d)  # a configured price file that is missing is an error, not a fallback
    try:
        res = store.update(
            source,
            wanted,
            start=d.start,
            policy=d.on_invalid,
            max_ffill=d.max_ffill,
            max_jump=d.max_jump,
            stale_sessions=d.stale_sessions,
        )
    except DataError as e:  # OfflineError is a DataError
        if not set(settings.universe.tickers) <= set(store.tickers):
            raise
        return SyncResult(warning=e.one_line())
    return SyncResult(update=res)
