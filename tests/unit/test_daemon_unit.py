"""Unit tests for the daemon's pieces: schedule arithmetic, the state lock, sd_notify, target files, replay diff."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.errors import LockError
from agent.service.clock import SimulatedClock
from agent.service.lock import StateLock, lock_holder, lock_is_held
from agent.service.notify import sd_notify, watchdog_interval
from agent.service.slots import latest_closed_session, latest_slot, next_run_time, next_slot_after
from agent.settings import load_settings

NY = ZoneInfo("America/New_York")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def weekly(isolated_env: Path):
    return load_settings(profile="equal-weight")


def _settings(isolated_env: Path, **schedule):
    path = isolated_env / "cfg.toml"
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in schedule.items())
    path.write_text(f'profile = "equal-weight"\n[schedule]\n{body}\n')
    return load_settings(path)


def ny(y: int, m: int, d: int, hh: int, mm: int) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=NY)


# ------------------------------------------------------------------ schedule arithmetic


def test_latest_closed_session_respects_run_time_weekends_and_holidays(weekly) -> None:
    assert latest_closed_session(weekly, ny(2024, 6, 28, 16, 29)) == dt.date(2024, 6, 27)
    assert latest_closed_session(weekly, ny(2024, 6, 28, 16, 30)) == dt.date(2024, 6, 28)
    assert latest_closed_session(weekly, ny(2024, 6, 29, 12, 0)) == dt.date(2024, 6, 28)  # Saturday
    assert latest_closed_session(weekly, ny(2024, 7, 4, 18, 0)) == dt.date(2024, 7, 3)  # Independence Day
    # a UTC instant is read in the schedule's time zone: 2024-06-28 21:00 UTC is 17:00 in New York
    assert latest_closed_session(weekly, dt.datetime(2024, 6, 28, 21, 0, tzinfo=dt.UTC)) == dt.date(
        2024, 6, 28
    )


def test_latest_slot_weekly_and_holiday_week(weekly) -> None:
    assert latest_slot(weekly, dt.date(2024, 6, 28), None) == dt.date(2024, 6, 28)  # a Friday
    assert latest_slot(weekly, dt.date(2024, 7, 3), None) == dt.date(2024, 6, 28)  # mid-week
    # Good Friday 2024-03-29: the week's last session is Thursday
    assert latest_slot(weekly, dt.date(2024, 3, 29), None) == dt.date(2024, 3, 28)
    assert next_slot_after(weekly, dt.date(2024, 3, 22), None) == dt.date(2024, 3, 28)


def test_latest_slot_daily_monthly(isolated_env: Path) -> None:
    daily = _settings(isolated_env, frequency="daily")
    assert latest_slot(daily, dt.date(2024, 7, 3), None) == dt.date(2024, 7, 3)
    assert latest_slot(daily, dt.date(2024, 7, 6), None) == dt.date(2024, 7, 5)
    monthly = _settings(isolated_env, frequency="monthly")
    assert latest_slot(monthly, dt.date(2024, 7, 15), None) == dt.date(2024, 6, 28)
    assert next_slot_after(monthly, dt.date(2024, 6, 28), None) == dt.date(2024, 7, 31)


def test_every_n_sessions_counts_from_the_anchor(isolated_env: Path) -> None:
    from agent.data.calendar import sessions

    s = _settings(isolated_env, frequency="every_n_sessions", every_n=5)
    # no anchor yet: the first run starts the cycle (the latest session)
    assert latest_slot(s, dt.date(2024, 6, 29), None) == dt.date(2024, 6, 28)
    anchor = dt.date(2024, 6, 3)
    sess = [t.date() for t in sessions(anchor, dt.date(2024, 7, 31))]
    expect = sess[::5]
    got = [latest_slot(s, d, anchor) for d in expect]
    assert got == expect
    assert latest_slot(s, sess[7], anchor) == sess[5]
    assert next_slot_after(s, sess[5], anchor) == sess[10]
    assert latest_slot(s, dt.date(2024, 5, 1), anchor) is None  # before the anchor


def test_next_run_time_is_the_next_slot_at_run_time(weekly) -> None:
    nxt = next_run_time(weekly, ny(2024, 6, 26, 10, 0), None)
    assert nxt == dt.datetime(2024, 6, 28, 16, 30, tzinfo=NY)
    nxt = next_run_time(weekly, ny(2024, 6, 28, 17, 0), None)  # this week's slot has run
    assert nxt == dt.datetime(2024, 7, 5, 16, 30, tzinfo=NY)


def test_simulated_clock_steps_slots_and_sessions(weekly) -> None:
    c = SimulatedClock(weekly, dt.date(2024, 6, 14), dt.date(2024, 6, 28))
    assert latest_closed_session(weekly, c.now()) == dt.date(2024, 6, 14)
    assert c.advance() and c.day == dt.date(2024, 6, 21)
    assert c.advance() and c.day == dt.date(2024, 6, 28)
    assert not c.advance() and c.day == dt.date(2024, 6, 28)  # stays at the end
    s = SimulatedClock(weekly, dt.date(2024, 6, 18), None, step="session")
    assert s.advance() and s.day == dt.date(2024, 6, 20)  # Juneteenth (06-19) is no session


# ------------------------------------------------------------------ lock


def test_state_lock_is_exclusive_and_names_the_holder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with StateLock(state):
        assert lock_holder(state) == os.getpid()
        assert lock_is_held(state)
        with pytest.raises(LockError) as ei:
            StateLock(state).acquire()  # a second open file description conflicts, even in-process
        assert ei.value.one_line() == f"another agent holds {state} (pid {os.getpid()})"
    assert not lock_is_held(state)
    assert lock_holder(state) is None  # released: the pid is cleared
    with StateLock(state):  # and can be taken again
        pass


# ------------------------------------------------------------------ sd_notify


def test_sd_notify_sends_datagrams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        srv.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sd_notify("READY=1\nSTATUS=ok") is True
        assert srv.recv(256) == b"READY=1\nSTATUS=ok"
    abstract = f"@agent-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind("\0" + abstract[1:])
        srv.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", abstract)
        assert sd_notify("WATCHDOG=1")
        assert srv.recv(64) == b"WATCHDOG=1"
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing.sock"))
    assert sd_notify("STOPPING=1") is False  # never raises


def test_sd_notify_never_blocks_on_a_reader_that_fell_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A datagram queue holds ~10 messages: with a reader that never reads, a blocking send would hang the
    daemon (STOPPING=1 is sent from the signal handler). Every call must return; the overflow returns False."""
    import threading

    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        results: list[bool] = []
        t = threading.Thread(
            target=lambda: results.extend(sd_notify("WATCHDOG=1") for _ in range(15)), daemon=True
        )
        t.start()
        t.join(timeout=120)
        assert not t.is_alive(), "sd_notify blocked on a full datagram queue"
        assert len(results) == 15 and results[0] is True and results[-1] is False


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "600000000")
    assert watchdog_interval() == 300.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None  # meant for another process
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


