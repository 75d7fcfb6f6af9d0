"""Rolling Sharpe and the strategy against a baseline (active return, tracking error, CAPM alpha/beta)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from agent.metrics.core import (
    _NAN,
    _ZERO_STD,
    PERIODS_PER_YEAR,
    RiskFree,
    _clean_nav,
    _excess,
    _rf_for,
    _std,
    cagr,
    returns_from_nav,
    sharpe_ratio,
)

__all__ = ["alpha", "rolling_sharpe", "subperiod_alpha"]


def rolling_sharpe(nav: pd.Series, window: int = 126, *, rf_daily: RiskFree = 0.0) -> pd.Series:
    """Annualized Sharpe over a trailing window of daily returns; indexed like the returns (len(nav) - 1).

    The first window - 1 values are nan; windows with zero volatility are nan.
    """
    x = _excess(nav, rf_daily)
    mean = x.rolling(window, min_periods=window).mean()
    sd = x.rolling(window, min_periods=window).std(ddof=1)
    out = mean / sd.where(sd > _ZERO_STD) * math.sqrt(PERIODS_PER_YEAR)
    return out.rename("rolling_sharpe")


def alpha(nav: pd.Series, baseline_nav: pd.Series, *, rf_daily: RiskFree = 0.0) -> dict[str, float]:
    """Strategy vs a baseline on their common dates.

    - `excess_cagr`: cagr(strategy) − cagr(baseline), the annualized excess return; `excess_total_return` the same
      for total return.
    - `active_return`: mean(r − b) · 252; `tracking_error`: std(r − b) · √252; `information_ratio` their ratio.
    - `alpha`, `beta`: OLS of daily excess returns, r − rf = a + β (b − rf) + e (CAPM style); `alpha` = a · 252
      (annualized arithmetic), with `alpha_t` its t-statistic and `r2`.
    """
    s = _clean_nav(nav)
    b = _clean_nav(baseline_nav)
    common = s.index.intersection(b.index)
    s, b = s.loc[common], b.loc[common]
    rs, rb = returns_from_nav(s), returns_from_nav(b)
    rf = _rf_for(rs, rf_daily)
    y, x = (rs - rf).to_numpy(), (rb - rf).to_numpy()
    d = (rs - rb).to_numpy()
    out: dict[str, float] = {
        "excess_total_return": float(s.iloc[-1] / s.iloc[0] - b.iloc[-1] / b.iloc[0]) if len(s) else _NAN,
        "excess_cagr": cagr(s) - cagr(b),
        "active_return": float(np.mean(d)) * PERIODS_PER_YEAR if len(d) else _NAN,
        "tracking_error": _std(d) * math.sqrt(PERIODS_PER_YEAR),
        "information_ratio": sharpe_ratio(d),
        "alpha": _NAN,
        "beta": _NAN,
        "alpha_t": _NAN,
        "r2": _NAN,
    }
    n = len(y)
    if n >= 3 and np.var(x) > _ZERO_STD**2:
        xm, ym = x.mean(), y.mean()
        beta = float(np.sum((x - xm) * (y - ym)) / np.sum((x - xm) ** 2))
        a = float(ym - beta * xm)
        resid = y - a - beta * x
        s2 = float(np.sum(resid**2) / (n - 2))
        se_a = math.sqrt(s2 * (1.0 / n + xm**2 / float(np.sum((x - xm) ** 2))))
        sst = float(np.sum((y - ym) ** 2))
        out.update(
            alpha=a * PERIODS_PER_YEAR,
            beta=beta,
            alpha_t=a / se_a if se_a > 0 else _NAN,
            r2=1.0 - float(np.sum(resid**2)) / sst if sst > 0 else _NAN,
        )
    return out


def subperiod_alpha(nav: pd.Series, baseline_nav: pd.Series, n_windows: int = 3) -> list[dict[str, Any]]:
    """Cumulative excess return over n contiguous non-overlapping windows (study 001, Table 2)."""
    s = _clean_nav(nav)
    b = _clean_nav(baseline_nav)
    common = s.index.intersection(b.index)
    s, b = s.loc[common], b.loc[common]
    n = len(s) - 1
    if n < n_windows:
        raise ValueError(f"cannot split {n} returns into {n_windows} windows")
    out: list[dict[str, Any]] = []
    for i, part in enumerate(np.array_split(np.arange(1, n + 1), n_windows)):
        lo, hi = int(part[0]) - 1, int(part[-1])
        rs = float(s.iloc[hi] / s.iloc[lo] - 1.0)
        rb = float(b.iloc[hi] / b.iloc[lo] - 1.0)
        out.append(
            {
                "window": i + 1,
                "start": s.index[lo].date().isoformat(),
                "end": s.index[hi].date().isoformat(),
                "strategy_return": rs,
                "baseline_return": rb,
                "alpha": rs - rb,
            }
        )
    return out
