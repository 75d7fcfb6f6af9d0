"""docs/SKILL.md's pre-2020 decisions are computed from the measured rows, and the shipped profiles follow them.

The rules live in docs/skill_evidence.py (written before the evidence ran); ``decide_gate`` / ``decide_overlays``
apply them to the rows ``make_skill.py tune`` measured and ``render_evidence`` prints the result. Here: made-up
rows flip the decisions (nothing is hard-coded), and the decisions printed in the committed docs/SKILL.md are the
ones agent/profiles/*.toml ship.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

from agent.settings import load_settings
from tests.unit.docs_modules import load_docs_module

REPO = Path(__file__).resolve().parents[2]


def _ev() -> ModuleType:
    return load_docs_module("skill_evidence", register=True)


def _row(**kw: Any) -> dict[str, Any]:
    base = {
        "profile": "default",
        "window": ["2006-01-01", "2019-12-31"],
        "overrides": {},
        "sharpe": 0.6,
        "turnover": 5.0,
        "te": 0.005,
        "max_drawdown": -0.40,
        "ref_sharpe": 0.57,
        "ref_turnover": 9.0,
        "ref_max_drawdown": -0.53,
        "seed": 0,
    }
    return {**base, **kw}


def _gate_rows(te1: float, te2: float, sh1: float, sh2: float) -> list[dict[str, Any]]:
    rows = []
    for g, te, sh in ((1.0, te1, sh1), (2.0, te2, sh2)):
        rows += [_row(part="gate", kind="placebo", gate=g, seed=s, te=te) for s in range(10)]
        rows += [_row(part="gate", kind="oracle", gate=g, seed=s, sharpe=sh, ic=0.05) for s in range(5)]
    return rows


def test_gate_rule_follows_the_rows() -> None:
    ev = _ev()
    assert ev.decide_gate(_gate_rows(0.005, 0.004, 0.80, 0.70))["chosen"] == 1.0  # both pass: best oracle
    assert ev.decide_gate(_gate_rows(0.005, 0.004, 0.70, 0.80))["chosen"] == 2.0
    assert (
        ev.decide_gate(_gate_rows(0.005, 0.004, 0.80, 0.81))["chosen"] == 1.0
    )  # a tie goes to the smaller t
    assert ev.decide_gate(_gate_rows(0.02, 0.004, 0.90, 0.70))["chosen"] == 2.0  # only t 2 passes
    assert ev.decide_gate(_gate_rows(0.03, 0.02, 0.90, 0.70))["chosen"] == 2.0  # none: smallest worst TE
    text = "\n".join(ev.render_evidence(_gate_rows(0.005, 0.004, 0.70, 0.80), "m", "g"))
    assert "**gate t = 2**" in text


def _overlay_rows(profile: str, sharpe: dict[str, float], dd: dict[str, float]) -> list[dict[str, Any]]:
    return [
        _row(
            part="overlays",
            profile=profile,
            kind=kind,
            config=c,
            seed=s,
            gate=1.0,
            sharpe=sharpe[c],
            max_drawdown=dd[c],
        )
        for c in sharpe
        for kind in ("placebo", "oracle")
        for s in range(3)
    ]


def test_overlay_rule_follows_the_rows() -> None:
    ev = _ev()
    names = list(ev.OVERLAY_CONFIGS)  # none, drawdown stop only, VaR limit only, both
    flat_dd = dict.fromkeys(names, -0.40)
    # no overlay earns its place: none
    rows = _overlay_rows("default", dict(zip(names, (0.60, 0.55, 0.58, 0.50), strict=True)), flat_dd)
    assert ev.decide_overlays(rows, "default")["chosen"] == "none"
    # the drawdown stop cuts max drawdown by 15 points at a cost of 0.03 Sharpe: kept
    dd = dict(zip(names, (-0.45, -0.30, -0.45, -0.30), strict=True))
    rows = _overlay_rows("default", dict(zip(names, (0.60, 0.57, 0.58, 0.50), strict=True)), dd)
    assert ev.decide_overlays(rows, "default")["chosen"] == "drawdown stop only"
    # both improve Sharpe, both overlays best
    rows = _overlay_rows("demo", dict(zip(names, (0.60, 0.62, 0.61, 0.66), strict=True)), flat_dd)
    out = ev.decide_overlays(rows, "demo")
    assert out["chosen"] == "both (as shipped)"
    assert "Decision (rule O): **both (as shipped)**" in "\n".join(ev.render_evidence(rows, "m", "g"))
    assert ev.overlay_settings("none") == {"drawdown_stop": False, "var_limit": False}


def test_shipped_profiles_follow_the_rendered_decisions() -> None:
    """The decisions docs/SKILL.md prints (computed from the pre-2020 rows) are what the profiles ship."""
    ev = _ev()
    text = (REPO / "docs" / "SKILL.md").read_text()
    gate2 = re.search(r"Decision \(rule G2\): \*\*(.+?)\*\*", text)  # G2 replaced rule G's gate
    assert gate2 is not None, "docs/SKILL.md has no rule G2 decision"
    gate = ev.GATE2_CANDIDATES[gate2.group(1)]
    sections = re.findall(
        r"### Rule O: risk overlays, (\S+) profile.*?Decision \(rule O\): \*\*(.+?)\*\*", text, re.S
    )
    decided = dict(sections)
    assert set(decided) == set(ev.EVIDENCE_WINDOWS)
    decided["etf-lstm-mvo"] = decided["default"]  # too little pre-2020 data of its own: follows the default
    for profile, config in decided.items():
        s = load_settings(profile=profile)
        assert s.skill.enabled and s.skill.gate_t == gate["skill.gate_t"], profile
        assert s.skill.gate_sustain == gate.get("skill.gate_sustain", 1), profile
        want = ev.overlay_settings(config)
        assert s.overlays.drawdown_stop.enabled == want["drawdown_stop"], profile
        assert s.overlays.var_limit.enabled == want["var_limit"], profile
    release = re.search(r"\*\*Chosen: release = ([0-9.]+)\*\* \(rule V", text)
    assert release is not None, "docs/SKILL.md has no rule V decision"
    for profile in decided:
        assert load_settings(profile=profile).overlays.var_limit.release == float(release.group(1)), profile
    cost = re.search(r"\*\*Chosen: k = \d+, `skill.cost_multiplier` = ([0-9.]+)\*\* \(rule C", text)
    assert cost is not None, "docs/SKILL.md has no rule C decision"
    for profile in decided:
        assert load_settings(profile=profile).skill.cost_multiplier == float(cost.group(1)), profile


def _vr() -> ModuleType:
    return load_docs_module("var_release_evidence")


def test_rule_v_decides_from_the_rows() -> None:
    """Made-up rows flip rule V's choice: the lowest turnover among the qualifying, ties to the smaller band."""
    vr = _vr()

    def rows(by_release: dict[float, tuple[float, float, float]]) -> list[dict[str, Any]]:
        return [
            {
                "profile": p,
                "kind": "twin",
                "seed": 0,
                "release": rel,
                "sharpe": sh,
                "max_drawdown": dd,
                "turnover": to,
            }
            for p in ("default", "demo")
            for rel, (sh, dd, to) in by_release.items()
        ]

    base = (0.70, -0.30, 20.0)
    # 0.2 cuts turnover most but costs 0.05 Sharpe: 0.1 wins
    assert (
        vr.decide_release(rows({0.0: base, 0.1: (0.69, -0.30, 16.0), 0.2: (0.65, -0.30, 12.0)}))["chosen"]
        == 0.1
    )
    # 0.2 is within 5% of 0.1's turnover: the smaller band
    assert (
        vr.decide_release(rows({0.0: base, 0.1: (0.70, -0.30, 16.0), 0.2: (0.70, -0.30, 15.5)}))["chosen"]
        == 0.1
    )
    # a deeper drawdown disqualifies: back to 0
    assert vr.decide_release(rows({0.0: base, 0.1: (0.70, -0.33, 16.0)}))["chosen"] == 0.0
    # 0.2 clearly lower and free
    assert (
        vr.decide_release(rows({0.0: base, 0.1: (0.70, -0.30, 18.0), 0.2: (0.71, -0.29, 12.0)}))["chosen"]
        == 0.2
    )


