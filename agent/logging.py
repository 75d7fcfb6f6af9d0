"""Structured logs with structlog: JSON lines for services and files, a readable console format on a TTY.

Every record carries an ISO-8601 UTC timestamp, the level, the event and, inside a run, the run id.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["bind_run", "configure_logging", "get_logger", "unbind_run"]

_CONFIGURED = False


def configure_logging(
    level: str = "INFO", fmt: str = "auto", file: Path | None = None, *, stream: Any = None
) -> None:
    """Idempotent. `fmt`: auto (console on a TTY, JSON otherwise), json or console. `file` always gets JSON."""
    global _CONFIGURED
    import structlog

    stream = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    use_console = fmt == "console" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
    json_renderer = structlog.processors.JSONRenderer(sort_keys=True, default=str)
    console_renderer = structlog.dev.ConsoleRenderer(colors=hasattr(stream, "isatty") and stream.isatty())

    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_agent", False):
            root.removeHandler(h)
            h.close()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                console_renderer if use_console else json_renderer,
            ],
        )
    )
    handler._agent = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if file is not None:
        file = Path(file)
        file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(file, encoding="utf-8")
        fh.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared,
                processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, json_renderer],
            )
        )
        fh._agent = True  # type: ignore[attr-defined]
        root.addHandler(fh)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # Libraries that chatter at INFO stay at WARNING.
    for noisy in ("apscheduler", "yfinance", "urllib3", "peewee", "matplotlib", "numexpr"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

    if not _CONFIGURED:
        structlog.configure(
            processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
        _CONFIGURED = True


def get_logger(name: str | None = None) -> Any:
    import structlog

    return structlog.get_logger(name or "agent")


def bind_run(run_id: str, **kw: Any) -> None:
    import structlog

    structlog.contextvars.bind_contextvars(run_id=run_id, **kw)


def unbind_run() -> None:
    import structlog

    structlog.contextvars.clear_contextvars()
