"""`agent data fetch | import | show`: fill and inspect the local price store.

The store lives in the data directory (--data-dir, AGENT_DATA_DIR or settings.paths.data_dir). No heavy import at
module level: pandas and friends load inside the handlers so that `agent --help` stays instant.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.commands.common import settings_from_args

__all__ = ["register"]

_DESCRIPTION = """\
The price store: a local Parquet cache of adjusted closes (one column per ticker) with a provenance record
(source, fetch time, validation summary per ticker). Decisions and backtests read point-in-time snapshots of it.

  agent data fetch                         # the universe + benchmark from the configured source (incremental)
  agent --profile demo data fetch          # the bundled offline demo prices (no network needed)
  agent data import ../shared/data/sector_etfs_daily.csv
  agent data show
"""


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "data",
        parents=[parent],
        help="fetch, import and inspect the local price store",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dsub = p.add_subparsers(dest="data_cmd", metavar="COMMAND", required=True)

    fetch = dsub.add_parser(
        "fetch",
        parents=[parent],
        help="fetch prices from the configured source into the store (incremental)",
        description="Fetch adjusted closes from the configured source (settings [data] source: yfinance, file or "
        "demo) into the store. Tickers already stored get only the sessions after their last date (plus a few "
        "sessions of overlap to detect a vendor's re-adjustment of history); new tickers are fetched from "
        "--start (default: settings data.start). Fetched prices are validated with the policy of "
        "data.on_invalid. Without network and without cached prices this stops with exit code 3: use "
        "`--profile demo` (bundled offline prices) or `agent data import FILE`.",
    )
    fetch.add_argument(
        "tickers",
        nargs="*",
        metavar="TICKER",
        help="symbols to fetch (default: the universe and the benchmark)",
    )
    fetch.add_argument("--start", metavar="YYYY-MM-DD", help="first date for tickers not yet in the store")
    fetch.add_argument(
        "--end", metavar="YYYY-MM-DD", help="last date (inclusive; default: the last closed NYSE session)"
    )
    fetch.add_argument(
        "--policy",
        choices=["fail", "ffill"],
        help="what to do with invalid prices (default: data.on_invalid)",
    )
    fetch.set_defaults(handler=_fetch)

    imp = dsub.add_parser(
        "import",
        parents=[parent],
        help="validate a CSV/Parquet price file and merge it into the store",
        description="Validate a wide price file (a `date` column, then one column of adjusted closes per ticker; "
        "CSV, CSV.gz or Parquet) and merge it into the store: new tickers are added, on overlapping dates the "
        "file's values win (the number of changed cells is reported). A relative FILE is looked up in the "
        "current directory, then in $AGENT_SHARED_DATA (default ../shared/data). Policy `fail` stops on any "
        "problem; `ffill` drops duplicate and non-session rows and forward-fills gaps of at most data.max_ffill "
        "sessions, recording every repair. Big one-day moves and stale runs are warnings.",
    )
    imp.add_argument("file", metavar="FILE", help="price file (CSV, CSV.gz or Parquet)")
    imp.add_argument(
        "--policy",
        choices=["fail", "ffill"],
        help="what to do with invalid prices (default: data.on_invalid)",
    )
    imp.add_argument(
        "--no-calendar-check",
        action="store_true",
        help="accept dates that are not NYSE sessions (e.g. crypto priced every calendar day)",
    )
    imp.set_defaults(handler=_import)

    show = dsub.add_parser(
        "show",
        parents=[parent],
        help="list the tickers in the store with their date ranges and sources",
        description="List the store: its path and overall date range, then per ticker the first and last date, "
        "the number of prices, the source and when it was fetched.",
    )
    show.add_argument("--tickers", action="store_true", help="print only the ticker symbols, one per line")
    show.set_defaults(handler=_show)


def _store(settings: Any) -> Any:
    from agent.commands.common import preflight_data_dir
    from agent.data.store import PriceStore

    preflight_data_dir(settings.paths.data_dir)
    return PriceStore(settings.paths.data_dir)


def _validation_kwargs(settings: Any) -> dict[str, Any]:
    d = settings.data
    return {"max_ffill": d.max_ffill, "max_jump": d.max_jump, "stale_sessions": d.stale_sessions}


def _fetch(args: argparse.Namespace) -> int:
    from agent.data.sources import source_from_settings

    settings = settings_from_args(args)
    tickers = list(args.tickers) or list(
        dict.fromkeys(
            [
                *settings.universe.tickers,
                *([settings.universe.benchmark] if settings.universe.benchmark else []),
            ]
        )
    )
    source = source_from_settings(settings.data)
    store = _store(settings)
    res = store.update(
        source,
        tickers,
        end=args.end,
        start=args.start or settings.data.start,
        policy=args.policy or settings.data.on_invalid,
        **_validation_kwargs(settings),
    )
    print(f"store: {store.root}  source: {source.name}")
    print(res.summary())
    return 0


def _import(args: argparse.Namespace) -> int:
    from agent.data.sources import read_price_file, resolve_prices_file

    settings = settings_from_args(args)
    path = resolve_prices_file(args.file)
    df = read_price_file(path)
    store = _store(settings)
    report = store.import_frame(
        df,
        source=f"file:{path}",
        policy=args.policy or settings.data.on_invalid,
        calendar_check=not args.no_calendar_check,
        **_validation_kwargs(settings),
    )
    m = report.merge
    print(f"imported {path} into {store.root}")
    if m.get("added_tickers"):
        print(f"  added {len(m['added_tickers'])} tickers: {', '.join(m['added_tickers'])}")
    if m.get("updated_tickers"):
        print(
            f"  updated {len(m['updated_tickers'])} tickers: {', '.join(m['updated_tickers'])} "
            f"({m.get('changed_cells', 0)} existing prices changed)"
        )
    print(f"  store: {m.get('rows')} rows, {m.get('first')}..{m.get('last')} ({m.get('new_rows')} new rows)")
    print(report.summary())
    return 0


def _show(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    store = _store(settings)
    df = store.load()
    if args.tickers:
        for t in df.columns:
            print(t)
        return 0
    rng = store.date_range()
    print(f"price store: {store.root}")
    if rng is None or df.shape[1] == 0:
        print(
            "  (empty) fill it with `agent data import FILE` or `agent data fetch` (offline: `--profile demo`)"
        )
        return 0
    print(f"  {df.shape[1]} tickers, {len(df)} rows, {rng[0]:%Y-%m-%d}..{rng[1]:%Y-%m-%d}")
    prov = store.provenance().get("tickers", {})
    print(f"{'ticker':10s} {'first':10s} {'last':10s} {'rows':>6s}  {'fetched_at':20s}  source")
    for t in df.columns:
        s = df[t]
        fv, lv = s.first_valid_index(), s.last_valid_index()
        info = prov.get(t, {})
        first = f"{fv:%Y-%m-%d}" if fv is not None else "-"
        last = f"{lv:%Y-%m-%d}" if lv is not None else "-"
        print(
            f"{t:10s} {first:10s} {last:10s} {int(s.notna().sum()):6d}  {info.get('fetched_at', '-'):20s}  "
            f"{info.get('source', '-')}"
        )
    return 0
