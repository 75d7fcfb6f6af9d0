"""`AllocationResult`: the target weights an optimizer produced and how (the decision's ``optimizer`` section).

Why separate: a plain, frozen result type that the engine, the registry and the decision log read without
needing the optimizer itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.decision import cash_weight

__all__ = ["AllocationResult"]


@dataclass(frozen=True)
class AllocationResult:
    """Target weights plus how they were reached (recorded in the decision's ``optimizer`` section)."""

    weights: np.ndarray
    status: str
    method_requested: str
    method_used: str
    reason_code: str
    trace: list[dict[str, Any]] = field(default_factory=list)
    objective: float | None = None
    solve_time_ms: float = 0.0

    @property
    def cash(self) -> float:
        return cash_weight(self.weights)

    @property
    def ok(self) -> bool:
        """True when the requested method produced the weights."""
        return self.method_used == self.method_requested

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": [float(x) for x in self.weights],
            "status": self.status,
            "method_requested": self.method_requested,
            "method_used": self.method_used,
            "reason_code": self.reason_code,
            "trace": [dict(t) for t in self.trace],
            "objective": self.objective,
            "solve_time_ms": self.solve_time_ms,
        }
