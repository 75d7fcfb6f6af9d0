"""`agent backtest`: replay a profile over history through the live decision path."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.commands.common import configure_from_settings, progress_enabled, settings_from_args

__all__ = ["register"]

_DESC = """\
Replay a strategy profile over history exactly as the daemon would have run it: at each scheduled close the
same decide() step (point-in-time prices, the newest model trained before that date, covariance, optimizer,
overlays), execution at the next close with costs, daily mark-to-market, and baselines (1/N, buy-and-hold,
static MVO fit on pre-window data, 60/40 where the universe has a bond) on the same dates and costs.

Writes to --out: weights.csv, nav.csv, trades.csv, metrics.json, metrics_detail.json, decisions.jsonl
(hash-chained, verifiable), timings.json, report.html and PNG plots.
"""

_EPI = """\
examples:
  agent backtest --profile demo --replay 2020-2022                 # offline, bundled prices
  agent backtest --replay 2020-2024 --prices ../shared/data/sector_etfs_daily.csv
  agent backtest --profile djia-lstm-garch --replay 2020-2024 --out runs/djia
  agent backtest --profile etf-lstm-mvo --start 2022-01-01 --end 2022-12-31
"""


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "backtest",
        parents=[parent],
        help="replay a profile over history (same decision code as the daemon)",
        description=_DESC,
        epilog=_EPI,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--replay", metavar="YEARS", help="e.g. 2020-2024: first session of 2020 to the last of 2024"
    )
    p.add_argument("--start", metavar="YYYY-MM-DD", help="first date of the window (instead of --replay)")
    p.add_argument("--end", metavar="YYYY-MM-DD", help="last date of the window (default: today)")
    p.add_argument(
        "--prices", metavar="FILE", help="wide CSV/Parquet of adjusted closes (date + one column per ticker)"
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/<profile>-<start>-<end>)")
    p.add_argument("--no-report", action="store_true", help="skip report.html and the plots (faster)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from agent.backtest import check_out_dir, load_prices_for, parse_window, run_backtest
    from agent.commands.common import preflight_data_dir

    start, end = parse_window(args.replay, args.start, args.end)
    settings = settings_from_args(args)
    configure_from_settings(settings)
    out = Path(args.out) if args.out else Path("runs") / f"{settings.profile}-{start.year}-{end.year}"
    check_out_dir(out, settings)  # before any work: never replace a paper-trading book
    if args.prices is None:
        preflight_data_dir(settings.paths.data_dir)
    store, label = load_prices_for(settings, args.prices)
    res = run_backtest(
        settings,
        store,
        start,
        end,
        out,
        progress=progress_enabled(args),
        write_report=not args.no_report,
        source_label=str(label),
    )
    from agent.report import summary_table

    print(f"{settings.profile}: {res.n_decisions} decisions, {res.start} .. {res.end}")
    print(summary_table(res.metrics))
    print(f"replay {res.timings['replay_s']:.2f} s, total {res.timings['total_s']:.2f} s")
    print(f"wrote {', '.join(res.files)} to {out}")
    if "report.html" in res.files:
        print(f"report: {(out / 'report.html').resolve()}")
    return 0
