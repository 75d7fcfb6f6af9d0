"""Pre-2020 evidence for the VaR limit's release band (issue 9, turnover), and the rule that decides it.

Why: on 2006–2019 the default profile's zero-skill twin (mu = pi at every decision) turns over 17.4 against 1/N's
9.1, and 16.7 of it is the VaR overlay moving exposure in 20% steps: cut when the target's VaR is above the
limit, back to full exposure as soon as it is below (111 exposure changes in 730 weekly decisions). Without the
VaR limit the same path turns over 1.2. A release band is the usual remedy for such chatter: after a cut the book
returns to full exposure only once the full target's VaR is ``release`` below the limit; in between, exposure is
held at the current exposure. The limit itself is unchanged: above it the overlay cuts exactly as before.

Run by ``python docs/var_release_evidence.py run`` (rows to ``runs/skill/var-release.json``); rendered
into docs/SKILL.md by ``make_skill.py render`` through ``render_section``. The rule (``RULES``) was written and
committed before any of this evidence was run. No 2020+ data is used: every window ends 2019-12-31.
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
WINDOW = ("2006-01-01", "2019-12-31")
CANDIDATES = (0.0, 0.1, 0.2)
SHARPE_COST = 0.02
DD_COST = 0.02
TURNOVER_TIE = 0.05
ZERO_SKILL = {"skill.gate_t": 1e9}
# (profile, kind, seed): the zero-skill twin, placebo seeds with the shipped gate, oracle IC 0.05 seeds
RUNS: tuple[tuple[str, str, int], ...] = (
    ("default", "twin", 0),
    ("default", "placebo", 0),
    ("default", "placebo", 1),
    ("default", "placebo", 2),
    ("default", "oracle", 0),
    ("default", "oracle", 1),
    ("demo", "twin", 0),
    ("demo", "placebo", 0),
    ("demo", "placebo", 1),
)

RULES = (
    "Rule V (the VaR limit's release band), written and committed on 2026-11-27 before any of its evidence ran, "
    "on pre-2020 data only:\n\n"
    "* **Why.** On 2006–2019 the default's zero-skill twin turns over 17.4 vs 1/N's 9.1, and 16.7 of that is the "
    "VaR overlay stepping exposure down and back up in 20% steps; without the VaR limit it turns over 1.2.\n"
    "* **Candidates.** `overlays.var_limit.release` ∈ {0 (as shipped), 0.1, 0.2}: after a cut, full exposure "
    "returns only when the full target's VaR is at most (1 − release) × limit; in between, exposure stays at "
    "most the current exposure. Above the limit the overlay cuts as before.\n"
    "* **Runs.** 2006–2019, models off. default: the zero-skill twin, placebo seeds 0–2 (gate as shipped), oracle "
    "IC 0.05 seeds 0–1; demo: the zero-skill twin, placebo seeds 0–1. Every other setting as shipped.\n"
    "* **Decision.** A candidate qualifies when, against release 0 on the same runs, its mean net Sharpe is at "
    "most 0.02 lower and its mean max drawdown at most 2 points deeper. Among the qualifying, the lowest mean "
    "turnover relative to release 0 wins; within 5% of the lowest, the smaller release. The choice applies to "
    "default, demo and etf-lstm-mvo (etf-lstm-mvo's 16 ETFs exist only from 2018-06: it follows, as in rule O).\n"
    "* **Joint check (added 2026-11-27 after rule V chose 0.1 and rule G2 chose t = 2.5, each measured with the "
    "other's previous value; written before the check ran).** The pair is run on rule G2's placebo test: the "
    "default profile with release 0.1 and gate t = 2.5, placebo seeds 0–9, TE to its zero-skill twin (release "
    "0.1). It passes at ≤ 1.0% on every seed. If it fails, rule G2 is run again in full with release 0.1 and its "
    "decision is shipped instead.\n"
    "* **Re-run after the tracker fix** (committed 2026-11-27 20:21 UTC in 94fe241, before the re-run started): rule V and the joint check are run again "
    "with the skill tracker and oracle scoring the tradable window (see rule G2's re-run), the gate as then "
    "shipped (t = 2.5); the joint check uses the pair rules G2 and V then choose.\n"
)


def _key(r: dict[str, Any]) -> tuple[str, str, int]:
    return (r["profile"], r["kind"], int(r["seed"]))


def decide_release(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rule V on the measured rows: the chosen release and, per candidate, the mean deltas against release 0."""
    base = {_key(r): r for r in rows if r["release"] == 0.0}
    cands: dict[float, dict[str, Any]] = {}
    for rel in sorted({r["release"] for r in rows}):
        sel = [r for r in rows if r["release"] == rel and _key(r) in base]
        if not sel:
            continue
        d_sh = float(np.mean([r["sharpe"] - base[_key(r)]["sharpe"] for r in sel]))
        d_dd = float(np.mean([r["max_drawdown"] - base[_key(r)]["max_drawdown"] for r in sel]))
        t_ratio = float(np.mean([r["turnover"] / base[_key(r)]["turnover"] for r in sel]))
        cands[rel] = {
            "runs": len(sel),
            "d_sharpe": d_sh,
            "d_max_drawdown": d_dd,
            "turnover_ratio": t_ratio,
            "sharpe": float(np.mean([r["sharpe"] for r in sel])),
            "turnover": float(np.mean([r["turnover"] for r in sel])),
            "max_drawdown": float(np.mean([r["max_drawdown"] for r in sel])),
            "qualifies": rel == 0.0 or (d_sh >= -SHARPE_COST and d_dd >= -DD_COST),
        }
    qual = [rel for rel, c in cands.items() if c["qualifies"]]
    best = min(cands[rel]["turnover_ratio"] for rel in qual)
    chosen = min(rel for rel in qual if cands[rel]["turnover_ratio"] <= best * (1 + TURNOVER_TIE))
    return {"chosen": chosen, "candidates": cands}


