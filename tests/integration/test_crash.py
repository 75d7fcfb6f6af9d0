"""Crash safety with real processes: runs SIGKILLed at every named point of a run and at random moments, then
rerun. Afterwards the ledger must be consistent (each slot committed once, one set of fills per executed run),
the decision log must verify against it, the target files must be complete, and the fills must equal those of
an uninterrupted backtest over the same dates (DESIGN invariant 5).

The kill points use the test hook REBALANCE_AGENT_TEST_CRASH_AT=<point>[@<slot>] (the process sends itself SIGKILL there).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.agentproc import DEADLINE, agent, agent_env, open_ledger, run_count, wait_for

pytestmark = [pytest.mark.shared_data]

SLOTS = [
    "2020-01-10", "2020-01-17", "2020-01-24", "2020-01-31", "2020-02-07",
    "2020-02-14", "2020-02-21", "2020-02-28", "2020-03-06", "2020-03-13",
]  # fmt: skip
POINTS = ["before_commit", "inside_commit", "after_commit", "before_targets", "mid_targets"]


def check_consistent(state: Path, slots: list[str]) -> None:
    """The invariants after a completed rerun."""
    from agent.decisionlog import DecisionLog

    led = open_ledger(state)
    try:
        runs = led.runs()
        assert [r["slot"] for r in runs] == slots
        fills = led.fills_frame()
        assert not fills.duplicated(["exec_date", "ticker"]).any()
        assert (fills.groupby("run_id")["exec_date"].nunique() == 1).all()  # one execution per run
        ex = led.executions_frame()
        # an execution may have no fill at all (every position kept as held: agent.execution)
        assert ex["exec_date"].is_unique and set(fills["run_id"]) <= set(ex["run_id"])
        # every rebalance run whose exec session has been marked was executed exactly once
        lm = led.last_marked.isoformat()
        due = {r["run_id"] for r in runs if r["status"] == "rebalance" and r["exec_date"] <= lm}
        assert set(ex["run_id"]) == due
        v = DecisionLog(state / "decisions.jsonl").verify(led)
        assert v.ok, v
        assert led.cash() >= 0
    finally:
        led.close()
    for s in slots:
        doc = json.loads((state / "targets" / f"{s}.json").read_text())
        assert doc["slot"] == s
        assert (state / "targets" / f"{s}.csv").exists()
    assert json.loads((state / "targets" / "latest.json").read_text())["slot"] == slots[-1]
    assert not list((state / "targets").glob(".*.tmp"))


def test_sigkill_at_every_point_then_rerun_is_consistent(tmp_path: Path, shared_data: Path) -> None:
    env = agent_env(tmp_path, shared_data)
    state = tmp_path / "state"
    done: list[str] = []
    log: list[str] = []

    # 1. each named kill point, one slot each (--once)
    for slot, point in zip(SLOTS[:5], POINTS, strict=True):
        r = agent(dict(env, REBALANCE_AGENT_TEST_CRASH_AT=point), "run", "--once", "--asof", slot)
        assert r.returncode == -signal.SIGKILL, (point, r.returncode, r.stderr[-1500:])
        committed = run_count(state) == len(done) + 1
        assert committed == (point not in ("before_commit", "inside_commit")), point
        r = agent(env, "run", "--once", "--asof", slot)
        assert r.returncode == 0, r.stderr[-1500:]
        assert ("already done" in r.stdout) == committed, (point, r.stdout)
        done.append(slot)
        check_consistent(state, done)
        log.append(f"{slot} {point}: killed, {'committed' if committed else 'rolled back'}; rerun ok")

    # 2. the daemon killed inside a commit, then restarted: its catch-up completes the slot
    penv = dict(env, REBALANCE_AGENT_TEST_CRASH_AT=f"inside_commit@{SLOTS[6]}")
    r = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--clock-start", SLOTS[5], "--clock-end", SLOTS[6],
         "--tick-seconds", "0.3"],
        env=penv, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert r.returncode == -signal.SIGKILL, r.stderr[-1500:]
    assert run_count(state) == 6  # SLOTS[5] committed by the catch-up, SLOTS[6] rolled back
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--clock-start", SLOTS[6], "--clock-end", SLOTS[6],
         "--tick-seconds", "0.3"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: run_count(state) >= 7, "the catch-up run", proc=proc)
        latest = state / "targets" / "latest.json"  # the run is complete once its targets are written
        wait_for(
            lambda: latest.exists() and json.loads(latest.read_text())["slot"] == SLOTS[6],
            "the catch-up run's targets",
            proc=proc,
        )
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    done += SLOTS[5:7]
    check_consistent(state, done)
    log.append(f"daemon killed inside_commit at {SLOTS[6]}; restart caught up")

    # 3. kills at random moments (seeded): wherever they land, a rerun completes the slot exactly once
    rng = random.Random(20240628)
    for slot in SLOTS[7:]:
        delay = rng.uniform(0.45, 0.85)  # a run takes ~0.9 s here: land inside it
        p = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--once", "--asof", slot],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=DEADLINE)
        before = run_count(state)
        r = agent(env, "run", "--once", "--asof", slot)
        assert r.returncode == 0, r.stderr[-1500:]
        done.append(slot)
        check_consistent(state, done)
        log.append(f"{slot} SIGKILL after {delay:.2f}s (rc {p.returncode}, committed={before == len(done)})")

    # 4. the interrupted history equals an uninterrupted backtest, fill for fill
    import pandas as pd

    out = tmp_path / "bt"
    r = agent(env, "backtest", "--start", SLOTS[0], "--end", SLOTS[-1], "--out", str(out), "--no-report")
    assert r.returncode == 0, r.stderr[-1500:]
    a, b = open_ledger(state), open_ledger(out)
    try:
        cols = ["exec_date", "ticker", "shares", "price", "notional", "cost"]
        pd.testing.assert_frame_equal(a.fills_frame()[cols], b.fills_frame()[cols], check_exact=True)
        assert [r["slot"] for r in a.runs()] == [r["slot"] for r in b.runs()]
    finally:
        a.close()
        b.close()
    print("\n".join(log))
