"""Stage 6, overlays: the configured risk overlays in order, each recording what it changed and why.

The drawdown stop's cool-down clock counts trading sessions since the previous decision on the exchange
calendar. An overlay that raises stops the decision (no_trade): hard limits that were not applied are never
traded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.decision import round_weights
from agent.engine.frame import DecisionFrame, Outcome
from agent.engine.pipeline import Stage, register_stage

if TYPE_CHECKING:
    from agent.decision import OverlayRecord, StopState

__all__ = ["OverlaysOutcome", "OverlaysStage"]


@dataclass
class OverlaysOutcome(Outcome):
    final: np.ndarray | None = None
    records: list[OverlayRecord] | None = None
    stop: StopState | None = None

    def to_record(self) -> dict[str, Any]:
        return {"overlays": [r.to_dict() for r in self.records or []]}

    def apply(self, frame: DecisionFrame) -> None:
        frame.final, frame.overlay_records, frame.stop = self.final, self.records, self.stop


@register_stage
class OverlaysStage(Stage):
    name = "overlays"
    order = 60
    requires = frozenset({"proposed", "cov"})
    provides = frozenset({"final", "overlay_records", "stop"})

    def run(self, frame: DecisionFrame) -> Outcome:
        from agent.data.calendar import sessions_between
        from agent.overlays import HardLimits, OverlayContext, apply_overlays

        state = frame.state
        prev = state.last_decision
        calendar = self.settings.schedule.calendar
        elapsed = (
            sessions_between(prev, frame.asof, calendar=calendar) if prev is not None and prev < frame.asof else 0
        )
        octx = OverlayContext(
            asof=frame.asof,
            tickers=frame.tickers,
            current=frame.current,
            cov=frame.need("cov"),
            state=state,
            sessions_elapsed=int(elapsed),
            groups=frame.ctx.groups,
            nav=float(state.nav),
            limits=HardLimits.from_settings(self.settings),
        )
        final, records, stop = apply_overlays(frame.need("proposed"), octx, self.settings.overlays)
        return OverlaysOutcome(final=round_weights(final), records=records, stop=stop)
