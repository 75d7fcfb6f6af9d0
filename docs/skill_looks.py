"""Every look at the 2020+ proof, kept and shown: a rerun of the issue-window tables never hides the earlier one.

Why: hyperparameters are chosen before 2020 and the 2020–2024 replay is run once. When a defect fix or a new
pre-2020 decision forces the proof to run again, that is a second look at the test window; the table says so and
shows what every earlier look measured, so a reader can judge how much the later choices could have been steered.

``python docs/make_skill.py proof --new-look WHY`` archives the current placebo/oracle/real JSON files under
``<out>/looks/<k>/`` (with ``why.txt``) before the proof runs again; ``render_looks`` prints one row per look.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

PARTS = ("placebo", "oracle", "real")


def archive_look(out: Path, why: str, parts: tuple[str, ...] = PARTS) -> Path:
    """Move the current JSON files of ``parts`` to the next ``looks/<k>/`` (the proof then reruns them)."""
    looks = out / "looks"
    k = 1 + max((int(p.name) for p in looks.glob("*") if p.name.isdigit()), default=0)
    dest = looks / str(k)
    dest.mkdir(parents=True)
    for part in parts:
        for f in sorted(out.glob(f"{part}.json")) + sorted(out.glob(f"{part}-*.json")):
            shutil.move(str(f), dest / f.name)
        if (
            out / part
        ).is_dir():  # the replays too: a rerun must not reuse one (the proof reuses a twin it finds)
            (dest / "runs").mkdir(exist_ok=True)
            shutil.move(str(out / part), dest / "runs" / part)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if (out / "why.txt").exists():  # the archived tables' own reason moves with them
        shutil.move(str(out / "why.txt"), dest / "why.txt")
    else:
        (dest / "why.txt").write_text(f"{stamp}\nthe first run\n")
    (out / "why.txt").write_text(f"{stamp}\n{why}\n")  # the reason for the tables this rerun writes
    return dest


def _rows(d: Path, part: str) -> list[dict[str, Any]]:
    files = sorted(d.glob(f"{part}.json")) + sorted(d.glob(f"{part}-*.json"))
    return [r for f in files for r in json.loads(f.read_text())["rows"]]


def _summary(d: Path) -> dict[str, str]:
    real = {r.get("label", r["profile"]): r for r in _rows(d, "real")}
    out: dict[str, str] = {}
    for label in ("default", "demo", "etf-lstm-mvo"):
        r = real.get(label)
        out[label] = f"{r['sharpe']:.2f} / {r['turnover'] / r['ref_turnover']:.1f}×" if r else "–"
    pl = [r for r in _rows(d, "placebo") if r.get("path") == "skill"]
    te = {p: [r["te_zero"] for r in pl if r["profile"] == p and "te_zero" in r] for p in ("default", "demo")}
    out["placebo"] = (
        ", ".join(f"{p} {100 * float(np.mean(v)):.2f}% / {100 * max(v):.2f}%" for p, v in te.items() if v)
        or "–"
    )
    orc = [r for r in _rows(d, "oracle") if r.get("combine", "black_litterman") == "black_litterman"]
    ladder = sorted({r["ic"] for r in orc})
    out["oracle"] = (
        " / ".join(f"{np.mean([r['sharpe'] for r in orc if r['ic'] == ic]):.2f}" for ic in ladder) or "–"
    )
    return out


def render_looks(out: Path) -> list[str]:
    """The "looks at 2020+" section: one row per archived look and one for the tables below (the current)."""
    dirs = sorted((p for p in (out / "looks").glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    if not dirs:
        return []
    lines = [
        "## Every look at 2020–2024 (the issue windows)",
        "",
        "Hyperparameters are chosen on pre-2020 data; the issue-window tables below are the latest run. Each earlier "
        "run is archived and summarized here, with why the proof was run again. Real models: net Sharpe / "
        "turnover as a multiple of 1/N's; placebo: TE to the zero-skill twin, mean / worst seed; oracle: "
        "Black–Litterman mean Sharpe along the IC ladder.",
        "",
        "| look | run | why it was run | default | demo | etf-lstm-mvo | placebo TE to twin | oracle ladder |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in dirs:
        stamp, _, why = (d / "why.txt").read_text().partition("\n")
        s = _summary(d)
        lines.append(
            f"| {d.name} | {stamp[:16].replace('T', ' ')} | {why.strip()} | {s['default']} | {s['demo']} | "
            f"{s['etf-lstm-mvo']} | {s['placebo']} | {s['oracle']} |"
        )
    s = _summary(out)
    why_now = out / "why.txt"  # written by the run that produced the current tables, when it was a rerun
    now = why_now.read_text().partition("\n")[2].strip() if why_now.exists() else "the current settings"
    lines.append(
        f"| {len(dirs) + 1} (tables below) | – | {now} | {s['default']} | {s['demo']} | "
        f"{s['etf-lstm-mvo']} | {s['placebo']} | {s['oracle']} |"
    )
    return [*lines, ""]
