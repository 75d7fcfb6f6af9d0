"""The one price shape every source returns, and the protocol a source implements.

Why separate: the yfinance, file and demo sources (agent/data/source_*.py, agent/data/sources.py) all coerce to
this shape; keeping it in a leaf module lets them share it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from agent.errors import DataError

__all__ = ["PriceSource", "to_price_frame"]


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
