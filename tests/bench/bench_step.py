"""The per-decision fixed costs: where a compiled cvxpy re-solve spends its time, and the CLI's start-up.

Run: ``python tests/bench/bench_step.py [--json out.json]``.

* optimizer, N = 9 and 30 (DJIA returns, max-Sharpe with costs and a turnover cap, DPP re-solve): median wall
  per `Optimizer.solve`, split into parameter stuffing (applying the compiled parameter tensor), Clarabel's own
  solve time, and the rest (Clarabel set-up, unpacking, validation) — for the product's lean re-solve
  (agent.allocate.lean) and, in the same process on the same inputs, for `problem.solve` (field "cvxpy", whose
  stuffing is a second `get_problem_data` call);
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
    """One process, the same inputs, interleaved: the product's solve (the lean re-solve) and the same optimizer
    with every solve through `problem.solve` ("cvxpy"). Top-level fields describe the product's path."""
    import pandas as pd

    from agent.allocate.optimize import Optimizer
    from agent.allocate.problem import factor_cov, problem_values

    px = pd.read_csv(DATA / "djia_daily.csv", index_col="date", parse_dates=True).iloc[-751:, :n]
    r = px.pct_change().dropna().to_numpy()
    cov, mu = np.cov(r, rowvar=False), np.abs(r.mean(axis=0))
    kw: dict = {"max_weight": 0.3, "turnover_cap": 0.6, "cost_bps": 5.0, "horizon": 5, "mode": "dpp"}
    opt, ref = Optimizer("max_sharpe", n, **kw), Optimizer("max_sharpe", n, **kw)
    prev = np.full(n, 1.0 / n)
    opt.solve(mu, cov, prev)
    ref_prog = ref.program()
    ref_prog.lean_tried = True  # never lean: the ordinary cvxpy re-solve
    ref.solve(mu, cov, prev)
    lean = opt.program().lean
    prob = ref_prog.problem
    t: dict[str, list[float]] = {k: [] for k in ("wall", "stuff", "solver", "c_wall", "c_stuff", "c_solver")}
    paths = set()
    for i in range(reps):
        m = mu * (1 + 0.01 * i)
        t0 = time.perf_counter()
        opt.solve(m, cov, prev)
        t["wall"].append(time.perf_counter() - t0)
        paths.add(opt.last_path)
        t["solver"].append(float(opt.last_solver_stats.solve_time or 0.0))
        t0 = time.perf_counter()
        ref.solve(m, cov, prev)
        t["c_wall"].append(time.perf_counter() - t0)
        t["c_solver"].append(float(ref.last_solver_stats.solve_time or 0.0))
        t0 = time.perf_counter()
        prob.get_problem_data(ref.solver, solver_opts={})  # the same parameter values: cvxpy's stuffing alone
        t["c_stuff"].append(time.perf_counter() - t0)
        if lean is not None:
            values = problem_values(opt, "max_sharpe", m - opt.risk_free_daily, cov, factor_cov(cov)[0], prev)
            t0 = time.perf_counter()
            lean.data(values)  # the lean path's stuffing: the compiled tensor applied directly
            t["stuff"].append(time.perf_counter() - t0)
    w, s, c, cw, cs, cc = (
        statistics.median(t[k]) * 1e3 if t[k] else float("nan")
        for k in ("wall", "stuff", "solver", "c_wall", "c_stuff", "c_solver")
    )
    return {
        "n": n,
        "path": "/".join(sorted(paths)),
        "solve_ms": w,
        "stuffing_ms": s,
        "clarabel_ms": c,
        "rest_ms": max(0.0, w - s - c),
        "cvxpy": {"solve_ms": cw, "stuffing_ms": cs, "clarabel_ms": cc, "rest_ms": max(0.0, cw - cs - cc)},
        "cvxpy_over_lean": cw / w,
    }


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


def run(optimizer_only: bool = False) -> dict:
    opt = [optimizer_breakdown(9), optimizer_breakdown(30)]
    return {"optimizer": opt} if optimizer_only else {"optimizer": opt, "cli": cli()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    ap.add_argument("--optimizer-only", action="store_true", help="skip the CLI and import timings")
    a = ap.parse_args()
    res = run(a.optimizer_only)
    print(json.dumps(res, indent=2))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
