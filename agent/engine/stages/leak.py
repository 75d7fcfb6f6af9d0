"""Look-ahead research stages (issue 13's leakage audit; the work is in agent/research/leak.py).

* ``look_ahead`` (order 26, after the forecast and the placebo/oracle switch): labels the decision record
  ``look_ahead`` whenever ``research.leak`` is set, and with ``quarter_mu`` replaces mu by the mean of the
  one-step forecasts over the coming holding period made from realized future prices (study 004).
* ``look_ahead_risk`` (order 31, after the covariance): with ``quarter_vol``, each asset's GARCH volatility is
  the mean of its one-step vols over the coming holding period, filtered on realized future returns.

Both read the future only through ``EngineContext.leak_future``, which exists inside a replay alone
(`agent.research.leak.leak_future` refuses the setting everywhere else).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.engine.frame import DecisionFrame, Outcome, vec
from agent.engine.pipeline import Stage, register_stage

if TYPE_CHECKING:
    from agent.settings import Settings

__all__ = ["LookAheadRiskStage", "LookAheadStage"]


@dataclass
class _LeakOutcome(Outcome):
    mu: np.ndarray | None = None
    cov: np.ndarray | None = None
    record: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return self.record

    def apply(self, frame: DecisionFrame) -> None:
        if self.mu is not None:
            frame.mu = self.mu
        if self.cov is not None:
            frame.cov = self.cov


def _future(frame: DecisionFrame) -> Any:
    future = frame.ctx.leak_future
    if future is None:  # EngineContext.create refuses this already; a hand-built context must not slip by
        raise RuntimeError("research.leak without the replay's price frame (look-ahead refused)")
    return future


@register_stage
class LookAheadStage(Stage):
    name = "look_ahead"
    timing = "inference"
    order = 26
    requires = frozenset({"prices"})
    provides = frozenset({"mu"})

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        return bool(settings.research.leak)

    def run(self, frame: DecisionFrame) -> Outcome:
        from agent.research.leak import LOOK_AHEAD_NOTE, model_leak, quarter_mean_forecast

        modes = list(self.settings.research.leak)
        rec: dict[str, Any] = {"modes": modes, "note": LOOK_AHEAD_NOTE}
        out = _LeakOutcome(record={"look_ahead": rec})
        forecaster = frame.ctx.forecaster
        if "models" in modes and frame.forecast is not None and forecaster is not None:
            info = next(
                (m for m in forecaster.registry.models if m.model_id == frame.forecast.model_id), None
            )
            leak = None if info is None else model_leak(info.metadata)
            rec["model"] = {"id": frame.forecast.model_id, "procedure": (leak or {}).get("procedure")}
        if "quarter_mu" in modes:
            if forecaster is None:
                raise RuntimeError("research.leak quarter_mu needs a model (forecast.model = 'onnx')")
            horizon = self.settings.horizon
            mu, steps = quarter_mean_forecast(
                forecaster, _future(frame), frame.tickers, frame.asof, horizon, frame.ctx.lookback
            )
            out.mu = mu
            rec["quarter_mu"] = {"steps": steps, "horizon": horizon, "mu": vec(frame.tickers, mu)}
        else:
            _future(frame)
        return out


@register_stage
class LookAheadRiskStage(Stage):
    name = "look_ahead_risk"
    timing = "covariance"
    order = 31
    requires = frozenset({"cov", "cov_estimate"})
    provides = frozenset({"cov"})

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        return "quarter_vol" in settings.research.leak

    def run(self, frame: DecisionFrame) -> Outcome:
        from agent.research.leak import quarter_vol_cov

        est = frame.cov_estimate
        assert est is not None
        horizon = self.settings.horizon
        cov, vols, steps = quarter_vol_cov(
            frame.need("cov"), dict(est.params or {}), _future(frame), frame.tickers, frame.asof, horizon
        )
        rec = {"quarter_vol": {"steps": steps, "horizon": horizon, "garch_vols": vols}}
        return _LeakOutcome(cov=cov, record={"look_ahead": rec})
