"""Performance metrics of daily NAV series: the numbers in metrics.json, the report and the terminal summary.

Pure functions of a NAV `pd.Series` (tz-naive DatetimeIndex, one row per session, any positive start value).
Daily simple returns are `nav.pct_change()`; 252 sessions a year.

Conventions (fixed here so that every consumer reads the same numbers):
- `total_return` = nav[-1] / nav[0] - 1.
- `cagr` = (nav[-1] / nav[0]) ** (252 / n) - 1, with n the number of daily returns (sessions, not calendar days).
- `volatility` = std(r, ddof=1) * sqrt(252).
- `sharpe` = mean(r - rf) / std(r - rf, ddof=1) * sqrt(252); rf is a per-session rate (a constant, or a
  Series aligned to the NAV dates: the rate at date t applies to the return from t-1 to t).
- `sortino` = mean(r - rf) * 252 / (sqrt(mean(min(r - rf, 0) ** 2)) * sqrt(252)): downside deviation of excess
  returns with target 0, the mean of squared shortfalls taken over ALL sessions (Sortino & Price 1994; the same
  convention as empyrical/quantstats), annualized with sqrt(252).
- `max_drawdown` = min(nav / cummax(nav) - 1): a NEGATIVE fraction (or 0.0).
- `calmar` = cagr / |max_drawdown|.
- Undefined ratios (zero volatility, no downside, no drawdown, fewer than 2 returns) are `nan`, never an
  exception and never inf; `agent.decision.canonical_json` writes them as JSON null.
- `turnover`, `n_rebalances`, `costs` are bookkeeping from the ledger, passed through unchanged: `turnover` is the
  sum over rebalances of the turnover the ledger reports, `costs` the total transaction costs as a fraction of the
  initial capital.
- `psr` is the probabilistic Sharpe ratio against 0 and `dsr` the deflated Sharpe ratio (Bailey & López de
  Prado 2012/2014), both from daily (non-annualized) excess returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from agent.decision import TRADING_DAYS

__all__ = [
    "CONTRACT_KEYS",
    "EULER_GAMMA",
    "PERIODS_PER_YEAR",
    "alpha",
    "cagr",
    "deflated_sharpe_ratio",
    "drawdown_series",
    "expected_max_sharpe",
    "kfold_metrics",
    "max_drawdown",
    "metrics_table",
    "per_period_metrics",
    "per_period_table",
    "portfolio_metrics",
    "probabilistic_sharpe_ratio",
    "returns_from_nav",
    "risk_return_point",
    "rolling_sharpe",
    "sharpe_ratio",
    "sharpe_variance",
    "sortino_ratio",
    "subperiod_alpha",
    "window_metrics",
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


# ------------------------------------------------------------------------- probabilistic / deflated SR
def _psr_from_stats(sr: float, sr_benchmark: float, n: int, skew: float, kurt: float) -> float:
    if n < 2 or not all(math.isfinite(v) for v in (sr, sr_benchmark, skew, kurt)):
        return _NAN
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    if not (var > 0):
        return _NAN
    return float(_NORMAL.cdf((sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(var)))


def _daily_stats(returns: np.ndarray | pd.Series) -> tuple[float, int, float, float]:
    x = np.asarray(returns, dtype=float)
    x = x[np.isfinite(x)]
    sd = _std(x)
    sr = float(np.mean(x) / sd) if sd > _ZERO_STD else _NAN
    skew, kurt = _moments(x)
    return sr, len(x), skew, kurt


def probabilistic_sharpe_ratio(returns: np.ndarray | pd.Series, sr_benchmark: float = 0.0) -> float:
    """P(true SR > sr_benchmark) given the sample SR, its length, skewness and kurtosis (Bailey & LdP 2012).

    PSR = Φ((SR − SR*) √(n − 1) / √(1 − γ3 SR + (γ4 − 1)/4 SR²)), all per period (not annualized):
    SR = mean / std(ddof=1), γ3 skewness, γ4 kurtosis (normal = 3), n the number of returns. `sr_benchmark` is
    per period too (divide an annual SR by √252). nan when the SR is undefined.
    """
    sr, n, skew, kurt = _daily_stats(returns)
    return _psr_from_stats(sr, sr_benchmark, n, skew, kurt)


def sharpe_variance(returns: np.ndarray | pd.Series) -> float:
    """Asymptotic variance of the per-period SR estimator: (1 − γ3 SR + (γ4 − 1)/4 SR²) / (n − 1).

    Why: the default dispersion of Sharpe ratios across trials for the deflated SR when the trials' own SRs are
    unknown (the dispersion expected if every trial were noise around this SR).
    """
    sr, n, skew, kurt = _daily_stats(returns)
    if n < 2 or not all(math.isfinite(v) for v in (sr, skew, kurt)):
        return _NAN
    return float((1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2) / (n - 1))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """E[max SR] of n_trials unskilled strategies (Bailey & LdP 2014, Euler–Mascheroni approximation).

    SR0 = √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))). One trial (or zero variance) gives 0: nothing to deflate.
    """
    if n_trials < 1:
        raise ValueError("n_trials must be >= 1")
    if n_trials == 1 or not (sr_variance > 0):
        return 0.0
    n = float(n_trials)
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e))
    return float(math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe_ratio(
    returns: np.ndarray | pd.Series, n_trials: int, sr_variance: float | None = None
) -> float:
    """PSR against the SR the best of `n_trials` noise strategies would show: guards against selection bias.

    `sr_variance` is the variance of the (per-period, non-annualized) Sharpe ratios across the trials; None uses
    `sharpe_variance(returns)` (estimation noise only).
    """
    if sr_variance is None:
        sr_variance = sharpe_variance(returns)
    if not math.isfinite(sr_variance):
        return _NAN
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, sr_variance))


# ------------------------------------------------------------------------------------ whole-period metrics
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


def _activity(
    turnover: pd.Series | None, costs: pd.Series | None, lo: pd.Timestamp | None, hi: pd.Timestamp
) -> dict[str, Any]:
    """Turnover, rebalance count and costs of the trades dated in (lo, hi] (all ≤ hi when lo is None)."""

    def window(x: pd.Series) -> pd.Series:
        x = pd.Series(x, dtype="float64").sort_index()
        keep = x.index <= hi if lo is None else (x.index > lo) & (x.index <= hi)
        return x[keep]

    out: dict[str, Any] = {"turnover": _NAN, "n_rebalances": 0, "costs": _NAN}
    if turnover is not None:
        t = window(turnover)
        out["turnover"] = float(t.sum())
        out["n_rebalances"] = int((t > 0).sum())
    if costs is not None:
        out["costs"] = float(window(costs).sum())
    return out


def _slice_metrics(
    s: pd.Series,
    lo_idx: int,
    hi_idx: int,
    rf_daily: RiskFree,
    turnover: pd.Series | None,
    costs: pd.Series | None,
) -> dict[str, Any]:
    """Metrics of nav[lo_idx..hi_idx] inclusive; the row lo_idx is the base (its own return is not counted)."""
    part = s.iloc[lo_idx : hi_idx + 1]
    # Trades on the base date belong to the previous slice, except at the very start of the series.
    act = _activity(turnover, costs, s.index[lo_idx] if lo_idx > 0 else None, s.index[hi_idx])
    return portfolio_metrics(part, rf_daily=rf_daily, **act)


_PERIOD_ALIAS = {"YE": "Y", "Y": "Y", "A": "Y", "QE": "Q", "Q": "Q", "ME": "M", "M": "M"}


def per_period_metrics(
    nav: pd.Series,
    freq: str = "YE",
    *,
    rf_daily: RiskFree = 0.0,
    turnover: pd.Series | None = None,
    costs: pd.Series | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics per calendar period ("YE" years, "QE" quarters, "ME" months), keyed "2022", "2022Q1", "2022-01".

    Each period's base is the previous period's last NAV, so period returns chain to the total return. The first
    (and last) period may be partial; its cagr annualizes the partial period. `turnover`/`costs` are optional
    Series dated by trade date, summed per period (nan when not given).
    """
    try:
        alias = _PERIOD_ALIAS[freq]
    except KeyError:
        raise ValueError(f"unsupported freq {freq!r}: use one of {sorted(_PERIOD_ALIAS)}") from None
    s = _clean_nav(nav)
    if len(s) < 2:
        return {}
    periods = pd.DatetimeIndex(s.index).to_period(alias)
    out: dict[str, dict[str, Any]] = {}
    pos = np.arange(len(s))
    for label in periods.unique():
        idx = pos[periods == label]
        lo, hi = int(idx[0]), int(idx[-1])
        base = lo - 1 if lo > 0 else lo
        if hi == base:  # the first period holds only the starting row: nothing happened in it
            continue
        out[str(label)] = _slice_metrics(s, base, hi, rf_daily, turnover, costs)
    return out


