"""Stage 5, rebalance-timing signal (study 000): trade only when the model says so.

Runs when the forecast carries a rebalance probability; below `forecast.rebalance_threshold` the proposal is
replaced by the current holdings. The first allocation (nothing invested yet) always trades."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.engine.frame import DecisionFrame, Outcome
from agent.engine.pipeline import Stage, register_stage

__all__ = ["SignalOutcome", "SignalStage"]


@dataclass
class SignalOutcome(Outcome):
    hold: bool = False
    section: dict[str, Any] | None = None
    proposed: np.ndarray | None = None

    def to_record(self) -> dict[str, Any]:
        return {} if self.section is None else {"signal": self.section}

    def apply(self, frame: DecisionFrame) -> None:
        frame.signal_hold = self.hold
        if self.proposed is not None:
            frame.proposed = self.proposed


@register_stage
class SignalStage(Stage):
    name = "signal"
    order = 50
    requires = frozenset({"proposed"})
    provides = frozenset({"signal_hold", "proposed"})

    def run(self, frame: DecisionFrame) -> Outcome:
        fc = frame.forecast
        if fc is None or fc.rebalance_prob is None:
            return SignalOutcome()
        threshold = self.settings.forecast.rebalance_threshold
        invested = float(np.sum(frame.current)) > 1e-9
        hold = invested and float(fc.rebalance_prob) < threshold
        section = {
            "rebalance_prob": float(fc.rebalance_prob),
            "threshold": threshold,
            "action": "hold" if hold else "rebalance",
        }
        return SignalOutcome(hold=hold, section=section, proposed=frame.current.copy() if hold else None)
