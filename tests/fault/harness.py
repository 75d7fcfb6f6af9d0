"""The fault harness: real `agent run --once` processes killed or starved, then checked (issue 10, item 7).

Used by the on-demand suite in tests/fault (hundreds of kills, a full filesystem, a read-only state directory,
a corrupt ledger page) and by its short CI version in tests/integration/test_fault_short.py. Every check opens
the real ledger and decision log written by the killed processes; nothing is mocked.

Invariants after a slot completes (`check_consistent`): the ledger's runs are exactly the completed slots, in
order, each once; one execution per executed run and one fill per (exec date, ticker); cash and shares never
negative; the fills' costs sum to what the executions charged; the decision log's hash chain verifies against
the ledger; the target files are complete. After a kill (`check_after_kill`): the same ledger invariants with
the killed slot either committed in full or absent. At the end (`assert_equals_uninterrupted`): the fills equal
those of an uninterrupted backtest over the same dates, exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.agentproc import agent, open_ledger

__all__ = [
    "CRASH_POINTS",
    "KillStats",
    "LedgerSnapshot",
    "assert_equals_uninterrupted",
    "check_after_kill",
    "check_consistent",
    "fill_up",
    "kill_campaign",
    "tmpfs",
    "weekly_slots",
]

CRASH_POINTS = ("before_commit", "inside_commit", "after_commit", "before_targets", "mid_targets")
_COMMITTING = {"after_commit", "before_targets", "mid_targets"}


def weekly_slots(start: str, n: int) -> list[str]:
    """The first `n` weekly decision dates from `start` (the last session of each week, as the backtest uses)."""
    import pandas as pd

    from agent.data.calendar import schedule

    end = (pd.Timestamp(start) + pd.Timedelta(days=7 * n + 14)).date()
    return [d.date().isoformat() for d in schedule("weekly", start, end)][:n]


# ---------------------------------------------------------------------------------------------- invariants


def _ledger_invariants(led: Any) -> None:
    import numpy as np

    runs = led.runs()
    slots = [r["slot"] for r in runs]
    assert len(slots) == len(set(slots)), f"a slot committed twice: {slots}"
    assert slots == sorted(slots), f"runs out of order: {slots}"
    fills = led.fills_frame()
    if len(fills):
        assert not fills.duplicated(["exec_date", "ticker"]).any(), "two fills for one (exec date, ticker)"
        assert (fills.groupby("run_id")["exec_date"].nunique() == 1).all(), "a run executed on two dates"
    ex = led.executions_frame()
    assert ex["exec_date"].is_unique, "two executions on one date"
    assert set(fills["run_id"]) <= set(ex["run_id"]), "fills without an execution"
    assert led.cash() >= 0, f"negative cash {led.cash()}"
    pos = np.array(list(led.positions().values()), dtype=float)
    assert np.all(pos >= 0), f"negative shares {pos}"
    if len(fills) and "cost" in ex.columns:
        paid = fills.groupby("run_id")["cost"].sum()
        charged = ex.set_index("run_id")["cost"].reindex(paid.index)
        assert np.allclose(paid.to_numpy(), charged.to_numpy(), rtol=0, atol=1e-6), "fill costs != executions"
    lm = led.last_marked
    if lm is not None:
        due = {r["run_id"] for r in runs if r["status"] == "rebalance" and r["exec_date"] <= lm.isoformat()}
        assert set(ex["run_id"]) == due, "an executed run missing or a pending one executed"


def _verify_log(state: Path, led: Any) -> None:
    from agent.decisionlog import DecisionLog

    log = state / "decisions.jsonl"
    if log.exists():
        v = DecisionLog(log).verify(led)
        assert v.ok, f"decision log: {v}"


def check_after_kill(state: Path, done: list[str], slot: str) -> bool:
    """Ledger invariants after a kill; returns whether the killed slot was committed (in full)."""
    led = open_ledger(state)
    if led is None:
        assert not done, "the ledger vanished"
        return False
    try:
        _ledger_invariants(led)
        slots = [r["slot"] for r in led.runs()]
        assert slots in (done, [*done, slot]), f"runs {slots} after a kill in {slot} (done: {done})"
        _verify_log(state, led)
        return slots == [*done, slot]
    finally:
        led.close()


def check_consistent(state: Path, done: list[str]) -> None:
    """Every invariant after the slots in `done` completed (see the module docstring)."""
    led = open_ledger(state)
    assert led is not None, "no ledger"
    try:
        _ledger_invariants(led)
        assert [r["slot"] for r in led.runs()] == done
        _verify_log(state, led)
    finally:
        led.close()
    for s in done:
        doc = json.loads((state / "targets" / f"{s}.json").read_text())
        assert doc["slot"] == s
        assert (state / "targets" / f"{s}.csv").exists()
    assert json.loads((state / "targets" / "latest.json").read_text())["slot"] == done[-1]
    assert not list((state / "targets").glob(".*.tmp")), "a temporary target file left behind"


def assert_equals_uninterrupted(env: dict[str, str], state: Path, out: Path, first: str, last: str) -> int:
    """The book built by the interrupted runs equals an uninterrupted backtest over the same dates, fill for
    fill (exactly). Returns the number of fills compared."""
    import pandas as pd

    r = agent(env, "backtest", "--start", first, "--end", last, "--out", str(out), "--no-report", timeout=600)
    assert r.returncode == 0, r.stderr[-1500:]
    a, b = open_ledger(state), open_ledger(out)
    try:
        cols = ["exec_date", "ticker", "shares", "price", "notional", "cost"]
        fa, fb = a.fills_frame()[cols], b.fills_frame()[cols]
        pd.testing.assert_frame_equal(fa, fb, check_exact=True)
        assert [x["slot"] for x in a.runs()] == [x["slot"] for x in b.runs()]
        pd.testing.assert_frame_equal(a.nav_frame(), b.nav_frame(), check_exact=True)
        return len(fa)
    finally:
        a.close()
        b.close()


@dataclass
class LedgerSnapshot:
    """The logical content of a state directory: what a failed run must leave exactly as it was."""

    runs: list[Any]
    fills: Any
    nav: Any
    cash: float
    log: bytes
    latest: bytes | None

    @classmethod
    def take(cls, state: Path) -> LedgerSnapshot:
        led = open_ledger(state)
        assert led is not None
        try:
            runs = [{k: v for k, v in r.items() if k != "committed_at"} for r in led.runs()]
            snap = cls(runs, led.fills_frame(), led.nav_frame(), led.cash(), b"", None)
        finally:
            led.close()
        snap.log = (state / "decisions.jsonl").read_bytes()
        latest = state / "targets" / "latest.json"
        snap.latest = latest.read_bytes() if latest.exists() else None
        return snap

    def assert_same(self, other: LedgerSnapshot) -> None:
        import pandas as pd

        assert other.runs == self.runs
        pd.testing.assert_frame_equal(other.fills, self.fills, check_exact=True)
        pd.testing.assert_frame_equal(other.nav, self.nav, check_exact=True)
        assert other.cash == self.cash
        assert other.log == self.log, "the decision log changed"
        assert other.latest == self.latest, "latest.json changed"


# ---------------------------------------------------------------------------------------------- kills


@dataclass
class KillStats:
    kills: int = 0  # processes that died of SIGKILL
    at_points: int = 0  # of which at a named crash point
    random: int = 0  # of which at a random moment
    finished_first: int = 0  # random kills that came after the run had already finished
    committed_by_killed: int = 0  # kills after which the killed slot was found committed
    slots: int = 0
    checks: int = 0
    inconsistencies: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.kills} SIGKILLs ({self.at_points} at named points, {self.random} at random moments; "
            f"{self.finished_first} random kills came after the run finished) over {self.slots} weekly slots; "
            f"{self.committed_by_killed} killed runs had committed; {self.checks} invariant checks; "
            f"inconsistencies: {len(self.inconsistencies)}"
        )


def _spawn(env: dict[str, str], slot: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--once", "--asof", slot],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _timed_run(env: dict[str, str], slot: str) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    r = agent(env, "run", "--once", "--asof", slot, timeout=300)
    return r, time.monotonic() - t0


def kill_campaign(
    env: dict[str, str],
    state: Path,
    slots: list[str],
    kills: int,
    seed: int,
    log: list[str] | None = None,
    min_slots: int | None = None,
) -> KillStats:
    """Spread `kills` SIGKILLs over at least `min_slots` of `slots` (one `run --once` process per attempt): about
    half at a named crash point (REBALANCE_AGENT_TEST_CRASH_AT), half after a random delay drawn over the
    measured length of a run. A slot ends with an uninterrupted rerun (or earlier, when a kill landed after the
    commit); further slots are used until `kills` is reached. Invariants are checked after every kill and slot."""
    rng = random.Random(seed)
    stats = KillStats()
    done: list[str] = []
    run_secs = 1.0
    want = min(min_slots or len(slots), len(slots))
    for i, slot in enumerate(slots):
        if stats.kills >= kills and i >= want:
            break
        left = max(1, want - i)
        quota = -(-(kills - stats.kills) // left)  # ceil: spread what is left over the slots left
        n = 0
        committed = False
        while n < quota and not committed:
            last = n == quota - 1
            if rng.random() < 0.5:
                pool = CRASH_POINTS if last else tuple(p for p in CRASH_POINTS if p not in _COMMITTING)
                point = rng.choice(pool)
                p = _spawn(dict(env, REBALANCE_AGENT_TEST_CRASH_AT=f"{point}@{slot}"), slot)
                _, err = p.communicate(timeout=300)
                if p.returncode != -signal.SIGKILL:
                    stats.inconsistencies.append(f"{slot} {point}: rc {p.returncode}: {err[-300:]}")
                    break
                stats.at_points += 1
                what = f"at {point}"
            else:
                delay = rng.uniform(0.05, 0.95) * run_secs
                p = _spawn(env, slot)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=delay)
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                _, err = p.communicate(timeout=300)
                if p.returncode != -signal.SIGKILL:
                    stats.finished_first += 1
                    run_secs *= 0.7  # the run was shorter than thought: aim the next random kills earlier
                    if p.returncode != 0:
                        stats.inconsistencies.append(f"{slot}: rc {p.returncode}: {err[-300:]}")
                    committed = True
                    break
                stats.random += 1
                what = f"after {delay:.2f}s"
            stats.kills += 1
            n += 1
            try:
                committed = check_after_kill(state, done, slot)
                stats.checks += 1
            except AssertionError as e:
                stats.inconsistencies.append(f"{slot} kill {what}: {e}")
                raise
            stats.committed_by_killed += int(committed)
            if log is not None:
                log.append(f"{slot} kill {what}: {'committed' if committed else 'rolled back'}")
        r, secs = _timed_run(env, slot)
        assert r.returncode == 0, r.stderr[-1500:]
        if not committed:
            # random kills land over the shortest run measured so far: on a loaded machine a run's length
            # varies a lot, and a delay past the run's end is no kill at all
            run_secs = max(0.3, secs if stats.slots == 0 else min(run_secs, secs))
        done.append(slot)
        check_consistent(state, done)
        stats.checks += 1
        stats.slots += 1
    return stats


# ---------------------------------------------------------------------------------------------- filesystems


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at `path` (needs root; raises PermissionError otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if r.returncode != 0:
        raise PermissionError(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(path)], capture_output=True)
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, mode: str) -> None:
    r = subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], capture_output=True)
    assert r.returncode == 0, r.stderr


def fill_up(path: Path) -> Path:
    """Fill the filesystem holding `path` to the last byte; returns the filler file (delete it to free space)."""
    filler = path / "zz-filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while os.write(fd, b"\0" * chunk) > 0:
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler
