"""Vectorized portfolio simulation for the baselines (1/N, buy-and-hold, static MVO, 60/40).

Same execution model as the ledger: a decision at close t trades at close t+lag, costs via the shared
CostModel on traded notional against drifted holdings (`agent.execution.plan_rebalance`), positions held in
shares between trades, NAV marked every session. A test checks it against the ledger on the same targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.costs import CostModel
from agent.execution import ExecutionRules, plan_rebalance

__all__ = ["SimResult", "simulate_targets"]


@dataclass(frozen=True)
class SimResult:
    nav: np.ndarray  # NAV per session (currency)
    turnover: float  # sum over trades of sum|Δw| (one-way, weights of pre-trade NAV)
    costs: float  # currency
    n_rebalances: int
    weights_held: np.ndarray  # post-trade weights at each execution (n_exec × N)


def simulate_targets(
    prices: np.ndarray,
    decision_idx: list[int] | np.ndarray,
    targets: np.ndarray,
    *,
    lag: int,
    cost_model: CostModel,
    capital: float = 1.0,
    rules: ExecutionRules | None = None,
) -> SimResult:
    """`prices` T×N closes; decisions at row indices `decision_idx` with `targets` (n_dec×N weights).

    `rules`: the execution rules the ledger applies (`agent.execution.plan_rebalance`); None trades straight to
    the targets."""
    p = np.asarray(prices, dtype=float)
    t_len, n = p.shape
    nav = np.empty(t_len)
    shares = np.zeros(n)
    cash = float(capital)
    execs = {}
    for k, d in enumerate(np.asarray(decision_idx, dtype=int)):
        e = int(d) + lag
        if e < t_len:
            execs[e] = targets[k]  # a later decision for the same exec row supersedes an earlier one
    exec_rows = sorted(execs)
    turnover = costs = 0.0
    held = []
    start = 0
    for e in [*exec_rows, t_len]:
        if e > start:
            block = p[start:e]
            nav[start:e] = cash + np.nan_to_num(block) @ shares
        if e == t_len:
            break
        px = p[e]
        holdings = shares * np.nan_to_num(px)
        value = cash + float(holdings.sum())
        plan = plan_rebalance(value, holdings, np.asarray(execs[e], dtype=float), cost_model, rules)
        new_notional, cost = plan.notional, plan.cost
        turnover += float(np.abs(new_notional - holdings).sum() / value) if value > 0 else 0.0
        costs += cost
        with np.errstate(divide="ignore", invalid="ignore"):
            shares = np.where(px > 0, new_notional / px, 0.0)
        cash = value - cost - float(new_notional.sum())
        held.append(new_notional / value if value > 0 else new_notional * 0)
        nav[e] = cash + float(np.nan_to_num(px) @ shares)
        start = e + 1
    return SimResult(
        nav=nav,
        turnover=turnover,
        costs=costs,
        n_rebalances=len(exec_rows),
        weights_held=np.array(held) if held else np.zeros((0, n)),
    )
