"""Pre-2020 evidence for how hard the optimizer's trading cost counts against the skill tilt's alpha (rule C).

Why: the skill stage scales the posterior's excess over the implied returns by delta / active_risk_aversion
(2.5 / 10 in the three skill-aware profiles) so the tilt is Sigma^-1 alpha / active_risk_aversion, but the cost
in the objective stays at the configured bps. So the optimizer weighs a quarter of the alpha the posterior states
against the full cost: costs count 4x. The pre-2020 oracle diagnosis (docs/notes/oracle_harvest_pre2020.md)
measured the result: at oracle IC 0.1 the optimizer's tilt keeps 0.23 of the forecast's direction, and with the
cost at face value (``skill.cost_multiplier = 0.25``) 0.68. Scaling the cost with the alpha is the same as posing
the active risk aversion as an active-risk penalty in the objective with the cost at face value (the first-order
conditions coincide). Whether to do it is a choice with a price (more trading when the gate is open), so it is
decided by a rule written before its evidence ran.

Run by ``python docs/cost_scale_evidence.py run [--k 4,2,1]`` (rows to ``runs/skill/cost-scale-k<K>.json``);
rendered into docs/SKILL.md by ``make_skill.py render`` through ``render_section``. Every replay uses a price
store cut at 2019-12-31 (docs/oracle_harvest.py ``_store``), so neither the strategy nor the look-ahead oracle
reads a 2020+ price.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "docs") not in sys.path:  # its sibling scripts (make_skill, oracle_harvest, skill_evidence)
    sys.path.insert(0, str(REPO / "docs"))
WINDOW = ("2006-01-01", "2019-12-31")
DELTA, ACTIVE = 2.5, 10.0  # the three skill-aware profiles' risk_aversion and active_risk_aversion
# k = how many times the cost counts against the posterior's stated alpha; cost_multiplier = k * delta / active
CANDIDATES: dict[int, float] = {4: 1.0, 2: 0.5, 1: 0.25}
PLACEBO_SEEDS = tuple(range(10))
ORACLE_ICS = (0.05, 0.1)
ORACLE_SEEDS = tuple(range(3))
TE_MAX = 0.01
TURNOVER_MAX = 1.5
SHARPE_TIE = 0.02
ZERO_SKILL = {"skill.gate_t": 1e9}

RULES = (
    "Rule C (how hard the trading cost counts against the tilt's alpha), written and committed on 2026-11-27 "
    "before any of its evidence ran, on pre-2020 data only:\n\n"
    "* **Why.** The skill stage scales the posterior's alpha by δ / active risk aversion = 2.5 / 10 but leaves "
    "the cost in the objective at the configured bps, so the cost counts 4× against the alpha the posterior "
    "states. On 2006–2019 the optimizer's tilt kept 0.23 of an IC 0.1 oracle's direction (0.68 with the cost at "
    "face value; docs/notes/oracle_harvest_pre2020.md).\n"
    "* **Candidates.** k ∈ {4 (as shipped), 2, 1 (face value)}: `skill.cost_multiplier` = k · δ / active "
    "= 1, 0.5, 0.25. Nothing else changes.\n"
    "* **Runs.** Default profile, models off, 2006–2019, the price store cut at 2019-12-31 (the oracle reads no "
    "2020 price either). Placebo: the profile as shipped, seeds 0–9, each against the zero-skill twin of the "
    "same candidate. Oracle: risk overlays off as in the proof's ladder, IC 0.05 and 0.1, seeds 0–2.\n"
    "* **Decision.** A candidate qualifies when its placebo tracking error to its twin is ≤ 1.0% on every seed "
    "and its mean placebo turnover is ≤ 1.5× its twin's. Among the qualifying, the best mean oracle net Sharpe "
    "(both ICs, all seeds) wins; any qualifying candidate within 0.02 of the best beats it if its k is larger "
    "(the cost counted harder: less trading on the same evidence). The choice applies to default, demo and "
    "etf-lstm-mvo, which share δ = 2.5 and active risk aversion 10.\n"
    "* **What it cannot show.** The real-model turnover target (≤ 2× the reference's) is guarded by the gate, "
    "not by this rule: a candidate with a smaller k trades more whenever the gate is open.\n"
)


def _overrides(k: int, kind: str, seed: int, ic: float | None = None) -> dict[str, Any]:
    from make_skill import NO_OVERLAYS

    over: dict[str, Any] = {"forecast.model": "none", "skill.cost_multiplier": CANDIDATES[k]}
    if kind == "twin":
        over.update({"forecast.placebo": 0, **ZERO_SKILL})
    elif kind == "placebo":
        over["forecast.placebo"] = seed
    else:
        over.update({**NO_OVERLAYS, "forecast.oracle_ic": ic, "forecast.oracle_seed": seed})
    return over


def _plan(k: int) -> list[tuple[str, int, float | None]]:
    runs: list[tuple[str, int, float | None]] = [("twin", 0, None)]
    runs += [("placebo", s, None) for s in PLACEBO_SEEDS]
    runs += [("oracle", s, ic) for ic in ORACLE_ICS for s in ORACLE_SEEDS]
    return runs


def run(out: Path, ks: tuple[int, ...]) -> None:
    """Replay every (k, run) not yet in ``cost-scale-k<K>.json``, saving after each one."""
    from make_skill import replay
    from oracle_harvest import _store
    from skill_evidence import te_to

    for k in ks:
        path = out / f"cost-scale-k{k}.json"
        rows: list[dict[str, Any]] = json.loads(path.read_text())["rows"] if path.exists() else []
        done = {(r["kind"], r["seed"], r.get("ic")) for r in rows}
        base = out / "cost-scale" / f"k{k}"
        for kind, seed, ic in _plan(k):
            if (kind, seed, ic) in done:
                continue
            d = base / (f"{kind}-{seed}" if ic is None else f"oracle-{ic:g}-{seed}")
            r = replay("default", WINDOW, d, _overrides(k, kind, seed, ic), store_fn=_store)
            r.update(kind=kind, seed=seed, ic=ic, k=k)
            if kind == "placebo":
                r["te_twin"] = te_to(d, base / "twin-0")
            rows.append(r)
            print(
                json.dumps(
                    {x: r.get(x) for x in ("k", "kind", "seed", "ic", "sharpe", "turnover", "te_twin")}
                )
            )
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"rows": rows}, indent=1))


def load(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for k in CANDIDATES:
        p = out / f"cost-scale-k{k}.json"
        if p.exists():
            rows += json.loads(p.read_text())["rows"]
    return rows


def decide_cost(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rule C on the measured rows: per candidate its numbers and whether it qualifies; the chosen k (None when
    a candidate is incomplete)."""
    cands: dict[int, dict[str, Any]] = {}
    for k in CANDIDATES:
        sel = [r for r in rows if r["k"] == k]
        twin = [r for r in sel if r["kind"] == "twin"]
        pl = [r for r in sel if r["kind"] == "placebo"]
        orc = [r for r in sel if r["kind"] == "oracle"]
        if not twin or len(pl) < len(PLACEBO_SEEDS) or len(orc) < len(ORACLE_ICS) * len(ORACLE_SEEDS):
            continue
        te = [r["te_twin"] for r in pl]
        pl_turn = float(np.mean([r["turnover"] for r in pl]))
        by_ic = {
            ic: {
                "sharpe": float(np.mean([r["sharpe"] for r in orc if r["ic"] == ic])),
                "turnover": float(np.mean([r["turnover"] for r in orc if r["ic"] == ic])),
            }
            for ic in ORACLE_ICS
        }
        cands[k] = {
            "cost_multiplier": CANDIDATES[k],
            "te_mean": float(np.mean(te)),
            "te_max": float(max(te)),
            "placebo_turnover": pl_turn,
            "twin_turnover": float(twin[0]["turnover"]),
            "turnover_ratio": pl_turn / float(twin[0]["turnover"]),
            "placebo_sharpe": float(np.mean([r["sharpe"] for r in pl])),
            "oracle_sharpe": float(np.mean([r["sharpe"] for r in orc])),
            "oracle": by_ic,
            "ref_sharpe": float(orc[0]["ref_sharpe"]),
            "qualifies": max(te) <= TE_MAX and pl_turn <= TURNOVER_MAX * float(twin[0]["turnover"]),
        }
    if len(cands) < len(CANDIDATES):
        return {"chosen": None, "candidates": cands}
    qual = [k for k, c in cands.items() if c["qualifies"]]
    if not qual:
        return {"chosen": 4, "candidates": cands, "note": "no candidate qualifies: k = 4 (as shipped) stays"}
    best = max(cands[k]["oracle_sharpe"] for k in qual)
    chosen = max(k for k in qual if cands[k]["oracle_sharpe"] >= best - SHARPE_TIE)
    return {"chosen": chosen, "candidates": cands}


