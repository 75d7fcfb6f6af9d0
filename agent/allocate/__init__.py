"""Allocation: convex optimizers (cvxpy, compiled once) and optimizer-free rules."""

from agent.allocate.optimize import OPTIMIZER_METHODS, REBUILD_MIN_N, AllocationResult, Optimizer, factor_cov
from agent.allocate.rules import (
    RuleResult,
    equal_weight,
    model_weights,
    proportional_to_forecast,
    sixty_forty,
    static_mvo,
)

__all__ = [
    "OPTIMIZER_METHODS",
    "REBUILD_MIN_N",
    "AllocationResult",
    "Optimizer",
    "RuleResult",
    "equal_weight",
    "factor_cov",
    "model_weights",
    "proportional_to_forecast",
    "sixty_forty",
    "static_mvo",
]
