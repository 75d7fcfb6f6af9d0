"""Structured logs: JSON lines with a UTC ISO-8601 timestamp, level, event and the run id inside a run."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

from agent.logging import bind_run, configure_logging, get_logger, unbind_run


def test_json_lines_to_stream_and_file(tmp_path: Path) -> None:
    stream = io.StringIO()
    log_file = tmp_path / "logs" / "agent.jsonl"
    configure_logging("INFO", "json", log_file, stream=stream)
    log = get_logger("agent.test")
    bind_run("run-42", profile="demo")
    try:
        log.info("decision_committed", slot="2024-03-01", status="rebalance")
        log.debug("not shown at INFO")
    finally:
        unbind_run()
    log.warning("outside_run")
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [r["event"] for r in lines] == ["decision_committed", "outside_run"]
    first = lines[0]
    assert first["level"] == "info" and first["run_id"] == "run-42" and first["slot"] == "2024-03-01"
    ts = dt.datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00"))
    assert ts.utcoffset() == dt.timedelta(0)
    assert "run_id" not in lines[1]
    file_lines = [json.loads(x) for x in log_file.read_text().splitlines()]
    assert [r["event"] for r in file_lines] == ["decision_committed", "outside_run"]


def test_console_format_is_readable(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "console", None, stream=stream)
    get_logger().info("hello", answer=42)
    out = stream.getvalue()
    assert "hello" in out and "answer" in out and "42" in out
    assert not out.lstrip().startswith("{")
