"""The CI version of the fault suite (tests/fault, on demand): a handful of seeded SIGKILLs of `run --once` over
two weekly slots, the ledger's invariants after each, and equality with an uninterrupted backtest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault.harness import assert_equals_uninterrupted, kill_campaign, weekly_slots
from tests.integration.agentproc import agent_env

pytestmark = [pytest.mark.shared_data, pytest.mark.fault]


def test_a_handful_of_sigkills_leave_a_consistent_book(tmp_path: Path, shared_data: Path) -> None:
    env = agent_env(tmp_path, shared_data)
    state = tmp_path / "state"
    slots = weekly_slots("2020-01-06", 2)
    stats = kill_campaign(env, state, slots, kills=4, seed=7)
    assert stats.kills >= 4
    assert stats.inconsistencies == []
    assert assert_equals_uninterrupted(env, state, tmp_path / "bt", slots[0], slots[-1]) > 0
