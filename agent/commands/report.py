"""`agent report`: the report of a live paper book (a state directory filled by `agent run`), beside a backtest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from agent.commands.common import configure_from_settings, settings_from_args

if TYPE_CHECKING:
    from agent.data.store import PriceStore
    from agent.settings import Settings

__all__ = ["register"]

_DESC = """\
Render the paper-trading book of a state directory as the backtest report does: equity, drawdowns, monthly
returns, rolling statistics, trades and the same metrics. The ledger and decision log are read READ-ONLY.

Unless --no-backtest, the same profile is replayed over the same dates (decisions from the book's first
slot to its last marked close) and shown beside the live book with their difference: they should match; where
they do not, the page names the slots that differ and which recorded inputs (configuration, model, prices,
earlier holdings) differ.
"""

_EPI = """\
examples:
  agent report --state-dir /var/lib/rebalance-agent --out /tmp/live-report
  agent report --state-dir runs/paper --prices ../shared/data/sector_etfs_daily.csv

exit codes: 0 ok, 2 usage/configuration error, 3 no ledger / no NAV yet / no prices for the backtest
"""


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report",
        parents=[parent],
        help="report of the live paper book (read-only), beside a backtest of the same dates",
        description=_DESC,
        epilog=_EPI,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/live-<profile>)")
    p.add_argument(
        "--prices",
        metavar="FILE",
        help="prices for the backtest and the frontier (default: the price store, read as it is)",
    )
    p.add_argument("--no-backtest", action="store_true", help="only the live book (faster)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from agent.errors import DataError, UsageError
    from agent.ops.book import read_book
    from agent.report import live as L
    from agent.report import write_report

    settings = settings_from_args(args)
    state = Path(settings.paths.state_dir).expanduser()
    book = read_book(state)
    if book.profile and book.profile != settings.profile:
        raise UsageError(
            f"{state} holds a {book.profile!r} book, the settings are for {settings.profile!r}",
            hint=f"add --profile {book.profile} (or the config file that book was run with)",
        )
    if len(book.nav) < 2 or not book.runs:
        raise DataError(f"{state}: the book has no marked NAV yet (runs: {len(book.runs)})")
    configure_from_settings(settings)
    out = Path(args.out) if args.out else Path("runs") / f"live-{settings.profile}"
    if out.resolve() == state.resolve() or state.resolve() in out.resolve().parents:
        raise UsageError("--out must be outside the state directory (the live book is read-only)")
    store, label = _prices(settings, args.prices)
    frame = store.load()
    tickers = list(settings.universe.tickers)
    start = L.first_decision(book) or book.nav.index[0].date()
    end = book.nav.index[-1].date()
    bt_book = None
    comparison = None
    if not args.no_backtest:
        from agent.backtest import run_backtest

        bt_dir = out / "backtest"
        run_backtest(settings, store, start, end, bt_dir, write_report=False, source_label=str(label))
        bt_book = read_book(bt_dir)
        comparison = L.compare_books(book, bt_book)
    bench = None
    b = settings.universe.benchmark
    if b and b in frame.columns:
        bench = frame[b].loc[book.nav.index[0] : book.nav.index[-1]].dropna()
        bench = bench / float(bench.iloc[0]) if len(bench) else None
    navs, metrics = L.live_inputs(book, bt_book, bench)
    from agent import metrics as M

    per_year = {c: M.per_period_metrics(navs[c].dropna()) for c in navs.columns}
    asset_ret = frame.loc[navs.index[0] : navs.index[-1], tickers].pct_change().iloc[1:]
    n_log = _log_records(state / "decisions.jsonl")
    meta = {
        "profile": settings.profile,
        "state directory": str(state),
        "window": f"{navs.index[0].date()} .. {end} ({len(book.runs)} committed runs, "
        f"{len(book.failures)} failed runs recorded)",
        "decision log": f"{n_log} records" if n_log is not None else "missing",
        "costs": f"{settings.execution.cost_bps:g} bps per side",
        "backtest prices": str(label),
    }
    extra = []
    if comparison is not None:
        extra.append(("Live book against the backtest of the same dates", L.comparison_html(comparison)))
    path = write_report(
        out,
        navs=navs,
        weights=L.decision_targets(book),
        trades=book.fills,
        metrics=metrics,
        per_year=per_year,
        asset_returns=asset_ret,
        portfolio_points=None,
        meta=meta,
        rolling_window=min(settings.backtest.rolling_window, max(2, len(navs) // 3)),
        capital=book.initial_capital,
        extra_sections=extra,
        title=f"Live paper book: {settings.profile}",
    )
    live_m = metrics["live"]
    print(f"live book {settings.profile}: {navs.index[0].date()} .. {end}, {len(book.runs)} runs")
    print(
        f"total return {format_pct(live_m['total_return'])}, max drawdown {format_pct(live_m['max_drawdown'])}"
    )
    if comparison is not None:
        print(
            f"backtest of the same dates: final NAV {comparison.final_backtest:.6f} vs live "
            f"{comparison.final_live:.6f}; {comparison.slots_matching}/{comparison.slots_compared} decisions "
            f"identical; {len(comparison.missed_by_live)} slot(s) missed by the live book"
        )
    print(f"report: {path.resolve()}")
    return 0


def format_pct(x: float) -> str:
    from agent.report import format_metric

    return format_metric("total_return", x)


def _prices(settings: Settings, prices: str | None) -> tuple[PriceStore, str]:
    """The --prices file (validated, in memory), or the price store as it is: never fetched or rewritten here."""
    from agent.backtest import load_prices_for
    from agent.data.store import PriceStore
    from agent.errors import DataError

    if prices is not None:
        return load_prices_for(settings, prices)
    data_dir = settings.paths.data_dir
    store = PriceStore(data_dir)
    try:
        empty = store.load().empty
    except Exception as e:
        raise DataError(f"cannot read the price store {data_dir}: {e}", hint="give --prices FILE") from None
    if empty:
        raise DataError(f"the price store {data_dir} is empty", hint="give --prices FILE")
    return store, f"price store {data_dir}"


def _log_records(path: Path) -> int | None:
    if not path.is_file():
        return None
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())
