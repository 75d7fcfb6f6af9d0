"""Tear-sheet statistics a portfolio manager reads first: drawdown episodes, calendar returns, tail risk, hit rate.

Pure functions of a NAV `pd.Series` (the same input and cleaning as the rest of `agent.metrics`). Conventions,
chosen to match empyrical/quantstats where those define the same number (the tests check them against both):
- Calendar returns (`monthly_returns`, `yearly_returns`) compound the daily returns inside each calendar period;
  each period's base is the previous period's last NAV (the first period's base is the first NAV), so they
  chain to the total return (empyrical `aggregate_returns`).
- `drawdown_table`: one row per underwater episode, worst first. `start` is the PEAK date (last high before the
  fall), `trough` the date of the lowest NAV, `recovery` the first date the NAV is back at or above the peak
  (None while still underwater). `length` counts sessions from peak to recovery (or to the last date),
  `to_trough` sessions from peak to trough. Depth is a negative fraction.
- `value_at_risk` / `cvar`: historical, one day, at the given confidence: VaR is the (1 − c) quantile of daily
  returns (numpy's linear interpolation, as empyrical), CVaR (expected shortfall) the mean of the returns at or
  below it. Both negative for a loss.
- `hit_rate`: share of sessions with a positive return among sessions with a non-zero return (quantstats
  `win_rate`); `monthly_hit_rate` the same over calendar months.
- `trailing_returns`: MTD from the previous month's last NAV; 3M/6M/1Y from the last NAV on or before the same
  calendar date 3/6/12 months earlier; YTD from the previous year's last NAV; 3Y/5Y annualized (CAGR over
  sessions, 252 a year). nan when the series does not reach back that far.
- `rolling_volatility` = rolling std(ddof=1) · √252; `rolling_beta` = rolling cov(r, b) / var(b) of daily
  returns on common dates. Both nan until a full window is available.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from agent.metrics.core import _NAN, _ZERO_STD, PERIODS_PER_YEAR, _clean_nav, returns_from_nav

__all__ = [
    "TRAILING_PERIODS",
    "cvar",
    "drawdown_table",
    "hit_rate",
    "monthly_hit_rate",
    "monthly_returns",
    "monthly_returns_grid",
    "rolling_beta",
    "rolling_volatility",
    "tearsheet_stats",
    "trailing_returns",
    "value_at_risk",
    "yearly_returns",
]

TRAILING_PERIODS = ("MTD", "3M", "6M", "YTD", "1Y", "3Y (ann.)", "5Y (ann.)")


def _period_returns(nav: pd.Series, alias: str) -> pd.Series:
    """Compounded return per calendar period ("M" or "Y"), each based on the previous period's last NAV."""
    s = _clean_nav(nav)
    if len(s) < 2:
        return pd.Series(dtype="float64")
    periods = pd.DatetimeIndex(s.index).to_period(alias)
    last = s.groupby(periods).last()
    base = last.shift(1)
    base.iloc[0] = s.iloc[0]
    out = last / base - 1.0
    if len(s[periods == periods[0]]) == 1:  # the first period holds only the starting row: nothing happened
        out = out.iloc[1:]
    return out.astype("float64")


def monthly_returns(nav: pd.Series) -> pd.Series:
    """Compounded return of each calendar month, indexed by monthly Period."""
    return _period_returns(nav, "M")


def yearly_returns(nav: pd.Series) -> pd.Series:
    """Compounded return of each calendar year, indexed by yearly Period."""
    return _period_returns(nav, "Y")


def monthly_returns_grid(nav: pd.Series) -> pd.DataFrame:
    """Years × months (1..12) of monthly returns plus a 'year' column: the heat map's table (nan = no data)."""
    m = monthly_returns(nav)
    years = sorted({p.year for p in m.index})
    values = np.full((len(years), 12), np.nan)
    if len(m):
        rows = np.searchsorted(years, [p.year for p in m.index])
        values[rows, [p.month - 1 for p in m.index]] = m.to_numpy()
    grid = pd.DataFrame(values, index=years, columns=list(range(1, 13)))
    y = yearly_returns(nav)
    grid["year"] = pd.Series(y.to_numpy(), index=pd.PeriodIndex(y.index).year).reindex(grid.index)
    grid.index.name = "year"
    return grid


def drawdown_table(nav: pd.Series, top: int = 10) -> list[dict[str, Any]]:
    """The `top` deepest drawdown episodes, worst first (see the module docstring for the columns)."""
    s = _clean_nav(nav)
    if len(s) < 2:
        return []
    v = s.to_numpy()
    peak = np.maximum.accumulate(v)
    under = v < peak
    # episode id: increments at every session where the NAV is at a new high (not underwater)
    episode = np.cumsum(~under)
    rows: list[dict[str, Any]] = []
    for eid in np.unique(episode[under]):
        idx = np.flatnonzero(episode == eid)  # the peak row and the underwater rows after it
        pk = int(idx[0])
        body = idx[1:]
        tr = int(body[np.argmin(v[body])])
        rec = int(body[-1]) + 1 if int(body[-1]) + 1 < len(v) else None
        rows.append(
            {
                "start": s.index[pk].date().isoformat(),
                "trough": s.index[tr].date().isoformat(),
                "recovery": s.index[rec].date().isoformat() if rec is not None else None,
                "depth": float(v[tr] / v[pk] - 1.0),
                "length": int((rec if rec is not None else len(v) - 1) - pk),
                "to_trough": int(tr - pk),
                "recovered": rec is not None,
            }
        )
    rows.sort(key=lambda r: (r["depth"], r["start"]))
    return rows[:top]