def _gate2_rows(te_max: dict[str, float], sharpe: dict[str, float]) -> list[dict[str, Any]]:
    """Made-up rule G2 rows: per candidate, 10 placebo seeds (seed 9 has the worst TE) and 5+5 oracle seeds."""
    rows = []
    for c in te_max:
        rows += [
            _row(
                part="gate2",
                kind="placebo",
                candidate=c,
                seed=s,
                te_zero=te_max[c] * (1 if s == 9 else 0.5),
                open_fraction=0.01,
            )
            for s in range(10)
        ]
        rows += [
            _row(
                part="gate2",
                kind="oracle",
                candidate=c,
                seed=s,
                ic=ic,
                sharpe=sharpe[c] + ic,
                open_fraction=0.2,
            )
            for ic in (0.05, 0.1)
            for s in range(5)
        ]
    return rows


def test_gate2_rule_follows_the_rows() -> None:
    ev = _ev()
    names = list(ev.GATE2_CANDIDATES)  # least strict first: t = 2, t = 2.5, t = 2 sustained 13, t = 3
    te = dict(zip(names, (0.02, 0.012, 0.008, 0.005), strict=True))
    # two pass (sustained, t = 3): the better oracle Sharpe wins
    assert (
        ev.decide_gate2(_gate2_rows(te, dict(zip(names, (0.9, 0.8, 0.6, 0.7), strict=True))))["chosen"]
        == names[3]
    )
    assert (
        ev.decide_gate2(_gate2_rows(te, dict(zip(names, (0.9, 0.8, 0.7, 0.6), strict=True))))["chosen"]
        == names[2]
    )
    # within 0.02: the less strict
    assert (
        ev.decide_gate2(_gate2_rows(te, dict(zip(names, (0.9, 0.8, 0.69, 0.70), strict=True))))["chosen"]
        == names[2]
    )
    # the worst seed decides: t = 2.5 fails on one seed at 1.2% although its mean is below 1%
    out = ev.decide_gate2(_gate2_rows(te, dict(zip(names, (0.9, 0.95, 0.6, 0.6), strict=True))))
    assert out["chosen"] == names[2] and not out["candidates"][names[1]]["passes"]
    assert out["candidates"][names[1]]["te_zero_mean"] < 0.01
    # none passes: the smallest worst-seed TE
    none = {n: 0.011 + 0.001 * i for i, n in enumerate(reversed(names))}
    out = ev.decide_gate2(_gate2_rows(none, dict.fromkeys(names, 0.7)))
    assert out["chosen"] == names[3] and "no candidate passes" in out["why"]
    # fewer than 10 placebo seeds never pass
    short = [r for r in _gate2_rows(te, dict.fromkeys(names, 0.7)) if r["kind"] != "placebo" or r["seed"] < 9]
    assert not any(c["passes"] for c in ev.decide_gate2(short)["candidates"].values())
    assert ev.decide_gate2([])["chosen"] is None


