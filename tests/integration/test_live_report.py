"""`agent report` on a state directory that `agent run --once` filled (real processes, real prices), with the ops
hooks on: the Prometheus file after each run, the webhook on loopback, the live book beside its backtest."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agentproc import agent, agent_env

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

SLOTS = ["2024-01-05", "2024-01-12", "2024-01-19"]


class _Hook:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                outer.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def hook() -> Iterator[_Hook]:
    h = _Hook()
    yield h
    h.httpd.shutdown()
    h.httpd.server_close()


@pytest.fixture(scope="module")
def filled(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, hook: _Hook
) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("live")
    prom = tmp / "prom" / "agent.prom"
    (tmp / "agent.toml").write_text(
        'profile = "equal-weight"\n[data]\nsource = "file"\n'
        f'prices_file = "{shared_data / "sector_etfs_daily.csv"}"\n'
        f'[ops]\nmetrics_file = "{prom}"\nwebhook_url = "{hook.url}"\n'
    )
    env = agent_env(tmp, shared_data)
    from prometheus_client.parser import text_string_to_metric_families

    for i, d in enumerate(SLOTS):
        r = agent(env, "run", "--once", "--asof", d)
        assert r.returncode == 0, r.stderr[-2000:]
        fams = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
        assert fams["agent_runs_committed"].samples[0].value == i + 1
        assert fams["agent_last_run_success"].samples[0].value == 1.0
        assert fams["agent_drawdown_stop_state"].samples[0].labels["profile"] == "equal-weight"
    return tmp, env


def _digest(state: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(state.iterdir())
        if p.is_file() and p.name != "agent.lock"
    }


def test_live_report_matches_its_backtest_and_leaves_the_book_alone(
    filled: tuple[Path, dict[str, str]],
) -> None:
    tmp, env = filled
    state = tmp / "state"
    before = _digest(state)
    out = tmp / "report"
    r = agent(env, "report", "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{len(SLOTS)}/{len(SLOTS)} decisions identical" in r.stdout
    assert _digest(state) == before  # read-only: ledger, WAL, decision log unchanged
    html = (out / "report.html").read_text(encoding="utf-8")
    assert (
        "Live paper book: equal-weight" in html and "Live book against the backtest of the same dates" in html
    )
    assert "The live book and the backtest agree" in html and "Worst drawdowns: Live" in html
    assert (out / "backtest" / "ledger.sqlite").is_file()


def test_failed_run_posts_an_event_and_bad_state_dir_is_one_line(
    filled: tuple[Path, dict[str, str]], hook: _Hook, shared_data: Path, tmp_path: Path
) -> None:
    import pandas as pd

    _, env = filled
    # prices for one ticker only: the run fails with a data error (exit 3), recorded, and the webhook hears of it
    one = tmp_path / "one.csv"
    pd.read_csv(shared_data / "sector_etfs_daily.csv", index_col="date")[["XLK"]].to_csv(one)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'profile = "equal-weight"\n[data]\nsource = "file"\nprices_file = "{one}"\n'
        f'[ops]\nwebhook_url = "{hook.url}"\nwebhook_retries = 0\n'
    )
    fenv = agent_env(tmp_path, shared_data, AGENT_CONFIG=str(cfg))
    n0 = len(hook.bodies)
    r = agent(fenv, "run", "--once", "--asof", SLOTS[0])
    assert r.returncode == 3, r.stdout + r.stderr[-2000:]
    new = hook.bodies[n0:]
    assert [b["event"] for b in new] == ["run_failure"], new
    assert (
        new[0]["severity"] == "critical"
        and "run failed" in new[0]["message"]
        and new[0]["profile"] == "equal-weight"
    )
    # agent report on a directory without a ledger: one line, exit 3; the book of the filled dir is untouched
    r = agent({**env, "AGENT_STATE_DIR": str(tmp_path / "empty")}, "report", "--out", str(tmp_path / "o"))
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "no ledger" in r.stderr, r.stderr
