"""Replay benchmarks (issue 5, item 7). Run on demand:  python tests/bench/bench_replay.py [--only NAME]

Targets on this 2-core machine:
  default weekly 2020–2024 replay ≤ 3 s (replay itself; the CLI's total wall is reported too)
  djia-lstm-garch rebalancing DAILY over 2020–2024 (~1,258 decisions) ≤ 20 s
  ~500 S&P 500 names weekly 2020–2024 ≤ 5 min, peak RSS ≤ 2 GB
  the same replay naive (GARCH refit + optimizer rebuilt at every decision) on a sub-window: speed-up ratio
Prints a per-stage breakdown (data, inference, covariance, optimization, overlays, ledger/log) for each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("AGENT_SHARED_DATA") or REPO.parent / "shared" / "data")


def _replay(profile: str, prices: object, start: str, end: str, **over: object) -> dict:
    from agent.backtest import run_backtest
    from agent.data.store import PriceStore
    from agent.settings import load_settings

    s = load_settings(profile=profile, overrides=over)
    store = PriceStore.from_frame(prices, source="bench")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = run_backtest(
            s, store, dt.date.fromisoformat(start), dt.date.fromisoformat(end), Path(d), write_report=False
        )
        wall = time.perf_counter() - t0
        wfile = Path(d) / "weights.csv"
        weights = wfile.read_text() if wfile.exists() else ""
    t = res.timings
    WEIGHTS[f"{profile}:{start}:{end}:{ESTIMATOR}"] = weights
    return {
        "decisions": res.n_decisions,
        "replay_s": t["replay_s"],
        "wall_s": wall,
        "estimator": ESTIMATOR,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "stages_ms": {k: round(v, 1) for k, v in t.items() if k.endswith("_ms")},
    }


ESTIMATOR = "mle"  # GARCH estimator used by the replays (--estimator arch: the reference, for A/B runs)
WEIGHTS: dict[str, str] = {}  # weights.csv text per replay, to compare decisions between estimators


def _use_estimator(name: str) -> None:
    """Point the covariance estimator's GARCH fits at `name` ("mle" default, "arch" the reference)."""
    import functools

    import agent.risk.covariance as cov
    from agent.risk.garch import fit_garch

    global ESTIMATOR
    ESTIMATOR = name
    cov.fit_garch = functools.partial(fit_garch, estimator=name)  # type: ignore[assignment]
    cov.CovarianceEstimator.batch_refit = name == "mle"  # the batched refit is the MLE's: off for the reference


def _weights_diff(a: str, b: str) -> dict:
    """How far two replays' target weights are apart (max |Δw| over all dates and tickers)."""
    import io

    import pandas as pd

    wa = pd.read_csv(io.StringIO(a), index_col=0)
    wb = pd.read_csv(io.StringIO(b), index_col=0)
    if wa.shape != wb.shape:
        return {"comparable": False, "shapes": [list(wa.shape), list(wb.shape)]}
    num_a, num_b = wa.select_dtypes("number"), wb.select_dtypes("number")
    d = (num_a - num_b).abs()
    rows = int((d.max(axis=1) > 0).sum())
    return {
        "comparable": True,
        "rows": len(d),
        "rows_changed": rows,
        "max_abs_weight_change": float(d.to_numpy().max()) if d.size else 0.0,
    }


def bench_default_ab() -> dict:
    """The default weekly replay with the reference `arch` fits and with the MLE: time and decisions."""
    prices = _load("sector_etfs_daily.csv")
    out = {}
    for name in ("arch", "mle"):
        _use_estimator(name)
        out[name] = _replay("default", prices, "2020-01-01", "2024-12-31")
    _use_estimator("mle")
    k = "default:2020-01-01:2024-12-31:"
    out["decisions_arch_vs_mle"] = _weights_diff(WEIGHTS[k + "arch"], WEIGHTS[k + "mle"])
    out["ratio_arch_over_mle"] = out["arch"]["replay_s"] / out["mle"]["replay_s"]
    return out


def _use_lean(on: bool) -> None:
    """Switch the optimizer's lean re-solve on (the product) or off (every solve through `problem.solve`), by
    the same release gate that turns it off for an untested cvxpy; programs built afterwards follow it."""
    import agent.allocate.lean as lean

    tested = LEAN_RELEASES.setdefault("cvxpy", lean._TESTED_CVXPY)
    lean._TESTED_CVXPY = tested if on else ()


# the lean path's tested cvxpy releases, kept while _use_lean(False) hides them
LEAN_RELEASES: dict[str, tuple] = {}


