"""Stage 7, targets: the decision's status, reason, orders and stop state from the final weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.engine.frame import DecisionFrame, Outcome, weights_dict
from agent.engine.pipeline import Stage, register_stage

__all__ = ["TargetsOutcome", "TargetsStage"]


@dataclass
class TargetsOutcome(Outcome):
    status: str = "hold"
    reason: str = ""
    section: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, **self.section}

    def apply(self, frame: DecisionFrame) -> None:
        frame.status, frame.reason = self.status, self.reason


@register_stage
class TargetsStage(Stage):
    name = "targets"
    order = 70
    requires = frozenset({"final", "overlay_records", "stop"})
    provides = frozenset({"status", "reason"})

    def run(self, frame: DecisionFrame) -> Outcome:
        final, stop = frame.need("final"), frame.need("stop")
        records = frame.need("overlay_records")
        trades = final - frame.current
        traded = bool(np.any(np.abs(trades) > 1e-9))
        if frame.signal_hold and not any(r.action not in ("none", "held") for r in records):
            status, reason = "hold", "model signals no rebalance"
        elif not traded:
            status, reason = "hold", "targets equal current holdings"
        else:
            status, reason = "rebalance", "trade to targets"
            if stop.status in ("stopped",):
                reason = "drawdown stop: liquidate to cash"
        section = {
            "fallbacks": frame.fallbacks,
            "targets": weights_dict(frame.tickers, final),
            "orders": {t: float(d) for t, d in zip(frame.tickers, trades, strict=True) if abs(d) > 1e-9},
            "stop_after": stop.to_dict(),
        }
        return TargetsOutcome(status=status, reason=reason, section=section)
