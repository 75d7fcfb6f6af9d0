"""NYSE trading sessions and rebalance schedules, from `exchange_calendars` (XNYS).

Why a module of its own: every date the agent reasons about (a price row, a schedule slot, a gap, the session
after a decision) must agree on one calendar. The calendar object is built once per process with an explicit
start (1985) so that the 1990 demo prices are covered, and every function works on one cached, sorted int64
array of session dates: lookups are `np.searchsorted` (O(log n)), schedules are vectorized (no per-day loops).

Dates are tz-naive, normalized `pd.Timestamp`s (a tz-aware input keeps its local date). Dates outside the
calendar's range (before 1985-01-02 or beyond ~2 years from today) are not sessions.
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from typing import Any

import numpy as np
import pandas as pd

from agent.errors import DataError, UsageError

__all__ = [
    "CALENDAR_START",
    "FREQUENCIES",
    "is_session",
    "last_closed_session",
    "last_session_of_week",
    "next_session",
    "previous_session",
    "schedule",
    "sessions",
    "sessions_between",
    "sessions_mask",
    "to_date",
]

CALENDAR_START = "1985-01-01"
FREQUENCIES = ("daily", "weekly", "monthly", "quarterly", "every_n_sessions")
_DAY_NS = 86_400 * 10**9

DateLike = str | dt.date | dt.datetime | pd.Timestamp | np.datetime64


def to_date(d: Any) -> pd.Timestamp:
    """A tz-naive midnight Timestamp (ns). A tz-aware value keeps its local calendar date."""
    try:
        ts = pd.Timestamp(d)
    except (ValueError, TypeError):
        raise UsageError(f"not a date: {d!r} (expected YYYY-MM-DD)") from None
    if pd.isna(ts):
        raise UsageError(f"not a date: {d!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize().as_unit("ns")


@functools.lru_cache(maxsize=4)
def _calendar(name: str = "XNYS") -> Any:
    import exchange_calendars as xc

    end = (pd.Timestamp.today().normalize() + pd.DateOffset(years=2)).strftime("%Y-%m-%d")
    try:
        with warnings.catch_warnings():  # exchange_calendars trips pandas 3 deprecation warnings
            warnings.simplefilter("ignore")
            return xc.get_calendar(name, start=CALENDAR_START, end=end)
    except xc.errors.InvalidCalendarName as e:
        raise UsageError(f"unknown exchange calendar {name!r}", hint="e.g. XNYS") from e


@functools.lru_cache(maxsize=4)
def _sessions_ns(name: str = "XNYS") -> np.ndarray:
    """All sessions of the calendar as a sorted, read-only int64 array of midnight nanoseconds."""
    idx = pd.DatetimeIndex(_calendar(name).sessions)
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    arr = idx.normalize().as_unit("ns").asi8.copy()
    arr.flags.writeable = False
    return arr


def _index(values: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(values.astype("datetime64[ns]"), name="date")


def _ns(d: Any) -> int:
    return int(to_date(d).value)


def sessions(start: Any, end: Any, *, calendar: str = "XNYS") -> pd.DatetimeIndex:
    """Sessions in [start, end], both inclusive, as a tz-naive DatetimeIndex named `date`."""
    arr = _sessions_ns(calendar)
    lo = np.searchsorted(arr, _ns(start), side="left")
    hi = np.searchsorted(arr, _ns(end), side="right")
    return _index(arr[lo:hi])


def is_session(d: Any, *, calendar: str = "XNYS") -> bool:
    arr = _sessions_ns(calendar)
    v = _ns(d)
    i = np.searchsorted(arr, v)
    return bool(i < len(arr) and arr[i] == v)


def sessions_mask(index: pd.DatetimeIndex, *, calendar: str = "XNYS") -> np.ndarray:
    """Boolean array: which dates of `index` (normalized) are sessions. Vectorized."""
    arr = _sessions_ns(calendar)
    vals = pd.DatetimeIndex(index).normalize().as_unit("ns").asi8
    pos = np.searchsorted(arr, vals)
    pos_c = np.minimum(pos, len(arr) - 1)
    return (pos < len(arr)) & (arr[pos_c] == vals)


def next_session(d: Any, n: int = 1, *, calendar: str = "XNYS") -> pd.Timestamp:
    """The n-th session strictly after `d` (n >= 1). `d` need not be a session."""
    if n < 1:
        raise UsageError(f"next_session needs n >= 1, got {n}")
    arr = _sessions_ns(calendar)
    i = int(np.searchsorted(arr, _ns(d), side="right")) + n - 1
    if i >= len(arr):
        raise DataError(
            f"no session {n} after {to_date(d).date()} in the {calendar} calendar (beyond its range)"
        )
    return pd.Timestamp(arr[i]).as_unit("ns")


def previous_session(d: Any, *, calendar: str = "XNYS") -> pd.Timestamp:
    """The last session strictly before `d`."""
    arr = _sessions_ns(calendar)
    i = int(np.searchsorted(arr, _ns(d), side="left")) - 1
    if i < 0:
        raise DataError(
            f"no session before {to_date(d).date()} in the {calendar} calendar (starts {CALENDAR_START})"
        )
    return pd.Timestamp(arr[i]).as_unit("ns")


def sessions_between(a: Any, b: Any, *, calendar: str = "XNYS") -> int:
    """Number of sessions in (a, b]; negative when b < a."""
    arr = _sessions_ns(calendar)
    return int(np.searchsorted(arr, _ns(b), side="right") - np.searchsorted(arr, _ns(a), side="right"))


def _last_of_group(keys: np.ndarray) -> np.ndarray:
    """For sorted group keys: True at the last element of each run of equal keys."""
    if len(keys) == 0:
        return np.zeros(0, dtype=bool)
    out = np.ones(len(keys), dtype=bool)
    out[:-1] = keys[:-1] != keys[1:]
    return out


def _week_keys(values_ns: np.ndarray) -> np.ndarray:
    # 1970-01-01 was a Thursday: (days + 3) // 7 increments every Monday, so a key is one ISO week (Mon..Sun),
    # including the week that spans New Year.
    return (values_ns // _DAY_NS + 3) // 7


def _month_keys(values_ns: np.ndarray) -> np.ndarray:
    m = values_ns.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    return m


def last_session_of_week(index: pd.DatetimeIndex | pd.Index | Any) -> pd.DatetimeIndex:
    """The last date of each ISO week (Mon..Sun) present in `index` (sorted, unique, normalized on output).

    Used to resample a session index to weekly: the week of Good Friday ends on the Thursday; the week spanning
    New Year yields exactly one date.
    """
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    vals = np.unique(idx.normalize().as_unit("ns").asi8)
    return _index(vals[_last_of_group(_week_keys(vals))])


def schedule(
    frequency: str,
    start: Any,
    end: Any,
    every_n: int = 63,
    anchor: Any = None,
    *,
    calendar: str = "XNYS",
) -> pd.DatetimeIndex:
    """Rebalance dates in [start, end] (decided at the close of each).

    daily: every session. weekly / monthly / quarterly: the last session of each ISO week / month / quarter,
    computed on the full calendar and then clipped, so a range ending mid-week does not invent a week-end.
    every_n_sessions: every `every_n`-th session counted from `anchor` (or from the first session >= start):
    the slots are the sessions whose calendar position is congruent to the anchor's modulo `every_n`, so they
    do not depend on the window once the anchor is fixed.
    """
    arr = _sessions_ns(calendar)
    lo = int(np.searchsorted(arr, _ns(start), side="left"))
    hi = int(np.searchsorted(arr, _ns(end), side="right"))
    if frequency == "daily":
        return _index(arr[lo:hi])
    if frequency in ("weekly", "monthly", "quarterly"):
        if frequency == "weekly":
            keys = _week_keys(arr)
        elif frequency == "monthly":
            keys = _month_keys(arr)
        else:
            keys = _month_keys(arr) // 3
        mask = _last_of_group(keys)
        # the calendar's final (partial) period is not known to be complete: drop it
        mask[-1] = False
        pos = np.flatnonzero(mask)
        pos = pos[(pos >= lo) & (pos < hi)]
        return _index(arr[pos])
    if frequency == "every_n_sessions":
        if every_n < 1:
            raise UsageError(f"every_n must be >= 1, got {every_n}")
        a = lo if anchor is None else int(np.searchsorted(arr, _ns(anchor), side="left"))
        first = lo + ((a - lo) % every_n)
        return _index(arr[first:hi:every_n])
    raise UsageError(f"unknown schedule frequency {frequency!r}", hint=f"one of {', '.join(FREQUENCIES)}")


def last_closed_session(now: Any = None, *, calendar: str = "XNYS", margin_minutes: int = 15) -> pd.Timestamp:
    """The latest session whose close (plus a margin) has passed at `now` (default: the current time).

    Why: during market hours Yahoo returns today's *live* price as today's daily row; storing it as a close would
    corrupt history. Early closes (e.g. the day after Thanksgiving) are honoured via the calendar's close times.
    """
    now_utc = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now_utc.tzinfo is None:
        now_utc = now_utc.tz_localize("America/New_York")
    now_utc = now_utc.tz_convert("UTC")
    local_day = to_date(now_utc.tz_convert("America/New_York"))
    cal = _calendar(calendar)
    if is_session(local_day, calendar=calendar):
        close = pd.Timestamp(cal.session_close(local_day))
        close = close.tz_localize("UTC") if close.tzinfo is None else close.tz_convert("UTC")
        if now_utc >= close + pd.Timedelta(minutes=margin_minutes):
            return local_day
    return previous_session(local_day, calendar=calendar)
