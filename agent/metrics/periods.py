"""Metrics over calendar periods, named windows and time-ordered folds (each slice based on the NAV before it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from agent.metrics.core import _NAN, RiskFree, _clean_nav
from agent.metrics.summary import portfolio_metrics

__all__ = ["kfold_metrics", "per_period_metrics", "per_period_table", "window_metrics"]


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