def test_gate2_render_prints_the_decision_from_the_rows() -> None:
    _ev()
    g2 = load_docs_module("skill_gate2")
    names = list(g2.GATE2_CANDIDATES)
    te = dict(zip(names, (0.02, 0.012, 0.008, 0.005), strict=True))
    text = "\n".join(g2.render_gate2(_gate2_rows(te, dict(zip(names, (0.9, 0.8, 0.6, 0.7), strict=True)))))
    assert f"Decision (rule G2): **{names[3]}**" in text and text.count("| yes |") == 2
    assert g2.render_gate2([]) == []
    # the null rates behind the candidates' order: each stricter candidate opens less often on pure noise
    rates = [
        g2.null_gate_rates(o["skill.gate_t"], o.get("skill.gate_sustain", 1), paths=300)["open_fraction"]
        for o in g2.GATE2_CANDIDATES.values()
    ]
    assert rates == sorted(rates, reverse=True)


def _cost_rows(
    te_max: dict[int, float], turn: dict[int, float], sharpe: dict[int, float]
) -> list[dict[str, Any]]:
    cs = load_docs_module("cost_scale_evidence")
    rows: list[dict[str, Any]] = []
    for k in cs.CANDIDATES:
        rows.append({"k": k, "kind": "twin", "seed": 0, "ic": None, "turnover": 10.0, "sharpe": 0.6})
        rows += [
            {
                "k": k,
                "kind": "placebo",
                "seed": s,
                "ic": None,
                "turnover": turn[k],
                "sharpe": 0.6,
                "te_twin": te_max[k] if s == 9 else 0.0,
            }
            for s in cs.PLACEBO_SEEDS
        ]
        rows += [
            {
                "k": k,
                "kind": "oracle",
                "seed": s,
                "ic": ic,
                "turnover": 50.0,
                "sharpe": sharpe[k],
                "ref_sharpe": 0.57,
            }
            for ic in cs.ORACLE_ICS
            for s in cs.ORACLE_SEEDS
        ]
    return rows


