"""The skill-aware allocation, summarised for the report (issue 9): what the agent believed about its model's
skill and how far that moved the weights, per calendar year, from the decision records themselves.

Every number comes from the recorded `skill` section of each decision (validation, live and used IC, whether
the gate held the reference, the prior π and the posterior μ), so the page shows exactly what was decided on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["skill_summary"]


def _year_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by_year: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        sk = rec.get("skill") or {}
        if not sk.get("skill"):
            continue
        by_year.setdefault(str(rec.get("asof", ""))[:4], []).append(sk)
    rows = []
    for year in sorted(by_year):
        secs = by_year[year]
        last = secs[-1]["skill"]
        tilts = []
        for sec in secs:
            pi, post = sec.get("prior_pi") or {}, sec.get("posterior_mu") or {}
            if isinstance(pi, Mapping) and isinstance(post, Mapping) and pi:
                tilts.append(sum(abs(float(post.get(k, v)) - float(v)) for k, v in pi.items()) / len(pi))
        gated = sum(1 for sec in secs if (sec.get("skill") or {}).get("gated"))
        val, live = last.get("validation") or {}, last.get("live") or {}
        rows.append(
            {
                "year": year,
                "decisions": len(secs),
                "gated to the reference": f"{gated} of {len(secs)}",
                "validation IC (year end)": "—" if not val else f"{val['ic']:+.3f} (t {val['t']:+.2f})",
                "live IC (year end)": "—" if not live else f"{live['ic']:+.3f} (t {live['t']:+.2f}, n {live['n']})",
                "used IC (year end)": f"{float(last.get('used_ic') or 0.0):+.3f}",
                "mean |μ − π| per asset (daily)": "—" if not tilts else f"{sum(tilts) / len(tilts):.2e}",
            }
        )
    return rows


def skill_summary(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """Rows for the report's skill table from ledger runs with their `decision_json`; None without skill."""
    records = []
    for run in runs:
        raw = run.get("decision_json")
        if raw:
            records.append(json.loads(raw))
    rows = _year_rows(records)
    return rows or None
