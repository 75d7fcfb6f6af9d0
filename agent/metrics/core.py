"""Basic NAV statistics: returns, CAGR, drawdowns, Sharpe/Sortino, moments (conventions in agent.metrics)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from agent.decision import TRADING_DAYS

__all__ = [
    "CONTRACT_KEYS",
    "EULER_GAMMA",
    "PERIODS_PER_YEAR",
    "RiskFree",
    "cagr",
    "drawdown_series",
    "max_drawdown",
    "returns_from_nav",
    "risk_return_point",
    "sharpe_ratio",
    "sortino_ratio",
]

PERIODS_PER_YEAR = TRADING_DAYS
EULER_GAMMA = 0.5772156649015329
# The metrics.json keys every portfolio must carry (DESIGN.md, CLI contract).
CONTRACT_KEYS = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "turnover",
    "n_rebalances",
    "costs",
)
# A daily standard deviation below this is floating-point noise of a constant series, not risk.
_ZERO_STD = 1e-12
_NAN = float("nan")
_NORMAL = NormalDist()

RiskFree = float | pd.Series


# ----------------------------------------------------------------------------------------------- basics
def _clean_nav(nav: pd.Series) -> pd.Series:
    """Float, sorted, NaN-free NAV; non-positive values are a bug upstream and must not be averaged away."""
    s = pd.Series(nav, dtype="float64").dropna().sort_index()
    if (s <= 0).any():
        raise ValueError("NAV must be strictly positive")
    return s


def returns_from_nav(nav: pd.Series) -> pd.Series:
    """Daily simple returns (the first NAV row is the base and has no return)."""
    s = _clean_nav(nav)
    return (s / s.shift(1) - 1.0).iloc[1:]


def _rf_for(returns: pd.Series, rf_daily: RiskFree) -> pd.Series:
    """The per-session risk-free rate aligned to the returns' dates (rate at t applies to the return ending t)."""
    if isinstance(rf_daily, pd.Series):
        rf = pd.Series(rf_daily, dtype="float64").sort_index()
        aligned = rf.reindex(rf.index.union(returns.index)).ffill().reindex(returns.index)
        if aligned.isna().any():
            first = aligned.index[aligned.isna()][0]
            raise ValueError(f"risk-free series has no rate on or before {first.date()}")
        return aligned
    return pd.Series(float(rf_daily), index=returns.index)


def _excess(nav: pd.Series, rf_daily: RiskFree) -> pd.Series:
    r = returns_from_nav(nav)
    return r - _rf_for(r, rf_daily)


def _std(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) >= 2 else _NAN


def cagr(nav: pd.Series) -> float:
    """Compound annual growth over sessions: (end/start) ** (252 / n_returns) - 1."""
    s = _clean_nav(nav)
    n = len(s) - 1
    if n < 1:
        return _NAN
    return float((s.iloc[-1] / s.iloc[0]) ** (PERIODS_PER_YEAR / n) - 1.0)


def drawdown_series(nav: pd.Series) -> pd.Series:
    """Underwater curve: nav / running peak - 1 (0 at new highs, negative below)."""
    s = _clean_nav(nav)
    return s / s.cummax() - 1.0


def max_drawdown(nav: pd.Series) -> float:
    """Deepest peak-to-trough loss as a negative fraction (0.0 for a series that never falls)."""
    s = _clean_nav(nav)
    if len(s) == 0:
        return _NAN
    return float(min(0.0, drawdown_series(s).min()))


def sharpe_ratio(excess: np.ndarray | pd.Series, periods: int = PERIODS_PER_YEAR) -> float:
    """Annualized Sharpe ratio of per-period excess returns; nan when the volatility is zero."""
    x = np.asarray(excess, dtype=float)
    sd = _std(x)
    if not (sd > _ZERO_STD):
        return _NAN
    return float(np.mean(x) / sd * math.sqrt(periods))


def sortino_ratio(excess: np.ndarray | pd.Series, periods: int = PERIODS_PER_YEAR) -> float:
    """Annualized Sortino ratio, target 0, downside deviation over all periods; nan without any downside."""
    x = np.asarray(excess, dtype=float)
    if len(x) < 2:
        return _NAN
    dd = math.sqrt(float(np.mean(np.minimum(x, 0.0) ** 2)))
    if not (dd > _ZERO_STD):
        return _NAN
    return float(np.mean(x) / dd * math.sqrt(periods))


def _moments(x: np.ndarray) -> tuple[float, float]:
    """Skewness and (non-excess, normal = 3) kurtosis with the biased moment estimators (as scipy's defaults)."""
    if len(x) < 2:
        return _NAN, _NAN
    d = x - x.mean()
    m2 = float(np.mean(d**2))
    if not (m2 > _ZERO_STD**2):
        return _NAN, _NAN
    return float(np.mean(d**3) / m2**1.5), float(np.mean(d**4) / m2**2)


def risk_return_point(nav: pd.Series) -> tuple[float, float]:
    """(annualized vol, annualized arithmetic mean return): the coordinates the efficient frontier uses."""
    r = returns_from_nav(nav).to_numpy()
    if len(r) < 2:
        return _NAN, _NAN
    return _std(r) * math.sqrt(PERIODS_PER_YEAR), float(np.mean(r)) * PERIODS_PER_YEAR
