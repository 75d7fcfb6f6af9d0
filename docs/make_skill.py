"""Skill-aware allocation: hyperparameter choice (pre-2020 only) and the proof table (issue 9).

Usage (from the repository root, with PYTHONPATH pointing at it)::

    python docs/make_skill.py tune   [--out runs/skill] [--parts grid,gate,overlays,gk]   # pre-2020 only
    python docs/make_skill.py proof  [--out runs/skill] [--seeds 5] [--only placebo,oracle,real]
    python docs/make_skill.py render [--out runs/skill]

Each step writes JSON of the measured numbers under ``--out`` (a re-run keeps the rows already measured); every
command then regenerates docs/SKILL.md from every JSON present. Nothing in docs/SKILL.md is typed by hand.

* ``tune`` (2019 the last year, models off):
  - ``grid``: the default profile on 2015-2019 with an oracle of IC 0.05 and a placebo over
    ``skill.active_risk_aversion`` x ``skill.gate_t`` (overlays off). Rule, fixed before running: among the
    settings whose placebo TE to 1/N is <= 1% and turnover <= 1.5x 1/N's, the best oracle Sharpe (amended with
    oracle turnover <= 4x 1/N's before any 2020+ run; docs/SKILL.md says how). It chose active risk aversion 10.
  - ``gate``, ``overlays``, ``gk`` (docs/skill_evidence.py, whose ``RULES`` were written before any of them
    ran): rule G picks gate t from 10 placebo seeds (TE to 1/N <= 1% on every seed) and the oracle Sharpe on
    2006-2019; rule O keeps a risk overlay (drawdown stop to cash, VaR cuts) in the skill-aware default only if,
    against no overlays, it improves net Sharpe, or cuts max drawdown by >= 10 points at a cost <= 0.05 Sharpe,
    on both the placebo and the oracle means; Grinold-Kahn is measured beside Black-Litterman. The decisions
    rendered in docs/SKILL.md are computed from the rows (``decide_gate``, ``decide_overlays``).
* ``proof`` runs, once, on the issue's windows: placebo (5 seeds) with the skill-aware path as shipped, with the
  overlays off, with Grinold-Kahn, and with the old max-Sharpe path on the same noise, each skill path also
  against its zero-skill twin (same profile and overlays, mu = pi); the oracle ladder IC in
  {0, 0.02, 0.05, 0.1, 0.2} x seeds (default profile, Black-Litterman and Grinold-Kahn); the real models of
  default / demo / etf-lstm-mvo with skill-aware allocation, and default with Grinold-Kahn.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from skill_render import render  # noqa: E402  (docs/ is on the path only from here)

WINDOWS = {
    "default": ("2020-01-01", "2024-12-31"),
    "demo": ("2020-01-01", "2022-12-31"),
    "etf-lstm-mvo": ("2020-01-01", "2024-12-31"),
}
TUNE_WINDOW = ("2015-01-01", "2019-12-31")
GRID_ACTIVE = (10.0, 30.0, 100.0)
GRID_GATE = (1.0, 2.0)
LADDER = (0.0, 0.02, 0.05, 0.1, 0.2)
# the allocation alone: the profile's risk overlays off (they trade on their own, away from any reference)
NO_OVERLAYS = {
    "overlays.var_limit.enabled": False,
    "overlays.drawdown_stop.enabled": False,
    "overlays.turnover_cap": 2.0,
    "overlays.no_trade_band": 0.0,
}


def _store(profile: str, settings: Any) -> Any:
    from agent.backtest import load_prices_for

    if profile == "default":
        return load_prices_for(
            settings,
            Path(os.environ.get("AGENT_SHARED_DATA", REPO.parent / "shared/data")) / "sector_etfs_daily.csv",
        )[0]
    if settings.data.source == "file":
        assert settings.data.prices_file is not None
        p = (
            Path(os.environ.get("AGENT_SHARED_DATA", REPO.parent / "shared/data"))
            / settings.data.prices_file.name
        )
        return load_prices_for(settings, p)[0]
    return load_prices_for(settings, None)[0]


def _stamp(profile: str, window: tuple[str, str], overrides: dict[str, Any], repo: Path = REPO) -> str | None:
    """What a replay was run with: profile, window, overrides and the code's commit (None when the working tree
    has uncommitted changes or is not a git checkout: such a replay is never reused)."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    if dirty:
        return None
    return json.dumps(
        {"profile": profile, "window": list(window), "overrides": overrides, "commit": head}, sort_keys=True
    )


