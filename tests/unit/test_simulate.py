"""Fill sizing and the baseline simulator against hand computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.costs import CostModel
from agent.execution import size_rebalance
from agent.simulate import simulate_targets


def test_size_rebalance_solves_the_cost_fixed_point() -> None:
    cm = CostModel(bps=10.0)
    new, cost = size_rebalance(100.0, np.array([0.0, 0.0]), np.array([0.5, 0.5]), cm)
    # cost = 0.001 * traded, traded = 100 - cost  =>  cost = 0.1 / 1.001
    assert cost == pytest.approx(0.1 / 1.001, rel=1e-12)
    assert new == pytest.approx([(100 - cost) / 2] * 2, rel=1e-12)
    assert 100.0 - cost - new.sum() == pytest.approx(0.0, abs=1e-12)  # fully invested, cash never negative


def test_costs_are_charged_against_drifted_holdings() -> None:
    cm = CostModel(bps=10.0)
    # holdings drifted to 60/40 of 100; targets 50/50 → trade 10 out, 10 in (less costs)
    new, cost = size_rebalance(100.0, np.array([60.0, 40.0]), np.array([0.5, 0.5]), cm)
    traded = np.abs(new - np.array([60.0, 40.0])).sum()
    assert cost == pytest.approx(0.001 * traded, rel=1e-12)
    assert traded == pytest.approx(20.0, rel=1e-12)  # (60 − x) + (x − 40) whatever the cost


def test_simulator_hand_example() -> None:
    p = np.array([[10, 20], [11, 20], [12, 18], [12, 19.0]])
    r = simulate_targets(
        p, [0, 2], np.array([[0.5, 0.5], [1.0, 0.0]]), lag=1, cost_model=CostModel(10), capital=100
    )
    c1 = 0.1 / 1.001
    a = b = (100 - c1) / 2
    assert r.nav[0] == 100.0
    assert r.nav[1] == pytest.approx(100 - c1, rel=1e-12)
    v2 = a * 12 / 11 + b * 18 / 20
    assert r.nav[2] == pytest.approx(v2, rel=1e-12)
    hold_a, hold_b = a * 12 / 11, b * 19 / 20
    v3 = hold_a + hold_b
    _new, c2 = size_rebalance(v3, np.array([hold_a, hold_b]), np.array([1.0, 0.0]), CostModel(10))
    assert r.nav[3] == pytest.approx(v3 - c2, rel=1e-12)
    assert r.costs == pytest.approx(c1 + c2, rel=1e-12)
    assert r.n_rebalances == 2


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.5, 2.0), min_size=3, max_size=3),
    st.floats(0.0, 100.0),
    st.floats(0.0, 1.0),
)
def test_cash_never_negative_and_value_conserved(w: list[float], bps: float, cash_share: float) -> None:
    w = np.array(w) / np.sum(w) * (1 - cash_share * 0.5)
    hold = np.array([30.0, 50.0, 20.0])
    new, cost = size_rebalance(110.0, hold, w, CostModel(bps))
    cash = 110.0 - cost - new.sum()
    assert cash >= -1e-9
    assert cost >= 0 and np.all(new >= 0)


def test_canonical_json_fast_and_slow_paths_agree() -> None:
    import datetime as dt

    from agent.decision import _plain, canonical_json

    plain = {"b": [1, 2.5, None, True], "a": {"x": 1e-4, "é": "ü"}, 3: (1, 2)}
    slow = json.dumps(_plain(plain), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(plain) == slow
    mixed = {
        "n": np.float64(np.nan),
        "i": np.int64(3),
        "d": dt.date(2024, 1, 2),
        "w": np.array([0.5, np.inf]),
    }
    assert canonical_json(mixed) == '{"d":"2024-01-02","i":3,"n":null,"w":[0.5,null]}'
