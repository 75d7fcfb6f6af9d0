"""The file source: a local wide CSV / CSV.gz / Parquet price file, read once and served from memory.

Why separate: parsing and checking a user's file (date column, duplicate headers, non-numeric cells) is its own
job; the demo set reuses `read_price_file` for skfolio's bundled files.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agent.data.price_frame import _to_day, to_price_frame
from agent.errors import DataError

__all__ = ["FileSource", "read_price_file"]


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