def bench_optimizer_ab() -> dict:
    """Default weekly and DJIA-30 daily 2020–24 with every compiled solve through `problem.solve` ("cvxpy") and
    with the lean re-solve ("lean"), in one process: stage times and how far the decisions are apart."""
    out: dict = {}
    cases = {
        "default": ("default", "sector_etfs_daily.csv", {}),
        "djia_daily": ("djia-lstm-garch", "djia_daily.csv", {"schedule.frequency": "daily"}),
    }
    for label, (profile, file, over) in cases.items():
        prices = _load(file)
        res = {}
        _replay(profile, prices, "2020-01-01", "2020-02-28", **over)  # warm-up: imports, first-use costs
        WEIGHTS.clear()
        for path in ("cvxpy", "lean"):
            _use_lean(path == "lean")
            res[path] = _replay(profile, prices, "2020-01-01", "2024-12-31", **over)
            res[path]["weights"] = WEIGHTS.pop(f"{profile}:2020-01-01:2024-12-31:{ESTIMATOR}")
        _use_lean(True)
        res["decisions_cvxpy_vs_lean"] = _weights_diff(
            res["cvxpy"].pop("weights"), res["lean"].pop("weights")
        )
        opt = [res[p]["stages_ms"].get("optimization_ms", float("nan")) for p in ("cvxpy", "lean")]
        res["optimization_ms_cvxpy_over_lean"] = opt[0] / opt[1] if opt[1] else float("nan")
        out[label] = res
    return out


def _load(name: str):
    import pandas as pd

    return pd.read_csv(DATA / name, index_col="date", parse_dates=True).astype("float64")


def bench_default() -> dict:
    r = _replay("default", _load("sector_etfs_daily.csv"), "2020-01-01", "2024-12-31")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "agent",
                "backtest",
                "--replay",
                "2020-2024",
                "--prices",
                str(DATA / "sector_etfs_daily.csv"),
                "--out",
                d,
                "-q",
            ],
            check=True,
            capture_output=True,
        )
        r["cli_total_s"] = time.perf_counter() - t0
    return r


def bench_djia_daily() -> dict:
    return _replay(
        "djia-lstm-garch",
        _load("djia_daily.csv"),
        "2020-01-01",
        "2024-12-31",
        **{"schedule.frequency": "daily"},
    )


def _sp500():
    import pandas as pd

    px = pd.read_csv(DATA / "sp500_universe_daily.csv.gz", index_col="date", parse_dates=True).astype(
        "float64"
    )
    # every name priced on every session from 2019 on (482 of the 500; the rest listed during the window):
    # names with less than `fit_window` sessions of history get EWMA variances until they have it (recorded)
    ok = px.loc["2019-01-02":].notna().all()
    return px.loc[:, ok]


def _sp500_over(px, naive: bool = False) -> dict:
    cols = list(px.columns)
    over = {
        "universe.tickers": cols,
        "universe.benchmark": "",
        "forecast.model": "none",
        "allocation.expected_returns": "historical",
        "allocation.mvo_window": 252,
        "allocation.max_weight": 0.05,
        "risk.method": "garch",
        "risk.refit_every": 63,
        "risk.shrinkage": 0.1,
        "backtest.baselines": ["equal_weight"],
    }
    if naive:
        over.update({"risk.refit_every": 1, "allocation.compile": "rebuild"})
    return over


def bench_sp500() -> dict:
    px = _sp500()
    r = _replay("default", px, "2020-01-01", "2024-12-06", **_sp500_over(px))
    r["n_assets"] = px.shape[1]
    r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return r


def bench_naive_ratio() -> dict:
    px = _sp500()
    fast = _replay("default", px, "2020-01-01", "2020-03-31", **_sp500_over(px))
    naive = _replay("default", px, "2020-01-01", "2020-03-31", **_sp500_over(px, naive=True))
    return {"fast": fast, "naive": naive, "speedup": naive["replay_s"] / fast["replay_s"]}


BENCHES = {
    "default": bench_default,
    "default_ab": bench_default_ab,
    "optimizer_ab": bench_optimizer_ab,
    "djia_daily": bench_djia_daily,
    "sp500": bench_sp500,
    "naive": bench_naive_ratio,
}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=sorted(BENCHES), action="append")
    ap.add_argument("--estimator", choices=["mle", "arch"], default="mle")
    ap.add_argument("--json", type=Path, help="write {bench: result} here (for tests/bench/perf_report.py)")
    a = ap.parse_args()
    _use_estimator(a.estimator)
    results = {}
    for name in a.only or list(BENCHES):
        t0 = time.perf_counter()
        out = BENCHES[name]()
        results[name] = out
        print(f"== {name} ({time.perf_counter() - t0:.1f} s)")
        print(json.dumps(out, indent=2))
        sys.stdout.flush()
        if a.json:
            a.json.write_text(json.dumps(results, indent=2))
