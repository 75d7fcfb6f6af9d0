"""`agent sweep GRID.toml`: run a grid of replays (and Monte Carlo paths) as Dask tasks, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.commands.common import configure_from_settings, progress_enabled

__all__ = ["register"]

_DESC = """\
Run every cell of a sweep grid — the Cartesian product of settings overrides, replay windows, universes and
Monte Carlo bootstrap paths — as a full backtest through the same decision path as `agent backtest` and the
daemon. Cells run on a Dask LocalCluster sized to this machine, or on an existing cluster (--scheduler ADDRESS,
or Dask's scheduler-address configuration / DASK_SCHEDULER_ADDRESS). Prices are loaded once and shipped to the
workers once. Each finished cell is stored under OUT/cells/<hash>.json, so a rerun skips finished cells.

Writes to --out: sweep.parquet (cell parameters, every metric, timings, status), summary.json and summary.html
(table, heatmap of net Sharpe over the grid's `heatmap` axes, the deflated Sharpe of the best cell, Monte Carlo
percentiles against 1/N on the same paths). Exit 0 when at least one cell finished, 1 when every cell failed.
"""

_EPI = """\
grid file (TOML):
  profile = "equal-weight"              # or config = "my.toml"
  prices = "sector_etfs_daily.csv"      # optional, like `agent backtest --prices`
  windows = ["2018", "2019-2020"]       # YEAR, YEAR-YEAR or YYYY-MM-DD:YYYY-MM-DD
  heatmap = ["allocation.method", "schedule.frequency"]
  [grid]                                 # dotted setting -> list of values
  "allocation.method" = ["equal_weight", "min_variance"]
  "schedule.frequency" = ["weekly", "monthly"]
  [overrides]                            # fixed for every cell
  "backtest.baselines" = ["equal_weight"]
  [universes]                            # optional: name -> tickers
  [montecarlo]                           # optional: stationary block bootstrap paths
  paths = 200
  mean_block = 20

examples:
  agent sweep grid.toml --out runs/sweep                 # LocalCluster, one worker per core
  agent sweep grid.toml --workers 2
  agent sweep grid.toml --scheduler tcp://10.0.0.5:8786  # an existing cluster
  agent sweep grid.toml --scheduler serial               # in this process, no Dask
"""


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "sweep",
        parents=[parent],
        help="run a grid of replays / Monte Carlo paths on Dask (resumable)",
        description=_DESC,
        epilog=_EPI,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", metavar="GRID.toml", help="the sweep grid")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/sweep-<grid name>)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address of an existing cluster, or 'serial' (default: a LocalCluster)",
    )
    p.add_argument("--workers", type=int, metavar="N", help="LocalCluster worker processes (default: cores)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    from agent.errors import EXIT_RUN_FAILED, UsageError
    from agent.research.grid import load_grid
    from agent.research.runner import run_sweep
    from agent.settings import load_settings

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be >= 1")
    if args.workers is not None and args.scheduler is not None:
        raise UsageError("--workers sizes a local cluster: it cannot be combined with --scheduler")
    spec = load_grid(args.grid)
    base = load_settings(spec.config, profile=spec.profile)
    configure_from_settings(base)
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{Path(args.grid).stem}"
    res = run_sweep(
        spec, out, scheduler=args.scheduler, workers=args.workers, progress=progress_enabled(args)
    )
    print(
        f"sweep: {res.n_cells} cells ({res.n_skipped} already done, {res.n_run} run, {res.n_failed} failed) "
        f"in {res.wall_s:.1f} s on {res.workers} worker(s)"
    )
    best = res.summary.get("best")
    if best:
        print(
            f"best cell: net Sharpe {best['net_sharpe']:.3f}, deflated Sharpe {best['dsr']:.3f} "
            f"(n_trials {best['n_trials']})"
        )
    mc = res.summary.get("montecarlo")
    if mc:
        print(f"Monte Carlo: {mc['paths']} paths; see summary.html")
    print(f"wrote {res.table_path}, {res.html_path}")
    if res.summary.get("n_ok", 0) == 0:
        print("agent: error: every cell failed (see the error column of the table)", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0