# ------------------------------------------------------------------ targets


def _run(slot: str, w: float) -> dict:
    rec = {
        "targets": {"A": w, "B": 0.5, "cash": 0.5 - w},
        "orders": {"A": w},
        "state_before": {"nav": 100.0, "weights": {"A": 0.0, "B": 0.5, "cash": 0.5}},
    }
    return {
        "run_id": 1,
        "profile": "p",
        "slot": slot,
        "asof": slot,
        "status": "rebalance",
        "reason": "trade to targets",
        "exec_date": None,
        "committed_at": "x",
        "record_hash": "h" * 64,
        "decision_json": json.dumps(rec),
    }


def test_write_targets_atomic_files_and_latest_never_moves_back(tmp_path: Path) -> None:
    from agent.targets import read_latest, write_targets

    d = tmp_path / "targets"
    write_targets(d, _run("2024-06-28", 0.25))
    doc = json.loads((d / "2024-06-28.json").read_text())
    assert doc["targets"] == {"A": 0.25, "B": 0.5, "cash": 0.25} and doc["slot"] == "2024-06-28"
    lines = (d / "2024-06-28.csv").read_text().splitlines()
    assert lines[0] == "ticker,target_weight,current_weight,order"
    assert lines[1] == "A,0.25,0,0.25" and lines[-1].startswith("cash,0.25,0.5,")
    assert read_latest(d)["slot"] == "2024-06-28"
    write_targets(d, _run("2024-06-21", 0.1))  # an older slot run by hand
    assert read_latest(d)["slot"] == "2024-06-28"
    assert (d / "2024-06-21.json").exists()
    # only_missing: an existing file is left as is (rerun after a crash completes, rewrites nothing)
    (d / "2024-06-28.csv").unlink()
    written = write_targets(d, _run("2024-06-28", 0.25), only_missing=True)
    assert [p.name for p in written] == ["2024-06-28.csv"]
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ replay diff


