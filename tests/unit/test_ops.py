"""agent.ops: the Prometheus text file (checked with prometheus_client's own parser), the webhook against a real
HTTP server on 127.0.0.1 (retries, timeouts, refusals: never raising), and event detection."""

from __future__ import annotations

import http.server
import json
import math
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.ops import book_gauges
from agent.ops.events import detect_events, stale_weekdays
from agent.ops.promfile import Gauge, render, write_metrics_file
from agent.ops.webhook import post_json

parser = pytest.importorskip("prometheus_client.parser")


# ------------------------------------------------------------------------------------------------ metrics file
def test_rendered_file_parses_with_the_prometheus_parser(tmp_path: Path) -> None:
    gauges = [
        Gauge("agent_nav", "NAV.", 1_234_567.5),
        Gauge("agent_drawdown_ratio", "Drawdown.", -0.0601),
        Gauge("agent_drawdown_stop_state", "State.", 1.0, {"state": "armed"}),
        Gauge("agent_drawdown_stop_state", "State.", 0.0, {"state": "stopped"}),
        Gauge("agent_model_skill", "Skill.", float("nan"), {"metric": 'ic "rank"\\x'}),
    ]
    path = tmp_path / "sub" / "agent.prom"
    write_metrics_file(path, render(gauges, {"profile": "default"}))
    fams = {f.name: f for f in parser.text_string_to_metric_families(path.read_text())}
    assert set(fams) == {
        "agent_nav",
        "agent_drawdown_ratio",
        "agent_drawdown_stop_state",
        "agent_model_skill",
    }
    assert all(f.type == "gauge" for f in fams.values())
    nav = fams["agent_nav"].samples[0]
    assert nav.value == 1_234_567.5 and nav.labels == {"profile": "default"}
    states = {s.labels["state"]: s.value for s in fams["agent_drawdown_stop_state"].samples}
    assert states == {"armed": 1.0, "stopped": 0.0}
    skill = fams["agent_model_skill"].samples[0]
    assert math.isnan(skill.value) and skill.labels["metric"] == 'ic "rank"\\x'  # escaping round-trips
    assert not list(path.parent.glob(".*tmp*"))  # written atomically, no temp file left


def _decision(asof: str, stop: str, model: str, last_price: str, **extra: Any) -> dict[str, Any]:
    return {
        "asof": asof,
        "stop_after": {"status": stop, "transitions": [f"{asof}:x->{stop}"]},
        "inputs": {"model": {"id": model, "sha256": model * 2}, "prices": {"last": last_price}},
        "timings_ms": {"forecast": 120.0, "optimize": 30.0},
        **extra,
    }


def test_book_gauges_without_and_with_a_book() -> None:
    import pandas as pd

    from agent.ops.book import Book

    g = book_gauges(None, status="failed", exit_code=3, now=1.7e9)
    text = render(g, {"profile": "p"})
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}
    assert fams["agent_last_run_success"].samples[0].value == 0.0
    assert fams["agent_last_run_exit_code"].samples[0].value == 3.0
    idx = pd.DatetimeIndex(["2024-01-04", "2024-01-05"], name="date")
    nav = pd.DataFrame(
        {
            "nav": [100.0, 90.0],
            "cash": [10.0, 9.0],
            "invested": [90.0, 81.0],
            "peak": [100.0, 100.0],
            "drawdown": [0.0, -0.1],
        },
        index=idx,
    )
    runs = [
        {
            "run_id": 1,
            "asof": "2024-01-04",
            "committed_at": "2024-01-04T21:31:00+00:00",
            "decision": _decision("2024-01-04", "armed", "m1", "2024-01-04"),
        },
        {
            "run_id": 2,
            "asof": "2024-01-05",
            "committed_at": "2024-01-05T21:31:00+00:00",
            "decision": _decision(
                "2024-01-05", "stopped", "m1", "2024-01-03", forecast={"skill": {"ic": 0.04}}
            ),
        },
    ]
    ex = pd.DataFrame(
        {
            "run_id": [1],
            "exec_date": ["2024-01-05"],
            "nav_before": [100.0],
            "traded": [40.0],
            "turnover": [0.4],
            "cost": [0.02],
            "n_trades": [3],
        }
    )
    book = Book(Path("x"), {"profile": "p"}, nav, runs, ex, pd.DataFrame(), [])
    fams = {
        f.name: f
        for f in parser.text_string_to_metric_families(
            render(
                book_gauges(book, status="rebalance", exit_code=0, now=1.7e9, duration_s=2.5),
                {"profile": "p"},
            )
        )
    }
    val = {n: f.samples[0].value for n, f in fams.items()}
    assert val["agent_nav"] == 90.0 and val["agent_drawdown_ratio"] == -0.1 and val["agent_cash_ratio"] == 0.1
    assert val["agent_last_turnover_ratio"] == 0.4 and val["agent_drawdown_stop_active"] == 1.0
    assert val["agent_decision_latency_seconds"] == pytest.approx(0.15)
    assert val["agent_data_staleness_weekdays"] == 2.0  # prices of Wed 3rd for a decision on Fri 5th
    assert val["agent_model_skill"] == 0.04 and fams["agent_model_skill"].samples[0].labels["metric"] == "ic"
    assert val["agent_run_duration_seconds"] == 2.5 and val["agent_runs_committed"] == 2.0


