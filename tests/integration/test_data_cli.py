"""`agent data fetch | import | show` as users and scripts see them (subprocesses, isolated paths)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _agent(
    *args: str, env_extra: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)  # isolated_env already pointed AGENT_DATA_DIR / AGENT_STATE_DIR at tmp
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and lines[0].startswith("agent: error:")
    return lines[0]


@pytest.mark.shared_data
def test_import_then_show(isolated_env: Path, shared_data: Path) -> None:
    r = _agent("data", "import", str(shared_data / "sector_etfs_daily.csv"))
    assert r.returncode == 0, r.stderr
    assert "added 12 tickers" in r.stdout and "validation ok" in r.stdout
    assert (isolated_env / "data" / "prices.parquet").exists()
    r = _agent("data", "show")
    assert r.returncode == 0, r.stderr
    xlk = [ln for ln in r.stdout.splitlines() if ln.startswith("XLK ")]
    assert len(xlk) == 1
    assert "2004-11-18" in xlk[0] and "2025-06-30" in xlk[0] and "5185" in xlk[0]
    assert "sector_etfs_daily.csv" in xlk[0]
    assert str(isolated_env / "data") in r.stdout
    r = _agent("data", "show", "--tickers")
    assert r.stdout.split()[:3] == ["XLK", "XLF", "XLY"]
    # --data-dir wins over AGENT_DATA_DIR
    r = _agent("data", "show", "--data-dir", str(isolated_env / "other"))
    assert "empty" in r.stdout


def test_show_empty_store_suggests_next_steps(isolated_env: Path) -> None:
    r = _agent("data", "show")
    assert r.returncode == 0
    assert "empty" in r.stdout and "agent data import FILE" in r.stdout and "agent data fetch" in r.stdout


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        ("date,XLK\n2024-03-26,1.0\n2024-03-27,oops\n", "non-numeric value 'oops' in column 'XLK' on line 3"),
        ("day,XLK\n2024-03-26,1.0\n", "no date column"),
        (None, "price file not found"),
    ],
)
def test_bad_files_one_line_exit_3(isolated_env: Path, content: str | None, expect: str) -> None:
    path = isolated_env / "bad.csv"
    if content is not None:
        path.write_text(content)
    line = _one_error_line(_agent("data", "import", str(path)))
    assert expect in line


def test_validation_failure_one_line_and_policy(isolated_env: Path) -> None:
    path = isolated_env / "gap.csv"
    path.write_text("date,XLK\n2024-03-25,1.0\n2024-03-26,1.1\n2024-03-28,1.2\n")  # 03-27 missing
    line = _one_error_line(_agent("data", "import", str(path), "--policy", "fail"))
    assert "XLK 2024-03-27 gap" in line and "--policy ffill" in line
    r = _agent("data", "import", str(path), "--policy", "ffill")
    assert r.returncode == 0, r.stderr
    assert "forward-filled 1 cells" in r.stdout


def test_fetch_offline_with_empty_store(isolated_env: Path) -> None:
    # no network in the test environment: yfinance fails to resolve Yahoo; backoff 0 keeps the test fast
    r = _agent("data", "fetch", "XLK", "SPY", env_extra={"AGENT_DATA__BACKOFF_SECONDS": "0"})
    line = _one_error_line(r)
    assert "no network" in line and "--profile demo" in line and "--prices" in line
    assert "XLK" in line and "SPY" in line


def test_fetch_demo_profile_offline(isolated_env: Path) -> None:
    r = _agent(
        "--profile", "demo", "data", "fetch", "AAPL", "SP500", "--start", "2020-01-01", "--end", "2020-12-31"
    )
    assert r.returncode == 0, r.stderr
    assert "new: AAPL, SP500" in r.stdout
    r = _agent("data", "show")
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("AAPL "))
    assert "2020-01-02" in line and "2020-12-31" in line and "demo:sp500" in line


def test_data_help(isolated_env: Path) -> None:
    r = _agent("data", "import", "--help")
    assert r.returncode == 0 and "--policy" in r.stdout and "ffill" in r.stdout
