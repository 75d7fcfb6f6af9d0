"""agent.metrics against independent recomputations (loops, closed forms, scipy) on small hand-made NAVs."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from agent import metrics as M
from agent.decision import canonical_json

NAV_VALUES = [100.0, 110.0, 99.0, 108.9, 120.0, 90.0, 95.0, 101.0, 97.0, 104.0]


def _nav(values: list[float], start: str = "2021-01-04") -> pd.Series:
    return pd.Series(values, index=pd.bdate_range(start, periods=len(values), name="date"), dtype="float64")


def _loop_returns(values: list[float]) -> list[float]:
    return [values[i] / values[i - 1] - 1.0 for i in range(1, len(values))]


def _loop_mdd(values: list[float]) -> float:
    peak, worst = values[0], 0.0
    for v in values:
        peak = max(peak, v)
        worst = min(worst, v / peak - 1.0)
    return worst


def _loop_std(x: list[float]) -> float:
    m = sum(x) / len(x)
    return math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1))


# ------------------------------------------------------------------------------------------- whole period
def test_portfolio_metrics_match_independent_loop() -> None:
    nav = _nav(NAV_VALUES)
    m = M.portfolio_metrics(nav, turnover=1.5, n_rebalances=3, costs=0.002)
    r = _loop_returns(NAV_VALUES)
    n = len(r)
    mean = sum(r) / n
    sd = _loop_std(r)
    total = NAV_VALUES[-1] / NAV_VALUES[0] - 1.0
    cagr = math.exp(math.log(NAV_VALUES[-1] / NAV_VALUES[0]) * 252 / n) - 1.0
    downside = math.sqrt(sum(min(v, 0.0) ** 2 for v in r) / n)
    mdd = _loop_mdd(NAV_VALUES)

    assert m["total_return"] == pytest.approx(total, rel=1e-12)
    assert m["cagr"] == pytest.approx(cagr, rel=1e-10)
    assert m["volatility"] == pytest.approx(sd * math.sqrt(252), rel=1e-12)
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(252), rel=1e-12)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(252), rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(mdd, rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(90.0 / 120.0 - 1.0)  # -25%, a negative fraction
    assert m["calmar"] == pytest.approx(cagr / abs(mdd), rel=1e-10)
    assert (m["turnover"], m["n_rebalances"], m["costs"]) == (1.5, 3, 0.002)
    assert m["n_days"] == n
    assert m["final_nav"] == pytest.approx(1.04)
    assert (m["start"], m["end"]) == ("2021-01-04", "2021-01-15")
    assert m["skew"] == pytest.approx(stats.skew(r), rel=1e-10)
    assert m["kurtosis"] == pytest.approx(stats.kurtosis(r, fisher=False), rel=1e-10)


def test_contract_keys_come_first_in_order() -> None:
    m = M.portfolio_metrics(_nav(NAV_VALUES))
    assert tuple(m)[: len(M.CONTRACT_KEYS)] == M.CONTRACT_KEYS


def test_nav_scale_does_not_matter() -> None:
    a = M.portfolio_metrics(_nav(NAV_VALUES))
    b = M.portfolio_metrics(_nav([v / 100.0 for v in NAV_VALUES]))
    for k in ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "psr"):
        assert a[k] == pytest.approx(b[k], rel=1e-12)


def test_single_fifty_percent_drawdown() -> None:
    m = M.portfolio_metrics(_nav([1.0, 2.0, 1.0, 1.5]))
    assert m["max_drawdown"] == pytest.approx(-0.5)
    assert m["total_return"] == pytest.approx(0.5)
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.5)
    dd = M.drawdown_series(_nav([1.0, 2.0, 1.0, 1.5]))
    assert dd.tolist() == pytest.approx([0.0, 0.0, -0.5, -0.25])


def test_constant_growth_has_zero_vol_and_undefined_ratios() -> None:
    nav = _nav([1.001**i for i in range(300)])
    m = M.portfolio_metrics(nav)
    assert m["volatility"] == 0.0
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"])  # undefined, not inf, never raises
    assert m["max_drawdown"] == 0.0 and math.isnan(m["calmar"])
    assert m["cagr"] == pytest.approx(1.001**252 - 1.0, rel=1e-9)
    assert math.isnan(m["psr"]) and math.isnan(m["dsr"])
    # NaN is written as JSON null
    assert json.loads(canonical_json(m))["sharpe"] is None


def test_flat_nav_and_single_row_do_not_crash() -> None:
    flat = M.portfolio_metrics(_nav([1.0] * 10))
    assert flat["total_return"] == 0.0 and flat["volatility"] == 0.0 and math.isnan(flat["sharpe"])
    one = M.portfolio_metrics(_nav([1.0]))
    assert one["total_return"] == 0.0 and one["n_days"] == 0
    assert math.isnan(one["cagr"]) and math.isnan(one["volatility"]) and math.isnan(one["sharpe"])


def test_no_losing_day_gives_nan_sortino() -> None:
    m = M.portfolio_metrics(_nav([1.0, 1.01, 1.03, 1.04, 1.07]))
    assert math.isnan(m["sortino"]) and m["sharpe"] > 0


def test_non_positive_nav_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        M.portfolio_metrics(_nav([1.0, 0.0, 1.0]))


def test_constant_risk_free_rate() -> None:
    nav = _nav(NAV_VALUES)
    rf = 0.0001
    r = [v - rf for v in _loop_returns(NAV_VALUES)]
    m = M.portfolio_metrics(nav, rf_daily=rf)
    assert m["sharpe"] == pytest.approx(sum(r) / len(r) / _loop_std(r) * math.sqrt(252), rel=1e-12)
    # volatility is of raw returns; a constant rf does not change it
    assert m["volatility"] == pytest.approx(M.portfolio_metrics(nav)["volatility"], rel=1e-12)


def test_risk_free_series_is_aligned_by_date_with_forward_fill() -> None:
    nav = _nav(NAV_VALUES)
    # rates published on some dates only (and one earlier than the NAV): forward-filled to each return date
    rf = pd.Series([0.0002, 0.0005], index=pd.to_datetime(["2020-12-31", "2021-01-11"]))
    dates = nav.index[1:]
    rf_expected = [0.0005 if d >= pd.Timestamp("2021-01-11") else 0.0002 for d in dates]
    x = [r - f for r, f in zip(_loop_returns(NAV_VALUES), rf_expected, strict=True)]
    m = M.portfolio_metrics(nav, rf_daily=rf)
    assert m["sharpe"] == pytest.approx(sum(x) / len(x) / _loop_std(x) * math.sqrt(252), rel=1e-12)
    with pytest.raises(ValueError, match="risk-free"):
        M.portfolio_metrics(nav, rf_daily=pd.Series([0.0001], index=pd.to_datetime(["2021-01-12"])))


# ---------------------------------------------------------------------------------------- periods and windows
def _daily_nav(start: str = "2020-03-02", end: str = "2023-06-30", seed: int = 7) -> pd.Series:
    idx = pd.bdate_range(start, end, name="date")
    r = np.random.default_rng(seed).normal(0.0004, 0.01, len(idx))
    r[0] = 0.0
    return pd.Series(np.cumprod(1.0 + r), index=idx)


def test_per_year_splits_chain_to_the_total() -> None:
    nav = _daily_nav()
    per = M.per_period_metrics(nav)
    assert list(per) == ["2020", "2021", "2022", "2023"]
    chained = math.prod(1.0 + m["total_return"] for m in per.values()) - 1.0
    assert chained == pytest.approx(nav.iloc[-1] / nav.iloc[0] - 1.0, rel=1e-12)
    # 2021 runs from the last 2020 close to the last 2021 close (independent slice)
    y20 = nav[nav.index.year == 2020].iloc[-1]
    y21 = nav[nav.index.year == 2021].iloc[-1]
    assert per["2021"]["total_return"] == pytest.approx(y21 / y20 - 1.0, rel=1e-12)
    assert per["2021"]["n_days"] == int((nav.index.year == 2021).sum())
    assert per["2021"]["max_drawdown"] == pytest.approx(
        _loop_mdd([y20, *nav[nav.index.year == 2021].tolist()]), rel=1e-12
    )
    assert per["2020"]["n_days"] == int((nav.index.year == 2020).sum()) - 1  # the first row is the base


def test_per_quarter_and_month_labels() -> None:
    nav = _daily_nav("2021-01-04", "2021-12-31")
    assert list(M.per_period_metrics(nav, "QE")) == ["2021Q1", "2021Q2", "2021Q3", "2021Q4"]
    assert len(M.per_period_metrics(nav, "ME")) == 12
    with pytest.raises(ValueError, match="freq"):
        M.per_period_metrics(nav, "W")


def test_window_matches_the_calendar_year_and_sums_activity() -> None:
    nav = _daily_nav()
    trade_dates = pd.to_datetime(["2021-12-31", "2022-01-03", "2022-06-01", "2023-01-03"])
    turnover = pd.Series([0.5, 0.2, 0.3, 0.4], index=trade_dates)
    costs = pd.Series([5e-4, 2e-4, 3e-4, 4e-4], index=trade_dates)
    w = M.window_metrics(nav, "2022-01-01", "2022-12-31", turnover=turnover, costs=costs)
    y = M.per_period_metrics(nav, turnover=turnover, costs=costs)["2022"]
    for k in ("total_return", "cagr", "volatility", "sharpe", "max_drawdown"):
        assert w[k] == pytest.approx(y[k], rel=1e-12)
    assert w["turnover"] == pytest.approx(0.5) and w["n_rebalances"] == 2
    assert w["costs"] == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="no NAV rows"):
        M.window_metrics(nav, "2030-01-01", "2030-12-31")


def test_rolling_sharpe_length_and_values() -> None:
    nav = _daily_nav("2021-01-04", "2021-12-31")
    rs = M.rolling_sharpe(nav, window=60)
    assert len(rs) == len(nav) - 1
    assert rs.iloc[:59].isna().all() and rs.iloc[59:].notna().all()
    r = _loop_returns(nav.tolist())
    last = r[-60:]
    assert rs.iloc[-1] == pytest.approx(sum(last) / 60 / _loop_std(last) * math.sqrt(252), rel=1e-9)


def test_kfold_is_contiguous_and_averages_folds() -> None:
    nav = _daily_nav()
    res = M.kfold_metrics(nav, k=5)
    folds = res["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3, 4, 5]
    n_days = [f["n_days"] for f in folds]
    assert sum(n_days) == len(nav) - 1 and max(n_days) - min(n_days) <= 1
    for a, b in itertools.pairwise(folds):
        assert a["end"] == b["start"]  # each fold starts at the previous fold's last NAV
    assert math.prod(1.0 + f["total_return"] for f in folds) - 1.0 == pytest.approx(
        nav.iloc[-1] / nav.iloc[0] - 1.0, rel=1e-12
    )
    for k in ("cagr", "sharpe", "max_drawdown"):
        assert res["mean"][k] == pytest.approx(sum(f[k] for f in folds) / 5, rel=1e-12)
    with pytest.raises(ValueError):
        M.kfold_metrics(_nav([1.0, 1.1, 1.2]), k=5)


# --------------------------------------------------------------------------------------------------- PSR / DSR
def _two_point(n: int = 100, a: float = 0.001, d: float = 0.01) -> np.ndarray:
    """Returns a ± d alternating: mean a, skew 0, kurtosis 1, so PSR = Φ(SR √(n−1)) exactly."""
    return np.array([a + d, a - d] * (n // 2))


def test_psr_hand_example() -> None:
    # SR = a / (d √(n/(n−1))); SR √(n−1) = (a/d)(n−1)/√n = 0.1 · 99 / 10 = 0.99; Φ(0.99) = 0.838913
    assert M.probabilistic_sharpe_ratio(_two_point()) == pytest.approx(0.8389129, abs=1e-7)
    assert M.probabilistic_sharpe_ratio(-_two_point()) == pytest.approx(1 - 0.8389129, abs=1e-7)


def test_psr_matches_scipy_formula_with_fat_tails() -> None:
    x = np.random.default_rng(3).standard_t(4, 500) * 0.01 + 0.0008
    sr = x.mean() / x.std(ddof=1)
    g3, g4 = stats.skew(x), stats.kurtosis(x, fisher=False)
    bench = 0.02
    ref = stats.norm.cdf((sr - bench) * math.sqrt(len(x) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert M.probabilistic_sharpe_ratio(x, bench) == pytest.approx(ref, rel=1e-10)


def test_expected_max_sharpe_and_dsr_hand_example() -> None:
    v, n_trials = 0.0025, 10
    sr0 = math.sqrt(v) * (
        (1 - 0.5772156649) * stats.norm.ppf(1 - 1 / n_trials)
        + 0.5772156649 * stats.norm.ppf(1 - 1 / (n_trials * math.e))
    )
    assert M.expected_max_sharpe(n_trials, v) == pytest.approx(sr0, rel=1e-9)
    assert sr0 == pytest.approx(0.05 * (0.4227843351 * 1.2815516 + 0.5772156649 * 1.7894), rel=1e-4)
    x = _two_point()
    sr = 0.001 / (0.01 * math.sqrt(100 / 99))
    # skew 0 and kurtosis 1: the PSR denominator is exactly 1
    expected = stats.norm.cdf((sr - sr0) * math.sqrt(99))
    assert M.deflated_sharpe_ratio(x, n_trials, v) == pytest.approx(expected, rel=1e-9)
    assert M.deflated_sharpe_ratio(x, n_trials, v) < M.probabilistic_sharpe_ratio(x)
    # one trial: nothing to deflate
    assert M.deflated_sharpe_ratio(x, 1, v) == pytest.approx(M.probabilistic_sharpe_ratio(x))
    assert M.expected_max_sharpe(1, v) == 0.0
    # more trials, a higher bar
    assert M.expected_max_sharpe(100, v) > M.expected_max_sharpe(10, v)


def test_sharpe_variance_default_for_dsr() -> None:
    x = _two_point()
    sr = 0.001 / (0.01 * math.sqrt(100 / 99))
    assert M.sharpe_variance(x) == pytest.approx(1.0 / 99, rel=1e-9)  # (1 − 0 + 0 · SR²) / (n − 1)
    assert M.deflated_sharpe_ratio(x, 5) == pytest.approx(
        stats.norm.cdf((sr - M.expected_max_sharpe(5, 1.0 / 99)) * math.sqrt(99)), rel=1e-9
    )


# ---------------------------------------------------------------------------------------------- alpha / table
def test_alpha_regression_recovers_beta_and_alpha() -> None:
    base = _daily_nav("2021-01-04", "2022-12-30", seed=11)
    rb = base.pct_change().fillna(0.0).to_numpy()
    rs = 0.0002 + 2.0 * rb
    rs[0] = 0.0
    strat = pd.Series(np.cumprod(1 + rs), index=base.index)
    a = M.alpha(strat, base)
    assert a["beta"] == pytest.approx(2.0, rel=1e-9)
    assert a["alpha"] == pytest.approx(0.0002 * 252, rel=1e-6)
    assert a["r2"] == pytest.approx(1.0)
    assert a["excess_cagr"] == pytest.approx(M.cagr(strat) - M.cagr(base), rel=1e-12)
    d = (rs - rb)[1:]
    assert a["active_return"] == pytest.approx(d.mean() * 252, rel=1e-9)
    assert a["tracking_error"] == pytest.approx(d.std(ddof=1) * math.sqrt(252), rel=1e-9)


def test_subperiod_alpha_three_windows() -> None:
    base = _daily_nav("2021-01-04", "2022-12-30", seed=1)
    strat = _daily_nav("2021-01-04", "2022-12-30", seed=2)
    wins = M.subperiod_alpha(strat, base, 3)
    assert len(wins) == 3 and wins[0]["start"] == "2021-01-04" and wins[-1]["end"] == "2022-12-30"
    for w in wins:
        s = strat.loc[w["end"]] / strat.loc[w["start"]] - 1
        b = base.loc[w["end"]] / base.loc[w["start"]] - 1
        assert w["alpha"] == pytest.approx(s - b, rel=1e-12)


def test_metrics_table_is_keyed_by_portfolio_and_json_ready() -> None:
    navs = pd.DataFrame({"strategy": _daily_nav(seed=1), "equal_weight": _daily_nav(seed=2)})
    navs = navs / navs.iloc[0]
    table = M.metrics_table(
        navs, turnover={"strategy": 2.5}, n_rebalances={"strategy": 12}, costs={"strategy": 0.001}
    )
    assert list(table) == ["strategy", "equal_weight"]
    for m in table.values():
        assert set(M.CONTRACT_KEYS) <= set(m)
    assert table["strategy"]["n_rebalances"] == 12 and table["equal_weight"]["turnover"] == 0.0
    assert table["strategy"]["sharpe"] == M.portfolio_metrics(navs["strategy"])["sharpe"]
    assert json.loads(canonical_json(table))["equal_weight"]["max_drawdown"] < 0
    per = M.per_period_table(navs)
    assert list(per) == ["strategy", "equal_weight"] and "2022" in per["strategy"]


def test_risk_return_point_is_arithmetic_annualized() -> None:
    nav = _nav(NAV_VALUES)
    r = _loop_returns(NAV_VALUES)
    vol, ret = M.risk_return_point(nav)
    assert vol == pytest.approx(_loop_std(r) * math.sqrt(252)) and ret == pytest.approx(sum(r) / len(r) * 252)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-0.2, 0.2, allow_nan=False), min_size=3, max_size=80))
def test_property_drawdown_bounds_and_year_chain(rets: list[float]) -> None:
    values = list(np.cumprod([1.0, *[1.0 + r for r in rets]]))
    nav = pd.Series(values, index=pd.bdate_range("2021-12-01", periods=len(values)))
    m = M.portfolio_metrics(nav)
    assert -1.0 < m["max_drawdown"] <= 0.0
    assert m["max_drawdown"] == pytest.approx(_loop_mdd(values), abs=1e-12)
    per = M.per_period_metrics(nav)
    assert math.prod(1 + p["total_return"] for p in per.values()) - 1 == pytest.approx(
        m["total_return"], abs=1e-9
    )