def _overrides(profile: str, kind: str, seed: int, release: float) -> dict[str, Any]:
    over: dict[str, Any] = {"forecast.model": "none", "overlays.var_limit.release": release}
    if kind == "twin":
        over.update({"forecast.placebo": seed, **ZERO_SKILL})
    elif kind == "placebo":
        over["forecast.placebo"] = seed
    else:
        over.update({"forecast.oracle_ic": 0.05, "forecast.oracle_seed": seed})
    return over


def run(out: Path, runs: tuple[tuple[str, str, int], ...] = RUNS) -> None:
    """Replay every (candidate, run) not yet in the JSON, saving after each one."""
    sys.path.insert(0, str(REPO / "docs"))
    from make_skill import replay

    path = out / "var-release.json"
    rows: list[dict[str, Any]] = json.loads(path.read_text())["rows"] if path.exists() else []
    done = {(r["release"], *_key(r)) for r in rows}
    for profile, kind, seed in runs:
        for rel in CANDIDATES:
            if (rel, profile, kind, seed) in done:
                continue
            d = out / "var-release" / f"{profile}-{kind}-{seed}-{rel:g}"
            r = replay(profile, WINDOW, d, _overrides(profile, kind, seed, rel))
            r.update(kind=kind, seed=seed, release=rel)
            rows.append(r)
            print(json.dumps({k: r[k] for k in ("profile", "kind", "seed", "release", "sharpe", "turnover")}))
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"rows": rows}, indent=1))


JOINT = {"overlays.var_limit.release": 0.1, "skill.gate_t": 2.5}  # default pair; `joint --pair` overrides
JOINT_SEEDS = tuple(range(10))


