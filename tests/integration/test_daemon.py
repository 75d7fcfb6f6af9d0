"""The daemon and `agent run --once` as real processes on the real sector-ETF prices.

The daemon runs in its test mode (a simulated clock that jumps one weekly slot per tick) through the production
job; `--once` runs are compared fill by fill with `agent backtest` on the same dates and data (DESIGN invariant 3).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.agentproc import (
    DEADLINE,
    agent,
    agent_env,
    log_has,
    open_ledger,
    run_count,
    wait_for,
    wait_ledger,
)

pytestmark = [pytest.mark.shared_data]

SLOTS = ["2020-01-10", "2020-01-17", "2020-01-24", "2020-01-31", "2020-02-07"]  # weekly (Friday) slots


def verify(state: Path):
    from agent.decisionlog import DecisionLog

    led = open_ledger(state)
    try:
        return DecisionLog(state / "decisions.jsonl").verify(led)
    finally:
        led.close()


def wait_for_runs(state: Path, n: int, proc: subprocess.Popen, timeout: float = DEADLINE) -> int:
    """Wait until the ledger holds at least `n` runs (it may still be being created at first)."""
    wait_for(lambda: run_count(state) >= n, f"{n} committed run(s)", timeout=timeout, proc=proc)
    return run_count(state)


# ------------------------------------------------------------------ the daemon


def test_daemon_runs_slots_refuses_a_second_agent_and_stops_on_sigterm(
    tmp_path: Path, shared_data: Path
) -> None:
    env = agent_env(tmp_path, shared_data, AGENT_LOG_LEVEL="DEBUG")  # DEBUG: the log says when the clock ends
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--clock-start", SLOTS[0], "--clock-end", SLOTS[3],
         "--tick-seconds", "0.4", "--log-format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for_runs(state, 1, proc) >= 1
        # a second daemon and a concurrent --once on the same state directory refuse with one line
        for args in (("run",), ("run", "--once")):
            r = agent(env, *args)
            assert r.returncode == 1
            lines = r.stderr.strip().splitlines()
            assert lines == [f"agent: error: another agent holds {state} (pid {proc.pid})"], r.stderr
        st = json.loads(agent(env, "status", "--json").stdout)
        assert st["agent_process"] == {"running": True, "pid": proc.pid}
        assert wait_for_runs(state, 4, proc) == 4
        # the clock reaches its end (nothing more may run after it): wait for the daemon to say so
        wait_for(lambda: log_has(state, "clock.end"), "the simulated clock to end", proc=proc)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    led = open_ledger(state)
    try:
        runs = led.runs()
        assert [r["slot"] for r in runs] == SLOTS[:4]  # exactly those runs, once each
        fills = led.fills_frame()
        assert sorted(fills["exec_date"].dt.date.astype(str).unique()) == [
            "2020-01-13",
            "2020-01-21",
            "2020-01-27",
        ]
    finally:
        led.close()
    assert verify(state).ok
    latest = json.loads((state / "targets" / "latest.json").read_text())
    assert latest["slot"] == SLOTS[3] and abs(sum(latest["targets"].values()) - 1.0) < 1e-9
    events = [json.loads(line)["event"] for line in (state / "logs" / "agent.jsonl").read_text().splitlines()]
    for e in (
        "daemon.start",
        "daemon.ready",
        "catch_up.done",
        "run.committed",
        "daemon.stopping",
        "daemon.stopped",
    ):
        assert e in events, e
    assert events.count("run.committed") == 4
    assert (state / "scheduler.sqlite").exists()
    # the lock is free again
    r = agent(env, "run", "--once", "--asof", SLOTS[3])
    assert r.returncode == 0 and "already done" in r.stdout


def test_sigterm_during_a_run_lets_it_finish_and_the_daemon_speaks_sd_notify(
    tmp_path: Path, shared_data: Path
) -> None:
    """SIGTERM while a run is inside its ledger transaction: the run commits, no new run starts, exit 0; the
    systemd notify protocol (READY, STATUS, WATCHDOG, STOPPING) arrives on $NOTIFY_SOCKET."""
    import socket
    import threading

    sock_path = tmp_path / "notify.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(sock_path))
    srv.settimeout(0.2)
    msgs: list[str] = []
    done = threading.Event()

    def drain() -> None:
        # read as systemd does, all along: a unix datagram queue holds only net.unix.max_dgram_qlen (often 10)
        # messages, and the watchdog pings every 150 ms; an unread socket would block the daemon's sd_notify
        while not done.is_set():
            try:
                msgs.append(srv.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = agent_env(
        tmp_path,
        shared_data,
        NOTIFY_SOCKET=str(sock_path),
        WATCHDOG_USEC="300000",
        # long enough that the SIGTERM below lands inside the pause even on a loaded machine
        REBALANCE_AGENT_TEST_PAUSE_AT="inside_commit:8",
    )
    state = tmp_path / "state"
    log = state / "logs" / "agent.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--clock-start", SLOTS[0], "--clock-end", SLOTS[2],
         "--tick-seconds", "0.3", "--log-format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: log.exists() and '"test.pause"' in log.read_text(), "the run's pause", proc=proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    events = [json.loads(x) for x in log.read_text().splitlines()]
    names = [e["event"] for e in events]
    # the SIGTERM arrived while the first run was paused inside its commit (not after it had committed)
    assert names.index("daemon.stopping") < names.index("run.committed"), names
    led = wait_ledger(state)
    try:
        assert [r["slot"] for r in led.runs()] == [SLOTS[0]]  # it finished; nothing new started
    finally:
        led.close()
    assert verify(state).ok
    done.set()
    reader.join(timeout=DEADLINE)
    srv.setblocking(False)
    while True:
        try:
            msgs.append(srv.recv(4096).decode())
        except BlockingIOError:
            break
    srv.close()
    assert msgs[0].startswith("READY=1")
    assert "WATCHDOG=1" in msgs
    assert any(m.startswith("STATUS=") and SLOTS[0] in m for m in msgs)
    assert msgs[-1] == "STOPPING=1"
    assert sum(m == "STOPPING=1" for m in msgs) >= 1 and not any(m.startswith("READY=1") for m in msgs[1:])


def test_daemon_catch_up_policy_on_restart(tmp_path: Path, shared_data: Path) -> None:
    """A restart with missed slots: 'latest' runs only the latest missing slot; 'skip' runs none (logged)."""
    env = agent_env(tmp_path, shared_data)
    state = tmp_path / "state"
    assert agent(env, "run", "--once", "--asof", SLOTS[0]).returncode == 0
    for policy, expect in (("skip", [SLOTS[0]]), ("latest", [SLOTS[0], SLOTS[2]])):
        penv = dict(env, AGENT_SCHEDULE__CATCH_UP=policy)
        # the clock stands on 2020-01-28 (a Tuesday): slots 01-17 and 01-24 were missed; the end stops the ticks
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--clock-start", "2020-01-28", "--clock-end", "2020-01-28",
             "--tick-seconds", "0.3", "--log-format", "json"],
            env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            n = 1 if policy == "skip" else 2
            wait_for(lambda n=n: log_has(state, "catch_up.done", n), f"catch-up ({policy})", proc=proc)
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=DEADLINE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0
        led = open_ledger(state)
        try:
            assert [r["slot"] for r in led.runs()] == expect, policy
        finally:
            led.close()
    text = (state / "logs" / "agent.jsonl").read_text()
    assert '"catch_up.skip"' in text and '"catch_up.run"' in text
    assert verify(state).ok


# ------------------------------------------------------------------ --once, idempotency, status, same path as backtest


def test_once_is_idempotent_and_matches_the_backtest(tmp_path: Path, shared_data: Path) -> None:
    import pandas as pd

    env = agent_env(tmp_path, shared_data)
    state = tmp_path / "state"
    for d in SLOTS:
        r = agent(env, "run", "--once", "--asof", d)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.startswith(f"slot {d}: rebalance"), r.stdout
    led = open_ledger(state)
    n_fills = len(led.fills_frame())
    led.close()
    # the same slot again, and a mid-week date whose latest slot is done: nothing trades
    r = agent(env, "run", "--once", "--asof", SLOTS[-1])
    assert r.returncode == 0 and f"slot {SLOTS[-1]} already done" in r.stdout
    r = agent(env, "run", "--once", "--asof", "2020-02-12")
    assert r.returncode == 0
    assert "2020-02-12 is not a scheduled weekly slot" in r.stdout and "already done" in r.stdout
    # an older slot cannot be run into a ledger that has moved on (usage error, nothing changes)
    r = agent(env, "run", "--once", "--asof", "2020-01-03")
    assert r.returncode == 2 and "the book has moved on" in r.stderr
    led = open_ledger(state)
    try:
        assert led.run_count() == len(SLOTS) and len(led.fills_frame()) == n_fills
        daemon_fills = led.fills_frame()
    finally:
        led.close()
    assert verify(state).ok
    for d in SLOTS:
        assert (state / "targets" / f"{d}.json").exists() and (state / "targets" / f"{d}.csv").exists()

    # agent status: positions, NAV, log chain
    r = agent(env, "status")
    assert r.returncode == 0, r.stderr
    assert f"slot {SLOTS[-1]}: rebalance" in r.stdout and "NAV" in r.stdout and "XLK" in r.stdout
    assert "hash chain OK" in r.stdout
    st = json.loads(agent(env, "status", "--json").stdout)
    assert st["last_run"]["slot"] == SLOTS[-1] and st["log"]["ok"] and st["log"]["records"] == len(SLOTS)
    held = [p for p in st["positions"] if p["shares"] > 0]
    assert len(held) == 9 and abs(sum(p["weight"] for p in held) - 1.0) < 1e-6
    assert st["book"]["nav"] == pytest.approx(sum(p["value"] for p in st["positions"]) + st["book"]["cash"])
    assert st["pending_orders"]["exec_date"] == "2020-02-10"
    assert st["next_run"] is not None

    # the backtest over the same dates and data: identical fills and decisions
    out = tmp_path / "bt"
    r = agent(env, "backtest", "--start", SLOTS[0], "--end", SLOTS[-1], "--out", str(out), "--no-report")
    assert r.returncode == 0, r.stderr[-2000:]
    bled = open_ledger(out)  # the backtest's own ledger: exact values (trades.csv rounds to 10 digits)
    try:
        bt = bled.fills_frame()
    finally:
        bled.close()
    cols = ["exec_date", "ticker", "shares", "price", "notional", "cost"]
    assert len(bt) == len(daemon_fills) > 0
    pd.testing.assert_frame_equal(
        bt[cols].reset_index(drop=True), daemon_fills[cols].reset_index(drop=True), check_exact=True
    )
    csv = pd.read_csv(out / "trades.csv")
    assert list(csv["ticker"]) == list(daemon_fills["ticker"])
    assert (csv["shares"] - daemon_fills["shares"]).abs().max() < 1e-6

    def records(path: Path) -> list[dict]:
        keep = []
        for line in path.read_text().splitlines():
            rec = json.loads(line)["record"]
            keep.append({k: v for k, v in rec.items() if k != "timings_ms"})
        return keep

    assert records(out / "decisions.jsonl") == records(state / "decisions.jsonl")


def test_once_offline_paths(tmp_path: Path, shared_data: Path) -> None:
    """yfinance unreachable: an empty store is a data error (exit 3, one line, failure recorded); with cached
    prices the run proceeds and records a no_trade decision when the asof row is missing."""
    env = agent_env(tmp_path, shared_data, AGENT_DATA__SOURCE="yfinance", AGENT_DATA__RETRIES="0")
    env["HTTPS_PROXY"] = env["HTTP_PROXY"] = (
        "http://127.0.0.1:9"  # never reach the network, even if there is one
    )
    r = agent(env, "run", "--once", "--asof", "2025-07-03")
    assert r.returncode == 3, r.stderr[-2000:]
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("agent: error:")]
    assert len(err) == 1 and "no cached prices" in err[0]
    # fill the store from the file (as `agent data import` would), then go "offline" again
    r = agent(agent_env(tmp_path, shared_data), "run", "--once", "--asof", "2025-06-27")
    assert r.returncode == 0, r.stderr[-2000:]
    r = agent(env, "run", "--once", "--asof", "2025-07-03")  # the file ends 2025-06-30
    assert r.returncode == 0, r.stderr[-2000:]
    assert "slot 2025-07-03: no_trade: no prices for 2025-07-03" in r.stdout
    assert "price update failed" in r.stdout
    led = open_ledger(tmp_path / "state")
    try:
        assert [r["status"] for r in led.runs()] == ["rebalance", "no_trade"]
        assert len(led.failures()) == 1
    finally:
        led.close()
