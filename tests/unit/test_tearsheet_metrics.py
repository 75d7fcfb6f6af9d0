"""agent.metrics.tearsheet against empyrical-reloaded and quantstats (independent references), plus properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import metrics as M

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
ep = pytest.importorskip("empyrical")
qs = pytest.importorskip("quantstats")


def _navs(seed: int = 3, n: int = 900) -> tuple[pd.Series, pd.Series]:
    idx = pd.bdate_range("2019-03-04", periods=n, name="date")
    rng = np.random.default_rng(seed)
    common = rng.normal(0.0003, 0.009, n)
    r = common * 1.3 + rng.normal(0.0001, 0.006, n)
    b = common + rng.normal(0.0, 0.002, n)
    r[0] = b[0] = 0.0
    r[50:55] = 0.0  # a few flat sessions: hit rate must ignore them
    return pd.Series(np.cumprod(1 + r), idx), pd.Series(np.cumprod(1 + b), idx)


def _r(nav: pd.Series) -> pd.Series:
    return nav.pct_change().iloc[1:]


def test_calendar_returns_match_empyrical() -> None:
    nav, _ = _navs()
    r = _r(nav)
    np.testing.assert_allclose(
        M.monthly_returns(nav).to_numpy(), ep.aggregate_returns(r, "monthly"), atol=1e-12
    )
    np.testing.assert_allclose(
        M.yearly_returns(nav).to_numpy(), ep.aggregate_returns(r, "yearly"), atol=1e-12
    )
    grid = M.monthly_returns_grid(nav)
    assert grid.loc[2020, 3] == pytest.approx(float(M.monthly_returns(nav)[pd.Period("2020-03", "M")]))
    assert math.isnan(grid.loc[2019, 1])  # before the series starts


def test_tail_risk_and_hit_rate_match_references() -> None:
    nav, _ = _navs()
    r = _r(nav)
    assert M.value_at_risk(nav) == pytest.approx(ep.value_at_risk(r, 0.05), abs=1e-14)
    assert M.cvar(nav) == pytest.approx(ep.conditional_value_at_risk(r, 0.05), abs=1e-14)
    assert M.hit_rate(nav) == pytest.approx(qs.stats.win_rate(r), abs=1e-14)
    stats = M.tearsheet_stats(nav)
    assert stats["best_month"] == pytest.approx(qs.stats.best(r, aggregate="ME"), abs=1e-12)
    assert stats["worst_month"] == pytest.approx(qs.stats.worst(r, aggregate="ME"), abs=1e-12)


def test_rolling_vol_and_beta_match_references() -> None:
    nav, bench = _navs()
    rv = M.rolling_volatility(nav, 63).dropna()
    qv = qs.stats.rolling_volatility(_r(nav), 63).dropna()
    np.testing.assert_allclose(rv.to_numpy(), qv.reindex(rv.index).to_numpy(), atol=1e-12)
    rb = M.rolling_beta(nav, bench, 63).dropna()
    eb = np.asarray(ep.roll_beta(_r(nav), _r(bench), window=63))
    np.testing.assert_allclose(rb.to_numpy(), eb[-len(rb) :], atol=1e-10)
    assert 1.1 < float(rb.mean()) < 1.5  # built with beta 1.3


def test_drawdown_table_matches_quantstats_episodes() -> None:
    nav, _ = _navs()
    ours = M.drawdown_table(nav, 5)
    qd = qs.stats.drawdown_details(qs.stats.to_drawdown_series(_r(nav))).sort_values("max drawdown").head(5)
    np.testing.assert_allclose([d["depth"] for d in ours], qd["max drawdown"].to_numpy() / 100.0, atol=1e-10)
    # quantstats dates the first/last underwater session; we date the peak and the recovery session
    assert [d["trough"] for d in ours] == [str(v)[:10] for v in qd["valley"]]
    assert ours[0]["depth"] == pytest.approx(M.max_drawdown(nav))


def test_drawdown_table_hand_example() -> None:
    idx = pd.bdate_range("2024-01-01", periods=8)
    nav = pd.Series([1.0, 1.1, 0.99, 1.045, 1.12, 1.0, 1.05, 1.08], idx)
    rows = M.drawdown_table(nav)
    assert [r["start"] for r in rows] == ["2024-01-05", "2024-01-02"]  # -10.7% (open) before -10%
    assert rows[0]["recovery"] is None and rows[0]["length"] == 3 and not rows[0]["recovered"]
    assert rows[1] == {
        "start": "2024-01-02",
        "trough": "2024-01-03",
        "recovery": "2024-01-05",
        "depth": pytest.approx(-0.1),
        "length": 3,
        "to_trough": 1,
        "recovered": True,
    }


def test_trailing_returns_by_hand() -> None:
    idx = pd.bdate_range("2020-01-01", "2024-06-28")
    nav = pd.Series(np.linspace(1.0, 3.0, len(idx)), idx)
    tr = M.trailing_returns(nav)
    at = lambda d: float(nav[: pd.Timestamp(d)].iloc[-1])  # noqa: E731
    assert tr["MTD"] == pytest.approx(3.0 / at("2024-05-31") - 1)
    assert tr["YTD"] == pytest.approx(3.0 / at("2023-12-31") - 1)
    assert tr["3M"] == pytest.approx(3.0 / at("2024-03-28") - 1)
    assert tr["1Y"] == pytest.approx(3.0 / at("2023-06-28") - 1)
    n3 = int((nav.index > pd.Timestamp("2021-06-28")).sum())
    assert tr["3Y (ann.)"] == pytest.approx((3.0 / at("2021-06-28")) ** (252 / n3) - 1)
    assert math.isnan(tr["5Y (ann.)"])  # the series is 4.5 years long


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-0.08, 0.08, allow_nan=False), min_size=3, max_size=300),
    st.integers(0, 400),
)
def test_properties(rets: list[float], offset: int) -> None:
    idx = pd.bdate_range(pd.Timestamp("2018-01-01") + pd.Timedelta(days=offset), periods=len(rets) + 1)
    nav = pd.Series(np.cumprod(np.r_[1.0, 1.0 + np.asarray(rets)]), idx)
    total = float(nav.iloc[-1] / nav.iloc[0] - 1)
    assert float(np.prod(1 + M.monthly_returns(nav)) - 1) == pytest.approx(total, abs=1e-9)
    assert float(np.prod(1 + M.yearly_returns(nav)) - 1) == pytest.approx(total, abs=1e-9)
    rows = M.drawdown_table(nav, 1000)
    assert (rows[0]["depth"] if rows else 0.0) == pytest.approx(M.max_drawdown(nav), abs=1e-12)
    assert all(r["to_trough"] <= r["length"] for r in rows)
    assert M.cvar(nav) <= M.value_at_risk(nav) + 1e-15
