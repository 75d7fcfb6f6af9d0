"""One transaction-cost model for the optimizer, the ledger and the backtest.

Conventions (fixed here so that every consumer charges the same thing):

* **Turnover** is ``sum |w_new - w_old|``: every traded unit counted once, buys and sells alike. A full switch
  from asset A to asset B is 2.0. (Some texts halve this; we do not.)
* **bps** is a *per-side* (one-way) rate applied to that same sum of traded notional, so a round trip
  (buy then sell the same notional) costs ``2 * bps``. A study quoting a round-trip cost of 0.05% uses 2.5 bps.
* **fixed** is a currency amount charged once per non-zero trade (per asset traded), on top of the bps part.
* Costs are always charged against the **drifted** holdings at trade time (the weights the book actually has
  after prices moved since the last rebalance), never against the last targets: the trade that is executed
  is ``w_new - w_drifted``.

The optimizer uses only the linear part, ``(bps / 1e4) * sum |w - w_prev|`` with ``w_prev`` the drifted weights;
the fixed part is not convex-friendly (it counts trades) and is charged by the ledger and the backtest only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TRADE_EPS", "CostModel"]

# A trade whose absolute notional (currency) is at or below this is no trade: it pays no fixed cost.
TRADE_EPS = 1e-9


@dataclass(frozen=True)
class CostModel:
    """Proportional cost in basis points of traded notional plus an optional fixed cost per trade."""

    bps: float
    fixed: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.bps) and self.bps >= 0):
            raise ValueError(f"bps must be finite and >= 0, got {self.bps!r}")
        if not (np.isfinite(self.fixed) and self.fixed >= 0):
            raise ValueError(f"fixed must be finite and >= 0, got {self.fixed!r}")

    @property
    def rate(self) -> float:
        """The proportional rate as a fraction (10 bps -> 0.001): the optimizer's linear cost coefficient."""
        return self.bps / 1e4

    def cost(self, trade_notional: np.ndarray) -> float:
        """Cost in currency of a vector of signed trade notionals (currency, one entry per asset)."""
        t = np.abs(np.asarray(trade_notional, dtype=float).ravel())
        total = float(t.sum())
        if not math.isfinite(total) and not np.all(np.isfinite(t)):  # (a finite sum has finite terms)
            raise ValueError("trade notionals must be finite")
        if not self.fixed:  # the fixed part is 0.0 whatever the count: skip counting (hot in the fill sizing)
            return float(self.rate * total + 0.0)
        n_trades = int(np.count_nonzero(t > TRADE_EPS))
        return float(self.rate * total + self.fixed * n_trades)

    def fill_costs(self, trade_notional: np.ndarray) -> np.ndarray:
        """Cost in currency of each trade on its own (one entry per asset): what the ledger charges per fill.

        Vectorized; entry j equals ``cost([notional_j])``, so the fills' costs add up to the cash deducted.
        """
        t = np.abs(np.asarray(trade_notional, dtype=float))
        if not np.all(np.isfinite(t)):
            raise ValueError("trade notionals must be finite")
        return self.rate * t + self.fixed * (t > TRADE_EPS)

    def cost_fraction(self, w_new: np.ndarray, w_drifted: np.ndarray, nav: float) -> float:
        """Cost as a fraction of NAV of trading from the drifted weights to ``w_new``.

        ``w_drifted`` must be the holdings marked at trade time (not the previous targets): that is what the
        broker actually trades from.
        """
        if not (np.isfinite(nav) and nav > 0):
            raise ValueError(f"nav must be finite and > 0, got {nav!r}")
        trade = (np.asarray(w_new, dtype=float) - np.asarray(w_drifted, dtype=float)) * nav
        return self.cost(trade) / nav

    @staticmethod
    def turnover(w_new: np.ndarray, w_old: np.ndarray) -> float:
        """``sum |w_new - w_old|`` (every traded unit counted once; a full switch A -> B is 2.0)."""
        return float(np.sum(np.abs(np.asarray(w_new, dtype=float) - np.asarray(w_old, dtype=float))))
