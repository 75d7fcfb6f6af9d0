"""Schedule arithmetic: which session is a slot, which slot is due, when the next run is.

Dates are exchange-local calendar dates. A slot is a scheduled session (``calendar.schedule``) whose run time
(``schedule.time`` in ``schedule.timezone``) has passed. Pure functions of the settings and a time.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.settings import Settings

__all__ = [
    "close_time",
    "latest_closed_session",
    "latest_slot",
    "next_run_time",
    "next_slot_after",
    "scheduled_between",
    "slot_anchor",
    "tz",
]

_MAX_LOOKBACK_DAYS = 400


def close_time(settings: Settings) -> dt.time:
    h, m = settings.schedule.time.split(":")
    return dt.time(int(h), int(m))


def tz(settings: Settings) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(settings.schedule.timezone)


def latest_closed_session(settings: Settings, now: dt.datetime) -> dt.date:
    """The latest session whose scheduled run time (schedule.time in schedule.timezone) has passed at `now`."""
    from agent.data.calendar import is_session, previous_session

    local = now.astimezone(tz(settings))
    d = local.date()
    cal = settings.schedule.calendar
    if is_session(d, calendar=cal) and local.time() >= close_time(settings):
        return d
    return previous_session(d, calendar=cal).date()


def slot_anchor(settings: Settings, first_slot: dt.date | None) -> dt.date | None:
    """every_n_sessions counts from the first committed slot (as the backtest counts from its first date)."""
    return first_slot if settings.schedule.frequency == "every_n_sessions" else None


def scheduled_between(
    settings: Settings, start: dt.date, end: dt.date, anchor: dt.date | None
) -> list[dt.date]:
    from agent.data.calendar import schedule

    s = settings.schedule
    idx = schedule(s.frequency, start, end, every_n=s.every_n, anchor=anchor, calendar=s.calendar)
    return [ts.date() for ts in idx]


def latest_slot(settings: Settings, asof: dt.date, anchor: dt.date | None) -> dt.date | None:
    """The latest scheduled session <= asof. With every_n_sessions and no anchor yet, the latest session."""
    from agent.data.calendar import is_session, previous_session

    s = settings.schedule
    if s.frequency == "every_n_sessions" and anchor is None:
        return (
            asof
            if is_session(asof, calendar=s.calendar)
            else previous_session(asof, calendar=s.calendar).date()
        )
    days = (
        max(_MAX_LOOKBACK_DAYS, 2 * s.every_n + 30)
        if s.frequency == "every_n_sessions"
        else _MAX_LOOKBACK_DAYS
    )
    start = asof - dt.timedelta(days=days)
    if anchor is not None:
        start = max(start, anchor)
        if anchor > asof:
            return None
    slots = scheduled_between(settings, start, asof, anchor)
    return slots[-1] if slots else None


def next_slot_after(settings: Settings, d: dt.date, anchor: dt.date | None) -> dt.date | None:
    from agent.data.calendar import next_session

    s = settings.schedule
    if s.frequency == "every_n_sessions" and anchor is None:
        return next_session(d, calendar=s.calendar).date()
    days = (
        max(_MAX_LOOKBACK_DAYS, 2 * s.every_n + 30)
        if s.frequency == "every_n_sessions"
        else _MAX_LOOKBACK_DAYS
    )
    slots = scheduled_between(settings, d + dt.timedelta(days=1), d + dt.timedelta(days=days), anchor)
    return slots[0] if slots else None


def next_run_time(settings: Settings, now: dt.datetime, anchor: dt.date | None) -> dt.datetime | None:
    """When the next scheduled slot's run is due (exchange-local time)."""
    d = latest_closed_session(settings, now)
    nxt = next_slot_after(settings, d, anchor)
    if nxt is None:
        return None
    return dt.datetime.combine(nxt, close_time(settings), tzinfo=tz(settings))
