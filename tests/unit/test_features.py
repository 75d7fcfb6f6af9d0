"""agent.features against hand-computed references; weekly resampling; no look-ahead in build_window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import DataError
from agent.features import (
    FeatureSpec,
    MinMaxScaler,
    StandardScaler,
    bollinger_width,
    build_window,
    feature_frame,
    log_returns,
    ma_crossover,
    rolling_volatility,
    rsi,
    scaler_from_dict,
    simple_returns,
    weekly_last,
)

TICKERS = ["AAA", "BBB", "CCC"]


def _prices(n: int = 400, seed: int = 0, start: str = "2019-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range(start, periods=n, name="date")
    r = rng.normal(0.0003, 0.012, size=(n, len(TICKERS)))
    return pd.DataFrame(100 * np.exp(np.cumsum(r, axis=0)), index=idx, columns=TICKERS)


def _wilder_reference(p: np.ndarray, window: int, warmup: int) -> float:
    """RSI at the last row, by hand: SMA seed over the first `window` of the last `warmup` changes, then Wilder."""
    d = np.diff(p)[-warmup:]
    g, lo = np.maximum(d, 0), np.maximum(-d, 0)
    ag, al = g[:window].mean(), lo[:window].mean()
    for k in range(window, warmup):
        ag = (ag * (window - 1) + g[k]) / window
        al = (al * (window - 1) + lo[k]) / window
    return 100.0 - 100.0 / (1.0 + ag / al)


def test_rsi_matches_hand_computed_wilder() -> None:
    p = _prices()
    got = rsi(p, 14, 100)
    for t in (150, 260, 399):
        for j, c in enumerate(TICKERS):
            ref = _wilder_reference(p[c].to_numpy()[: t + 1], 14, 100)
            assert got.iloc[t, j] == pytest.approx(ref, rel=1e-10)
    assert got.iloc[:100].isna().all().all() and got.iloc[100:].notna().all().all()


def test_rsi_textbook_example() -> None:
    """All gains -> 100, all losses -> 0, flat -> 50 (defined, not NaN)."""
    up = pd.DataFrame({"x": np.arange(1.0, 40.0)}, index=pd.bdate_range("2020-01-01", periods=39))
    assert rsi(up, 14, 20).iloc[-1, 0] == 100.0
    assert rsi(-up + 100, 14, 20).iloc[-1, 0] == pytest.approx(0.0)
    assert rsi(up * 0 + 5, 14, 20).iloc[-1, 0] == 50.0


def test_vol_bollinger_macross_returns_against_pandas() -> None:
    p = _prices()
    ref_vol = p.pct_change().rolling(20).std()
    np.testing.assert_allclose(
        rolling_volatility(p, 20).to_numpy(), ref_vol.to_numpy(), rtol=1e-9, equal_nan=True
    )
    m, s = p.rolling(20).mean(), p.rolling(20).std(ddof=0)
    np.testing.assert_allclose(
        bollinger_width(p, 20, 2.0).to_numpy(), (4 * s / m).to_numpy(), rtol=1e-8, equal_nan=True
    )
    ref_ma = p.rolling(10).mean() / p.rolling(50).mean() - 1
    np.testing.assert_allclose(
        ma_crossover(p, 10, 50).to_numpy(), ref_ma.to_numpy(), rtol=1e-9, atol=1e-13, equal_nan=True
    )
    np.testing.assert_allclose(
        simple_returns(p).to_numpy(), p.pct_change().to_numpy(), rtol=1e-12, equal_nan=True
    )
    np.testing.assert_allclose(
        log_returns(p).to_numpy(), np.log(p / p.shift(1)).to_numpy(), rtol=1e-12, equal_nan=True
    )


def _sessions(start: str, end: str, holidays: list[str]) -> pd.DatetimeIndex:
    idx = pd.bdate_range(start, end, name="date")
    return idx[~idx.isin(pd.to_datetime(holidays))]


def test_weekly_one_row_per_iso_week_new_year_and_good_friday() -> None:
    idx = _sessions("2019-12-02", "2024-04-30", ["2020-01-01", "2024-01-01", "2024-03-29", "2020-04-10"])
    p = pd.DataFrame({"x": np.arange(len(idx), dtype=float)}, index=idx)
    w = weekly_last(p)
    iso = w.index.isocalendar()
    keys = list(zip(iso.year, iso.week, strict=True))
    assert len(keys) == len(set(keys))  # exactly one row per ISO week
    all_iso = idx.isocalendar()
    assert len(set(zip(all_iso.year, all_iso.week, strict=True))) == len(w)
    assert (
        pd.Timestamp("2020-01-03") in w.index and pd.Timestamp("2019-12-31") not in w.index
    )  # New Year week
    assert pd.Timestamp("2024-03-28") in w.index  # Good Friday 2024: Thursday closes the week
    assert pd.Timestamp("2020-04-09") in w.index  # Good Friday 2020
    # the same as pandas' W-SUN periods (Monday..Sunday weeks)
    ref = p.groupby(p.index.to_period("W-SUN")).tail(1)
    pd.testing.assert_frame_equal(w, ref)


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec(("ret", "rsi", "vol"), lookback=30, rsi_warmup=40),
        FeatureSpec(("ret", "rsi", "bbw", "macross"), lookback=20, rsi_warmup=50),
        FeatureSpec(("logret",), lookback=13, frequency="weekly"),
        FeatureSpec(("logret", "vol"), lookback=8, frequency="weekly", vol_window=4),
    ],
)
def test_build_window_equals_feature_frame_rows(spec: FeatureSpec) -> None:
    p = _prices(900)
    ff = feature_frame(p, spec)
    assert list(ff.columns) == [(f, t) for f in spec.features for t in TICKERS]
    for asof in ("2020-06-17", "2021-03-05", "2022-06-15"):
        # reference: the full feature frame of the data known at asof (mid-week: the week so far is the last row)
        X = feature_frame(p.loc[:asof], spec).to_numpy()
        w = build_window(p, spec, asof)
        assert w.shape == (spec.lookback, spec.n_inputs(len(TICKERS)))
        np.testing.assert_array_equal(w, X[-spec.lookback :])  # bit-identical: training == inference
    X = ff.to_numpy()
    i = int(
        ff.index.searchsorted(pd.Timestamp("2021-03-05"), side="right")
    )  # a Friday: same rows as full history
    np.testing.assert_array_equal(build_window(p, spec, "2021-03-05"), X[i - spec.lookback : i])


@settings(max_examples=25, deadline=None)
@given(
    cut=st.integers(min_value=250, max_value=590),
    scale=st.floats(min_value=0.2, max_value=5.0),
    weekly=st.booleans(),
)
def test_build_window_ignores_rows_after_asof(cut: int, scale: float, weekly: bool) -> None:
    p = _prices(600, seed=3)
    spec = (
        FeatureSpec(("logret", "vol"), lookback=10, frequency="weekly", vol_window=4)
        if weekly
        else FeatureSpec(("ret", "rsi", "vol", "bbw", "macross"), lookback=20, rsi_warmup=30)
    )
    asof = p.index[cut]
    before = build_window(p, spec, asof)
    q = p.copy()
    q.iloc[cut + 1 :] = q.iloc[cut + 1 :].to_numpy() * scale  # rewrite the future
    np.testing.assert_array_equal(build_window(q, spec, asof), before)
    np.testing.assert_array_equal(build_window(p.iloc[: cut + 1], spec, asof), before)


def test_build_window_short_history_and_missing_values() -> None:
    p = _prices(100)
    spec = FeatureSpec(("ret", "rsi"), lookback=30, rsi_warmup=100)
    with pytest.raises(DataError, match="not enough history"):
        build_window(p, spec, p.index[-1])
    q = _prices(300)
    q.iloc[-3, 1] = np.nan
    with pytest.raises(DataError, match="BBB"):
        build_window(q, FeatureSpec(("ret",), lookback=10), q.index[-1])
    with pytest.raises(DataError, match="ZZZ"):
        build_window(q, FeatureSpec(("ret",), lookback=10), q.index[-1], tickers=["AAA", "ZZZ"])


def test_feature_spec_round_trip_and_validation() -> None:
    spec = FeatureSpec(("ret", "rsi", "bbw"), lookback=20, frequency="daily", rsi_warmup=50, bb_window=15)
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    assert spec.warmup == 50 and spec.rows_needed == 70
    with pytest.raises(ValueError, match="unknown features"):
        FeatureSpec(("ret", "momentum"))
    with pytest.raises(ValueError, match="unknown feature-spec keys"):
        FeatureSpec.from_dict({**spec.to_dict(), "colour": 1})


def test_scalers_round_trip() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4)) * [1, 10, 0.01, 0] + [0, 5, 1, 3]
    for sc in (MinMaxScaler.fit(x, (-1.0, 1.0)), StandardScaler.fit(x)):
        y = sc.transform(x)
        np.testing.assert_allclose(sc.inverse_transform(y), x, atol=1e-12)
        again = scaler_from_dict(sc.to_dict())
        assert again is not None
        np.testing.assert_array_equal(again.transform(x), y)
    mm = MinMaxScaler.fit(x, (-1.0, 1.0)).transform(x)
    assert mm[:, :3].min() == pytest.approx(-1.0) and mm[:, :3].max() == pytest.approx(1.0)
    assert np.isfinite(mm[:, 3]).all()  # constant column stays finite
    assert scaler_from_dict(None) is None
