"""The decision step: `decide(asof, state, settings, ctx) -> Decision`.

snapshot prices at asof → ONNX forecast (model chosen by date) → covariance → allocation → rebalance signal →
overlays → targets, as registered stages run by one loop (`agent.engine.pipeline`). Each stage's inputs are
digested and its outputs recorded with reasons and timings. The daemon, `run --once`, the backtest and audit
replay call exactly this function; none adds anything to it. `decide()` never raises for market or model
trouble: it falls back and records why (DESIGN.md invariant 6).
"""

from agent.engine.context import (
    CovEstimator,
    EngineContext,
    Forecaster,
    check_models,
    minimum_history,
    required_history,
)
from agent.engine.pipeline import Stage, decide, decision_without_timings, register_stage

__all__ = [
    "CovEstimator",
    "EngineContext",
    "Forecaster",
    "Stage",
    "check_models",
    "decide",
    "decision_without_timings",
    "minimum_history",
    "register_stage",
    "required_history",
]