def reusable(
    out: Path, profile: str, window: tuple[str, str], overrides: dict[str, Any], repo: Path = REPO
) -> bool:
    """A replay directory may stand in for a new run (a zero-skill twin shared by many rows) only if it was run
    with the same profile, window and overrides on the same committed code: a twin from an earlier look or an
    earlier commit is replayed again."""
    stamp = _stamp(profile, window, overrides, repo)
    f = out / "replay-stamp.json"
    return stamp is not None and (out / "nav.csv").exists() and f.exists() and f.read_text() == stamp


def replay(
    profile: str,
    window: tuple[str, str],
    out: Path,
    overrides: dict[str, Any],
    store_fn: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """One leak-free replay through run_backtest; the numbers the table needs. ``store_fn(settings)`` gives the
    price store when the caller must cut it (pre-2020 evidence whose look-ahead oracle must not read 2020)."""
    import numpy as np
    import pandas as pd

    from agent.backtest import run_backtest
    from agent.settings import load_settings
    from agent.skill.stage import oracle_replay

    over = {"backtest.baselines": ["equal_weight"], **overrides}
    s = load_settings(profile=profile, overrides=over)
    store = store_fn(s) if store_fn is not None else _store(profile, s)
    t0 = time.perf_counter()
    if s.forecast.oracle_ic is not None:
        with oracle_replay(store.load()):  # research only: the oracle is handed the future explicitly
            res = run_backtest(
                s,
                store,
                dt.date.fromisoformat(window[0]),
                dt.date.fromisoformat(window[1]),
                out,
                write_report=False,
            )
    else:
        res = run_backtest(
            s,
            store,
            dt.date.fromisoformat(window[0]),
            dt.date.fromisoformat(window[1]),
            out,
            write_report=False,
        )
    stamp = _stamp(profile, window, overrides)
    if stamp is not None:
        (out / "replay-stamp.json").write_text(stamp)
    nav = pd.read_csv(out / "nav.csv", index_col="date", parse_dates=True)
    diff = nav["strategy"].pct_change().dropna() - nav["equal_weight"].pct_change().dropna()
    m = res.metrics
    gated = used = 0
    for line in (out / "decisions.jsonl").read_text().splitlines():
        sk = json.loads(line)["record"].get("skill")
        if sk:
            used += 1
            gated += int(bool(sk["skill"]["gated"]))
    return {
        "profile": profile,
        "window": list(window),
        "overrides": overrides,
        "sharpe": m["strategy"]["sharpe"],
        "cagr": m["strategy"]["cagr"],
        "max_drawdown": m["strategy"]["max_drawdown"],
        "ref_max_drawdown": m["equal_weight"]["max_drawdown"],
        "turnover": m["strategy"]["turnover"],
        "ref_sharpe": m["equal_weight"]["sharpe"],
        "ref_cagr": m["equal_weight"]["cagr"],
        "ref_turnover": m["equal_weight"]["turnover"],
        "te": float(np.std(diff.to_numpy(), ddof=1) * np.sqrt(252)),
        "decisions": res.n_decisions,
        "gated": gated,
        "skill_decisions": used,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _skill(active: float, gate: float) -> dict[str, Any]:
    return {
        "allocation.method": "mean_variance",
        "allocation.risk_aversion": 2.5,
        "skill.enabled": True,
        "skill.active_risk_aversion": active,
        "skill.gate_t": gate,
    }


def _save(out: Path, name: str, rows: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, shared with other busy engineers",
        "rows": rows,
    }
    (out / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")


def tune(out: Path, actives: tuple[float, ...] = GRID_ACTIVE, gates: tuple[float, ...] = GRID_GATE) -> None:
    """Grid on 2015-2019; rows already measured (same settings) in tune.json are kept, not re-run."""
    old = json.loads((out / "tune.json").read_text())["rows"] if (out / "tune.json").exists() else []
    rows = list(old)
    done = {json.dumps(r["overrides"], sort_keys=True) for r in old}
    for active in actives:
        for gate in gates:
            base = {**_skill(active, gate), "forecast.model": "none", **NO_OVERLAYS}
            for kind, extra in (
                ("oracle", {"forecast.oracle_ic": 0.05}),
                ("placebo", {"forecast.placebo": 0}),
            ):
                if json.dumps({**base, **extra}, sort_keys=True) in done:
                    continue
                r = replay(
                    "default", TUNE_WINDOW, out / "tune" / f"{kind}-{active:g}-{gate:g}", {**base, **extra}
                )
                r["kind"] = kind
                rows.append(r)
                print(
                    json.dumps(
                        {
                            k: r[k]
                            for k in (
                                "kind",
                                "sharpe",
                                "turnover",
                                "te",
                                "ref_sharpe",
                                "ref_turnover",
                                "gated",
                                "seconds",
                            )
                        }
                    ),
                    flush=True,
                )
                _save(out, "tune", rows)


def _prior(out: Path, name: str) -> list[dict[str, Any]]:
    """Rows already measured (a proof run is resumable: each replay is saved as soon as it ends)."""
    p = out / f"{name}.json"
    return list(json.loads(p.read_text())["rows"]) if p.exists() else []


def proof(
    out: Path,
    seeds: int,
    only: set[str],
    profiles: tuple[str, ...] = ("default", "demo", "etf-lstm-mvo"),
    seed_list: tuple[int, ...] | None = None,
    tag: str = "",
) -> None:
    """The 2020+ tables; ``tag`` names this process's files (placebo-TAG.json ...) so parts can run in parallel.

    A rerun is a new look at 2020+ data: ``--new-look WHY`` archives the tables first (docs/skill_looks.py), so
    the page keeps every earlier look beside the new one."""
    seed_range = seed_list if seed_list is not None else tuple(range(seeds))
    # Grinold-Kahn (extra rows): ladder and placebo seeds 0-2, default only (time on the shared machine)
    gk_oracle_seeds = gk_placebo_seeds = 3
    if "placebo" in only:
        from skill_evidence import ZERO_SKILL, te_to

        rows = _prior(out, "placebo" + tag)
        done = {(r["profile"], r["path"], r["seed"]) for r in rows}
        gk = {"skill.combine": "grinold_kahn"}
        for profile in [p for p in ("default", "demo") if p in profiles]:
            # the zero-skill twins: the same profile and overlays, the gate never open (mu = pi): what the noise
            # does through the skill machinery is the placebo's tracking error to its twin
            twin_over = {"shipped": {}, "nooverlays": NO_OVERLAYS}
            twins = {tw: out / "placebo" / f"{profile}-zero-skill-{tw}" for tw in twin_over}
            for tw, tw_over in twin_over.items():  # one process runs them (seed 0's); others wait for them
                tw_all = {"forecast.placebo": 0, **tw_over, **ZERO_SKILL}
                if 0 in seed_range and not reusable(twins[tw], profile, WINDOWS[profile], tw_all):
                    replay(profile, WINDOWS[profile], twins[tw], tw_all)
            for seed in seed_range:
                for path, over, twin in (
                    ("skill", {}, "shipped"),
                    ("skill, overlays off", NO_OVERLAYS, "nooverlays"),
                    ("skill, Grinold–Kahn", gk, "shipped"),
                    (
                        "max_sharpe (old path)",
                        {"skill.enabled": False, "allocation.method": "max_sharpe"},
                        None,
                    ),
                ):
                    if (profile, path, seed) in done or (
                        path.endswith("Kahn") and (profile != "default" or seed >= gk_placebo_seeds)
                    ):
                        continue
                    d = out / "placebo" / f"{profile}-{seed}-{path.split()[0].strip(',')}-{len(over)}"
                    if path.endswith("Kahn"):
                        d = out / "placebo" / f"{profile}-{seed}-gk"
                    r = replay(profile, WINDOWS[profile], d, {"forecast.placebo": seed, **over})
                    r.update(kind="placebo", path=path, seed=seed)
                    if twin is not None:
                        while not (twins[twin] / "metrics.json").exists():
                            time.sleep(5)
                        r["te_zero"] = te_to(d, twins[twin])
                    rows.append(r)
                    print(
                        json.dumps(
                            {
                                k: r.get(k)
                                for k in ("profile", "path", "seed", "sharpe", "turnover", "te", "te_zero")
                            }
                        ),
                        flush=True,
                    )
                    _save(out, "placebo" + tag, rows)
    if "oracle" in only:
        rows = _prior(out, "oracle" + tag)
        done_o = {(r.get("combine", "black_litterman"), r["ic"], r["seed"]) for r in rows}
        for seed in seed_range:  # seeds outer: a partial run still covers the whole ladder
            for combine in ("black_litterman", "grinold_kahn"):
                for ic in LADDER:
                    if (combine, ic, seed) in done_o or (
                        combine == "grinold_kahn" and seed >= gk_oracle_seeds
                    ):
                        continue
                    gk = {"skill.combine": combine} if combine != "black_litterman" else {}
                    r = replay(
                        "default",
                        WINDOWS["default"],
                        out / "oracle" / f"{ic:g}-{seed}{'-gk' if gk else ''}",
                        {
                            "forecast.model": "none",
                            "forecast.oracle_ic": ic,
                            "forecast.oracle_seed": seed,
                            **NO_OVERLAYS,
                            **gk,
                        },
                    )
                    r.update(kind="oracle", ic=ic, seed=seed, combine=combine)
                    rows.append(r)
                    print(
                        json.dumps({k: r[k] for k in ("combine", "ic", "seed", "sharpe", "turnover", "te")}),
                        flush=True,
                    )
                    _save(out, "oracle" + tag, rows)
    if "real" in only:
        rows = _prior(out, "real" + tag)
        done_r = {r.get("label", r["profile"]) for r in rows}
        for label, profile, over in (
            ("default", "default", {}),
            ("demo", "demo", {}),
            ("etf-lstm-mvo", "etf-lstm-mvo", {}),
            ("default, Grinold–Kahn", "default", {"skill.combine": "grinold_kahn"}),
        ):
            if label in done_r or profile not in profiles:
                continue
            r = replay(profile, WINDOWS[profile], out / "real" / label.replace(", Grinold–Kahn", "-gk"), over)
            r.update(kind="real", label=label)
            rows.append(r)
            print(
                json.dumps({k: r[k] for k in ("label", "sharpe", "turnover", "te", "ref_sharpe")}),
                flush=True,
            )
            _save(out, "real" + tag, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("cmd", choices=("tune", "proof", "render"))
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "skill")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--only", default="placebo,oracle,real")
    ap.add_argument("--active", default="", help="tune: active risk aversions (default: the grid)")
    ap.add_argument("--gate", default="", help="tune: gate t-stats (default: the grid)")
    ap.add_argument(
        "--parts",
        default="grid,gate,overlays,gk",
        help="tune: grid (2015-19), gate, gate2, overlays, gk (pre-2020)",
    )
    ap.add_argument("--profiles", default="", help="profiles (tune: overlay evidence; proof: placebo, real)")
    ap.add_argument("--seed-list", default="", help="proof: these seeds only (e.g. 0,1)")
    ap.add_argument(
        "--tag", default="", help="proof, tune gate2: suffix of this process's JSON files (parallel)"
    )
    ap.add_argument(
        "--new-look",
        metavar="WHY",
        help="proof: archive the current --only tables (and their reason) under looks/<k>/, then run them again; WHY is why",
    )
    a = ap.parse_args(argv)
    os.environ.setdefault("AGENT_NO_PROGRESS", "1")
    os.environ.setdefault("AGENT_DATA_DIR", tempfile.mkdtemp(prefix="skill-data-"))
    if a.cmd == "tune":
        actives = tuple(float(x) for x in a.active.split(",")) if a.active else GRID_ACTIVE
        parts = set(a.parts.split(","))
        if "grid" in parts:
            tune(a.out, actives, tuple(float(x) for x in a.gate.split(",")) if a.gate else GRID_GATE)
        if (
            "gate2" in parts
        ):  # rule G2 (docs/skill_gate2.py); SKILL_GATE2="t = 2;t = 3" splits it across processes
            from skill_gate2 import run_gate2

            labels = tuple(x for x in os.environ.get("SKILL_GATE2", "").split(";") if x) or None
            run_gate2(a.out, replay, labels, f"-{a.tag}" if a.tag else "")
        from skill_evidence import run_evidence

        run_evidence(
            a.out,
            replay,
            _skill,
            NO_OVERLAYS,
            parts,
            profiles=tuple((a.profiles or "default,demo").split(",")),
        )
    elif a.cmd == "proof":
        seed_list = tuple(int(x) for x in a.seed_list.split(",")) if a.seed_list else None
        profiles = tuple((a.profiles or "default,demo,etf-lstm-mvo").split(","))
        if a.new_look:
            from skill_looks import archive_look

            archive_look(a.out, a.new_look, tuple(a.only.split(",")))
        tag = f"-{a.tag}" if a.tag else ""
        proof(a.out, a.seeds, set(a.only.split(",")), profiles, seed_list, tag)
    render(a.out, REPO / "docs" / "SKILL.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