def _returns(nav: pd.Series) -> np.ndarray:
    return returns_from_nav(nav).to_numpy()


def value_at_risk(nav: pd.Series, confidence: float = 0.95) -> float:
    """Historical one-day VaR: the (1 − confidence) quantile of daily returns (negative = loss)."""
    r = _returns(nav)
    return float(np.percentile(r, 100.0 * (1.0 - confidence))) if len(r) else _NAN


def cvar(nav: pd.Series, confidence: float = 0.95) -> float:
    """Historical one-day CVaR (expected shortfall): mean of the daily returns at or below the VaR."""
    r = _returns(nav)
    if not len(r):
        return _NAN
    var = np.percentile(r, 100.0 * (1.0 - confidence))
    return float(np.mean(r[r <= var]))


def hit_rate(nav: pd.Series) -> float:
    """Share of positive sessions among sessions with a non-zero return."""
    r = _returns(nav)
    nz = r[r != 0.0]
    return float(np.mean(nz > 0.0)) if len(nz) else _NAN


def monthly_hit_rate(nav: pd.Series) -> float:
    """Share of positive months among months with a non-zero return."""
    m = monthly_returns(nav).to_numpy()
    nz = m[m != 0.0]
    return float(np.mean(nz > 0.0)) if len(nz) else _NAN


def _nav_on_or_before(s: pd.Series, when: pd.Timestamp) -> float:
    pos = int(s.index.searchsorted(when, side="right")) - 1
    return float(s.iloc[pos]) if pos >= 0 else _NAN


def trailing_returns(nav: pd.Series) -> dict[str, float]:
    """Returns over the trailing periods in TRAILING_PERIODS, measured back from the last date."""
    s = _clean_nav(nav)
    out = dict.fromkeys(TRAILING_PERIODS, _NAN)
    if len(s) < 2:
        return out
    end, last = s.index[-1], float(s.iloc[-1])
    first = s.index[0]

    def since(base_date: pd.Timestamp, *, need_full: bool = True) -> float:
        if need_full and base_date < first:
            return _NAN
        base = _nav_on_or_before(s, base_date)
        return last / base - 1.0 if math.isfinite(base) else _NAN

    month_start = end.to_period("M").start_time
    year_start = end.to_period("Y").start_time
    # MTD/YTD: from the last NAV before the period; a series starting inside it uses its first NAV
    out["MTD"] = since(max(month_start - pd.Timedelta(days=1), first), need_full=False)
    out["YTD"] = since(max(year_start - pd.Timedelta(days=1), first), need_full=False)
    out["3M"] = since(end - pd.DateOffset(months=3))
    out["6M"] = since(end - pd.DateOffset(months=6))
    out["1Y"] = since(end - pd.DateOffset(years=1))
    for years, key in ((3, "3Y (ann.)"), (5, "5Y (ann.)")):
        when = end - pd.DateOffset(years=years)
        if when < first:
            continue
        pos = int(s.index.searchsorted(when, side="right")) - 1
        n = len(s) - 1 - pos
        out[key] = float((last / float(s.iloc[pos])) ** (PERIODS_PER_YEAR / n) - 1.0) if n > 0 else _NAN
    return out


def rolling_volatility(nav: pd.Series, window: int = 126) -> pd.Series:
    """Annualized volatility over a trailing window of daily returns (indexed like the returns)."""
    r = returns_from_nav(nav)
    return (r.rolling(window, min_periods=window).std(ddof=1) * math.sqrt(PERIODS_PER_YEAR)).rename(
        "rolling_volatility"
    )


def rolling_beta(nav: pd.Series, benchmark_nav: pd.Series, window: int = 126) -> pd.Series:
    """Beta of daily returns to a benchmark's over a trailing window, on common dates."""
    s, b = _clean_nav(nav), _clean_nav(benchmark_nav)
    common = s.index.intersection(b.index)
    r, rb = returns_from_nav(s.loc[common]), returns_from_nav(b.loc[common])
    cov = r.rolling(window, min_periods=window).cov(rb)
    var = rb.rolling(window, min_periods=window).var(ddof=1)
    return (cov / var.where(var > _ZERO_STD**2)).rename("rolling_beta")


def tearsheet_stats(nav: pd.Series, confidence: float = 0.95) -> dict[str, Any]:
    """The scalar tear-sheet numbers of one NAV series (the report's 'Risk and returns at a glance' table)."""
    m = monthly_returns(nav)
    out: dict[str, Any] = {f"trailing_{k}": v for k, v in trailing_returns(nav).items()}
    out.update(
        {
            "var_95": value_at_risk(nav, confidence),
            "cvar_95": cvar(nav, confidence),
            "hit_rate_daily": hit_rate(nav),
            "hit_rate_monthly": monthly_hit_rate(nav),
            "best_month": float(m.max()) if len(m) else _NAN,
            "worst_month": float(m.min()) if len(m) else _NAN,
            "best_month_label": str(m.idxmax()) if len(m) else None,
            "worst_month_label": str(m.idxmin()) if len(m) else None,
        }
    )
    return out
