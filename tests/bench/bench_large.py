"""Large universe, one decision's risk + optimization step: full Σ vs the factor model, same run, same dates.

Run: ``python tests/bench/bench_large.py [--decisions 8] [--json out.json]``.

The S&P 500 names priced on every session from 2019 on ($AGENT_SHARED_DATA), weekly decisions from
2020-01-03. Both sides use EWMA variances (so that no GARCH refit of ~480 names dominates) and the
60-session correlation window, max-Sharpe with max weight 0.05, 5 bp costs, turnover cap 0.6, historical
252-session mean as expected returns, the optimizer rebuilt per decision (the N >= 80 mode):

* full: correlation shrunk by a fixed 0.1 toward I (the previous large-universe set-up), dense Σ in the solve;
* factor: OAS-shrunk correlation + 10 PCA factors, risk posed in factor form in the solve.

Prints per-decision medians of the covariance and the optimizer step, and the minimum eigenvalue of each Σ.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("AGENT_SHARED_DATA") or REPO.parent / "shared" / "data")


def run(n_decisions: int) -> dict:
    import pandas as pd

    from agent.allocate.optimize import Optimizer
    from agent.risk.covariance import CovarianceEstimator
    from agent.settings import RiskSettings

    px = pd.read_csv(DATA / "sp500_universe_daily.csv.gz", index_col="date", parse_dates=True).astype(
        "float64"
    )
    px = px.loc[:, px.loc["2019-01-02":].notna().all()]
    ret = px.pct_change(fill_method=None).iloc[1:]
    tickers = list(ret.columns)
    n = len(tickers)
    fridays = (
        ret.loc["2020-01-01":].index.to_series().groupby(ret.loc["2020-01-01":].index.to_period("W")).max()
    )
    dates = list(fridays.iloc[:n_decisions])
    out: dict = {"n_assets": n, "decisions": len(dates), "first": str(dates[0].date())}
    kw = {"max_weight": 0.05, "turnover_cap": 0.6, "cost_bps": 5.0, "horizon": 5}
    for label, rs in {
        "full": RiskSettings(method="ewma", model="full", shrinkage=0.1),
        "factor": RiskSettings(method="ewma", model="factor", factors=10),
    }.items():
        est = CovarianceEstimator(rs, tickers, 5)
        opt = Optimizer("max_sharpe", n, mode="rebuild", **kw)
        prev = np.full(n, 1.0 / n)  # start from equal weight: the turnover cap allows a full solve
        t_cov, t_opt, min_eig, used = [], [], [], []
        for d in dates:
            i = int(ret.index.get_loc(d))
            mu = np.nanmean(ret.iloc[i - 251 : i + 1].to_numpy(), axis=0)
            t0 = time.perf_counter()
            e = est.estimate(ret, d)
            t1 = time.perf_counter()
            res = opt.solve(mu, np.asarray(e.cov), prev, factor_model=e.factor)
            t2 = time.perf_counter()
            t_cov.append(t1 - t0)
            t_opt.append(t2 - t1)
            min_eig.append(float(np.linalg.eigvalsh(np.asarray(e.cov))[0]))
            used.append(res.method_used)
            prev = res.weights
        out[label] = {
            "cov_ms": statistics.median(t_cov) * 1e3,
            "opt_ms": statistics.median(t_opt) * 1e3,
            "min_eig": min(min_eig),
            "methods_used": sorted(set(used)),
        }
    out["opt_ratio_full_over_factor"] = out["full"]["opt_ms"] / out["factor"]["opt_ms"]
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=8)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    res = run(a.decisions)
    print(json.dumps(res, indent=2))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