def test_rule_c_decides_from_the_rows() -> None:
    """Made-up rows flip rule C: placebo TE and turnover disqualify, the best oracle Sharpe wins, ties go to the
    larger k (the cost counted harder), and incomplete rows decide nothing."""
    cs = load_docs_module("cost_scale_evidence")
    ok_te, ok_turn = {4: 0.005, 2: 0.005, 1: 0.005}, {4: 10.0, 2: 11.0, 1: 12.0}
    assert cs.decide_cost(_cost_rows(ok_te, ok_turn, {4: 0.60, 2: 0.65, 1: 0.70}))["chosen"] == 1
    assert (
        cs.decide_cost(_cost_rows(ok_te, ok_turn, {4: 0.60, 2: 0.69, 1: 0.70}))["chosen"] == 2
    )  # tie: larger k
    assert (
        cs.decide_cost(_cost_rows({**ok_te, 1: 0.011}, ok_turn, {4: 0.60, 2: 0.65, 1: 0.70}))["chosen"] == 2
    )
    assert (
        cs.decide_cost(_cost_rows(ok_te, {**ok_turn, 2: 15.5, 1: 16.0}, {4: 0.6, 2: 0.65, 1: 0.7}))["chosen"]
        == 4
    )
    rows = _cost_rows(ok_te, ok_turn, {4: 0.60, 2: 0.65, 1: 0.70})
    assert cs.decide_cost([r for r in rows if not (r["k"] == 1 and r["kind"] == "oracle")])["chosen"] is None


def test_rule_c_render_prints_the_decision_from_the_rows(tmp_path: Path) -> None:
    import json

    cs = load_docs_module("cost_scale_evidence")
    assert cs.render_section(tmp_path) == []
    rows = _cost_rows(
        {4: 0.005, 2: 0.005, 1: 0.005}, {4: 10.0, 2: 11.0, 1: 12.0}, {4: 0.60, 2: 0.65, 1: 0.70}
    )
    for k in cs.CANDIDATES:
        (tmp_path / f"cost-scale-k{k}.json").write_text(
            json.dumps({"rows": [r for r in rows if r["k"] == k]})
        )
    text = "\n".join(cs.render_section(tmp_path))
    assert "**Chosen: k = 1, `skill.cost_multiplier` = 0.25** (rule C" in text
