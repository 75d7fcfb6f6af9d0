"""The report's skill table is computed from the decision records exactly (issue 9)."""

from __future__ import annotations

import json

from agent.report.skill import skill_summary


def _run(asof: str, gated: bool, used: float, pi: dict, post: dict) -> dict:
    est = {"ic": 0.05, "t": 1.5, "n": 10}
    rec = {
        "asof": asof,
        "skill": {
            "prior_pi": pi,
            "posterior_mu": post,
            "skill": {"validation": est, "live": {**est, "ic": -0.02}, "used_ic": used, "gated": gated},
        },
    }
    return {"decision_json": json.dumps(rec)}


def test_rows_per_year_from_the_records() -> None:
    runs = [
        _run("2021-01-08", True, 0.0, {"A": 1e-4, "B": 2e-4}, {"A": 1e-4, "B": 2e-4}),
        _run("2021-06-04", False, 0.04, {"A": 1e-4, "B": 2e-4}, {"A": 3e-4, "B": 1e-4}),
        _run("2022-01-07", False, 0.05, {"A": 1e-4}, {"A": 2e-4}),
        {"decision_json": json.dumps({"asof": "2022-02-04"})},  # a decision without a skill section
    ]
    rows = skill_summary(runs)
    assert rows is not None and [r["year"] for r in rows] == ["2021", "2022"]
    r21 = rows[0]
    assert r21["decisions"] == 2 and r21["gated to the reference"] == "1 of 2"
    assert r21["used IC (year end)"] == "+0.040" and r21["live IC (year end)"].startswith("-0.020")
    # mean over decisions of mean |mu - pi| per asset: (0 + (2e-4 + 1e-4) / 2) / 2 = 7.5e-5
    assert r21["mean |μ − π| per asset (daily)"] == "7.50e-05"
    assert rows[1]["decisions"] == 1


def test_no_skill_no_table() -> None:
    assert skill_summary([{"decision_json": json.dumps({"asof": "2021-01-08"})}]) is None
