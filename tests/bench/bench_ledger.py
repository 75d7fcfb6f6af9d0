"""The backtest's ledger stage against bt on the same executions (issue 12, item 3).

Run: ``python tests/bench/bench_ledger.py [--runs 5] [--json out.json]`` (needs bt: ``pip install -e .[bench]``;
without it the benchmark says so in one line and exits 0).

1. The default profile's weekly 2020–2024 replay runs once (``run_backtest``, sector ETF file). Every slot's
   committed decision is kept, with the replay's own ledger stage time (``ledger_ms``).
2. OURS: the same decisions are committed again into a fresh replay ledger (``durable=False``, as the backtest
   opens it) through the backtest's own ledger path: :func:`agent.runner.open_book` and
   :func:`agent.runner.commit_decision` in one transaction per slot, batched into commits by
   :func:`agent.runner.replay_in_batches` as the backtest does, then the final advance: the ledger stage alone,
   without the engine. Timed like ``run_slot`` times its ``ledger`` stage (the price snapshot is the data
   stage and is outside). The replayed ledger's tables must equal the backtest's (wall-clock columns aside).
3. BT: bt 1.4.1 simulates the same executions: on every fill session ``WeighTarget`` + ``Rebalance`` to the
   weights our book held right after that fill (shares × close / NAV), on the same closes, fractional shares,
   commission 5 bps of |notional| (the profile's ``cost_bps``), the same capital; timed from building the
   ``bt.Backtest`` to the end of ``bt.run`` (the bt import is outside). bt's NAV is compared with our ledger's.
4. Both are timed alternately ``--runs`` times in this process; the medians, their ratio (ours / bt) and the
   median of the paired ratios are printed and written, with one instrumented pass's breakdown of our stage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("AGENT_SHARED_DATA") or REPO.parent / "shared" / "data")
PROFILE, START, END = "default", dt.date(2020, 1, 1), dt.date(2024, 12, 31)
WALL_CLOCK = {"runs": ("started_at", "committed_at")}  # the only columns allowed to differ between replays


def _prices() -> Any:
    import pandas as pd

    return pd.read_csv(DATA / "sector_etfs_daily.csv", index_col="date", parse_dates=True).astype("float64")


def backtest_once(prices: Any, out: Path) -> dict[str, Any]:
    """The full replay, keeping every committed decision (asof, slot, Decision) and its ledger stage time."""
    import agent.runner as runner
    from agent.backtest import run_backtest
    from agent.data.store import PriceStore
    from agent.settings import load_settings

    settings = load_settings(profile=PROFILE)
    store = PriceStore.from_frame(prices, source="bench")
    slots: list[tuple[dt.date, str, Any]] = []
    orig = runner.run_slot

    def keep(*a: Any, **k: Any) -> Any:
        res = orig(*a, **k)
        slots.append((res.asof, res.slot, res.decision))
        return res

    runner.run_slot = keep  # type: ignore[assignment]
    try:
        res = run_backtest(settings, store, START, END, out, write_report=False)
    finally:
        runner.run_slot = orig  # type: ignore[assignment]
    return {
        "settings": settings,
        "store": store,
        "slots": slots,
        "start": res.start,
        "end": res.end,
        "ledger_ms": res.timings["ledger_ms"],
        "replay_s": res.timings["replay_s"],
    }


def replay_ledger(bt_run: dict[str, Any], path: Path) -> float:
    """OUR ledger stage on the recorded decisions: seconds, timed as the backtest times its ``ledger`` stage
    (each slot's advance + commit, plus the batches' BEGIN/COMMIT), plus the final advance."""
    import pandas as pd

    from agent.runner import commit_decision, open_book, open_ledger, replay_in_batches

    settings, store = bt_run["settings"], bt_run["store"]
    tickers = list(settings.universe.tickers)
    start = pd.Timestamp(bt_run["start"])
    ledger = open_ledger(path, settings, durable=False)
    slots_s = 0.0

    def step(item: tuple[dt.date, str, Any]) -> None:
        nonlocal slots_s
        asof, slot, decision = item
        prices = store.snapshot(asof, tickers=tickers).loc[start:]  # the data stage, as in run_slot
        t0 = time.perf_counter()
        with ledger.transaction():
            advanced, _state = open_book(ledger, prices, asof)
            commit_decision(ledger, settings, slot, asof, decision, advanced)
        slots_s += time.perf_counter() - t0

    try:
        commits_s = replay_in_batches(ledger, bt_run["slots"], step)
        frame = store.snapshot(bt_run["end"], tickers=tickers).loc[start:]
        t0 = time.perf_counter()
        with ledger.transaction():
            ledger.advance(frame, upto=bt_run["end"])
        final_s = time.perf_counter() - t0
    finally:
        ledger.close()
    return slots_s + commits_s + final_s


def ledger_parts(bt_run: dict[str, Any], path: Path) -> dict[str, float]:
    """Where our ledger stage goes (ms), from one instrumented pass of the same loop: the advance, the book read
    for the decision (``open_book`` minus its advance), the commit of the decision and its orders (of which the
    record's canonical JSON, timed on its own), the batches' BEGIN/COMMIT and the final advance."""
    import pandas as pd

    from agent.decision import canonical_json
    from agent.runner import commit_decision, open_ledger, replay_in_batches

    settings, store = bt_run["settings"], bt_run["store"]
    tickers = list(settings.universe.tickers)
    start = pd.Timestamp(bt_run["start"])
    ledger = open_ledger(path, settings, durable=False)
    parts = dict.fromkeys(("advance", "book_read", "commit_decision", "batch_commits", "final_advance"), 0.0)
    pc = time.perf_counter

    def step(item: tuple[dt.date, str, Any]) -> None:
        asof, slot, decision = item
        prices = store.snapshot(asof, tickers=tickers).loc[start:]
        with ledger.transaction():
            t0 = pc()
            advanced = ledger.advance(prices, upto=asof)
            t1 = pc()
            ledger.portfolio_state(asof)
            ledger.last_run()
            t2 = pc()
            commit_decision(ledger, settings, slot, asof, decision, advanced)
            t3 = pc()
        parts["advance"] += t1 - t0
        parts["book_read"] += t2 - t1
        parts["commit_decision"] += t3 - t2

    try:
        parts["batch_commits"] = replay_in_batches(ledger, bt_run["slots"], step)
        frame = store.snapshot(bt_run["end"], tickers=tickers).loc[start:]
        t0 = pc()
        with ledger.transaction():
            ledger.advance(frame, upto=bt_run["end"])
        parts["final_advance"] = pc() - t0
    finally:
        ledger.close()
    t0 = pc()
    for _asof, _slot, decision in bt_run["slots"]:
        canonical_json(decision.record)
    json_ms = (pc() - t0) * 1e3
    out = {k: v * 1e3 for k, v in parts.items()}
    return {
        **dict(list(out.items())[:3]),
        "(of which the records' canonical JSON)": json_ms,
        **dict(list(out.items())[3:]),
    }


def ledger_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a ledger file, rows in key order, wall-clock columns blanked."""
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out: dict[str, list[tuple[Any, ...]]] = {}
        names = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for t in names:
            cols = [r[1] for r in c.execute(f"PRAGMA table_info({t})")]
            sel = ", ".join("NULL" if col in WALL_CLOCK.get(t, ()) else col for col in cols)
            out[t] = c.execute(f"SELECT {sel} FROM {t} ORDER BY 1, 2").fetchall()
        for p in ("application_id", "user_version"):
            out[f"pragma:{p}"] = [tuple(c.execute(f"PRAGMA {p}").fetchone())]
        return out
    finally:
        c.close()


def executions(path: Path, tickers: list[str]) -> tuple[Any, Any]:
    """(post-fill weights per fill session, our daily NAV) from a ledger: the executions bt is fed."""
    import pandas as pd

    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        fills = pd.read_sql_query("SELECT exec_date, ticker, shares, price FROM fills ORDER BY fill_id", c)
        nav = pd.read_sql_query("SELECT date, nav FROM nav ORDER BY date", c)
        ex = pd.read_sql_query("SELECT exec_date FROM executions ORDER BY exec_date", c)
    finally:
        c.close()
    nav_s = pd.Series(nav["nav"].to_numpy(), index=pd.DatetimeIndex(pd.to_datetime(nav["date"])))
    d_sh = fills.pivot_table(index="exec_date", columns="ticker", values="shares", aggfunc="sum")
    d_sh = d_sh.reindex(index=ex["exec_date"], columns=tickers).fillna(0.0)
    held = d_sh.cumsum()
    held.index = pd.DatetimeIndex(pd.to_datetime(held.index))
    return held, nav_s


def bt_weights(held: Any, closes: Any, nav: Any) -> Any:
    """Weights right after each fill: shares held × that session's close / NAV marked after the fill."""
    px = closes.reindex(held.index)[held.columns]
    return (held * px).div(nav.reindex(held.index), axis=0)


def run_bt(bt: Any, closes: Any, weights: Any, capital: float, cost_bps: float) -> tuple[float, Any]:
    """bt on the same closes and executions; returns (seconds, NAV series)."""
    rate = cost_bps / 1e4
    t0 = time.perf_counter()
    strat = bt.Strategy("same_executions", [bt.algos.WeighTarget(weights), bt.algos.Rebalance()])
    test = bt.Backtest(
        strat,
        closes,
        initial_capital=capital,
        commissions=lambda q, p: abs(q) * p * rate,
        integer_positions=False,
        progress_bar=False,
    )
    res = bt.run(test)
    secs = time.perf_counter() - t0
    return secs, res.backtests["same_executions"].strategy.values


def run(n_runs: int) -> dict[str, Any]:
    try:
        import bt
    except ImportError:
        return {"skipped": "bt is not installed (pip install -e .[bench]): the bt comparison was not run"}
    import numpy as np

    from agent.runner import REPLAY_COMMIT_EVERY

    prices = _prices()
    work = Path(tempfile.mkdtemp(prefix="bench_ledger_"))
    try:
        t0 = time.perf_counter()
        first = backtest_once(prices, work / "backtest")
        backtest_s = time.perf_counter() - t0
        settings = first["settings"]
        tickers = list(settings.universe.tickers)
        ref = ledger_tables(work / "backtest" / "ledger.sqlite")
        held, nav = executions(work / "backtest" / "ledger.sqlite", tickers)
        closes = prices.loc[nav.index[0] : nav.index[-1], tickers]
        weights = bt_weights(held, closes, nav)
        capital = float(settings.execution.initial_capital)
        ours: list[float] = []
        theirs: list[float] = []
        ours_cpu: list[float] = []  # process CPU time: less sensitive to a busy machine than the wall clock
        theirs_cpu: list[float] = []
        same = True
        bt_nav = None
        for i in range(n_runs):
            p = work / f"replay{i}" / "ledger.sqlite"
            c0 = time.process_time()
            ours.append(replay_ledger(first, p))
            ours_cpu.append(time.process_time() - c0)
            same = same and ledger_tables(p) == ref
            c0 = time.process_time()
            secs, bt_nav = run_bt(bt, closes, weights, capital, settings.execution.cost_bps)
            theirs_cpu.append(time.process_time() - c0)
            theirs.append(secs)
            shutil.rmtree(p.parent)
        assert bt_nav is not None
        parts = ledger_parts(first, work / "parts" / "ledger.sqlite")
        b = bt_nav.reindex(nav.index)
        rel = (nav / capital - b / capital).abs()
        med_o, med_b = statistics.median(ours), statistics.median(theirs)
        return {
            "profile": PROFILE,
            "window": f"{first['start']} .. {first['end']}",
            "decisions": len(first["slots"]),
            "executions": len(held),
            "sessions_marked": len(nav),
            "runs": n_runs,
            "backtest_wall_s": backtest_s,
            "backtest_ledger_stage_s": first["ledger_ms"] / 1e3,
            "ours_s": ours,
            "bt_s": theirs,
            "ours_median_s": med_o,
            "bt_median_s": med_b,
            "ratio_ours_over_bt": med_o / med_b,
            "paired_ratio_median": statistics.median(o / t for o, t in zip(ours, theirs, strict=True)),
            "cpu_note": "ours_cpu_s covers the whole replay call (ledger open/close and price slicing too)",
            "ours_cpu_s": ours_cpu,
            "bt_cpu_s": theirs_cpu,
            "cpu_ratio_ours_over_bt": statistics.median(ours_cpu) / statistics.median(theirs_cpu),
            "ours_parts_ms": {k: round(v, 1) for k, v in parts.items()},
            "commit_every": REPLAY_COMMIT_EVERY,
            "nav_max_abs_diff": float(np.nanmax(rel.to_numpy())),
            "nav_final_ours": float(nav.iloc[-1] / capital),
            "nav_final_bt": float(b.iloc[-1] / capital),
            "ledger_tables_equal_to_backtest": same,
            "bt_version": bt.__version__,
            "loadavg": list(os.getloadavg()),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if not (DATA / "sector_etfs_daily.csv").exists():
        sys.exit(f"bench_ledger: no sector_etfs_daily.csv in {DATA} (set AGENT_SHARED_DATA)")
    out = run(a.runs)
    if "skipped" in out:
        print(f"bench_ledger: skipped: {out['skipped']}")
    else:
        print(
            f"ledger stage, {out['executions']} executions / {out['decisions']} decisions: ours "
            f"{out['ours_median_s'] * 1e3:.0f} ms, bt {out['bt_median_s'] * 1e3:.0f} ms, ratio "
            f"{out['ratio_ours_over_bt']:.2f}x (paired {out['paired_ratio_median']:.2f}x, CPU time "
            f"{out['cpu_ratio_ours_over_bt']:.2f}x); NAV max |diff| "
            f"{out['nav_max_abs_diff']:.1e}; tables equal to the backtest's: {out['ledger_tables_equal_to_backtest']}"
        )
        print(json.dumps(out, indent=2))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
