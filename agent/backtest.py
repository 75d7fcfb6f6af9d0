"""Replay a profile over history through the live decision path, with baselines, metrics and a report.

The replay walks the profile's schedule and calls `runner.run_slot` (the daemon's own step) at each scheduled
close; the ledger executes at the next close with costs, lets weights drift and marks NAV daily. Baselines run
on the same dates, universe and costs with the vectorized simulator that shares the ledger's fill rule.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.backtest_outputs import jsonable as _jsonable
from agent.backtest_outputs import navs_with_baselines as _navs
from agent.backtest_outputs import risk_free as _risk_free
from agent.backtest_outputs import strategy_turnover_costs as _strategy_turnover_costs
from agent.backtest_outputs import write_csv as _write_csv
from agent.decision import TRADING_DAYS
from agent.errors import DataError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from agent.data.store import PriceStore
    from agent.settings import Settings

__all__ = [
    "BACKTEST_MARKER",
    "BacktestResult",
    "check_out_dir",
    "load_prices_for",
    "parse_window",
    "run_backtest",
]


@dataclass
class BacktestResult:
    out_dir: Path
    start: dt.date
    end: dt.date
    n_decisions: int
    metrics: dict[str, dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def parse_window(replay: str | None, start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    """`--replay 2020-2024` = first session of 2020 .. last of 2024; `--replay 2022` one year; or --start/--end."""
    if replay:
        m = re.fullmatch(r"\s*(\d{4})\s*(?:[-:]|\.\.)?\s*(\d{4})?\s*", replay)
        if not m:
            raise UsageError(f"--replay expects YEAR or YEAR-YEAR (e.g. 2020-2024), got {replay!r}")
        y0, y1 = int(m.group(1)), int(m.group(2) or m.group(1))
        if y1 < y0:
            raise UsageError(f"--replay {replay}: the end year is before the start year")
        try:
            s, e = dt.date(y0, 1, 1), dt.date(y1, 12, 31)
        except ValueError as ex:
            raise UsageError(f"--replay {replay.strip()}: {ex}") from None
        if start or end:
            raise UsageError("use either --replay or --start/--end, not both")
        return _in_calendar(s, e)
    if not start:
        raise UsageError("give a window: --replay 2020-2024, or --start YYYY-MM-DD [--end YYYY-MM-DD]")
    try:
        s = dt.date.fromisoformat(start)
        e = dt.date.fromisoformat(end) if end else dt.date.today()
    except ValueError as ex:
        raise UsageError(f"bad date: {ex}") from None
    if e < s:
        raise UsageError(f"--end {e} is before --start {s}")
    return _in_calendar(s, e)


def _in_calendar(s: dt.date, e: dt.date) -> tuple[dt.date, dt.date]:
    """A window that misses the trading calendar entirely (1985 .. two years ahead) is outside any data (exit 3),
    said before anything is loaded (a year-1 window would otherwise overflow date arithmetic downstream)."""
    first, last = dt.date(1985, 1, 2), dt.date.today() + dt.timedelta(days=700)
    if e < first or s > last:
        raise DataError(
            f"the window {s}..{e} is outside the data: the trading calendar covers {first} .. {last}"
        )
    return s, e


BACKTEST_MARKER = ".backtest-output"  # written first into --out: this directory's ledger is a replay's


def check_out_dir(out_dir: Path, settings: Settings) -> None:
    """A backtest replaces the ledger and decision log in `out_dir`: refuse a directory that holds a
    paper-trading book (the state directory, one with the state lock, or a ledger no backtest wrote)."""
    from pathlib import Path

    o = Path(out_dir).expanduser()
    state = Path(settings.paths.state_dir).expanduser()
    same = o.exists() and state.exists() and o.resolve() == state.resolve()
    if same or (o / "agent.lock").exists():
        raise UsageError(
            f"--out {o} is a paper-trading state directory: a backtest would replace its ledger",
            hint="choose another --out directory",
        )
    if o.exists() and not o.is_dir():
        raise UsageError(f"--out {o} is not a directory")
    parent = o
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():  # said before the store is synced: a bad --out changes nothing
        raise UsageError(f"--out {o}: {parent} is not a directory")
    book = [n for n in ("ledger.sqlite", "decisions.jsonl") if (o / n).exists()]
    ours = any((o / m).exists() for m in (BACKTEST_MARKER, "metrics.json", "timings.json"))
    if book and not ours:
        raise UsageError(
            f"--out {o} holds {' and '.join(book)} not written by a backtest (a paper-trading book?)",
            hint="choose another --out directory",
        )


def load_prices_for(settings: Settings, prices_file: str | Path | None) -> tuple[PriceStore, str]:
    """The price store a replay reads, and a label for reports.

    `--prices FILE`: the file alone, validated, in memory (the user's store is not touched). Otherwise the local
    store under `paths.data_dir`, first brought up to date from the profile's source the way the daemon does
    it: incrementally from the file or the bundled demo set (offline), or from yfinance when tickers are
    missing (offline with an empty store: one line naming the offline options, exit 3).
    """
    from agent.data.sources import FileSource, resolve_prices_file
    from agent.data.store import PriceStore
    from agent.data.sync import sync_store

    d = settings.data
    if prices_file is not None:
        path = resolve_prices_file(prices_file)
        frame = FileSource(path).fetch(None, None, None)
        store = PriceStore.from_frame(
            frame,
            source=f"file:{path}",
            policy=d.on_invalid,
            max_ffill=d.max_ffill,
            max_jump=d.max_jump,
            stale_sessions=d.stale_sessions,
        )
        _warn_repairs(store, path)
        return store, path.name
    store = PriceStore(settings.paths.data_dir)
    synced = sync_store(store, settings, refresh_remote=False)
    if synced.warning is not None:
        from agent.logging import get_logger

        get_logger("agent.backtest").warning(
            "prices.update_failed", error=synced.warning, note="using cached prices"
        )
    label = {"file": f"{d.prices_file}", "demo": f"demo set {d.demo_set} (skfolio)"}.get(d.source, "yfinance")
    return store, f"{label} via store {settings.paths.data_dir}"


def _warn_repairs(store: PriceStore, path: Path) -> None:
    """A `--prices` file is validated like an import: what was held out or repaired is said, never silent."""
    rep = store.last_report or {}
    held, filled, dropped = rep.get("n_held_out", 0), rep.get("n_filled", 0), rep.get("n_dropped_rows", 0)
    if held or filled or dropped:
        from agent.logging import get_logger

        shown = ", ".join(f"{t} {d}" for t, d in (rep.get("held_out") or [])[:5])
        get_logger("agent.backtest").warning(
            "prices.repaired",
            file=str(path),
            held_out=held,
            filled=filled,
            dropped_rows=dropped,
            first_held_out=shown or None,
            note="not replayed as given: see the validation report",
        )


def _check_universe(frame: pd.DataFrame, settings: Settings, where: str) -> None:
    missing = [t for t in settings.universe.tickers if t not in frame.columns]
    if missing:
        raise DataError(
            f"tickers missing from {where}: {', '.join(missing)}",
            hint=f"it has {', '.join(map(str, frame.columns[:20]))}{' ...' if len(frame.columns) > 20 else ''}",
        )


def run_backtest(
    settings: Settings,
    store: PriceStore,
    start: dt.date,
    end: dt.date,
    out_dir: Path,
    *,
    progress: bool = False,
    write_report: bool = True,
    source_label: str = "",
) -> BacktestResult:
    import pandas as pd

    from agent import runner
    from agent.atomic import atomic_write_text
    from agent.data.calendar import schedule
    from agent.decisionlog import DecisionLog
    from agent.engine import EngineContext, check_models
    from agent.runner import open_ledger, replay_in_batches, run_slot

    t_all = time.perf_counter()
    tickers = settings.universe.tickers
    frame = store.load()
    _check_universe(frame, settings, source_label or "the price data")
    first, last = frame.index[0].date(), frame.index[-1].date()
    if start > last or end < first:
        raise DataError(f"window {start}..{end} is outside the data ({first}..{last})")
    start, end = max(start, first), min(end, last)
    window = frame.loc[pd.Timestamp(start) : pd.Timestamp(end), list(tickers)]
    if window.empty:
        raise DataError(f"no sessions in {start}..{end}")
    complete = window.notna().all(axis=1)
    if not complete.any():
        raise DataError(f"no session in {start}..{end} has prices for every ticker")
    # the replay runs where every ticker has a price: a store shared with other universes can extend past it
    full = complete.to_numpy()
    first_full = window.index[int(full.argmax())]
    last_full = window.index[len(full) - 1 - int(full[::-1].argmax())]
    sessions = pd.DatetimeIndex(window.loc[first_full:last_full].index)
    start, end = sessions[0].date(), sessions[-1].date()
    planned = schedule(
        settings.schedule.frequency,
        start,
        end,
        every_n=settings.schedule.every_n,
        calendar=settings.schedule.calendar,
    )
    dates = [d for d in pd.DatetimeIndex(planned) if d in sessions]
    if not dates:
        raise DataError(f"the {settings.schedule.frequency} schedule has no decision date in {start}..{end}")

    if settings.research.leak:  # a look-ahead research mode: allowed in a replay, labelled everywhere
        from agent.research.leak import leak_replay

        with leak_replay(frame):
            ctx = EngineContext.create(settings, store)
    else:
        ctx = EngineContext.create(settings, store)
    hist = frame.loc[: pd.Timestamp(start), list(tickers)].dropna(how="any")
    if len(hist) < ctx.min_history:
        raise DataError(
            f"window too short for the lookback: decisions from {start} need {ctx.min_history} sessions of prices "
            f"for every ticker before them, the data has {len(hist)} (from {first})",
            hint="start the replay later or lower risk.fit_window / risk.min_observations",
        )
    check_models(ctx, dates[0].date())

    check_out_dir(out_dir, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / BACKTEST_MARKER).write_text("written by agent backtest: the ledger here is a replay's\n")
    for stale in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm", "decisions.jsonl"):
        (out_dir / stale).unlink(missing_ok=True)
    ledger = open_ledger(out_dir / "ledger.sqlite", settings, durable=False)
    log = DecisionLog(out_dir / "decisions.jsonl", durable=False)
    stage_ms: dict[str, float] = {}
    weights_rows = []
    t_replay = time.perf_counter()
    bar = _progress(dates, progress, settings.profile)

    def step(ts: pd.Timestamp) -> None:
        asof = ts.date()
        res = run_slot(ledger, ctx, asof, mark_from=start, keep_timings=False)
        dec = res.decision
        assert dec is not None
        for k, v in (res.timings_ms or {}).items():
            stage_ms[k] = stage_ms.get(k, 0.0) + v
        weights_rows.append({"date": asof.isoformat(), **dec.targets_dict()})

    # one commit per REPLAY_COMMIT_EVERY slots (the replay's durability setting; each slot still all-or-nothing)
    commits_s = replay_in_batches(ledger, bar, step, every=runner.REPLAY_COMMIT_EVERY)
    stage_ms["ledger"] = stage_ms.get("ledger", 0.0) + commits_s * 1e3
    with ledger.transaction():
        ledger.advance(frame.loc[pd.Timestamp(start) : pd.Timestamp(end), list(tickers)], upto=end)
    t_log = time.perf_counter()
    log.sync_from_ledger(ledger)
    stage_ms["decision_log"] = (time.perf_counter() - t_log) * 1e3
    replay_s = time.perf_counter() - t_replay

    # ---- outputs ----
    navs = _navs(settings, frame, ledger, sessions, dates)
    from agent import metrics as M

    rf, rf_used = _risk_free(settings, pd.DatetimeIndex(navs.index))
    strat_runs = ledger.runs()
    fills = ledger.fills_frame()
    capital = settings.execution.initial_capital
    turnover_s, costs_s = _strategy_turnover_costs(ledger, capital)
    extras: dict[str, dict[str, float]] = {
        "strategy": {
            "turnover": turnover_s,
            "costs": costs_s,
            "n_rebalances": float(sum(1 for r in strat_runs if r.get("status") == "rebalance")),
        }
    }
    extras.update(navs.attrs.get("extras", {}))
    metrics = {}
    for col in navs.columns:
        ex = extras.get(col, {})
        metrics[col] = M.portfolio_metrics(
            navs[col],
            rf_daily=rf,
            turnover=float(ex.get("turnover", 0.0)),
            n_rebalances=int(ex.get("n_rebalances", 0)),
            costs=float(ex.get("costs", 0.0)),
        )
    weights_df = pd.DataFrame(weights_rows).set_index("date")
    _write_csv(navs, out_dir / "nav.csv")
    _write_csv(weights_df, out_dir / "weights.csv")
    trades = fills.copy()
    _write_csv(trades, out_dir / "trades.csv", index=False)
    atomic_write_text(
        out_dir / "metrics.json", json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n"
    )
    detail: dict[str, Any] = {
        "risk_free": rf_used,
        "per_year": {c: M.per_period_metrics(navs[c]) for c in navs.columns},
        "kfold": {c: M.kfold_metrics(navs[c], k=settings.backtest.kfolds) for c in navs.columns},
        "named_windows": {
            name: {c: M.window_metrics(navs[c], a, b) for c in navs.columns}
            for name, (a, b) in settings.backtest.named_windows.items()
        },
        "alpha_vs_equal_weight": (
            M.alpha(navs["strategy"], navs["equal_weight"]) if "equal_weight" in navs.columns else None
        ),
        "deflated_sharpe": M.deflated_sharpe_ratio(
            navs["strategy"].pct_change().dropna().to_numpy(),
            n_trials=settings.backtest.n_trials,
            sr_variance=None,
        )
        if settings.backtest.n_trials > 1
        else None,
    }
    if settings.research.leak:
        from agent.research.leak import LOOK_AHEAD_NOTE

        detail["look_ahead"] = {"modes": list(settings.research.leak), "note": LOOK_AHEAD_NOTE}
    (out_dir / "metrics_detail.json").write_text(
        json.dumps(_jsonable(detail), indent=2, sort_keys=True) + "\n"
    )
    files = ["weights.csv", "nav.csv", "trades.csv", "metrics.json", "metrics_detail.json", "decisions.jsonl"]
    if write_report:
        from agent import report as R

        asset_ret = frame.loc[pd.Timestamp(start) : pd.Timestamp(end), list(tickers)].pct_change().iloc[1:]
        points = {}
        for c in navs.columns:
            r = navs[c].pct_change().dropna()
            points[c] = (float(r.std() * np.sqrt(TRADING_DAYS)), float(r.mean() * TRADING_DAYS))
        meta = {
            "profile": settings.profile + _look_ahead_label(settings),
            "description": settings.description,
            "window": f"{start} .. {end}",
            "decisions": len(dates),
            "frequency": settings.schedule.frequency,
            "costs": f"{settings.execution.cost_bps:g} bps per side"
            + (f" + {settings.execution.fixed_cost:g} per trade" if settings.execution.fixed_cost else "")
            + f", execution at the close {settings.execution.lag_sessions} session(s) after the decision",
            "data": source_label,
            "tickers": ", ".join(tickers),
        }
        rpath = R.write_report(
            out_dir,
            navs=navs,
            weights=weights_df,
            trades=trades,
            metrics=metrics,
            per_year=detail["per_year"],
            rebalance_dates=[r["asof"] for r in strat_runs if r.get("status") == "rebalance"],
            asset_returns=asset_ret,
            portfolio_points=points,
            meta=meta,
            windows=detail["named_windows"] or None,
            kfold=detail["kfold"],
            alphas={"strategy vs equal_weight": detail["alpha_vs_equal_weight"]}
            if detail["alpha_vs_equal_weight"]
            else None,
            rolling_window=settings.backtest.rolling_window,
            skill_rows=_skill_rows(ledger),
        )
        files.append(Path(rpath).name)
    total_s = time.perf_counter() - t_all
    timings = {
        "replay_s": replay_s,
        "total_s": total_s,
        **{f"{k}_ms": v for k, v in sorted(stage_ms.items())},
    }
    atomic_write_text(out_dir / "timings.json", json.dumps(timings, indent=2, sort_keys=True) + "\n")
    ledger.close()
    return BacktestResult(out_dir, start, end, len(dates), metrics, timings, files)


def _look_ahead_label(settings: Settings) -> str:
    modes = settings.research.leak
    return f" — LOOK-AHEAD research replay ({', '.join(modes)})" if modes else ""


def _progress(items: list[Any], enabled: bool, label: str) -> Any:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"replay {label}", unit="decision", leave=False)


def _skill_rows(ledger: Any) -> Any:
    """The skill-aware allocation per year for the report (None when the profile does not use it)."""
    from agent.report.skill import skill_summary

    return skill_summary(ledger.runs(with_decision=True))
