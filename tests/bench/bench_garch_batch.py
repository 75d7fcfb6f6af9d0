"""Refit of a whole universe: per-asset `fit_garch_mle` vs the lock-step batch (agent/risk/garch_batch.py).

Run: ``python tests/bench/bench_garch_batch.py [--reps 3] [--json out.json]``. GARCH(1,2) in `arch`'s naming
(the default profile's orders), normal and Student-t, constant mean, the 1000 returns to 2019-12-31 of: the first
9 sector ETFs, the 30 Dow names, the 482 S&P names complete since 2019 ($AGENT_SHARED_DATA). Both paths are
timed alternately in one process (machine load hits both alike); prints ms per asset per refit (median over
reps), the ratio, whether every fitted vector is bit-identical, and the load average. Then the same for the
covariance estimator's cold refit at 2019-12-31 (default risk settings; `batch_refit` on vs off), including
Σ and the recorded parameters being identical.
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


def _universe(name: str) -> list[np.ndarray]:
    import pandas as pd

    if name == "sp500":
        px = pd.read_csv(DATA / "sp500_universe_daily.csv.gz", index_col="date", parse_dates=True)
        px = px.astype("float64")
        px = px.loc[:, px.loc["2019-01-02":].notna().all()]
    else:
        f = "sector_etfs_daily.csv" if name == "sectors9" else "djia_daily.csv"
        px = pd.read_csv(DATA / f, index_col="date", parse_dates=True).astype("float64")
    ret = px.loc[:"2019-12-31"].pct_change(fill_method=None).iloc[1:]
    cols = list(ret.columns)[:9] if name == "sectors9" else list(ret.columns)
    out = [100.0 * ret[c].dropna().to_numpy()[-1000:] for c in cols]
    return [r for r in out if r.shape[0] >= 500]


def _prices(name: str):
    import pandas as pd

    if name == "sp500":
        px = pd.read_csv(DATA / "sp500_universe_daily.csv.gz", index_col="date", parse_dates=True)
        px = px.astype("float64")
        return px.loc[:, px.loc["2019-01-02":].notna().all()]
    f = "sector_etfs_daily.csv" if name == "sectors9" else "djia_daily.csv"
    px = pd.read_csv(DATA / f, index_col="date", parse_dates=True).astype("float64")
    return px.iloc[:, :9] if name == "sectors9" else px


def run_refit(reps: int = 3) -> dict:
    """The covariance estimator's cold refit of every asset at one anchor (2019-12-31, default risk settings:
    GARCH(1,2), normal, fit_window 1000): `batch_refit` on vs off, alternately, ms per asset per refit."""
    from agent.risk.covariance import CovarianceEstimator
    from agent.settings import RiskSettings

    out: dict = {"loadavg_start": os.getloadavg()}
    for name in ("sectors9", "djia30", "sp500"):
        ret = _prices(name).pct_change(fill_method=None).iloc[1:].loc[:"2019-12-31"]
        n = ret.shape[1]
        t = {True: [], False: []}
        same = True
        for k in range(reps if n < 100 else max(2, reps // 2)):
            got = {}
            for batched in (False, True) if k % 2 else (True, False):
                est = CovarianceEstimator(RiskSettings(), tuple(ret.columns), 5)
                est.batch_refit = batched
                t0 = time.perf_counter()
                got[batched] = est.estimate(ret, ret.index[-1])
                t[batched].append((time.perf_counter() - t0) / n)
            same = same and got[True].params == got[False].params
            same = same and bool(np.array_equal(got[True].cov, got[False].cov))
        out[name] = {
            "n": n,
            "per_asset_ms": statistics.median(t[False]) * 1e3,
            "batch_ms": statistics.median(t[True]) * 1e3,
            "ratio": statistics.median(t[False]) / statistics.median(t[True]),
            "identical": same,
        }
        print("refit", name, out[name], flush=True)
    out["loadavg_end"] = os.getloadavg()
    return out


def run(reps: int = 3, dists: tuple[str, ...] = ("normal", "t")) -> dict:
    from agent.risk.garch_batch import fit_garch_mle_batch
    from agent.risk.garch_mle import fit_garch_mle

    out: dict = {"p": 2, "q": 1, "loadavg_start": os.getloadavg()}
    for name in ("sectors9", "djia30", "sp500"):
        ys = _universe(name)
        n = len(ys)
        fit_garch_mle(ys[0], 2, 1)
        fit_garch_mle_batch(ys[:2], 2, 1)
        for dist in dists:
            t_one, t_bat, same = [], [], True
            r = reps if n < 100 else max(1, reps // 2)
            for _ in range(r):
                t0 = time.perf_counter()
                a = [fit_garch_mle(y, 2, 1, dist) for y in ys]  # type: ignore[arg-type]
                t1 = time.perf_counter()
                b = fit_garch_mle_batch(ys, 2, 1, dist)  # type: ignore[arg-type]
                t2 = time.perf_counter()
                t_one.append((t1 - t0) / n)
                t_bat.append((t2 - t1) / n)
                same = same and all(
                    not isinstance(y, Exception) and np.array_equal(x.params, y.params)
                    for x, y in zip(a, b, strict=True)
                )
            out[f"{name}_{dist}"] = {
                "n": n,
                "per_asset_ms": statistics.median(t_one) * 1e3,
                "batch_ms": statistics.median(t_bat) * 1e3,
                "ratio": statistics.median(t_one) / statistics.median(t_bat),
                "bit_identical": same,
            }
            print(name, dist, out[f"{name}_{dist}"], flush=True)
    out["loadavg_end"] = os.getloadavg()
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    res = {"fit": run(args.reps), "refit": run_refit(args.reps)}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
