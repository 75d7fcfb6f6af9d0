"""NYSE sessions and schedules against hand-checked dates and an independent pandas reference."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from agent.data import calendar as cal
from agent.errors import DataError, UsageError


def test_sessions_cover_1990_and_are_tz_naive() -> None:
    s = cal.sessions("1990-01-01", "1990-01-10")
    assert s[0] == pd.Timestamp("1990-01-02")  # 1990-01-01 is New Year's Day
    assert s.tz is None and s.name == "date"
    assert list(s.strftime("%Y-%m-%d")) == [
        "1990-01-02",
        "1990-01-03",
        "1990-01-04",
        "1990-01-05",
        "1990-01-08",
        "1990-01-09",
        "1990-01-10",
    ]


def test_holidays_and_neighbours() -> None:
    assert not cal.is_session("2024-03-29")  # Good Friday
    assert not cal.is_session("2024-03-30")  # Saturday
    assert not cal.is_session("2018-12-05")  # national day of mourning (G. H. W. Bush)
    assert cal.is_session("2024-03-28")
    assert cal.next_session("2024-03-28") == pd.Timestamp("2024-04-01")
    assert cal.next_session("2024-03-29") == pd.Timestamp("2024-04-01")  # from a non-session
    assert cal.next_session("2024-03-28", n=2) == pd.Timestamp("2024-04-02")
    assert cal.previous_session("2024-04-01") == pd.Timestamp("2024-03-28")
    assert cal.sessions_between("2024-03-27", "2024-04-02") == 3  # 03-28, 04-01, 04-02
    assert cal.sessions_between("2024-04-02", "2024-03-27") == -3
    assert cal.is_session(pd.Timestamp("2024-03-28 15:00", tz="America/New_York"))  # local date kept


def test_weekly_is_last_session_of_iso_week() -> None:
    w = cal.schedule("weekly", "2024-03-18", "2024-04-12")
    assert list(w.strftime("%Y-%m-%d")) == ["2024-03-22", "2024-03-28", "2024-04-05", "2024-04-12"]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2020-12-28", "2021-01-03", "2020-12-31"),  # New Year on a Friday: Thursday is the week's last
        ("2021-12-27", "2022-01-02", "2021-12-31"),  # New Year on Saturday: not observed on Friday
        ("2022-12-26", "2023-01-01", "2022-12-30"),
    ],
)
def test_exactly_one_slot_in_the_new_year_week(start: str, end: str, expected: str) -> None:
    w = cal.schedule("weekly", "2020-06-01", "2023-06-30")
    in_week = w[(w >= start) & (w <= end)]
    assert list(in_week.strftime("%Y-%m-%d")) == [expected]


def test_weekly_matches_independent_isocalendar_reference() -> None:
    def ref(s: pd.DatetimeIndex) -> list[pd.Timestamp]:
        iso = s.isocalendar()
        return list(
            s.to_series().groupby([iso["year"].to_numpy(), iso["week"].to_numpy()]).max().sort_values()
        )

    s = cal.sessions("1995-01-01", "2024-12-31")
    assert list(cal.last_session_of_week(s)) == ref(s)
    # the schedule looks at whole weeks: 2024-12-31 (a Tuesday) is not the end of its week
    wide = ref(cal.sessions("1995-01-01", "2025-01-31"))
    got = cal.schedule("weekly", "1995-01-01", "2024-12-31")
    assert list(got) == [d for d in wide if d <= pd.Timestamp("2024-12-31")]
    assert got[-1] == pd.Timestamp("2024-12-27")


def test_weekly_does_not_invent_a_week_end_mid_week() -> None:
    w = cal.schedule("weekly", "2024-03-01", "2024-03-27")  # ends on a Wednesday
    assert w[-1] == pd.Timestamp("2024-03-22")


def test_last_session_of_week_on_a_price_index() -> None:
    idx = pd.DatetimeIndex(["2024-03-25", "2024-03-26", "2024-03-28", "2024-04-01", "2024-04-03"])
    out = cal.last_session_of_week(idx)
    assert list(out.strftime("%Y-%m-%d")) == ["2024-03-28", "2024-04-03"]


def test_monthly_and_quarterly_ends() -> None:
    m = cal.schedule("monthly", "2024-01-01", "2024-06-30")
    assert list(m.strftime("%Y-%m-%d")) == [
        "2024-01-31",
        "2024-02-29",
        "2024-03-28",
        "2024-04-30",
        "2024-05-31",
        "2024-06-28",
    ]
    q = cal.schedule("quarterly", "2023-01-01", "2023-12-31")
    assert list(q.strftime("%Y-%m-%d")) == ["2023-03-31", "2023-06-30", "2023-09-29", "2023-12-29"]
    # reference: last session per calendar quarter
    s = cal.sessions("2000-01-01", "2023-12-31")
    ref = s.to_series().groupby(s.to_period("Q")).max()
    assert list(cal.schedule("quarterly", "2000-01-01", "2023-12-31")) == list(ref)


def test_every_63_sessions_is_deterministic() -> None:
    e = cal.schedule("every_n_sessions", "2010-01-01", "2015-12-31", every_n=63)
    assert e[0] == cal.sessions("2010-01-01", "2010-01-10")[0]
    assert all(cal.sessions_between(a, b) == 63 for a, b in itertools.pairwise(e))
    # with a fixed anchor the slots do not depend on the window
    anchor = "2010-01-04"
    wide = cal.schedule("every_n_sessions", "2009-01-01", "2016-12-31", every_n=63, anchor=anchor)
    narrow = cal.schedule("every_n_sessions", "2012-02-10", "2013-07-01", every_n=63, anchor=anchor)
    assert set(narrow) <= set(wide) and len(narrow) > 0
    assert list(e) == list(cal.schedule("every_n_sessions", "2010-01-01", "2015-12-31", every_n=63))


def test_daily_is_every_session() -> None:
    assert list(cal.schedule("daily", "2024-03-27", "2024-04-02")) == list(
        cal.sessions("2024-03-27", "2024-04-02")
    )


def test_bad_inputs() -> None:
    with pytest.raises(UsageError, match="frequency"):
        cal.schedule("hourly", "2024-01-01", "2024-02-01")
    with pytest.raises(DataError):
        cal.previous_session("1980-01-01")
    with pytest.raises(UsageError):
        cal.next_session("2024-01-02", n=0)
    with pytest.raises(UsageError, match="not a date"):
        cal.to_date("last tuesday")


def test_last_closed_session_honours_early_close() -> None:
    # 2024-11-29: early close 13:00 New York
    assert cal.last_closed_session(pd.Timestamp("2024-11-29 13:20", tz="America/New_York")) == pd.Timestamp(
        "2024-11-29"
    )
    assert cal.last_closed_session(pd.Timestamp("2024-11-29 12:50", tz="America/New_York")) == pd.Timestamp(
        "2024-11-27"
    )
    assert cal.last_closed_session(pd.Timestamp("2024-03-30 12:00", tz="UTC")) == pd.Timestamp("2024-03-28")
