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


def test_a_replay_is_reused_only_with_the_same_settings_on_the_same_committed_code(tmp_path: Path) -> None:
    """The proof and the pre-2020 rules share one zero-skill twin across many rows; a twin left by an earlier look
    (other settings or other code) must be replayed again, not compared against. A throwaway git repository
    stands in for the code."""
    import subprocess

    ms = load_docs_module("make_skill")
    repo = tmp_path / "code"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    window = ("2006-01-01", "2019-12-31")
    over = {"forecast.placebo": 0, "skill.gate_t": 1e9}
    d = tmp_path / "twin"
    d.mkdir()
    (d / "nav.csv").write_text("date,strategy\n")
    assert not ms.reusable(d, "default", window, over, repo)  # no stamp: run before stamps existed
    stamp = ms._stamp("default", window, over, repo)
    assert stamp is not None
    (d / "replay-stamp.json").write_text(stamp)
    assert ms.reusable(d, "default", window, over, repo)
    assert not ms.reusable(d, "default", window, {**over, "skill.cost_multiplier": 0.5}, repo)
    assert not ms.reusable(d, "demo", window, over, repo)
    (repo / "a.py").write_text("x = 2\n")
    assert ms._stamp("default", window, over, repo) is None  # uncommitted code: never reused
    assert not ms.reusable(d, "default", window, over, repo)
    subprocess.run([*git, "commit", "-qam", "two"], check=True)
    assert not ms.reusable(d, "default", window, over, repo)  # another commit
    assert not ms.reusable(d, "default", window, over, tmp_path / "not-a-repo")
