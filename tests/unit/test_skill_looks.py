"""docs/skill_looks.py: a rerun of the 2020+ proof archives the earlier tables, and every look is rendered."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.unit.docs_modules import load_docs_module

REPO = Path(__file__).resolve().parents[2]


def _looks() -> ModuleType:
    return load_docs_module("skill_looks")


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"generated": "2026-01-01T00:00:00+00:00", "machine": "m", "rows": rows}))


def _real(sharpe: float) -> list[dict[str, Any]]:
    return [
        {"label": "default", "profile": "default", "sharpe": sharpe, "turnover": 10.0, "ref_turnover": 5.0}
    ]


def test_a_new_look_archives_the_tables_and_every_look_is_shown(tmp_path: Path) -> None:
    lk = _looks()
    assert lk.render_looks(tmp_path) == []  # never rerun: no section
    _write(tmp_path / "real.json", _real(0.5))
    placebo = [
        {"profile": "default", "path": "skill", "te_zero": te, "seed": s}
        for s, te in enumerate((0.004, 0.012))
    ]
    _write(tmp_path / "placebo-pd1.json", placebo)
    _write(tmp_path / "oracle.json", [{"ic": 0.1, "sharpe": 0.9, "seed": 0}])
    (tmp_path / "placebo" / "default-zero-skill-shipped").mkdir(parents=True)  # a twin the proof would reuse
    (tmp_path / "placebo" / "default-zero-skill-shipped" / "nav.csv").write_text("date,strategy\n")
    dest = lk.archive_look(tmp_path, "a defect fix", ("placebo", "real"))
    assert sorted(p.name for p in dest.iterdir()) == ["placebo-pd1.json", "real.json", "runs", "why.txt"]
    assert not (tmp_path / "placebo").exists()  # the rerun replays its twins afresh
    assert (dest / "runs" / "placebo" / "default-zero-skill-shipped" / "nav.csv").exists()
    assert not (tmp_path / "real.json").exists() and (tmp_path / "oracle.json").exists()  # oracle not rerun
    _write(tmp_path / "real.json", _real(0.7))
    text = "\n".join(lk.render_looks(tmp_path))
    # the archived tables keep their own reason (none was written: the first run); WHY labels the rerun's tables
    assert "| 1 |" in text and "the first run | 0.50 / 2.0× |" in text
    assert "default 0.80% / 1.20%" in text  # the archived placebo: mean and worst seed
    assert "| 2 (tables below) | – | a defect fix | 0.70 / 2.0× |" in text
    assert lk.archive_look(tmp_path, "again", ("real",)).name == "2"
    assert (
        (tmp_path / "looks" / "2" / "why.txt").read_text().endswith("a defect fix\n")
    )  # moved with its tables
    assert "| 3 (tables below) | – | again |" in "\n".join(lk.render_looks(tmp_path))
