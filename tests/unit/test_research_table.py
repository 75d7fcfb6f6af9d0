"""Sweep summaries against independent references: the deflated Sharpe of the best cell (Bailey & López de
Prado, written out here with scipy) and Monte Carlo percentiles (numpy)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from agent.research.grid import parse_grid
from agent.research.table import best_cell_dsr, build_table, montecarlo_summary, render_html


def _rec(i: int, returns: np.ndarray, sharpe: float, path: int | None = None, **m: float) -> dict:
    metrics = {"m.strategy.sharpe": sharpe, **{f"m.{k.replace('__', '.')}": v for k, v in m.items()}}
    return {
        "key": f"k{i}",
        "params": {
            "window": "2019",
            "overrides": {"risk.method": "ewma" if i % 2 else "sample"},
            "path": path,
        },
        "status": "ok",
        "error": "",
        "metrics": metrics,
        "returns": list(returns),
    }


def _reference_dsr(best: np.ndarray, srs: np.ndarray) -> float:
    n = len(srs)
    v = np.var(srs, ddof=1)
    g = 0.5772156649015329
    sr0 = math.sqrt(v) * ((1 - g) * stats.norm.ppf(1 - 1 / n) + g * stats.norm.ppf(1 - 1 / (n * math.e)))
    sr = best.mean() / best.std(ddof=1)
    skew = stats.skew(best)
    kurt = stats.kurtosis(best, fisher=False)
    z = (sr - sr0) * math.sqrt(len(best) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


def test_best_cell_dsr_matches_the_formula() -> None:
    rng = np.random.default_rng(0)
    rets = [rng.normal(0.0002 * i, 0.01, 500) for i in range(10)]
    srs = np.array([r.mean() / r.std(ddof=1) for r in rets])
    recs = [_rec(i, r, float(srs[i] * math.sqrt(252))) for i, r in enumerate(rets)]
    recs.append(
        {"key": "bad", "params": {"window": "2019", "overrides": {}, "path": None}, "status": "error"}
    )
    out = best_cell_dsr(recs)
    assert out is not None
    best = int(np.argmax(srs))
    assert out["key"] == f"k{best}" and out["n_trials"] == 10
    assert math.isclose(out["dsr"], _reference_dsr(rets[best], srs), rel_tol=1e-6, abs_tol=1e-9)
    assert out["dsr"] < out["psr"]  # deflating for 10 trials lowers the probability


def test_monte_carlo_percentiles_and_paired_difference() -> None:
    rng = np.random.default_rng(1)
    s, b = rng.normal(0.5, 0.3, 200), rng.normal(0.4, 0.3, 200)
    recs = [
        _rec(
            i,
            np.zeros(3),
            float(s[i]),
            path=i,
            equal_weight__sharpe=float(b[i]),
            strategy__cagr=0.1,
            equal_weight__cagr=0.05,
            strategy__max_drawdown=-0.2,
            equal_weight__max_drawdown=-0.3,
        )
        for i in range(200)
    ]
    spec = parse_grid({"profile": "x", "windows": ["2019"], "montecarlo": {"paths": 200}})
    df = build_table(spec, recs)
    mc = montecarlo_summary(df)
    assert mc is not None and mc["paths"] == 200
    p = mc["percentiles"]
    for q in (5, 50, 95):
        assert math.isclose(p["strategy sharpe"][f"p{q}"], np.percentile(s, q))
        assert math.isclose(p["strategy − 1/N sharpe"][f"p{q}"], np.percentile(s - b, q))
    assert math.isclose(p["strategy − 1/N cagr"]["p50"], 0.05)
    assert mc["share_sharpe_above_1n"] == float((s > b).mean())
    assert best_cell_dsr(recs) is None  # bootstrap paths are not trials of a parameter search
    html = render_html(spec, df, {"n_cells": 200, "n_ok": 200, "n_failed": 0, "montecarlo": mc})
    assert "Monte Carlo (200 paths)" in html


def test_table_types_and_heatmap() -> None:
    recs = [_rec(i, np.zeros(3), float(i)) for i in range(4)]
    recs[1]["params"]["overrides"]["allocation.max_weight"] = 0.5
    for i in (0, 2, 3):
        recs[i]["params"]["overrides"]["allocation.max_weight"] = 0.25
    spec = parse_grid(
        {
            "profile": "x",
            "windows": ["2019"],
            "grid": {"risk.method": ["ewma", "sample"], "allocation.max_weight": [0.25, 0.5]},
            "heatmap": ["risk.method", "allocation.max_weight"],
        }
    )
    df = build_table(spec, recs)
    assert df["allocation.max_weight"].dtype == float and df["risk.method"].tolist()[:2] == ["sample", "ewma"]
    assert isinstance(df, pd.DataFrame) and (df["path"] == -1).all()
    page = render_html(spec, df, {"n_cells": 4, "n_ok": 4, "n_failed": 0})
    assert "Net Sharpe: allocation.max_weight × risk.method" in page
