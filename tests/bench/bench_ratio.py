"""Textbook vs product per-decision pipeline, in ONE process, on the SAME dates (issue 12, item 4).

Run: ``python tests/bench/bench_ratio.py [--decisions 252] [--json out.json]``.

Both pipelines make one decision per session over the last `--decisions` daily DJIA-30 sessions before
2020-01-01 (real prices from $AGENT_SHARED_DATA), with the same expected returns (trailing 252-session mean,
so no ONNX cost on either side), the same constraints (long-only, max weight 0.10, fully invested, 5 bp
costs in the objective, turnover cap 0.6) and the same risk model (GARCH(1,2) variances × 60-session
correlation, averaged over a 21-session horizon):

* textbook: at every decision an `arch` refit of every asset on its last 1000 returns, its conditional
  variance filtered and forecast with `arch`, and a freshly built cvxpy problem (``quad_form`` on Σ);
* product: `CovarianceEstimator` (analytic-gradient MLE refit every 63 weekdays, filtered forward in
  between) and one compiled (DPP) `Optimizer` re-solved per decision.

Prints the wall time of each, the ratio, and how far the two pipelines' weights are apart (they differ
because the product refits quarterly, not daily). Timings include nothing but the per-decision work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("AGENT_SHARED_DATA") or REPO.parent / "shared" / "data")

FIT_WINDOW, CORR, HORIZON = 1000, 60, 21
KW = {"max_weight": 0.10, "turnover_cap": 0.6, "cost_bps": 5.0, "horizon": HORIZON}


def _textbook_cov(x: np.ndarray) -> np.ndarray:
    """arch refit of every asset + arch's own analytic forecast; Σ = D R D with the 60-session correlation."""
    from arch.univariate import GARCH, ConstantMean, Normal

    from agent.risk.covariance import assemble_covariance, rolling_correlation

    n = x.shape[1]
    var = np.empty(n)
    for i in range(n):
        m = ConstantMean(x[-FIT_WINDOW:, i] * 100, rescale=False)
        m.volatility = GARCH(p=1, q=2)
        m.distribution = Normal()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = m.fit(disp="off", show_warning=False)
        fc = res.forecast(horizon=HORIZON, reindex=False).variance.to_numpy()[-1]
        var[i] = float(np.mean(fc)) / 1e4
    cov, _, _ = assemble_covariance(np.sqrt(var), rolling_correlation(x, CORR))
    return cov


def run(n_decisions: int, checkpoint: Path | None = None) -> dict:
    import pandas as pd

    from agent.allocate.optimize import Optimizer
    from agent.risk.covariance import CovarianceEstimator
    from agent.settings import RiskSettings

    px = pd.read_csv(DATA / "djia_daily.csv", index_col="date", parse_dates=True).astype("float64")
    px = px.loc[:"2019-12-31"]
    px = px.loc[
        :, px.iloc[-(n_decisions + FIT_WINDOW + 260) :].notna().all()
    ]  # complete over the windows used
    px = px.iloc[-(n_decisions + FIT_WINDOW + 260) :]
    ret = px.pct_change().iloc[1:]
    tickers = list(ret.columns)
    n = len(tickers)
    x_all = ret.to_numpy()
    dates = ret.index[-n_decisions:]
    first = len(ret) - n_decisions
    mus = [x_all[i - 252 : i + 1].mean(axis=0) for i in range(first, len(ret))]

    # product first (cheap): per-decision times, so that a partial textbook run compares on the same dates
    est = CovarianceEstimator(
        RiskSettings(method="garch", garch_p=1, garch_q=2, corr_window=CORR, refit_every=63), tickers, HORIZON
    )
    opt = Optimizer("max_sharpe", n, mode="dpp", **KW)
    prev = np.full(n, 1.0 / n)
    w_prod = []
    per = []
    for k, d in enumerate(dates):
        t1 = time.perf_counter()
        e = est.estimate(ret, d)
        res = opt.solve(mus[k], e.cov, prev)
        per.append(time.perf_counter() - t1)
        w_prod.append(res.weights)
        prev = res.weights
    t_prod = float(sum(per))

    # textbook, checkpointed: the JSON holds the ratio over the decisions done so far (same dates both sides)
    prev = np.full(n, 1.0 / n)
    w_text = []
    t_text = 0.0
    for k, i in enumerate(range(first, len(ret))):
        t1 = time.perf_counter()
        cov = _textbook_cov(x_all[: i + 1])
        res = Optimizer("max_sharpe", n, mode="rebuild", **KW).solve(mus[k], cov, prev)
        t_text += time.perf_counter() - t1
        w_text.append(res.weights)
        prev = res.weights
        if checkpoint is not None and (k + 1) % 10 == 0:
            done = k + 1
            checkpoint.write_text(
                json.dumps(
                    {
                        "partial": True,
                        "decisions_done": done,
                        "textbook_s": t_text,
                        "product_s_same_dates": float(sum(per[:done])),
                        "ratio_so_far": t_text / float(sum(per[:done])),
                        "product_s_all": t_prod,
                    },
                    indent=2,
                )
            )
    diff = np.abs(np.array(w_text) - np.array(w_prod)).sum(axis=1)
    return {
        "decisions": n_decisions,
        "n_assets": n,
        "first": str(dates[0].date()),
        "last": str(dates[-1].date()),
        "textbook_s": t_text,
        "product_s": t_prod,
        "ratio": t_text / t_prod,
        "product_median_ms": statistics.median(per) * 1e3,
        "product_refits": est.n_refits,
        "weights_l1_median": float(np.median(diff)),
        "weights_l1_max": float(diff.max()),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=252)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    out = run(a.decisions, a.json)
    print(json.dumps(out, indent=2))
    print(f"textbook {out['textbook_s']:.1f} s vs product {out['product_s']:.2f} s: {out['ratio']:.0f}x")
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
