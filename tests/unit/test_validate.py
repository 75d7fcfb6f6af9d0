"""Validation: each problem kind found with the right ticker and date; ffill repairs at most K, recorded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from agent.data.calendar import sessions
from agent.data.validate import ValidationReport, validate_prices
from agent.errors import DataError, ValidationFailedError

IDX = sessions("2024-03-01", "2024-04-30")  # includes Good Friday 2024-03-29 (absent)


def frame(n: int = len(IDX)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    a = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    b = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame({"AAA": a, "BBB": b}, index=IDX[:n])


def kinds(rep: ValidationReport) -> set[tuple[str, str | None, str | None]]:
    return {(i.kind, i.ticker, i.date) for i in rep.issues}


def test_clean_frame_passes_unchanged() -> None:
    df = frame()
    clean, rep = validate_prices(df)
    assert rep.ok and rep.issues == [] and rep.filled == []
    pd.testing.assert_frame_equal(clean, df.rename_axis("date"), check_freq=False)


def test_leading_and_trailing_nans_are_not_gaps() -> None:
    df = frame()
    df.loc[: IDX[9], "BBB"] = np.nan  # inception on the 11th session
    df.loc[IDX[-3] :, "AAA"] = np.nan  # delisted / not yet updated
    clean, rep = validate_prices(df)
    assert rep.ok and rep.issues == []
    assert clean["BBB"].isna().sum() == 10


def _fail(df: pd.DataFrame, **kw: object) -> ValidationReport:
    with pytest.raises(ValidationFailedError) as ei:
        validate_prices(df, **kw)  # type: ignore[arg-type]
    msg = ei.value.one_line()
    assert "\n" not in msg and msg.startswith("price validation failed")
    return ei.value.report  # type: ignore[attr-defined]


def test_non_numeric_non_positive_non_finite() -> None:
    df = frame().astype({"AAA": object})
    df.loc[IDX[5], "AAA"] = "n/a?"
    df.loc[IDX[7], "BBB"] = 0.0
    df.loc[IDX[8], "BBB"] = -3.0
    df.loc[IDX[9], "BBB"] = np.inf
    rep = _fail(df)
    got = kinds(rep)
    assert ("non_numeric", "AAA", "2024-03-08") in got
    assert ("non_positive", "BBB", "2024-03-12") in got
    assert ("non_positive", "BBB", "2024-03-13") in got
    assert ("non_finite", "BBB", "2024-03-14") in got


def test_duplicate_unsorted_and_non_session_dates() -> None:
    df = frame()
    dup = df.iloc[[3]].copy()
    dup.iloc[0, 1] = np.nan  # an identical duplicate (a missing cell is taken from the other row)
    sat = pd.DataFrame({"AAA": [1.0], "BBB": [1.0]}, index=[pd.Timestamp("2024-03-30")])  # a Saturday
    gfri = pd.DataFrame({"AAA": [1.0], "BBB": [1.0]}, index=[pd.Timestamp("2024-03-29")])  # Good Friday
    bad = pd.concat([df, dup, sat, gfri])
    rep = _fail(bad)
    got = kinds(rep)
    assert ("duplicate_date", None, "2024-03-06") in got
    assert ("non_session", None, "2024-03-30") in got
    assert ("non_session", None, "2024-03-29") in got
    assert any(k == "unsorted" for k, _, _ in got)
    # ffill policy repairs: sorted, the later duplicate kept, non-session rows dropped, all recorded
    clean, rep2 = validate_prices(bad, policy="ffill")
    assert rep2.ok and clean.index.is_monotonic_increasing and clean.index.is_unique
    assert clean.loc["2024-03-06", "AAA"] == df.loc["2024-03-06", "AAA"]
    assert clean.loc["2024-03-06", "BBB"] == df.loc["2024-03-06", "BBB"]
    assert pd.Timestamp("2024-03-30") not in clean.index and pd.Timestamp("2024-03-29") not in clean.index
    assert set(rep2.dropped_rows) == {"2024-03-06", "2024-03-29", "2024-03-30"}
    assert all(i.repaired for i in rep2.issues)


def test_gaps_against_the_calendar() -> None:
    df = frame().drop(index=[IDX[10]])  # a whole session row missing
    df.loc[IDX[20], "BBB"] = np.nan  # a missing cell
    rep = _fail(df)
    got = kinds(rep)
    assert ("gap", "AAA", IDX[10].strftime("%Y-%m-%d")) in got
    assert ("gap", "BBB", IDX[10].strftime("%Y-%m-%d")) in got
    assert ("gap", "BBB", IDX[20].strftime("%Y-%m-%d")) in got
    assert ("gap", "AAA", IDX[20].strftime("%Y-%m-%d")) not in got
    # without the calendar, only NaN cells inside the frame's own index count
    with pytest.raises(ValidationFailedError):
        validate_prices(df, calendar_check=False)
    _, rep2 = validate_prices(frame().drop(index=[IDX[10]]), calendar_check=False)
    assert rep2.ok


def test_ffill_at_most_k_and_every_cell_recorded() -> None:
    df = frame()
    orig = df.copy()
    df.loc[IDX[10] : IDX[12], "AAA"] = np.nan  # 3 sessions: fillable with max_ffill=3
    df = df.drop(index=[IDX[30]])  # 1 row
    df.loc[IDX[40], "BBB"] = -1.0  # non-positive -> gap -> filled
    clean, rep = validate_prices(df, policy="ffill", max_ffill=3)
    assert rep.ok
    assert clean.index.equals(IDX)  # the missing session row was added back
    for d in IDX[10:13]:
        assert clean.loc[d, "AAA"] == orig.loc[IDX[9], "AAA"]
    assert clean.loc[IDX[30], "AAA"] == orig.loc[IDX[29], "AAA"]
    assert clean.loc[IDX[40], "BBB"] == orig.loc[IDX[39], "BBB"]
    expected = {("AAA", d.strftime("%Y-%m-%d")) for d in IDX[10:13]} | {
        ("AAA", IDX[30].strftime("%Y-%m-%d")),
        ("BBB", IDX[30].strftime("%Y-%m-%d")),
        ("BBB", IDX[40].strftime("%Y-%m-%d")),
    }
    assert set(rep.filled) == expected and len(rep.filled) == len(expected)
    # untouched cells are unchanged
    mask = clean.index.isin(IDX[[*range(10, 13), 30, 40]])
    pd.testing.assert_frame_equal(clean[~mask], orig[~mask].rename_axis("date"), check_freq=False)


def test_gap_longer_than_max_ffill_cannot_be_repaired() -> None:
    df = frame()
    df.loc[IDX[10] : IDX[13], "AAA"] = np.nan  # 4 sessions
    rep = _fail(df, policy="ffill", max_ffill=3)
    assert [(i.kind, i.ticker, i.date, i.end) for i in rep.errors] == [
        ("gap", "AAA", "2024-03-15", "2024-03-20")
    ]


def test_jumps_and_stale_are_warnings() -> None:
    df = frame()
    df.loc[IDX[15] :, "AAA"] = (
        df.loc[IDX[15] :, "AAA"] / df.loc[IDX[15], "AAA"] * df.loc[IDX[14], "AAA"] * 1.6
    )
    # ^ a level move of exactly +60%: the prices after it confirm the new level
    df.loc[IDX[20] : IDX[25], "BBB"] = 42.0  # 6 identical closes
    _, rep = validate_prices(df, max_jump=0.5, stale_sessions=5)
    assert rep.ok
    jumps = [i for i in rep.warnings if i.kind == "jump"]
    assert jumps[0].ticker == "AAA" and jumps[0].date == IDX[15].strftime("%Y-%m-%d")
    assert "+60.0%" in jumps[0].detail
    stale = [i for i in rep.warnings if i.kind == "stale"]
    assert [(i.ticker, i.date, i.end) for i in stale] == [
        ("BBB", IDX[20].strftime("%Y-%m-%d"), IDX[25].strftime("%Y-%m-%d"))
    ]
    _, rep7 = validate_prices(df, stale_sessions=7)
    assert not [i for i in rep7.issues if i.kind == "stale"]
    rep_strict = _fail(df, fail_on_warnings=True)
    assert {i.kind for i in rep_strict.blocking} >= {"jump", "stale"}


def test_empty_series_and_bad_policy() -> None:
    df = frame()
    df["CCC"] = np.nan
    rep = _fail(df, policy="ffill")
    assert ("no_data", "CCC", None) in kinds(rep)
    with pytest.raises(DataError, match="policy"):
        validate_prices(frame(), policy="drop")  # type: ignore[arg-type]


def test_fail_message_names_first_problems_and_report_serializes() -> None:
    df = frame()
    for k in (5, 9, 13, 17):
        df.loc[IDX[k], "BBB"] = np.nan
    with pytest.raises(ValidationFailedError) as ei:
        validate_prices(df)
    line = ei.value.one_line()
    assert "BBB 2024-03-08 gap" in line and "(+1 more)" in line and "--policy ffill" in line
    rep: ValidationReport = ei.value.report  # type: ignore[attr-defined]
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["ok"] is False and d["counts"] == {"gap": 4}
    assert 1 <= len(rep.summary().splitlines()) <= 8
    assert rep.ticker_summary("BBB") == "gap 4" and rep.ticker_summary("AAA") == "ok"


def test_tz_aware_and_intraday_index_normalized() -> None:
    df = frame()
    df.index = (df.index + pd.Timedelta(hours=16)).tz_localize("America/New_York")
    clean, rep = validate_prices(df)
    assert rep.ok and clean.index.tz is None and (clean.index == clean.index.normalize()).all()


def test_conflicting_duplicate_is_an_error_naming_date_and_ticker_under_every_policy() -> None:
    df = frame()
    dup = df.iloc[[3]].copy()
    dup.iloc[0, 0] *= 1.01  # AAA disagrees, BBB agrees
    bad = pd.concat([df, dup]).sort_index(kind="stable")
    for policy in ("fail", "ffill"):
        rep = _fail(bad, policy=policy)
        assert [(i.kind, i.ticker, i.date) for i in rep.errors if i.kind == "conflicting_duplicate"] == [
            ("conflicting_duplicate", "AAA", "2024-03-06")
        ]
    with pytest.raises(ValidationFailedError, match=r"AAA 2024-03-06 conflicting_duplicate"):
        validate_prices(bad, policy="ffill")


def test_one_row_spike_is_an_error_or_held_out_never_kept() -> None:
    df = frame()
    orig = df.copy()
    df.loc[IDX[20], "AAA"] *= 1000.0  # a 1000x typo that comes straight back
    rep = _fail(df, policy="fail")
    assert [(i.kind, i.ticker, i.date) for i in rep.errors] == [
        ("spike", "AAA", IDX[20].strftime("%Y-%m-%d"))
    ]
    clean, rep2 = validate_prices(df, policy="ffill")
    assert rep2.ok and rep2.held_out == [("AAA", IDX[20].strftime("%Y-%m-%d"))]
    # held out, then (a one-session gap) forward-filled and recorded as such
    assert clean.loc[IDX[20], "AAA"] == orig.loc[IDX[19], "AAA"]
    assert ("AAA", IDX[20].strftime("%Y-%m-%d")) in rep2.filled
    assert clean["AAA"].max() < 2 * orig["AAA"].max()
    assert "held out 1 prices" in rep2.summary()
    assert rep2.to_dict()["n_held_out"] == 1


def test_jump_on_the_last_price_is_unconfirmed_and_checked_against_the_prior() -> None:
    df = frame()
    df.loc[IDX[-1], "BBB"] = df.loc[IDX[-2], "BBB"] * 1000.0
    rep = _fail(df)
    assert ("unconfirmed_jump", "BBB", IDX[-1].strftime("%Y-%m-%d")) in kinds(rep)
    clean, rep2 = validate_prices(df, policy="ffill")
    assert np.isnan(clean.loc[IDX[-1], "BBB"]) and rep2.held_out == [("BBB", IDX[-1].strftime("%Y-%m-%d"))]
    # a one-row frame has no move inside it: the last stored price is the reference
    one = df.iloc[[-1]]
    assert validate_prices(one)[1].ok
    prior = {"AAA": float(df.iloc[-2, 0]), "BBB": float(df.iloc[-2, 1])}
    rep3 = _fail(one, prior=prior)
    assert [(i.kind, i.ticker) for i in rep3.errors] == [("unconfirmed_jump", "BBB")]


def test_rows_after_latest_are_refused() -> None:
    df = frame()
    latest = IDX[-3]
    rep = _fail(df, latest=latest)
    assert {(i.kind, i.date) for i in rep.errors} == {
        ("future_date", d.strftime("%Y-%m-%d")) for d in IDX[-2:]
    }
    clean, rep2 = validate_prices(df, policy="ffill", latest=latest)
    assert clean.index[-1] == latest and set(rep2.dropped_rows) == {d.strftime("%Y-%m-%d") for d in IDX[-2:]}


def test_header_whitespace_is_normalised_and_recorded_never_a_new_ticker() -> None:
    df = frame().rename(columns={"AAA": "AAA "})
    clean, rep = validate_prices(df)
    assert list(clean.columns) == ["AAA", "BBB"] and rep.ok
    assert [(i.kind, i.ticker) for i in rep.repaired] == [("header_whitespace", "AAA")]
    both = frame().assign(**{"AAA ": frame()["AAA"]})
    with pytest.raises(DataError, match="twice"):
        validate_prices(both)
