"""docs/RESULTS.md stays true: a fresh replay of one cheap profile must reproduce its table row for row.

When this fails, the code changed the numbers: regenerate with `python docs/make_results.py` (never edit the
page by hand)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROFILE, WINDOW = "equal-weight", "2020-2024"  # no model: the cheapest replay that RESULTS.md reports


def _make_results():  # the generator itself, so the test formats rows exactly as the page does
    spec = importlib.util.spec_from_file_location("make_results", REPO / "docs" / "make_results.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_results_md_matches_a_fresh_replay(tmp_path: Path, shared_data: Path) -> None:
    mr = _make_results()
    assert (PROFILE, WINDOW) in mr.PROFILES
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update(
        AGENT_SHARED_DATA=str(shared_data), AGENT_DATA_DIR=str(tmp_path / "store"), AGENT_NO_PROGRESS="1"
    )
    out = tmp_path / "out"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "backtest",
            "--profile",
            PROFILE,
            "--replay",
            WINDOW,
            "--out",
            str(out),
            "--no-report",
            "-q",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    fresh = mr.table_rows(json.loads((out / "metrics.json").read_text()))
    page = mr.section_rows((REPO / "docs" / "RESULTS.md").read_text(encoding="utf-8"), PROFILE)
    assert page == fresh, (
        "docs/RESULTS.md no longer matches a fresh replay of "
        f"{PROFILE} {WINDOW}: run `python docs/make_results.py` (about 10 minutes on 2 cores)"
    )
