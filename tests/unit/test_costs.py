"""CostModel: hand-computed costs from drifted holdings, turnover convention, validation."""

from __future__ import annotations

import numpy as np
import pytest

from agent.costs import CostModel


def test_cost_from_drifted_weights_matches_hand_computation() -> None:
    # Targets were 50/50 last time; prices moved so the book drifted to 60/40. Trading back to 50/50 means
    # selling 10% of NAV of A and buying 10% of B: 0.2 * NAV traded, against the drifted book.
    nav = 1_000_000.0
    last_targets = np.array([0.5, 0.5])
    drifted = np.array([0.6, 0.4])
    new = np.array([0.5, 0.5])
    m = CostModel(bps=10.0, fixed=5.0)
    expected = 0.001 * (0.1 * nav + 0.1 * nav) + 2 * 5.0  # 200 + 10 currency
    assert m.cost((new - drifted) * nav) == pytest.approx(expected, rel=1e-12)
    assert m.cost_fraction(new, drifted, nav) == pytest.approx(expected / nav, rel=1e-12)
    # charging against the last targets instead would say "no trade": that is exactly the bug we avoid
    assert m.cost_fraction(new, last_targets, nav) == 0.0


def test_fixed_cost_only_for_nonzero_trades() -> None:
    m = CostModel(bps=0.0, fixed=1.5)
    assert m.cost(np.array([100.0, 0.0, -50.0, 0.0])) == pytest.approx(3.0)
    assert m.cost(np.zeros(4)) == 0.0


def test_turnover_counts_every_traded_unit_once() -> None:
    assert CostModel.turnover(np.array([0.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(2.0)
    assert CostModel.turnover(np.array([0.3, 0.3]), np.array([0.5, 0.1])) == pytest.approx(0.4)
    # cash counts only through the risky legs: selling 20% into cash is 0.2 turnover
    assert CostModel.turnover(np.array([0.3, 0.5]), np.array([0.5, 0.5])) == pytest.approx(0.2)


def test_rate_and_cost_fraction_linear_part_equals_optimizer_term() -> None:
    m = CostModel(bps=25.0)
    w_new, w_old = np.array([0.2, 0.3, 0.5]), np.array([0.4, 0.4, 0.1])
    assert m.rate == pytest.approx(0.0025)
    assert m.cost_fraction(w_new, w_old, 1.0) == pytest.approx(m.rate * CostModel.turnover(w_new, w_old))


@pytest.mark.parametrize("kw", [{"bps": -1.0}, {"bps": float("nan")}, {"bps": 1.0, "fixed": -2.0}])
def test_invalid_parameters_raise(kw: dict) -> None:
    with pytest.raises(ValueError):
        CostModel(**kw)


def test_invalid_trades_and_nav_raise() -> None:
    m = CostModel(bps=1.0)
    with pytest.raises(ValueError):
        m.cost(np.array([np.nan]))
    with pytest.raises(ValueError):
        m.cost_fraction(np.ones(2), np.zeros(2), 0.0)


def test_frozen() -> None:
    m = CostModel(bps=1.0)
    with pytest.raises(AttributeError):
        m.bps = 2.0  # type: ignore[misc]