def render_section(out: Path) -> list[str]:
    """The rule C section of docs/SKILL.md (empty when the evidence has not been run)."""
    rows = load(out)
    if not rows:
        return []
    dec = decide_cost(rows)
    lines = ["## The cost against the tilt's alpha (pre-2020 evidence, rule C)", "", RULES, ""]
    lines += [
        "| k (cost_multiplier) | placebo TE to twin mean / worst | placebo turnover (twin) | placebo Sharpe | "
        "oracle IC 0.05 Sharpe / turnover | oracle IC 0.1 Sharpe / turnover | mean oracle Sharpe | qualifies |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, c in dec["candidates"].items():
        o5, o10 = c["oracle"][0.05], c["oracle"][0.1]
        lines.append(
            f"| {k} ({c['cost_multiplier']:g}) | {100 * c['te_mean']:.2f}% / {100 * c['te_max']:.2f}% | "
            f"{c['placebo_turnover']:.2f} ({c['twin_turnover']:.2f}, {c['turnover_ratio']:.2f}×) | "
            f"{c['placebo_sharpe']:.3f} | {o5['sharpe']:.3f} / {o5['turnover']:.1f} | "
            f"{o10['sharpe']:.3f} / {o10['turnover']:.1f} | {c['oracle_sharpe']:.3f} | "
            f"{'yes' if c['qualifies'] else 'no'} |"
        )
    ref = next(iter(dec["candidates"].values()), {}).get("ref_sharpe")
    if ref is not None:
        lines += [
            "",
            f"1/N on the same window (risk overlays off): Sharpe {ref:.3f}. Turnover is Σ|Δw| over the 14 years.",
        ]
    if dec["chosen"] is None:
        lines += ["", "Not decided yet: a candidate's runs are incomplete.", ""]
    else:
        chosen = dec["chosen"]
        lines += [
            "",
            f"**Chosen: k = {chosen}, `skill.cost_multiplier` = {CANDIDATES[chosen]:g}** (rule C on the rows above"
            + (f"; {dec['note']}" if dec.get("note") else "")
            + ").",
            "",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=("run", "decide"))
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "skill")
    ap.add_argument("--k", default=",".join(str(k) for k in CANDIDATES), help="candidates to run, e.g. 4,2")
    a = ap.parse_args(argv)
    os.environ.setdefault("AGENT_NO_PROGRESS", "1")
    os.environ.setdefault("AGENT_DATA_DIR", tempfile.mkdtemp(prefix="cost-scale-data-"))
    if a.cmd == "run":
        ks = tuple(int(x) for x in a.k.split(","))
        bad = [k for k in ks if k not in CANDIDATES]
        if bad:
            print(f"error: unknown candidate k {bad}; choose from {sorted(CANDIDATES)}", file=sys.stderr)
            return 2
        run(a.out, ks)
    print("\n".join(render_section(a.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
