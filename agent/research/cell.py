"""Run one sweep cell: settings from the cell, prices from the shipped frame (or a bootstrap path of it), then
`run_backtest` — the decision path `agent backtest` and the daemon use. Executed on Dask workers or serially.

Why it never raises: one bad cell (an unknown setting, a window outside the data, a solver failure) must be
recorded with its one-line error while the sweep goes on.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.research.grid import Cell, window_dates

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SERIES_PREFIX", "run_cell"]

SERIES_PREFIX = "m."  # metric columns: m.<series>.<metric>, e.g. m.strategy.sharpe, m.equal_weight.cagr


def _settings_for(cell: Cell) -> Any:
    from agent.settings import load_settings

    ov = cell.settings_overrides()
    s = load_settings(cell.config, profile=cell.profile, overrides=ov)
    if cell.path is not None and "equal_weight" not in s.backtest.baselines:
        # a Monte Carlo path is always compared with 1/N on the same path
        ov["backtest.baselines"] = [*s.backtest.baselines, "equal_weight"]
        s = load_settings(cell.config, profile=cell.profile, overrides=ov)
    return s


def _frame_for(cell: Cell, settings: Any, frame: pd.DataFrame) -> pd.DataFrame:
    if cell.path is None:
        return frame
    from agent.research.bootstrap import synthetic_prices

    cols = list(settings.universe.tickers)
    for extra in (settings.universe.benchmark, settings.universe.bond):
        if extra and extra in frame.columns and extra not in cols:
            cols.append(extra)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        from agent.errors import DataError

        raise DataError(f"tickers missing from the price data: {', '.join(missing)}")
    assert cell.seed is not None and cell.mean_block is not None
    return synthetic_prices(frame[cols], cell.seed, cell.path, cell.mean_block)


def _one_line(e: BaseException) -> str:
    from agent.errors import AgentError

    if isinstance(e, AgentError):
        return e.one_line()
    text = " ".join(str(e).split()) or "(no message)"
    return f"{type(e).__name__}: {text}"[:500]


def _flat_metrics(metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for series, ms in metrics.items():
        for k, v in ms.items():
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, int | float):
                out[f"{SERIES_PREFIX}{series}.{k}"] = float(v)
    return out


def run_cell(cell: Cell, frame: pd.DataFrame, key: str) -> dict[str, Any]:
    """Replay one cell; return a JSON-able record: key, params, status, error, metrics, timings, returns."""
    t0 = time.perf_counter()
    rec: dict[str, Any] = {
        "key": key,
        "params": cell.params(),
        "status": "ok",
        "error": "",
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    try:
        from agent.data.store import PriceStore

        settings = _settings_for(cell)
        start, end = window_dates(cell.window)
        px = _frame_for(cell, settings, frame)
        # prices were validated once where they were loaded; a bootstrap path is valid by construction
        store = PriceStore.from_frame(px, source=f"sweep:{key}", validate=False)
        with tempfile.TemporaryDirectory(prefix="agent-sweep-") as tmp:
            res = run_backtest_quiet(settings, store, start, end, Path(tmp))
            nav = Path(tmp, "nav.csv").read_text()
        rec["metrics"] = _flat_metrics(res.metrics)
        rec["n_decisions"] = res.n_decisions
        rec["start"], rec["end"] = res.start.isoformat(), res.end.isoformat()
        rec["replay_s"] = float(res.timings.get("replay_s", math.nan))
        rec["returns"] = _strategy_returns(nav)
    except Exception as e:  # a cell's failure is data, not a crash of the sweep
        rec["status"] = "error"
        rec["error"] = _one_line(e)
        from agent.errors import AgentError

        if not isinstance(e, AgentError):
            rec["traceback"] = traceback.format_exc(limit=8)
    rec["cell_s"] = time.perf_counter() - t0
    return rec


def run_backtest_quiet(settings: Any, store: Any, start: Any, end: Any, out: Path) -> Any:
    from agent.backtest import run_backtest

    return run_backtest(settings, store, start, end, out, progress=False, write_report=False)


def _strategy_returns(nav_csv: str) -> list[float]:
    """Daily simple returns of the strategy NAV (for the deflated Sharpe of the best cell)."""
    import io

    import pandas as pd

    nav = pd.read_csv(io.StringIO(nav_csv), index_col="date")["strategy"].to_numpy(dtype=float)
    r = nav[1:] / nav[:-1] - 1.0
    return [float(x) for x in r]
