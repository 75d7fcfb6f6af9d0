"""Where prices come from: Yahoo Finance (yfinance), a local CSV/Parquet file, or the offline demo set.

Every source returns the same shape (ARCHITECTURE.md): a wide DataFrame, tz-naive midnight DatetimeIndex named
`date`, one float64 column per requested ticker, rows sorted and unique. Sources only *fetch*; validation and
caching live in `validate.py` and `store.py`, so a source can be swapped without touching either.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from agent.errors import DataError, OfflineError

__all__ = [
    "DEMO_SETS",
    "DemoSource",
    "FileSource",
    "PriceSource",
    "YFinanceSource",
    "demo_data_dir",
    "offline_message",
    "read_price_file",
    "resolve_prices_file",
    "shared_data_dir",
    "source_from_settings",
    "to_price_frame",
]

_log = logging.getLogger(__name__)

DEMO_SETS: dict[str, tuple[str, ...]] = {
    "sp500": ("sp500_dataset.csv.gz", "sp500_index.csv.gz"),  # 20 US large caps + the index level as SP500
    "factors": ("factors_dataset.csv.gz",),
}


@runtime_checkable
class PriceSource(Protocol):
    """Anything that can fetch adjusted closes for tickers over [start, end] (both inclusive)."""

    name: str

    def fetch(self, tickers: Sequence[str], start: Any, end: Any) -> pd.DataFrame: ...


# ----------------------------------------------------------------------------------------------------------------
# shape helpers


def _to_day(d: Any) -> pd.Timestamp:
    from agent.data.calendar import to_date

    return to_date(d)


def to_price_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Coerce to the canonical price shape: tz-naive normalized DatetimeIndex `date` (ns), str columns, float64.

    Does not sort or deduplicate: that is validation's job (it must *see* unsorted or duplicate rows to report
    them). Non-numeric cells raise DataError naming the column and the first bad row.
    """
    idx = df.index
    if not isinstance(idx, pd.DatetimeIndex):
        try:
            idx = pd.DatetimeIndex(pd.to_datetime(idx))
        except (ValueError, TypeError) as e:
            raise DataError(f"price index is not dates: {e}") from None
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    idx = idx.normalize().as_unit("ns")
    idx.name = "date"
    out = df.set_axis(idx, axis=0)
    out = out.set_axis([str(c) for c in out.columns], axis=1)
    bad = [c for c in out.columns if not pd.api.types.is_numeric_dtype(out[c].dtype)]
    for c in bad:
        coerced = pd.to_numeric(out[c], errors="coerce")
        nonnum = coerced.isna() & out[c].notna()
        if nonnum.any():
            pos = int(np.argmax(nonnum.to_numpy()))
            raise DataError(
                f"non-numeric price in column {c!r} at {out.index[pos].date()}: {out[c].iloc[pos]!r}"
            )
    return out.astype("float64")


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


# ----------------------------------------------------------------------------------------------------------------
# files


def _find_date_column(columns: Sequence[Any]) -> Any:
    for c in columns:
        if str(c).strip().lower() == "date":
            return c
    if columns:
        first = str(columns[0]).strip()
        if first == "" or first.lower().startswith("unnamed:") or first.lower() in ("index", "datetime"):
            return columns[0]
    return None


def read_price_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a wide price file (CSV, CSV.gz or Parquet): a `date` column (or an unnamed first column, or a
    DatetimeIndex in Parquet) then one numeric column per ticker. Bad files raise DataError in one line."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"price file not found: {p}")
    if p.is_dir():
        raise DataError(f"price file is a directory: {p}")
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq", ".parq")):
            raw = pd.read_parquet(p)
            if isinstance(raw.index, pd.DatetimeIndex):
                raw = raw.reset_index(names="date")
            elif raw.index.name is not None:
                raw = raw.reset_index()
        else:
            raw = pd.read_csv(p, low_memory=False)
    except DataError:
        raise
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read price file {p}: {first}") from None
    except Exception as e:  # pyarrow and compression libraries raise their own types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read price file {p}: {type(e).__name__}: {first}") from None
    if raw.shape[1] == 0 or raw.shape[0] == 0:
        raise DataError(f"price file {p} has no rows or no columns")
    dcol = _find_date_column(list(raw.columns))
    if dcol is None:
        shown = ", ".join(repr(str(c)) for c in list(raw.columns)[:5])
        raise DataError(f"price file {p} has no date column: expected `date` first (found {shown})")
    dates_raw = raw[dcol]
    if pd.api.types.is_datetime64_any_dtype(dates_raw.dtype):
        dates = pd.DatetimeIndex(dates_raw)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dates = pd.DatetimeIndex(pd.to_datetime(dates_raw, errors="coerce", format="mixed"))
    bad = dates.isna()
    if bad.any():
        pos = int(np.argmax(np.asarray(bad)))
        raise DataError(f"price file {p}: unparseable date {dates_raw.iloc[pos]!r} on line {pos + 2}")
    body = raw.drop(columns=[dcol])
    if body.shape[1] == 0:
        raise DataError(f"price file {p} has a date column but no ticker columns")
    for c in body.columns:
        if not pd.api.types.is_numeric_dtype(body[c].dtype):
            coerced = pd.to_numeric(body[c], errors="coerce")
            nonnum = coerced.isna() & body[c].notna()
            if nonnum.any():
                pos = int(np.argmax(nonnum.to_numpy()))
                raise DataError(
                    f"price file {p}: non-numeric value {body[c].iloc[pos]!r} in column {str(c)!r} on line "
                    f"{pos + 2} ({dates[pos].date()})"
                )
            body[c] = coerced
    body = body.set_axis(dates, axis=0)
    names = [str(c).strip() for c in body.columns]  # "XLK " is XLK (validation records the normalisation)
    # pandas silently renames a repeated CSV header "XLK" to "XLK.1": a ticker must not appear twice
    dupes = {n for n in names if names.count(n) > 1}
    for n in names:
        m = re.fullmatch(r"(.+)\.\d+", n)
        if m and m.group(1) in names:
            dupes.add(m.group(1))
    if dupes:
        raise DataError(f"price file {p} has duplicate columns: {', '.join(sorted(dupes))}")
    return to_price_frame(body)


