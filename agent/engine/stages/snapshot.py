"""Stage 1, prices: a point-in-time snapshot (never a row after asof), digested into the record.

No price for asof itself (not a session in the data) or for any ticker at asof: no_trade, nothing is guessed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.decision import digest
from agent.engine.frame import DecisionFrame, Outcome
from agent.engine.pipeline import Stage, register_stage
from agent.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SnapshotOutcome", "SnapshotStage"]


@dataclass
class SnapshotOutcome(Outcome):
    prices: pd.DataFrame | None = None
    returns: pd.DataFrame | None = None

    def to_record(self) -> dict[str, Any]:
        p = self.prices
        if p is None:
            return {}
        n = len(p)
        return {
            "inputs": {
                "prices": {
                    "digest": digest(p.to_numpy(dtype=float)),
                    "rows": n,
                    "first": p.index[0].date().isoformat() if n else None,
                    "last": p.index[-1].date().isoformat() if n else None,
                }
            }
        }

    def apply(self, frame: DecisionFrame) -> None:
        frame.prices, frame.returns = self.prices, self.returns


@register_stage
class SnapshotStage(Stage):
    name = "snapshot"
    timing = "data"
    order = 10
    provides = frozenset({"prices", "returns"})

    def run(self, frame: DecisionFrame) -> Outcome:
        asof, tickers = frame.asof, frame.tickers
        try:
            prices = frame.ctx.store.snapshot(asof, tickers=list(tickers), lookback=frame.ctx.lookback)
        except DataError as e:
            return SnapshotOutcome(halt=f"prices unavailable: {e.one_line()}")
        out = SnapshotOutcome(prices=prices)
        if not len(prices) or prices.index[-1].date() != asof:
            out.halt = f"no prices for {asof.isoformat()} (not a session in the data)"
            return out
        missing = [t for t, v in zip(tickers, prices.iloc[-1].to_numpy(), strict=True) if not np.isfinite(v)]
        if missing:
            out.halt = f"no price at {asof.isoformat()} for {', '.join(missing)}"
            return out
        out.returns = prices.pct_change(fill_method=None).iloc[1:]
        return out
