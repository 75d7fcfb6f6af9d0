"""Stage 4, allocation: the configured method from `agent.allocate.registry`, before any overlay.

The method's `needs` become this stage's requirements, so a max-Sharpe allocation without a forecast stops the
pipeline right after the forecast ("no forecast, holding") instead of solving with nothing. An allocator that
raises falls back to holding the drifted weights, recorded with the error message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.allocate.registry import AllocationInputs, method_needs
from agent.decision import round_weights
from agent.engine.frame import DecisionFrame, Outcome, weights_dict
from agent.engine.pipeline import Stage, register_stage
from agent.errors import describe

__all__ = ["AllocateOutcome", "AllocateStage"]


@dataclass
class AllocateOutcome(Outcome):
    proposed: np.ndarray | None = None
    section: dict[str, Any] = field(default_factory=dict)  # the record's `optimizer` section

    def to_record(self) -> dict[str, Any]:
        return {"optimizer": self.section}

    def apply(self, frame: DecisionFrame) -> None:
        frame.proposed = self.proposed


@register_stage
class AllocateStage(Stage):
    name = "allocate"
    timing = "optimization"
    order = 40
    requires = frozenset({"cov", "returns"})
    provides = frozenset({"proposed"})

    def requirements(self) -> frozenset[str]:
        return self.requires | method_needs(self.settings.allocation.method)

    def unmet(self, frame: DecisionFrame, missing: frozenset[str]) -> str:
        why = frame.fallbacks[-1]["reason"] if frame.fallbacks else "the model gave no usable output"
        return f"no forecast, holding: {why}"

    def _finish(self, frame: DecisionFrame, weights: np.ndarray, section: dict[str, Any]) -> AllocateOutcome:
        proposed = round_weights(np.clip(np.nan_to_num(weights, nan=0.0), 0.0, 1.0))
        section = {"method_requested": self.settings.allocation.method, **section}
        section["weights"] = weights_dict(frame.tickers, proposed)
        return AllocateOutcome(proposed=proposed, section=section)

    def run(self, frame: DecisionFrame) -> Outcome:
        allocator = frame.ctx.allocator
        if allocator is None:
            raise RuntimeError("the engine context has no allocator")
        inputs = AllocationInputs(
            asof_iso=frame.asof.isoformat(),
            cov=frame.need("cov"),
            current=frame.current,
            returns=frame.need("returns"),
            mu=frame.mu,
            model_weights=frame.model_weights,
        )
        alloc = allocator.allocate(inputs)
        return self._finish(frame, np.asarray(alloc.weights, dtype=float), alloc.record)

    def recover(self, frame: DecisionFrame, error: BaseException) -> Outcome | None:
        why = describe(error)
        section = {
            "method_used": "previous",
            "status": "error",
            "reason_code": "allocator_error",
            "error": why,
        }
        out = self._finish(frame, frame.current.copy(), section)
        out.fallbacks.append(
            {"stage": "allocation", "from": self.settings.allocation.method, "to": "previous", "reason": why}
        )
        return out
