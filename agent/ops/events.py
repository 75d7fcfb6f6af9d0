"""Events worth a notification, derived from the book after a run: failure, stop transition, stale data, model change.

Pure functions of plain data (the runs' decision records and the run's outcome), so they are tested without a
ledger. Each event is derived from the LAST committed run compared with the one before it, so rerunning a slot
that is already done (status `already_done`) produces no event twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Event", "detect_events", "stale_weekdays", "stop_status"]

SEVERITY = {
    "run_failure": "critical",
    "stop_transition": "warning",
    "stale_data": "warning",
    "model_change": "info",
}


@dataclass(frozen=True)
class Event:
    kind: str  # run_failure | stop_transition | stale_data | model_change
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return SEVERITY.get(self.kind, "info")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "severity": self.severity}


def stop_status(decision: Mapping[str, Any]) -> str | None:
    """The drawdown stop's state after a decision (armed, stopped, cooling_down, reentered), if recorded."""
    stop = decision.get("stop_after")
    return str(stop.get("status")) if isinstance(stop, Mapping) and stop.get("status") else None


def _model(decision: Mapping[str, Any]) -> tuple[str | None, str | None]:
    model = (decision.get("inputs") or {}).get("model")
    if not isinstance(model, Mapping):
        return None, None
    return (str(model["id"]) if model.get("id") else None), (
        str(model["sha256"]) if model.get("sha256") else None
    )


def stale_weekdays(decision: Mapping[str, Any]) -> int | None:
    """Weekdays between the last price the decision saw and its as-of date (0 = fresh); None if unknown."""
    import numpy as np

    prices = (decision.get("inputs") or {}).get("prices")
    asof = decision.get("asof")
    if not isinstance(prices, Mapping) or not prices.get("last") or not asof:
        return None
    try:
        last = dt.date.fromisoformat(str(prices["last"])[:10])
        when = dt.date.fromisoformat(str(asof)[:10])
    except ValueError:
        return None
    return int(np.busday_count(last, when)) if when > last else 0


def detect_events(
    runs: Sequence[Mapping[str, Any]],
    *,
    outcome_status: str,
    outcome_message: str,
    slot: str | None = None,
) -> list[Event]:
    """Events of the run that just finished. `runs` are the committed runs in order (with "decision" records)."""
    if outcome_status == "failed":
        return [Event("run_failure", outcome_message, {"slot": slot})]
    if outcome_status in ("already_done", "skipped") or not runs:
        return []
    cur = runs[-1].get("decision") or {}
    prev = (runs[-2].get("decision") or {}) if len(runs) > 1 else {}
    out: list[Event] = []
    s0, s1 = stop_status(prev), stop_status(cur)
    if s1 is not None and s0 is not None and s0 != s1:
        stop = cur.get("stop_after") or {}
        trans = [str(t) for t in (stop.get("transitions") or [])]
        out.append(
            Event(
                "stop_transition",
                f"drawdown stop {s0} -> {s1} at {cur.get('asof')}",
                {"from": s0, "to": s1, "asof": cur.get("asof"), "transition": trans[-1] if trans else None},
            )
        )
    lag = stale_weekdays(cur)
    if lag:
        last = (cur.get("inputs") or {}).get("prices", {}).get("last")
        out.append(
            Event(
                "stale_data",
                f"decision of {cur.get('asof')} used prices up to {last} ({lag} weekday(s) old)",
                {"asof": cur.get("asof"), "last_price": last, "weekdays": lag},
            )
        )
    (id0, sha0), (id1, sha1) = _model(prev), _model(cur)
    if prev and (id1 or sha1) and (id0, sha0) != (id1, sha1):
        out.append(
            Event(
                "model_change",
                f"forecast model changed: {id0 or 'none'} -> {id1 or 'none'}",
                {"from": id0, "to": id1, "from_sha256": sha0, "to_sha256": sha1, "asof": cur.get("asof")},
            )
        )
    return out
