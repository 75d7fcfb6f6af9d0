"""Time per solve of each optimizer: compiled once (DPP re-solve) vs rebuilt each time, N = 5, 28, 100, 500.

Run: ``python tests/bench/bench_optimize.py`` (prints a table). Real prices from $AGENT_SHARED_DATA (DJIA for
N <= 28, the S&P 500 universe for larger N); synthetic data when absent. Covariance = sample covariance of the
last 750 sessions; each re-solve perturbs mu and the covariance so that nothing is cached by accident.
Columns: build = constructing the Optimizer (cvxpy problem, incl. the cvxpy import on the first row); 1st = first
solve (DPP compilation + solve); DPP = median re-solve; rebuild = median solve when rebuilding each time;
cvxpy = median compiled re-solve through `problem.solve` (the lean re-solve switched off, same inputs);
(clarabel) = the solver's own time. Targets (2-core box): max-Sharpe re-solve N=28 <= 8 ms, N=500 <= 0.5 s.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from agent.allocate.optimize import OPTIMIZER_METHODS, REBUILD_MIN_N, Optimizer

NS = (5, 28, 100, 500)
REPS = {5: 15, 28: 15, 100: 5, 500: 2}


def _returns(n: int) -> np.ndarray:
    root = Path(
        os.environ.get("AGENT_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data"
    )
    try:
        import pandas as pd

        f = root / ("djia_daily.csv" if n <= 28 else "sp500_universe_daily.csv.gz")
        px = pd.read_csv(f, index_col="date", parse_dates=True).astype("float64").iloc[-751:]
        px = px.dropna(axis=1)
        if px.shape[1] >= n:
            return px.iloc[:, :n].pct_change().dropna().to_numpy()
    except (OSError, ValueError, KeyError):
        pass
    rng = np.random.default_rng(n)
    load = rng.normal(size=(n, 5)) * 0.008
    return rng.normal(size=(750, 5)) @ load.T + rng.normal(size=(750, n)) * 0.01 + 4e-4


def _inputs(r: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    cov = np.cov(r, rowvar=False) * rng.uniform(0.9, 1.1)
    mu = np.abs(r.mean(axis=0)) + rng.normal(0, 2e-4, r.shape[1])
    return mu, cov


def _time(opt: Optimizer, r: np.ndarray, reps: int, seed: int) -> tuple[float, float, str]:
    rng = np.random.default_rng(seed)
    n = r.shape[1]
    prev = np.full(n, 1.0 / n)
    walls, clarabel = [], []
    used = ""
    for _ in range(reps):
        mu, cov = _inputs(r, rng)
        t0 = time.perf_counter()
        res = opt.solve(mu, cov, prev)
        walls.append(time.perf_counter() - t0)
        st = opt.last_solver_stats
        clarabel.append(st.solve_time if st is not None and st.solve_time else float("nan"))
        used = res.method_used
        prev = res.weights
    return statistics.median(walls) * 1e3, statistics.median(clarabel) * 1e3, used


def main() -> int:
    print(f"REBUILD_MIN_N = {REBUILD_MIN_N} (auto mode: DPP below, rebuild at or above)")
    head = f"{'N':>4} {'method':<18} {'build ms':>9} {'1st ms':>8} {'DPP ms':>9} {'(clarabel)':>10} {'cvxpy ms':>9} "
    head += f"{'(clarabel)':>10} {'rebuild ms':>11} "
    print(head + f"{'(clarabel)':>10}  used")
    for n in NS:
        r = _returns(n)
        kw = {"max_weight": min(1.0, max(0.1, 3.0 / n)), "cost_bps": 10.0, "target_volatility": 0.20}
        for method in OPTIMIZER_METHODS:
            t0 = time.perf_counter()
            dpp = Optimizer(method, n, mode="dpp", **kw)
            build = (time.perf_counter() - t0) * 1e3
            first, _, _ = _time(dpp, r, 1, 0)  # first solve compiles
            d_wall, d_cl, used = _time(dpp, r, REPS[n], 1)
            c_wall = c_cl = float("nan")
            if n < REBUILD_MIN_N:  # the A/B reference: every solve through problem.solve
                plain = Optimizer(method, n, mode="dpp", **kw)
                if plain.bounds_reason is None:
                    plain.program().lean_tried = True
                _time(plain, r, 1, 0)
                c_wall, c_cl, _ = _time(plain, r, REPS[n], 1)
            rb = Optimizer(method, n, mode="rebuild", **kw)
            r_wall, r_cl, _ = _time(rb, r, REPS[n], 1)
            print(
                f"{n:>4} {method:<18} {build:>9.1f} {first:>8.1f} {d_wall:>9.2f} {d_cl:>10.2f} {c_wall:>9.2f} "
                f"{c_cl:>10.2f} {r_wall:>11.1f} {r_cl:>10.1f}  {used}"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
