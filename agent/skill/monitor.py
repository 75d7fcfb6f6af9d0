"""Drift monitor: live skill next to validation skill, and a warning when live skill decays.

Why: a model's edge can vanish after deployment; the allocation already falls back toward the reference on its
own as the measured skill (and its t-statistic) decays, and this tells the operator (issue 9, item 5).
``agent status`` (owned elsewhere) calls ``skill_status`` and prints its rows; the daemon may log the warning.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent.skill.tracker import SkillEstimate, SkillTracker, combine_skill

__all__ = ["skill_status"]


def skill_status(
    tracker: SkillTracker,
    asof: dt.date,
    prior: SkillEstimate | None = None,
    *,
    warn_below_t: float = -2.0,
    warn_below_ic: float | None = None,
) -> dict[str, Any]:
    """Validation vs live skill at asof, the combined estimate, and a structured warning event or None.

    A warning fires when the live t-statistic is below ``warn_below_t`` (significantly negative skill by
    default), or when the live IC is below ``warn_below_ic`` once at least 8 forecasts have matured.
    """
    live = tracker.live(asof)
    combined = combine_skill(prior, live)
    warning: dict[str, Any] | None = None
    if live.n >= 2 and live.t < warn_below_t:
        warning = {"event": "skill_drift", "reason": f"live IC t-stat {live.t:.2f} < {warn_below_t}"}
    elif warn_below_ic is not None and live.n >= 8 and live.ic < warn_below_ic:
        warning = {"event": "skill_drift", "reason": f"live IC {live.ic:.3f} < {warn_below_ic}"}
    if warning is not None:
        warning.update(
            {"asof": asof.isoformat(), "live_ic": live.ic, "validation_ic": prior.ic if prior else None}
        )
    return {
        "asof": asof.isoformat(),
        "validation": None if prior is None else prior.to_dict(),
        "live": live.to_dict(),
        "combined": combined.to_dict(),
        "warning": warning,
    }
