"""The Yahoo Finance source: one batched, quiet `yfinance.download` per attempt, with retries and an honest
offline/rate-limit message.

Why separate: network handling (retries, backoff, classifying failures) is its own job; the file and demo
sources never need it. `yfinance` is imported lazily, as before.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from agent.data.price_frame import _to_day, to_price_frame
from agent.errors import DataError, OfflineError

__all__ = ["YFinanceSource", "offline_message"]

_log = logging.getLogger("agent.data.sources")  # the logger name from before the split (log filters use it)


# ----------------------------------------------------------------------------------------------------------------
# Yahoo Finance

_NETWORK_MARKERS = (
    "could not resolve",
    "resolve host",
    "name or service not known",
    "temporary failure in name resolution",
    "dnserror",
    "connectionerror",
    "connection refused",
    "connection reset",
    "failed to connect",
    "network is unreachable",
    "timed out",
    "timeout",
    "curl: (6)",
    "curl: (7)",
    "curl: (28)",
    "curl: (35)",
    "sslerror",
    "ssl error",
)
# phrases only: a bare "429" would match the epoch timestamps in yfinance's "no price data found" messages
_RATE_MARKERS = ("too many requests", "rate limit", "ratelimit")


def offline_message(tickers: Sequence[str]) -> str:
    shown = ", ".join(list(tickers)[:8]) + (", ..." if len(tickers) > 8 else "")
    return (
        f"no network and no cached prices for {shown}: use `--profile demo` for the bundled offline prices "
        "or `--prices FILE` / `agent data import FILE`"
    )


def _is_network_error(e: BaseException) -> bool:
    if isinstance(e, ConnectionError | TimeoutError):
        return True
    text = f"{type(e).__name__} {e}".lower()
    return any(m in text for m in _NETWORK_MARKERS)


def _is_rate_limit(e: BaseException) -> bool:
    text = f"{type(e).__name__} {e}".lower()
    return "ratelimit" in type(e).__name__.lower() or any(m in text for m in _RATE_MARKERS)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            with contextlib.suppress(Exception):  # a malformed log record must not break a fetch
                self.messages.append(record.getMessage())


def _yf_download(proxy: str | None = None, **kwargs: Any) -> pd.DataFrame:
    """`yfinance.download`, but quiet and honest about failures.

    yfinance 1.x never raises from `download`: each failed ticker becomes an empty frame and the reason goes to
    the `yfinance` logger (which, unconfigured, would print to stderr). Capture those messages and turn a
    result that is empty because of connection/DNS errors into a ConnectionError, and one that is empty because
    of rate limiting into `YFRateLimitError`, so the retry logic can tell them apart.
    """
    import yfinance as yf

    if proxy:
        yf.config.network.proxy = proxy
    logger = logging.getLogger("yfinance")
    cap = _Capture()
    old_propagate = logger.propagate
    logger.addHandler(cap)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = yf.download(**kwargs)
    finally:
        logger.removeHandler(cap)
        logger.propagate = old_propagate
    empty = raw is None or raw.empty or bool(raw.isna().all().all())
    if empty and cap.messages:
        text = " | ".join(cap.messages)
        low = text.lower()
        if any(m in low for m in _RATE_MARKERS):
            from yfinance.exceptions import YFRateLimitError

            raise YFRateLimitError()
        if any(m in low for m in _NETWORK_MARKERS):
            raise ConnectionError(cap.messages[0][:300])
    return raw


def _extract_field(raw: pd.DataFrame | None, field: str, tickers: Sequence[str]) -> pd.DataFrame:
    """One field (Close / Adj Close) of a yfinance frame as a wide per-ticker frame.

    Handles yfinance 1.x's MultiIndex (field, ticker) with group_by="column" (also for a single ticker),
    (ticker, field) with group_by="ticker", flat columns (multi_level_index=False, single ticker), tz-aware or
    tz-naive indexes, and drops all-NaN rows (holidays, or a ticker that failed inside a batch).
    """
    if raw is None or len(raw.columns) == 0:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="date", dtype="datetime64[ns]"), dtype="float64")
    cols = raw.columns
    if isinstance(cols, pd.MultiIndex):
        lvl = next((i for i in range(cols.nlevels) if field in cols.get_level_values(i)), None)
        if lvl is None:
            fields = sorted({str(v) for i in range(cols.nlevels) for v in cols.get_level_values(i)})[:12]
            raise DataError(f"yfinance returned no {field!r} column (got {', '.join(fields)})")
        wide = raw.xs(field, axis=1, level=lvl)
        if isinstance(wide, pd.Series):  # pragma: no cover - defensive
            wide = wide.to_frame(tickers[0])
    else:
        if field not in cols:
            raise DataError(f"yfinance returned no {field!r} column (got {', '.join(map(str, cols))})")
        if len(tickers) != 1:
            raise DataError("yfinance returned a flat frame for several tickers; cannot tell them apart")
        wide = raw[[field]].set_axis([tickers[0]], axis=1)
    wide = wide.set_axis([str(c) for c in wide.columns], axis=1)
    wide = to_price_frame(wide)
    wide = wide[~wide.index.duplicated(keep="last")].sort_index()
    return wide.dropna(how="all")


class YFinanceSource:
    """Adjusted closes from Yahoo Finance, one batched `yfinance.download` per attempt.

    `download` is injectable (tests feed frames shaped exactly like yfinance 1.x output; no network) and so is
    `sleep`. Retries with exponential backoff on exceptions and on empty results; tickers that still return
    nothing are named in a DataError, never silently dropped. Connection failures on every attempt raise
    OfflineError with one actionable line.
    """

    name = "yfinance"

    def __init__(
        self,
        retries: int = 3,
        backoff_seconds: float = 2.0,
        auto_adjust: bool = True,
        download: Callable[..., pd.DataFrame] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        threads: bool | int = True,
        proxy: str | None = None,
    ) -> None:
        self.retries = int(retries)
        self.backoff_seconds = float(backoff_seconds)
        self.auto_adjust = bool(auto_adjust)
        self.threads = threads
        self.proxy = proxy
        self._download = download
        self._sleep = sleep
        self.attempts_made = 0  # for diagnostics and tests

    @property
    def field(self) -> str:
        # auto_adjust=True: "Close" is already split- and dividend-adjusted; otherwise take "Adj Close".
        return "Close" if self.auto_adjust else "Adj Close"

    def _call(self, tickers: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        kwargs: dict[str, Any] = {
            "tickers": tickers,
            "start": start.strftime("%Y-%m-%d"),
            "end": (end + pd.Timedelta(days=1)).strftime("%Y-%m-%d"),  # yfinance's end is exclusive
            "auto_adjust": self.auto_adjust,
            "actions": False,
            "progress": False,
            "group_by": "column",
            "threads": self.threads,
        }
        if self._download is not None:
            return self._download(**kwargs)
        return _yf_download(proxy=self.proxy, **kwargs)

    def fetch(self, tickers: Sequence[str], start: Any, end: Any = None) -> pd.DataFrame:
        want = list(dict.fromkeys(str(t) for t in tickers))
        if not want:
            raise DataError("no tickers to fetch")
        s = _to_day(start)
        e = _to_day(end if end is not None else pd.Timestamp.today())
        if e < s:
            raise DataError(f"fetch window ends before it starts: {s.date()}..{e.date()}")
        by_upper = {t.upper(): t for t in want}  # yfinance upper-cases symbols
        got: dict[str, pd.Series] = {}
        pending = list(want)
        last_error: BaseException | None = None
        network_failures = 0
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_seconds * 2 ** (attempt - 1))
            self.attempts_made += 1
            try:
                raw = self._call(pending, s, e)
            # yfinance, curl_cffi and requests raise many types: classify, then retry
            except Exception as exc:
                last_error = exc
                if _is_network_error(exc) and not _is_rate_limit(exc):
                    network_failures += 1
                _log.debug("yfinance attempt %d failed: %r", attempt + 1, exc)
                continue
            wide = _extract_field(raw, self.field, pending)
            wide = wide.rename(columns=lambda c: by_upper.get(str(c).upper(), str(c)))
            wide = wide.loc[(wide.index >= s) & (wide.index <= e)]
            for t in pending:
                if t in wide.columns and wide[t].notna().any():
                    got[t] = wide[t]
            pending = [t for t in want if t not in got]
            if not pending:
                break
            last_error = None
        if pending:
            if not got and last_error is not None and network_failures == self.retries + 1:
                raise OfflineError(offline_message(pending))
            why = (
                f" (last error: {type(last_error).__name__}: {last_error})" if last_error is not None else ""
            )
            raise DataError(
                f"yfinance returned no prices for {', '.join(pending)} between {s.date()} and {e.date()} after "
                f"{self.retries + 1} attempts{why}",
                hint="check the symbols (Yahoo spelling, e.g. BRK-B, ^GSPC) or retry later if rate limited",
            )
        out = pd.concat([got[t] for t in want], axis=1).set_axis(want, axis=1)
        out.index.name = "date"
        return out.sort_index().astype("float64")
