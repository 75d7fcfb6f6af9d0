"""Pieces every subcommand shares: global options and building settings from them."""

from __future__ import annotations

import argparse
from typing import Any

from agent.settings import Settings, load_settings

__all__ = ["add_global_options", "configure_from_settings", "progress_enabled", "settings_from_args"]


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