def joint_check(out: Path, pair: dict[str, Any] | None = None) -> dict[str, Any]:
    """The joint check: rule G2's placebo test on the pair rule V and rule G2 chose (rows to var-release-joint.json)."""
    sys.path.insert(0, str(REPO / "docs"))
    from make_skill import replay, reusable
    from skill_evidence import te_to

    pair = dict(JOINT if pair is None else pair)

    base = out / "var-release-joint"
    twin = base / "twin"
    over = {"forecast.model": "none", **pair}
    twin_over = {**over, "forecast.placebo": 0, **ZERO_SKILL}
    if not reusable(twin, "default", WINDOW, twin_over):
        replay("default", WINDOW, twin, twin_over)
    rows = []
    for seed in JOINT_SEEDS:
        d = base / f"placebo-{seed}"
        r = replay("default", WINDOW, d, {**over, "forecast.placebo": seed})
        r.update(kind="placebo", seed=seed, te_zero=te_to(d, twin))
        rows.append(r)
        print(json.dumps({k: r[k] for k in ("seed", "sharpe", "turnover", "te_zero")}), flush=True)
    res = {"settings": pair, "rows": rows, "passes": max(r["te_zero"] for r in rows) <= 0.01}
    (out / "var-release-joint.json").write_text(json.dumps(res, indent=1))
    return res


def render_joint(out: Path) -> list[str]:
    path = out / "var-release-joint.json"
    if not path.exists():
        return []
    res = json.loads(path.read_text())
    te = [r["te_zero"] for r in res["rows"]]
    verdict = "passes" if res["passes"] else "FAILS (rule G2 to be re-run with release 0.1)"
    gate = ", ".join(
        f"{k.split('.')[-1]} {v:g}" for k, v in res["settings"].items() if k.startswith("skill.")
    )
    return [
        f"Joint check (release {res['settings']['overlays.var_limit.release']:g}, gate: {gate}), default 2006–2019, placebo seeds 0–9: TE to the zero-skill twin "
        f"mean {100 * float(np.mean(te)):.2f}%, worst seed {100 * max(te):.2f}%; mean turnover "
        f"{float(np.mean([r['turnover'] for r in res['rows']])):.2f}: **{verdict}**.",
        "",
    ]


def render_section(out: Path) -> list[str]:
    """The Rule V section of docs/SKILL.md (empty when the evidence has not been run)."""
    path = out / "var-release.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text())["rows"]
    dec = decide_release(rows)
    lines = ["## The VaR limit's release band (pre-2020 evidence, rule V)", "", RULES, ""]
    lines += [
        "| release | runs | mean Sharpe | Δ Sharpe vs 0 | mean max drawdown | Δ max drawdown vs 0 | mean turnover | "
        "turnover vs 0 | qualifies |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rel, c in dec["candidates"].items():
        lines.append(
            f"| {rel:g} | {c['runs']} | {c['sharpe']:.3f} | {c['d_sharpe']:+.3f} | {100 * c['max_drawdown']:.1f}% | "
            f"{100 * c['d_max_drawdown']:+.1f} pts | {c['turnover']:.2f} | {c['turnover_ratio']:.2f}× | "
            f"{'yes' if c['qualifies'] else 'no'} |"
        )
    lines += ["", f"**Chosen: release = {dec['chosen']:g}** (rule V on the rows above).", ""]
    return lines + render_joint(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=("run", "decide", "joint"))
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "skill")
    ap.add_argument("--release", type=float, default=None, help="joint: the release rule V chose")
    ap.add_argument("--gate", default="", help="joint: the rule G2 candidate label, e.g. 't = 2.5'")
    a = ap.parse_args(argv)
    os.environ.setdefault("AGENT_NO_PROGRESS", "1")
    os.environ.setdefault("AGENT_DATA_DIR", tempfile.mkdtemp(prefix="var-release-data-"))
    if a.cmd == "run":
        run(a.out)
    elif a.cmd == "joint":
        pair = None
        if a.release is not None and a.gate:
            sys.path.insert(0, str(REPO / "docs"))
            from skill_evidence import GATE2_CANDIDATES

            pair = {
                "overlays.var_limit.release": a.release,
                "skill.gate_sustain": 1,
                **GATE2_CANDIDATES[a.gate],
            }
        joint_check(a.out, pair)
    print("\n".join(render_section(a.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
