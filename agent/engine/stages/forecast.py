"""Stage 2, forecast: the newest model trained strictly before asof, or the historical mean.

A model that fails (missing, corrupt, mismatched, or onnxruntime raising) is a recorded fallback to "hold";
with `expected_returns = "historical"` the mean of the last `mvo_window` returns stands in. Whether the
allocation can go on without a forecast is the pipeline's call (the allocate stage's requirements)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.engine.frame import DecisionFrame, Outcome, vec
from agent.engine.pipeline import Stage, register_stage
from agent.errors import describe

if TYPE_CHECKING:
    from agent.forecast import ForecastResult

__all__ = ["ForecastOutcome", "ForecastStage"]


@dataclass
class ForecastOutcome(Outcome):
    result: ForecastResult | None = None
    mu: np.ndarray | None = None
    section: dict[str, Any] | None = None  # the record's `forecast` section
    model_input: dict[str, Any] | None = None  # the record's `inputs.model`

    def to_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {}
        if self.model_input is not None:
            rec["inputs"] = {"model": self.model_input}
        if self.section is not None:
            rec["forecast"] = self.section
        return rec

    def apply(self, frame: DecisionFrame) -> None:
        frame.forecast, frame.mu = self.result, self.mu
        if self.result is not None and self.result.weights is not None:
            frame.model_weights = np.asarray(self.result.weights, dtype=float)


@register_stage
class ForecastStage(Stage):
    name = "forecast"
    timing = "inference"
    order = 20
    requires = frozenset({"prices", "returns"})
    provides = frozenset({"forecast", "mu", "model_weights", "fallbacks"})

    def run(self, frame: DecisionFrame) -> Outcome:
        tickers = frame.tickers
        out = ForecastOutcome()
        forecaster = frame.ctx.forecaster
        if forecaster is not None:
            try:
                fc = forecaster.forecast(frame.need("prices"), frame.asof)
                out.result = fc
                out.mu = None if fc.mu is None else np.asarray(fc.mu, dtype=float)
                out.model_input = {
                    "id": fc.model_id,
                    "sha256": fc.model_sha256,
                    "train_end": str(fc.train_end),
                    "inputs_digest": fc.inputs_digest,
                }
                out.section = {
                    "model_id": fc.model_id,
                    "kind": fc.kind,
                    "horizon": fc.horizon,
                    "mu": vec(tickers, out.mu),
                    "rebalance_prob": None if fc.rebalance_prob is None else float(fc.rebalance_prob),
                    "weights": vec(tickers, fc.weights),
                }
            except Exception as e:  # any model failure is a recorded fallback, not a crash
                why = describe(e)
                out = ForecastOutcome(section={"error": why})
                out.fallbacks.append({"stage": "forecast", "from": "onnx", "to": "hold", "reason": why})
        if out.mu is None and self.settings.allocation.expected_returns == "historical":
            window = frame.need("returns").tail(self.settings.allocation.mvo_window).to_numpy(dtype=float)
            out.mu = np.nanmean(window, axis=0)
            out.section = {"kind": "historical_mean", "window": len(window), "mu": vec(tickers, out.mu)}
        return out