def test_compare_records_tolerance_and_structure() -> None:
    from agent.commands.audit import compare_records

    a = {"targets": {"A": 0.5, "cash": 0.5}, "overlays": [{"name": "x", "w": 1.0}], "status": "rebalance"}
    b = json.loads(json.dumps(a))
    b["targets"]["A"] = 0.5 + 5e-10
    assert compare_records(a, b) == []
    b["targets"]["A"] = 0.5 + 2e-9
    b["overlays"].append({"name": "y"})
    b["status"] = "hold"
    paths = [p for p, _, _ in compare_records(a, b)]
    assert paths == ["overlays[len]", "status", "targets.A"]


# ------------------------------------------------------------------ deployment files


def test_example_config_is_valid(isolated_env: Path) -> None:
    s = load_settings(REPO / "deploy" / "agent.example.toml")
    assert s.schedule.catch_up == "latest" and s.schedule.timezone == "America/New_York"


def test_env_example_names_are_known(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for line in (REPO / "deploy" / "agent.env.example").read_text().splitlines():
        line = line.lstrip("#").strip()
        if line.startswith("AGENT_") and "=" in line:
            k, v = line.split("=", 1)
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("AGENT_MODELS_DIR", str(isolated_env))
    s = load_settings()  # unknown AGENT_* names or bad values would raise
    assert s.data.proxy is not None


@pytest.mark.parametrize("unit", ["rebalance-agent.service", "rebalance-agent-once.service"])
def test_service_units_carry_the_hardening(unit: str) -> None:
    text = (REPO / "deploy" / "systemd" / unit).read_text()
    for directive in (
        "DynamicUser=yes",
        "StateDirectory=rebalance-agent",
        "Environment=AGENT_STATE_DIR=/var/lib/rebalance-agent",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "EnvironmentFile=-/etc/rebalance-agent/agent.env",
        "CapabilityBoundingSet=\n",
        "MemoryDenyWriteExecute=yes",
        "UMask=0077",
    ):
        assert directive in text, directive
    if unit == "rebalance-agent.service":
        assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
    else:
        assert "Type=oneshot" in text and "agent run --once" in text


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    from agent.targets import write_targets

    d = tmp_path / "targets"
    d.mkdir()
    stale = d / ".latest.json.99999.tmp"
    stale.write_text("{torn")
    run = {
        "slot": "2024-06-07",
        "asof": "2024-06-07",
        "run_id": 1,
        "status": "hold",
        "reason": "x",
        "exec_date": None,
        "committed_at": "2024-06-07T21:00:00+00:00",
        "profile": "p",
        "record_hash": "0" * 64,
        "decision_json": '{"targets": {"A": 0.5, "cash": 0.5}, "tickers": ["A"]}',
    }
    write_targets(d, run)
    assert not stale.exists()
    assert (d / "latest.json").exists()


def test_an_empty_ledger_file_being_created_reads_as_no_ledger(tmp_path: Path) -> None:
    """`status` may look while a first run is creating the ledger: that is 'no runs yet', not a foreign file."""
    import sqlite3

    from agent.ledger import open_reader as open_existing_ledger

    p = tmp_path / "ledger.sqlite"
    sqlite3.connect(p).close()  # the file exists, no schema yet
    assert open_existing_ledger(p) is None
