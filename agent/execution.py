"""Paper-fill sizing: the one rule the ledger, the baselines and the backtest share.

At an execution close the book is worth V = cash + holdings. Trading to target weights w costs c (the shared
CostModel, on traded notional against the drifted holdings). Targets are applied to what is left after costs,
new_notional = w · (V − c), so cash never goes negative because of costs; c depends on the trades, so we solve
the small fixed point (it converges geometrically at rate ≈ bps/1e4; four iterations are exact to float noise).
"""

from __future__ import annotations

import numpy as np

from agent.costs import CostModel

__all__ = ["size_rebalance"]

_ITERATIONS = 4


def size_rebalance(
    value: float, holdings_notional: np.ndarray, targets: np.ndarray, cost_model: CostModel
) -> tuple[np.ndarray, float]:
    """New notional per asset and the cost paid, trading from `holdings_notional` to `targets` of `value`."""
    h = np.asarray(holdings_notional, dtype=float)
    w = np.asarray(targets, dtype=float)
    cost = cost_model.cost(w * value - h)
    for _ in range(_ITERATIONS):
        cost = cost_model.cost(w * (value - cost) - h)
    cost = min(cost, value)
    return w * (value - cost), float(cost)