# ---------------------------------------------------------------------------------------------------- events
def test_events_from_consecutive_runs() -> None:
    r1 = {"decision": _decision("2024-01-05", "armed", "m1", "2024-01-05")}
    r2 = {"decision": _decision("2024-01-12", "stopped", "m2", "2024-01-10")}
    kinds = {e.kind: e for e in detect_events([r1, r2], outcome_status="hold", outcome_message="ok")}
    assert set(kinds) == {"stop_transition", "stale_data", "model_change"}
    assert (
        kinds["stop_transition"].details["from"] == "armed"
        and kinds["stop_transition"].details["to"] == "stopped"
    )
    assert kinds["model_change"].details == {
        "from": "m1",
        "to": "m2",
        "from_sha256": "m1m1",
        "to_sha256": "m2m2",
        "asof": "2024-01-12",
    }
    assert kinds["stale_data"].details["weekdays"] == 2
    assert detect_events([r1, r1], outcome_status="hold", outcome_message="ok") == []  # nothing changed
    assert detect_events([r1, r2], outcome_status="already_done", outcome_message="done") == []  # no repeats
    fail = detect_events([r1], outcome_status="failed", outcome_message="slot x: run failed: boom", slot="x")
    assert [e.kind for e in fail] == ["run_failure"] and fail[0].severity == "critical"
    assert (
        stale_weekdays({"asof": "2024-01-08", "inputs": {"prices": {"last": "2024-01-05"}}}) == 1
    )  # Fri -> Mon


# --------------------------------------------------------------------------------------------------- webhook
class _Server:
    """A real HTTP server on 127.0.0.1 whose responses the test scripts: a list of status codes, or 'hang'."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                outer.bodies.append(json.loads(self.rfile.read(n)))
                outer.headers.append(dict(self.headers))
                step = outer.script.pop(0) if outer.script else 200
                if step == "hang":
                    outer.release.wait(30)
                    return
                self.send_response(int(step))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(request: pytest.FixtureRequest) -> Iterator[_Server]:
    s = _Server(getattr(request, "param", []))
    yield s
    s.close()


@pytest.mark.parametrize("server", [[200]], indirect=True)
def test_webhook_posts_json(server: _Server) -> None:
    d = post_json(server.url, {"event": "run_failure", "n": 1}, timeout=10, retries=2)
    assert d.delivered and d.attempts == 1 and d.status == 200
    assert server.bodies == [{"event": "run_failure", "n": 1}]
    assert server.headers[0]["Content-Type"] == "application/json"


@pytest.mark.parametrize("server", [[503, 500, 200]], indirect=True)
def test_webhook_retries_server_errors(server: _Server) -> None:
    d = post_json(server.url, {"x": 1}, timeout=10, retries=2)
    assert d.delivered and d.attempts == 3 and d.errors == ["HTTP 503", "HTTP 500"]
    assert len(server.bodies) == 3


@pytest.mark.parametrize("server", [[400]], indirect=True)
def test_webhook_does_not_retry_a_client_error(server: _Server) -> None:
    d = post_json(server.url, {"x": 1}, timeout=10, retries=3)
    assert not d.delivered and d.attempts == 1 and d.status == 400


@pytest.mark.parametrize("server", [["hang", "hang"]], indirect=True)
def test_webhook_times_out_and_gives_up_without_raising(server: _Server) -> None:
    d = post_json(server.url, {"x": 1}, timeout=0.3, retries=1)
    assert not d.delivered and 1 <= d.attempts <= 2
    # each attempt timed out; on a very busy machine the overall deadline may also have cut the second one short
    assert d.errors and all(("timed out" in x.lower() or "gave up" in x) for x in d.errors), d.errors


def test_webhook_refused_connection_never_raises() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = post_json(f"http://127.0.0.1:{port}/", {"x": 1}, timeout=2, retries=1)
    assert not d.delivered and d.attempts == 2 and len(d.errors) == 2
