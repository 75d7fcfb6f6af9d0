"""Rule G2 (docs/skill_evidence.py ``RULES``): the skill gate against multiple testing, pre-2020 evidence.

Run by ``python docs/make_skill.py tune --parts gate2`` (rows in ``evidence-gate2*.json`` under ``--out``),
rendered into docs/SKILL.md by ``make_skill.py render``; the decision is ``skill_evidence.decide_gate2`` of the
rows. The default profile as shipped (VaR limit on, drawdown stop off), models off, 2006-2019: no 2020+ data.

``null_gate_rates`` is the first-principles side: how often a skill-less forecast opens each candidate gate,
simulated on pure noise with the tracker's own estimator (no market data at all).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from skill_evidence import (
    EVIDENCE_WINDOWS,
    GATE2_CANDIDATES,
    GATE2_ORACLE_ICS,
    GATE_PLACEBO_SEEDS,
    ORACLE_SEEDS,
    ZERO_SKILL,
    _n,
    _p,
    decide_gate2,
    te_to,
)

BASE = {"forecast.model": "none"}  # the profile as shipped otherwise (overlays included)


def null_gate_rates(
    threshold: float,
    sustain: int = 1,
    halflife: float = 26.0,
    min_live: int = 20,
    years: int = 14,
    paths: int = 2000,
    ic_sd: float = 0.35,
    seed: int = 1,
) -> dict[str, float]:
    """A skill-less weekly forecast (i.i.d. ICs of mean 0): the fraction of decisions the gate is open, the
    openings per year, and the chance it ever opens in ``years``, for ``t >= threshold`` at each of the last
    ``sustain`` maturities. The t-statistic is ``agent.skill.tracker.ew_skill``'s (EW mean over its EW
    dispersion and Kish effective n), computed by recursion; ``ic_sd`` does not matter (t is scale-free)."""
    lam = 0.5 ** (1.0 / halflife)
    n_steps = 52 * years
    rng = np.random.default_rng(seed)
    ic = rng.normal(0.0, ic_sd, (paths, n_steps))
    t = np.full((paths, n_steps), -np.inf)
    s1 = np.zeros(paths)
    s2 = np.zeros(paths)
    w1 = w2 = 0.0
    for k in range(n_steps):
        s1 = lam * s1 + ic[:, k]
        s2 = lam * s2 + ic[:, k] ** 2
        w1, w2 = lam * w1 + 1.0, lam * lam * w2 + 1.0
        n = k + 1
        if n < max(2, min_live):
            continue
        m = s1 / w1
        var = np.maximum((s2 / w1 - m * m) * n / (n - 1), 1e-12)
        t[:, k] = m / np.sqrt(var / (w1 * w1 / w2))
    above = t >= threshold
    open_ = above.copy()
    for j in range(1, sustain):
        open_[:, j:] &= above[:, :-j]
        open_[:, :j] = False
    live = open_[:, min_live:]
    opens = live[:, 1:] & ~live[:, :-1]
    return {
        "open_fraction": float(live.mean()),
        "openings_per_year": float(opens.sum(axis=1).mean() / years),
        "ever_open": float(live.any(axis=1).mean()),
    }


def run_gate2(
    out: Path,
    replay: Callable[[str, tuple[str, str], Path, dict[str, Any]], dict[str, Any]],
    labels: tuple[str, ...] | None = None,
    tag: str = "",
) -> list[dict[str, Any]]:
    """Measure rule G2's candidates (``labels``: a subset, for parallel processes, each with its own ``tag``).

    Each replay is saved as soon as it ends; a row already in any evidence-gate2*.json is not re-run."""
    path = out / f"evidence-gate2{tag}.json"
    window = EVIDENCE_WINDOWS["default"]
    mine: list[dict[str, Any]] = json.loads(path.read_text())["rows"] if path.exists() else []

    def done() -> set[str]:
        rows = [
            r for p in sorted(out.glob("evidence-gate2*.json")) for r in json.loads(p.read_text())["rows"]
        ]
        return {json.dumps(r["overrides"], sort_keys=True) for r in rows}

    def one(over: dict[str, Any], d: Path, **info: Any) -> None:
        if json.dumps(over, sort_keys=True) in done():
            return
        r = replay("default", window, d, over)
        r.update(info, part="gate2")
        if r["kind"] != "twin":
            r["te_zero"] = te_to(d, twin)
        r["open_fraction"] = 1.0 - r["gated"] / r["skill_decisions"] if r["skill_decisions"] else 0.0
        for name in ("ledger.sqlite", "weights.csv", "trades.csv"):
            (d / name).unlink(missing_ok=True)
        mine.append(r)
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"rows": mine}, indent=1) + "\n")
        keys = (
            "candidate",
            "kind",
            "seed",
            "ic",
            "sharpe",
            "turnover",
            "te_zero",
            "open_fraction",
            "seconds",
        )
        print(json.dumps({k: r.get(k) for k in keys}), flush=True)

    twin = out / "evidence" / "default" / "g2-twin"
    # the zero-skill twin: the gate never opens (mu = pi), so it is the same for every candidate and seed
    from make_skill import reusable  # a twin from other code or settings is replayed again

    twin_over = {**BASE, "forecast.placebo": 0, **ZERO_SKILL}
    if not reusable(twin, "default", window, twin_over):
        one(twin_over, twin, kind="twin", candidate="twin", seed=0)
    for label in labels or tuple(GATE2_CANDIDATES):
        s = {**BASE, **GATE2_CANDIDATES[label]}
        slug = label.replace(" ", "").replace(",", "-").replace("=", "")
        for seed in GATE_PLACEBO_SEEDS:
            one(
                {**s, "forecast.placebo": seed},
                out / "evidence" / "default" / f"g2-{slug}-placebo-{seed}",
                kind="placebo",
                candidate=label,
                seed=seed,
            )
        for ic in GATE2_ORACLE_ICS:
            for seed in ORACLE_SEEDS:
                one(
                    {**s, "forecast.oracle_ic": ic, "forecast.oracle_seed": seed},
                    out / "evidence" / "default" / f"g2-{slug}-oracle-{ic:g}-{seed}",
                    kind="oracle",
                    candidate=label,
                    seed=seed,
                    ic=ic,
                )
    return mine


def render_gate2(rows: list[dict[str, Any]]) -> list[str]:
    """The rule G2 section of docs/SKILL.md (empty when no candidate has been measured)."""
    g = decide_gate2(rows)
    if not g["candidates"]:
        return []
    w = EVIDENCE_WINDOWS["default"]
    lines = [
        f"### Rule G2: the gate against multiple testing (default profile as shipped, {w[0][:4]}–{w[1][:4]})",
        "",
        "Placebo TE is to the zero-skill twin (same profile and overlays, gate never open: mu = pi); gate open = "
        "the fraction of decisions at which the gate let the forecast tilt the weights. Null open fraction: a "
        "skill-less forecast simulated on pure noise (`null_gate_rates`, no market data).",
        "",
        "| candidate | null open fraction | placebo seeds | placebo TE to twin mean / max | placebo gate open "
        "(mean / max) | oracle 0.05 Sharpe / turnover | oracle 0.1 Sharpe / turnover | oracle 0.05 / 0.1 gate "
        "open | 1/N Sharpe | passes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, c in g["candidates"].items():
        over = GATE2_CANDIDATES.get(label, {})
        null = null_gate_rates(float(over.get("skill.gate_t", 2.0)), int(over.get("skill.gate_sustain", 1)))
        lines.append(
            f"| {label} | {_p(null['open_fraction'])} | {c['placebo_seeds']} | {_p(c['te_zero_mean'])} / "
            f"{_p(c['te_zero_max'])} | {_p(c['open_mean'])} / {_p(c['open_max'])} | "
            f"{_n(c['oracle_sharpe'])} / {_n(c['oracle_turnover'])} | {_n(c['oracle10_sharpe'])} / "
            f"{_n(c['oracle10_turnover'])} | {_p(c['oracle_open'])} / {_p(c['oracle10_open'])} | "
            f"{_n(c['ref_sharpe'])} | {'yes' if c['passes'] else 'no'} |"
        )
    tw = [r for r in rows if r.get("part") == "gate2" and r["kind"] == "twin"]
    if tw:
        lines += [
            "",
            f"The zero-skill twin: Sharpe {_n(tw[0]['sharpe'])}, turnover {_n(tw[0]['turnover'])}, TE to 1/N "
            f"{_p(tw[0]['te'])} (the VaR limit's cuts to cash); 1/N turnover {_n(tw[0]['ref_turnover'])}.",
        ]
    chosen = g["chosen"] if g["chosen"] is not None else "none"
    lines += [
        "",
        f"Decision (rule G2): **{chosen}** — {g['why']}. It replaces rule G's gate above; the profiles ship it.",
        "",
    ]
    return lines


def load_gate2(out: Path) -> list[dict[str, Any]]:
    """Every rule G2 row under out (evidence-gate2*.json)."""
    return [r for p in sorted(out.glob("evidence-gate2*.json")) for r in json.loads(p.read_text())["rows"]]


if __name__ == "__main__":  # the null rates of rule G2's candidates (seconds; no market data)
    for lab, o in GATE2_CANDIDATES.items():
        print(lab, null_gate_rates(float(o["skill.gate_t"]), int(o.get("skill.gate_sustain", 1))))
