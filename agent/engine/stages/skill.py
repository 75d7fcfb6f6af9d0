"""Skill-aware allocation as two pipeline stages (issue 9; the work is in agent/skill/stage.py).

* ``research`` (order 25, after the forecast): ``forecast.placebo`` / ``forecast.oracle_ic`` replace the model's
  mu for every allocation path, so the study-faithful path can be measured on the same noise.
* ``skill`` (order 35, after the covariance, before the allocation): with ``skill.enabled``, the mu the
  optimizer gets is the reference's implied returns tilted by the forecast as far as measured skill earns; the
  record's ``skill`` section shows the reference, pi, the views, the skill (validation, live, combined, used) and
  the posterior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.engine.frame import DecisionFrame, Outcome
from agent.engine.pipeline import Stage, register_stage

if TYPE_CHECKING:
    from agent.settings import Settings

__all__ = ["ResearchForecastStage", "SkillStage"]


@dataclass
class _MuOutcome(Outcome):
    mu: np.ndarray | None = None
    record: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return self.record

    def apply(self, frame: DecisionFrame) -> None:
        frame.mu = self.mu


@register_stage
class ResearchForecastStage(Stage):
    name = "research"
    timing = "inference"
    order = 25
    requires = frozenset({"prices"})
    provides = frozenset({"mu"})

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        return settings.forecast.placebo is not None or settings.forecast.oracle_ic is not None

    def run(self, frame: DecisionFrame) -> Outcome:
        from agent.skill.stage import engine_substitute

        part: dict[str, Any] = {"forecast": dict(frame.record.get("forecast") or {})}
        mu = engine_substitute(frame.asof, frame.forecast, frame.mu, self.settings, frame.ctx, part)
        return _MuOutcome(mu=mu, record=part)


@register_stage
class SkillStage(Stage):
    name = "skill"
    timing = "skill"
    order = 35
    requires = frozenset({"prices", "returns", "cov", "mu"})
    provides = frozenset({"mu"})

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        return settings.skill.enabled

    def unmet(self, frame: DecisionFrame, missing: frozenset[str]) -> str:
        why = frame.fallbacks[-1]["reason"] if frame.fallbacks else "the model gave no usable output"
        return f"no forecast, holding: {why}"

    def run(self, frame: DecisionFrame) -> Outcome:
        from agent.skill.stage import engine_step

        part: dict[str, Any] = {}
        mu = engine_step(
            frame.asof,
            frame.need("prices"),
            frame.forecast,
            frame.need("mu"),
            frame.need("cov"),
            frame.need("returns"),
            self.settings,
            frame.ctx,
            part,
        )
        return _MuOutcome(mu=mu, record=part)