def _select(
    df: pd.DataFrame, tickers: Sequence[str] | None, start: Any, end: Any, where: str
) -> pd.DataFrame:
    if tickers is not None:
        want = list(dict.fromkeys(str(t) for t in tickers))
        missing = [t for t in want if t not in df.columns]
        if missing:
            avail = ", ".join(list(df.columns)[:25]) + (", ..." if df.shape[1] > 25 else "")
            raise DataError(f"{where} has no prices for {', '.join(missing)} (it has: {avail})")
        df = df[want]
    if start is not None:
        df = df.loc[df.index >= _to_day(start)]
    if end is not None:
        df = df.loc[df.index <= _to_day(end)]
    return df


class FileSource:
    """Prices from a local wide CSV / CSV.gz / Parquet file (read once, then served from memory)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self._frame: pd.DataFrame | None = None

    def read(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = read_price_file(self.path)
        return self._frame.copy(deep=False)

    def fetch(self, tickers: Sequence[str] | None, start: Any = None, end: Any = None) -> pd.DataFrame:
        return _select(self.read(), tickers, start, end, f"price file {self.path}")


# ----------------------------------------------------------------------------------------------------------------
# offline demo set (skfolio's bundled real prices, read as files: importing skfolio is slow)


def demo_data_dir() -> Path:
    spec = importlib.util.find_spec("skfolio")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the offline demo prices need the skfolio package (pip install skfolio)",
            hint="or use `--prices FILE` / `agent data import FILE`",
        )
    d = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    if not d.is_dir():
        raise DataError(f"skfolio is installed but its bundled datasets are missing at {d}")
    return d


class DemoSource:
    """The offline demo set: real daily prices bundled with skfolio.

    sp500: 20 US large caps 1990-01-02..2022-12-28 plus the S&P 500 index level as ticker SP500 (benchmark).
    factors: the MTUM QUAL SIZE USMV VLUE factor ETFs 2014..2022.
    """

    def __init__(self, name: str = "sp500") -> None:
        if name not in DEMO_SETS:
            raise DataError(f"unknown demo set {name!r}", hint=f"one of {', '.join(DEMO_SETS)}")
        self.set_name = name
        self.name = f"demo:{name}"
        self._frame: pd.DataFrame | None = None

    def read(self) -> pd.DataFrame:
        if self._frame is None:
            d = demo_data_dir()
            frames = []
            for fname in DEMO_SETS[self.set_name]:
                path = d / fname
                if not path.exists():
                    raise DataError(f"demo price file missing from the skfolio package: {path}")
                frames.append(read_price_file(path))
            df = pd.concat(frames, axis=1) if len(frames) > 1 else frames[0]
            self._frame = df.sort_index()
        return self._frame.copy(deep=False)

    def fetch(self, tickers: Sequence[str] | None, start: Any = None, end: Any = None) -> pd.DataFrame:
        return _select(self.read(), tickers, start, end, f"the demo set {self.set_name!r}")


# ----------------------------------------------------------------------------------------------------------------
# locating files and building a source from settings


def shared_data_dir() -> Path | None:
    """$AGENT_SHARED_DATA, else ../shared/data next to the cwd, else next to the repository (None if absent)."""
    env = os.environ.get("AGENT_SHARED_DATA")
    if env:
        return Path(env).expanduser()
    from agent.settings import repo_root

    for cand in (Path.cwd().parent / "shared" / "data", repo_root().parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return None


def resolve_prices_file(path: str | os.PathLike[str]) -> Path:
    """Find a price file: as given (relative to the cwd), then inside the shared data directory."""
    p = Path(path).expanduser()
    looked: list[Path] = [p if p.is_absolute() else Path.cwd() / p]
    if p.exists():
        return p.resolve()
    if not p.is_absolute():
        env = os.environ.get("AGENT_SHARED_DATA")
        if env:
            bases = [Path(env).expanduser()]
        else:
            from agent.settings import repo_root

            bases = [Path.cwd().parent / "shared" / "data", repo_root().parent / "shared" / "data"]
        for base in bases:
            cand = base / p
            looked.append(cand)
            if cand.exists():
                return cand.resolve()
    where = ", ".join(dict.fromkeys(str(x) for x in looked))
    raise DataError(f"price file not found: {path} (looked in {where})")


def source_from_settings(data: Any) -> PriceSource:
    """The configured source (`settings.data`): yfinance, file (prices_file) or demo (demo_set)."""
    if data.source == "yfinance":
        proxy = data.proxy.get_secret_value() if data.proxy is not None else None
        return YFinanceSource(
            retries=data.retries,
            backoff_seconds=data.backoff_seconds,
            auto_adjust=data.auto_adjust,
            proxy=proxy,
        )
    if data.source == "file":
        if data.prices_file is None:
            raise DataError("data.source = 'file' needs data.prices_file")
        return FileSource(resolve_prices_file(data.prices_file))
    if data.source == "demo":
        return DemoSource(data.demo_set)
    raise DataError(f"unknown data source {data.source!r}")
