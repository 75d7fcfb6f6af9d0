"""The per-decision fixed costs: where a compiled cvxpy re-solve spends its time, and the CLI's start-up.

Run: ``python tests/bench/bench_step.py [--json out.json]``.

* optimizer, N = 9 and 30 (DJIA returns, max-Sharpe with costs and a turnover cap, DPP re-solve): median wall
  per `Optimizer.solve`, split into cvxpy's parameter stuffing (`get_problem_data`, i.e. applying the compiled
  parameter tensor), Clarabel's own solve time, and the rest (Clarabel set-up, unpacking, validation);
* CLI: `agent --help` wall, and `agent run --once` on a warm store (default profile, sector ETF file; the
  first slot fills the store and is not timed) — wall and peak RSS of the child process;
* import cost of the heavy libraries a `run --once` loads, measured in fresh interpreters.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("AGENT_SHARED_DATA") or REPO.parent / "shared" / "data")


def optimizer_breakdown(n: int, reps: int = 40) -> dict:
    import pandas as pd

    from agent.allocate.optimize import Optimizer

    px = pd.read_csv(DATA / "djia_daily.csv", index_col="date", parse_dates=True).iloc[-751:, :n]
    r = px.pct_change().dropna().to_numpy()
    cov, mu = np.cov(r, rowvar=False), np.abs(r.mean(axis=0))
    opt = Optimizer("max_sharpe", n, max_weight=0.3, turnover_cap=0.6, cost_bps=5.0, horizon=5, mode="dpp")
    prev = np.full(n, 1.0 / n)
    opt.solve(mu, cov, prev)
    prob = opt.program().problem
    wall, stuff, solver = [], [], []
    for i in range(reps):
        m = mu * (1 + 0.01 * i)
        t0 = time.perf_counter()
        opt.solve(m, cov, prev)
        wall.append(time.perf_counter() - t0)
        solver.append(float(opt.last_solver_stats.solve_time or 0.0))
        t0 = time.perf_counter()
        prob.get_problem_data(opt.solver)  # the same parameter values: the stuffing step alone
        stuff.append(time.perf_counter() - t0)
    w, s, c = (statistics.median(v) * 1e3 for v in (wall, stuff, solver))
    return {"n": n, "solve_ms": w, "stuffing_ms": s, "clarabel_ms": c, "rest_ms": max(0.0, w - s - c)}


def _child(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(rss, before) / 1024, p.stderr[-300:] if p.returncode else ""


def cli() -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "agent.toml"
        cfg.write_text(
            f'profile = "default"\n[data]\nsource = "file"\nprices_file = "{DATA / "sector_etfs_daily.csv"}"\n'
        )
        env = dict(
            os.environ, AGENT_CONFIG=str(cfg), AGENT_STATE_DIR=f"{d}/state", AGENT_DATA_DIR=f"{d}/data"
        )
        env["AGENT_NO_PROGRESS"] = "1"
        helps = [_child(["-m", "agent", "--help"], env)[0] for _ in range(3)]
        out["help_s"] = statistics.median(helps)
        _child(["-m", "agent", "run", "--once", "--asof", "2024-01-05"], env)  # fills the store
        walls, rss, err = [], 0.0, ""
        for slot in ("2024-01-12", "2024-01-19", "2024-01-26"):
            w, r, e = _child(["-m", "agent", "run", "--once", "--asof", slot], env)
            walls.append(w)
            rss = max(rss, r)
            err = err or e
        out["run_once_s"] = statistics.median(walls)
        out["run_once_peak_rss_mb"] = rss  # max over all children so far (the runs dominate)
        out["error"] = err
    imports = {}
    for mod in ("numpy", "pandas", "scipy.optimize", "cvxpy", "onnxruntime", "arch"):
        t = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", f"import {mod}"], check=False, capture_output=True)
            t.append(time.perf_counter() - t0)
        imports[mod] = min(t)
    out["import_s"] = imports
    return out


def run() -> dict:
    return {"optimizer": [optimizer_breakdown(9), optimizer_breakdown(30)], "cli": cli()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    res = run()
    print(json.dumps(res, indent=2))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