def per_period_table(
    navs: pd.DataFrame, freq: str = "YE", *, rf_daily: RiskFree = 0.0
) -> dict[str, dict[str, dict[str, Any]]]:
    """{portfolio: {period: metrics}} for every column of a NAV frame (the report's per-year input)."""
    return {str(c): per_period_metrics(navs[c].dropna(), freq, rf_daily=rf_daily) for c in navs.columns}


def window_metrics(
    nav: pd.Series,
    start: Any,
    end: Any,
    *,
    rf_daily: RiskFree = 0.0,
    turnover: pd.Series | None = None,
    costs: pd.Series | None = None,
) -> dict[str, Any]:
    """Metrics over a named window [start, end] (e.g. the 2022 bear market).

    The base is the last NAV before `start` when there is one, so the first session's return counts.
    """
    s = _clean_nav(nav)
    lo_t, hi_t = pd.Timestamp(start), pd.Timestamp(end)
    inside = np.flatnonzero((s.index >= lo_t) & (s.index <= hi_t))
    if len(inside) == 0:
        raise ValueError(f"no NAV rows between {lo_t.date()} and {hi_t.date()}")
    lo, hi = int(inside[0]), int(inside[-1])
    base = lo - 1 if lo > 0 else lo
    return _slice_metrics(s, base, hi, rf_daily, turnover, costs)


