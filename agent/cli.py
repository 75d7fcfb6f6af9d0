"""`agent`: the command line. Instant `--help` (heavy libraries load only inside commands).

Exit codes: 0 ok, 1 run failed (recorded), 2 usage or configuration error, 3 data error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent import __version__
from agent.errors import EXIT_CONFIG, EXIT_DATA, AgentError

__all__ = ["build_parser", "main"]

# Each module defines register(subparsers, parent_parser). Order = order in --help.
_COMMANDS = ("backtest", "run", "status", "audit", "data", "config", "report", "sweep")

_EPILOG = """\
examples:
  agent backtest --profile demo --replay 2020-2022          # offline, on the bundled demo prices
  agent backtest --replay 2020-2024 --prices ../shared/data/sector_etfs_daily.csv
  agent data import ../shared/data/sector_etfs_daily.csv && agent data show
  agent run --once                                          # one scheduled run (cron / systemd timer)
  agent run                                                 # the paper-trading daemon
  agent audit verify                                        # check the hash-chained decision log

exit codes: 0 ok, 1 run failed (recorded), 2 usage/configuration error, 3 data error
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line plus a pointer to --help (exit 2), and no prefix matching of
    long options (`--log` must not be read as `--log-level`)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_CONFIG, f"agent: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from agent.commands.common import add_global_options

    parser = _Parser(
        prog="agent",
        description="rebalance-agent: a scheduled portfolio-rebalancing agent. It updates prices, forecasts "
        "returns with ONNX models, estimates risk (GARCH, EWMA), optimizes weights (cvxpy), applies risk "
        "overlays, paper-trades into a SQLite ledger and writes a tamper-evident decision log. The backtest "
        "replays the very same decision step over history.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rebalance-agent {__version__}")
    add_global_options(parser, suppress=False)
    parent = _Parser(add_help=False)
    add_global_options(parent, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMANDS:
        try:
            mod = importlib.import_module(f"agent.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"agent.commands.{name}":
                continue  # not built yet: no placeholder commands
            raise
        mod.register(sub, parent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_CONFIG if args.command is None and argv is not None and len(argv) > 0 else 0
    try:
        return int(handler(args) or 0)
    except AgentError as e:
        print(f"agent: error: {e.one_line()}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("agent: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # the environment (read-only or full filesystem, a file where a directory belongs)
        from agent.commands.common import describe_os_error

        print(f"agent: error: {describe_os_error(e)}", file=sys.stderr)
        return EXIT_DATA
    except Exception as e:
        if type(e).__module__ != "sqlite3" or type(e).__name__ != "OperationalError":
            raise  # a bug: the traceback is wanted
        print(f"agent: error: the ledger database cannot be used: {e}", file=sys.stderr)
        return EXIT_DATA


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
