"""Measured forecast skill, point in time: tracker, persistence, drift monitor and the allocation step.

Only the tracker types are imported here (numpy only); import ``agent.skill.stage`` where the step is needed.
"""

from agent.skill.tracker import (
    ForecastObs,
    SkillEstimate,
    SkillTracker,
    combine_skill,
    ew_skill,
    prior_from_metrics,
)

__all__ = ["ForecastObs", "SkillEstimate", "SkillTracker", "combine_skill", "ew_skill", "prior_from_metrics"]