def kfold_metrics(
    nav: pd.Series,
    k: int = 5,
    *,
    rf_daily: RiskFree = 0.0,
    turnover: pd.Series | None = None,
    costs: pd.Series | None = None,
) -> dict[str, Any]:
    """Time-ordered k-fold evaluation: k contiguous folds of (near) equal numbers of sessions, never shuffled.

    Study 000 reports metrics averaged over 5 folds. Returns {"folds": [metrics + "fold"], "mean": {numeric
    metric: nanmean over folds}}. Each fold's base is the previous fold's last NAV.
    """
    s = _clean_nav(nav)
    n = len(s) - 1
    if k < 1 or n < k:
        raise ValueError(f"cannot split {n} returns into {k} folds")
    folds: list[dict[str, Any]] = []
    for i, part in enumerate(np.array_split(np.arange(1, n + 1), k)):
        m = _slice_metrics(s, int(part[0]) - 1, int(part[-1]), rf_daily, turnover, costs)
        folds.append({"fold": i + 1, **m})
    mean: dict[str, Any] = {}
    for key, v in folds[0].items():
        if key == "fold" or not isinstance(v, int | float) or isinstance(v, bool):
            continue
        vals = np.array([f[key] for f in folds], dtype=float)
        mean[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else _NAN
    return {"k": k, "folds": folds, "mean": mean}


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
