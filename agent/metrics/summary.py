"""Whole-period metrics of one NAV series and of a NAV frame: the numbers in metrics.json."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from agent.metrics.core import (
    _NAN,
    _ZERO_STD,
    PERIODS_PER_YEAR,
    RiskFree,
    _clean_nav,
    _moments,
    _rf_for,
    _std,
    cagr,
    max_drawdown,
    returns_from_nav,
    sharpe_ratio,
    sortino_ratio,
)
from agent.metrics.psr import deflated_sharpe_ratio, probabilistic_sharpe_ratio

__all__ = ["metrics_table", "portfolio_metrics"]


def portfolio_metrics(
    nav: pd.Series,
    *,
    rf_daily: RiskFree = 0.0,
    turnover: float = 0.0,
    n_rebalances: int = 0,
    costs: float = 0.0,
    n_trials: int = 1,
    sr_variance: float | None = None,
) -> dict[str, Any]:
    """Every metric of one NAV series: the contract keys (in contract order), then extras.

    Extras: mean_return_ann (arithmetic), downside_deviation (ann.), psr, dsr, skew, kurtosis, best_day,
    worst_day, start, end (ISO dates), n_days (number of daily returns), final_nav (nav[-1] / nav[0]).
    """
    s = _clean_nav(nav)
    r = returns_from_nav(s)
    x = (r - _rf_for(r, rf_daily)).to_numpy()
    rv = r.to_numpy()
    n = len(rv)
    total = float(s.iloc[-1] / s.iloc[0] - 1.0) if len(s) else _NAN
    growth = cagr(s)
    mdd = max_drawdown(s)
    sd = _std(rv)
    vol = (sd if sd > _ZERO_STD else 0.0) * math.sqrt(PERIODS_PER_YEAR) if n >= 2 else _NAN
    calmar = growth / abs(mdd) if (math.isfinite(growth) and mdd < 0) else _NAN
    skew, kurt = _moments(rv)
    downside = math.sqrt(float(np.mean(np.minimum(x, 0.0) ** 2))) * math.sqrt(PERIODS_PER_YEAR) if n else _NAN
    return {
        "total_return": total,
        "cagr": growth,
        "volatility": vol,
        "sharpe": sharpe_ratio(x),
        "sortino": sortino_ratio(x),
        "max_drawdown": mdd,
        "calmar": float(calmar),
        "turnover": float(turnover),
        "n_rebalances": int(n_rebalances),
        "costs": float(costs),
        "mean_return_ann": float(np.mean(rv)) * PERIODS_PER_YEAR if n else _NAN,
        "downside_deviation": downside,
        "psr": probabilistic_sharpe_ratio(x),
        "dsr": deflated_sharpe_ratio(x, n_trials, sr_variance),
        "skew": skew,
        "kurtosis": kurt,
        "best_day": float(np.max(rv)) if n else _NAN,
        "worst_day": float(np.min(rv)) if n else _NAN,
        "start": s.index[0].date().isoformat() if len(s) else None,
        "end": s.index[-1].date().isoformat() if len(s) else None,
        "n_days": int(n),
        "final_nav": float(s.iloc[-1] / s.iloc[0]) if len(s) else _NAN,
    }


def metrics_table(
    navs: pd.DataFrame,
    *,
    rf_daily: RiskFree = 0.0,
    turnover: Mapping[str, float] | None = None,
    n_rebalances: Mapping[str, int] | None = None,
    costs: Mapping[str, float] | None = None,
    n_trials: int = 1,
    sr_variance: float | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """{portfolio: portfolio_metrics} for every NAV column (date × portfolio), in column order: metrics.json.

    Missing bookkeeping entries are 0 (a baseline that never trades after its first allocation has whatever the
    caller passes; nothing is invented here). Each column's leading NaNs are dropped.
    """
    turnover, n_rebalances, costs = turnover or {}, n_rebalances or {}, costs or {}
    out: dict[str, dict[str, Any]] = {}
    for col in names or list(navs.columns):
        name = str(col)
        out[name] = portfolio_metrics(
            navs[col].dropna(),
            rf_daily=rf_daily,
            turnover=float(turnover.get(name, 0.0)),
            n_rebalances=int(n_rebalances.get(name, 0)),
            costs=float(costs.get(name, 0.0)),
            n_trials=n_trials,
            sr_variance=sr_variance,
        )
    return out
