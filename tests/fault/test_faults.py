"""The on-demand fault suite (issue 10, item 7): `python -m pytest tests/fault -s`.

Not in the default test paths (it runs for minutes); tests/integration/test_fault_short.py is its CI version.
Sizes can be changed through the environment: FAULT_KILLS (default 200), FAULT_SLOTS (default 12),
FAULT_SEED (default 20261127). Each test prints its counts (kills, faults, inconsistencies found).

- random SIGKILLs of `agent run --once` at named crash points and at random moments, then the ledger's
  invariants, the decision log's verification and equality with an uninterrupted backtest;
- a full filesystem under the state directory (a small tmpfs, filled to the last byte);
- a read-only state directory (the tmpfs remounted read-only: as root, file modes would not stop a write);
- a corrupt ledger page.

After each fault: the failed run exits non-zero with one line (no traceback), the state directory's logical
content is exactly as before, `agent audit verify` agrees, and once the fault is removed the run completes and
the book equals an uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.fault.harness import (
    LedgerSnapshot,
    assert_equals_uninterrupted,
    check_consistent,
    fill_up,
    kill_campaign,
    remount,
    tmpfs,
    weekly_slots,
)
from tests.integration.agentproc import agent, agent_env

pytestmark = [pytest.mark.shared_data]

KILLS = int(os.environ.get("FAULT_KILLS", "200"))
SLOTS = int(os.environ.get("FAULT_SLOTS", "12"))
SEED = int(os.environ.get("FAULT_SEED", "20261127"))


def _one_line_failure(r, what: str) -> str:
    """A failed run: non-zero exit, no traceback, one line on stderr that says what went wrong."""
    assert r.returncode != 0, f"{what}: the run succeeded"
    assert "Traceback" not in r.stderr, f"{what}: traceback\n{r.stderr[-2000:]}"
    lines = [x for x in r.stderr.strip().splitlines() if x.strip() and not x.lstrip().startswith("{")]
    return f"{what}: exit {r.returncode}: {lines[-1] if lines else r.stderr.strip()[-300:]}"


def _run(env, slot):
    return agent(env, "run", "--once", "--asof", slot, timeout=300)


def test_random_sigkills_over_weekly_slots(tmp_path: Path, shared_data: Path) -> None:
    env = agent_env(tmp_path, shared_data)
    state = tmp_path / "state"
    slots = weekly_slots(
        "2020-01-06", SLOTS + 150
    )  # spare slots, used if kills after a commit end slots early
    log: list[str] = []
    stats = kill_campaign(env, state, slots, KILLS, SEED, log, min_slots=SLOTS)
    used = slots[: stats.slots]
    n = assert_equals_uninterrupted(env, state, tmp_path / "bt", used[0], used[-1])
    r = agent(env, "audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    print("\n".join(log[-20:]))
    print(f"FAULT kills: {stats.line()}; {n} fills equal to the uninterrupted backtest")
    assert stats.kills >= KILLS
    assert stats.slots >= min(SLOTS, 10)
    assert stats.inconsistencies == []


def _state_on_tmpfs(tmp_path: Path, size: str):
    try:
        return tmpfs(tmp_path / "state", size)
    except PermissionError as e:  # pragma: no cover - depends on the machine
        pytest.skip(str(e))


def test_full_filesystem_under_the_state_dir(tmp_path: Path, shared_data: Path) -> None:
    env = agent_env(tmp_path, shared_data)
    slots = weekly_slots("2020-01-06", 5)
    outcomes: list[str] = []
    with _state_on_tmpfs(tmp_path, "8m") as state:
        for s in slots[:3]:
            assert _run(env, s).returncode == 0
        before = LedgerSnapshot.take(state)
        filler = fill_up(state)
        failed = _run(env, slots[3])
        assert failed.returncode != 0
        filler.unlink()  # statvfs is read again below: the snapshot needs no free space
        LedgerSnapshot.take(state).assert_same(before)
        v = agent(env, "audit", "verify")
        assert v.returncode == 0, v.stdout + v.stderr
        for s in slots[3:]:
            r = _run(env, s)
            assert r.returncode == 0, r.stderr[-1500:]
        check_consistent(state, slots)
        n = assert_equals_uninterrupted(env, state, tmp_path / "bt", slots[0], slots[-1])
    print(
        f"FAULT full filesystem: exit {failed.returncode}; ledger/log unchanged; after freeing space {n} fills equal"
    )
    outcomes.append(
        _one_line_failure(failed, "full filesystem")
    )  # last: the invariants above hold regardless
    print(f"FAULT full filesystem: {outcomes[0]}")


def test_read_only_state_dir(tmp_path: Path, shared_data: Path) -> None:
    env = agent_env(tmp_path, shared_data)
    slots = weekly_slots("2020-01-06", 5)
    with _state_on_tmpfs(tmp_path, "32m") as state:
        for s in slots[:3]:
            assert _run(env, s).returncode == 0
        before = LedgerSnapshot.take(state)
        remount(state, "ro")
        try:
            failed = _run(env, slots[3])
            assert failed.returncode != 0
        finally:
            remount(state, "rw")
        LedgerSnapshot.take(state).assert_same(before)
        for s in slots[3:]:
            r = _run(env, s)
            assert r.returncode == 0, r.stderr[-1500:]
        check_consistent(state, slots)
        n = assert_equals_uninterrupted(env, state, tmp_path / "bt", slots[0], slots[-1])
    print(
        f"FAULT read-only: exit {failed.returncode}; ledger/log unchanged; after remounting rw {n} fills equal"
    )
    print(f"FAULT read-only: {_one_line_failure(failed, 'read-only state dir')}")


def test_corrupt_ledger_page(tmp_path: Path, shared_data: Path) -> None:
    env = agent_env(tmp_path, shared_data)
    state = tmp_path / "state"
    slots = weekly_slots("2020-01-06", 5)
    for s in slots[:3]:
        assert _run(env, s).returncode == 0
    ledger = state / "ledger.sqlite"
    assert not Path(f"{ledger}-wal").exists() or Path(f"{ledger}-wal").stat().st_size == 0
    backup = tmp_path / "ledger.backup"
    shutil.copy2(ledger, backup)
    page = 4096
    size = ledger.stat().st_size
    assert size >= 4 * page
    with open(ledger, "r+b") as f:  # page 3: inside the tables, past the header
        f.seek(2 * page)
        f.write(bytes((i * 37 + 11) % 256 for i in range(page)))
    corrupt = ledger.read_bytes()
    log = (state / "decisions.jsonl").read_bytes()
    r = _run(env, slots[3])
    outcome = _one_line_failure(r, "corrupt ledger page")
    assert ledger.read_bytes() == corrupt, "the run wrote to a corrupt ledger"
    assert (state / "decisions.jsonl").read_bytes() == log, "the run wrote to the decision log"
    v = agent(env, "audit", "verify")
    verify = (
        _one_line_failure(v, "audit verify on the corrupt ledger") if v.returncode else "audit verify: exit 0"
    )
    shutil.copy2(backup, ledger)  # the operator restores the ledger from a backup
    for s in slots[3:]:
        r = _run(env, s)
        assert r.returncode == 0, r.stderr[-1500:]
    check_consistent(state, slots)
    n = assert_equals_uninterrupted(env, state, tmp_path / "bt", slots[0], slots[-1])
    print(f"FAULT corrupt page: {outcome}; {verify}; files untouched; after restoring {n} fills equal")
