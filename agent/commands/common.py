"""Pieces every subcommand shares: global options and building settings from them."""

from __future__ import annotations

import argparse
from typing import Any

from agent.settings import Settings, load_settings

__all__ = [
    "MIN_FREE_BYTES",
    "add_global_options",
    "check_cli_date",
    "configure_from_settings",
    "describe_os_error",
    "preflight_data_dir",
    "preflight_run",
    "preflight_state_dir",
    "progress_enabled",
    "settings_from_args",
]

MIN_FREE_BYTES = 1 << 20  # a run writes a ledger page, a log record and a few targets files: 1 MiB is plenty

# what the state directory holds, and of what kind: anything else in the way is refused before a run starts
_STATE_LAYOUT = {
    "agent.lock": "file",
    "ledger.sqlite": "file",
    "decisions.jsonl": "file",
    "scheduler.sqlite": "file",
    "targets": "dir",
    "logs": "dir",
}


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Global options, accepted before or after the subcommand (`agent --config f backtest` or `agent backtest
    --config f`). On subparsers the defaults are suppressed so they never overwrite a value given earlier."""
    d = argparse.SUPPRESS if suppress else None
    g = parser.add_argument_group("global options")
    g.add_argument("--config", metavar="FILE", default=d, help="settings TOML file (or AGENT_CONFIG)")
    g.add_argument(
        "--profile", metavar="NAME", default=d, help="strategy profile (or AGENT_PROFILE); see README"
    )
    g.add_argument("--data-dir", metavar="DIR", default=d, help="price store directory (or AGENT_DATA_DIR)")
    g.add_argument(
        "--state-dir",
        metavar="DIR",
        default=d,
        help="ledger, decision log, targets, logs (or AGENT_STATE_DIR)",
    )
    g.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=d, help="log level")
    g.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default=d,
        help="log format on stderr (default auto)",
    )
    g.add_argument(
        "-q", "--quiet", action="store_true", default=d if suppress else False, help="no progress bars"
    )


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Defaults < profile < TOML < environment < these CLI flags."""
    flags: dict[str, Any] = {
        "paths.data_dir": getattr(args, "data_dir", None),
        "paths.state_dir": getattr(args, "state_dir", None),
        "logging.level": getattr(args, "log_level", None),
        "logging.format": getattr(args, "log_format", None),
    }
    flags.update(overrides)
    return load_settings(
        getattr(args, "config", None), profile=getattr(args, "profile", None), overrides=flags
    )


def configure_from_settings(settings: Settings, *, file: Any = None) -> None:
    from agent.logging import configure_logging

    configure_logging(settings.logging.level, settings.logging.format, file or settings.logging.file)
    if settings.deprecations:
        from agent.logging import get_logger

        for note in settings.deprecations:
            get_logger("agent.settings").warning("setting_deprecated", detail=note)


def progress_enabled(args: argparse.Namespace) -> bool:
    import os
    import sys

    if getattr(args, "quiet", False) or os.environ.get("AGENT_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def describe_os_error(e: OSError) -> str:
    """One line for an environment failure: what, where, and for a full filesystem how much space is left."""
    import errno

    from agent.atomic import free_space

    where = f" ({e.filename})" if e.filename and str(e.filename) not in str(e.strerror or "") else ""
    text = f"{e.strerror or type(e).__name__}{where}"
    if e.errno in (errno.ENOSPC, errno.EDQUOT) and e.filename and "free)" not in text:
        text += f" ({free_space(e.filename)})"
    return text


def _kind(p: Any) -> str:
    return "dir" if p.is_dir() else "file"


def preflight_state_dir(root: Any) -> None:
    """Before a run reads or commits anything: the state directory must be a writable directory with room
    left, and what it holds must be of the right kind (`targets` a directory, `agent.lock` a file, ...).
    A run that would fail half-way (after its slot is committed) fails here instead, having changed nothing."""
    import os
    import shutil
    from pathlib import Path

    from agent.atomic import free_space
    from agent.errors import StateError

    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise StateError(f"the state directory {root} is not a directory (paths.state_dir / --state-dir)")
    if not root.exists():
        parent = root.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise StateError(f"cannot create the state directory {root}: {parent} is not a directory")
        return  # created by the run; a read-only parent fails there with one line (StateError or OSError)
    for name, kind in _STATE_LAYOUT.items():
        p = root / name
        if p.exists() and _kind(p) != kind:
            want = "a directory" if kind == "dir" else "a regular file"
            found = "a directory" if p.is_dir() else "a file"
            raise StateError(f"{p} is in the way: expected {want}, found {found}")
    probe = root / f".preflight.{os.getpid()}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as e:
        raise StateError(f"the state directory {root} is not writable: {e.strerror or e}") from None
    for name, kind in _STATE_LAYOUT.items():
        p = root / name
        if kind == "dir" and p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
            raise StateError(f"{p} is not writable")
    try:
        free = shutil.disk_usage(root).free
    except OSError:  # pragma: no cover - statvfs is always there on Linux
        return
    if free < MIN_FREE_BYTES:
        raise StateError(f"the filesystem of the state directory {root} is full: {free_space(root)}")


def preflight_data_dir(root: Any) -> None:
    """The price store directory must be a directory (or not exist yet)."""
    from pathlib import Path

    from agent.errors import StateError

    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise StateError(f"the data directory {root} is not a directory (paths.data_dir / --data-dir)")
    for name in ("prices.parquet", "provenance.json"):
        if (root / name).is_dir():
            raise StateError(f"{root / name} is in the way: expected a regular file, found a directory")


def check_cli_date(d: Any, flag: str) -> Any:
    """A date the trading calendar covers (1985 .. two years ahead); anything else is a usage error (exit 2)."""
    import datetime as dt

    from agent.errors import UsageError

    if d is None:
        return d
    first = dt.date(1985, 1, 2)
    last = dt.date.today() + dt.timedelta(days=700)
    if not first <= d <= last:
        raise UsageError(f"{flag} {d.isoformat()} is outside the trading calendar ({first} .. {last})")
    return d


def preflight_run(settings: Settings, asof: Any = None) -> None:
    """Every check a run makes before it takes the lock: the date, the state and data directories."""
    from agent.research.leak import leak_future

    leak_future(settings)  # a look-ahead research mode is never a run: one line, exit 2, nothing written
    check_cli_date(asof, "--asof")
    preflight_state_dir(settings.paths.state_dir)
    preflight_data_dir(settings.paths.data_dir)
    if settings.data.source == "file" and settings.data.prices_file is not None:
        from agent.data.sources import resolve_prices_file

        resolve_prices_file(settings.data.prices_file)  # missing: exit 3 here, before a failure is recorded
