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

The implementation is split into small modules (core, psr, summary, periods, relative, tearsheet); import from
`agent.metrics`, which re-exports all of them.
"""

from __future__ import annotations

from agent.metrics.core import (
    CONTRACT_KEYS,
    EULER_GAMMA,
    PERIODS_PER_YEAR,
    RiskFree,
    cagr,
    drawdown_series,
    max_drawdown,
    returns_from_nav,
    risk_return_point,
    sharpe_ratio,
    sortino_ratio,
)
from agent.metrics.periods import kfold_metrics, per_period_metrics, per_period_table, window_metrics
from agent.metrics.psr import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_variance,
)
from agent.metrics.relative import alpha, rolling_sharpe, subperiod_alpha
from agent.metrics.summary import metrics_table, portfolio_metrics
from agent.metrics.tearsheet import (
    TRAILING_PERIODS,
    cvar,
    drawdown_table,
    hit_rate,
    monthly_hit_rate,
    monthly_returns,
    monthly_returns_grid,
    rolling_beta,
    rolling_volatility,
    tearsheet_stats,
    trailing_returns,
    value_at_risk,
    yearly_returns,
)

__all__ = [
    "CONTRACT_KEYS",
    "EULER_GAMMA",
    "PERIODS_PER_YEAR",
    "TRAILING_PERIODS",
    "RiskFree",
    "alpha",
    "cagr",
    "cvar",
    "deflated_sharpe_ratio",
    "drawdown_series",
    "drawdown_table",
    "expected_max_sharpe",
    "hit_rate",
    "kfold_metrics",
    "max_drawdown",
    "metrics_table",
    "monthly_hit_rate",
    "monthly_returns",
    "monthly_returns_grid",
    "per_period_metrics",
    "per_period_table",
    "portfolio_metrics",
    "probabilistic_sharpe_ratio",
    "returns_from_nav",
    "risk_return_point",
    "rolling_beta",
    "rolling_sharpe",
    "rolling_volatility",
    "sharpe_ratio",
    "sharpe_variance",
    "sortino_ratio",
    "subperiod_alpha",
    "tearsheet_stats",
    "trailing_returns",
    "value_at_risk",
    "window_metrics",
    "yearly_returns",
]
