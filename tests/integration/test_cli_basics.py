"""The CLI as users and scripts see it: help, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _agent(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_") or k.startswith("AGENT_SHARED")}
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=e, cwd=cwd, timeout=120
    )


def test_help_is_fast_and_lists_commands(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    r = _agent("--help")
    assert r.returncode == 0
    assert "config" in r.stdout and "exit codes" in r.stdout
    # heavy libraries stay unimported on --help (the real guarantee behind "instant")
    code = (
        "import sys; from agent.cli import build_parser; build_parser(); "
        "print([m for m in ('pandas','cvxpy','arch','yfinance','onnxruntime','torch','matplotlib') if m in sys.modules])"
    )
    r2 = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r2.stdout.strip() == "[]", r2.stdout + r2.stderr
    assert time.perf_counter() - t0 < 60


def test_config_show_is_json_and_redacts(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\nproxy = 'http://u:secret@h:1'\n[risk]\nmethod = 'ewma'\n")
    r = _agent("config", "show", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["risk"]["method"] == "ewma"
    assert "secret" not in r.stdout


def test_bad_setting_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[risk]\nmethdo = 'ewma'\n")
    r = _agent("--config", str(cfg), "config", "show")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "risk.methdo" in lines[0]
    assert "Traceback" not in r.stderr


def test_env_override_and_bad_env(tmp_path: Path) -> None:
    r = _agent("config", "show", "--section", "risk", env={"AGENT_RISK__CORR_WINDOW": "99"})
    assert json.loads(r.stdout)["risk"]["corr_window"] == 99
    r = _agent("config", "show", env={"AGENT_RISK__CORR_WINDOW": "ten"})
    assert r.returncode == 2 and "risk.corr_window" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unknown_command_and_profile(tmp_path: Path) -> None:
    r = _agent("frobnicate")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = _agent("--profile", "nope", "config", "show")
    assert r.returncode == 2 and "unknown profile 'nope'" in r.stderr


def test_global_options_after_the_subcommand(tmp_path: Path) -> None:
    r = _agent("config", "show", "--section", "universe", "--profile", "demo")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["universe"]["benchmark"] == "SP500"


def test_environment_errors_are_one_line_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OSError or a sqlite OperationalError escaping a command (the environment, not a bug) is one line and
    exit 3; any other exception keeps its traceback (a bug must be visible)."""
    import errno
    import sqlite3

    from agent.cli import main
    from agent.commands import data as data_cmd

    for exc, needle in (
        (
            PermissionError(errno.EACCES, "Permission denied", "/x/ledger.sqlite"),
            "Permission denied (/x/ledger",
        ),
        (OSError(errno.ENOSPC, "No space left on device", "/tmp"), "No space left on device (/tmp) ("),
        (sqlite3.OperationalError("database or disk is full"), "ledger database cannot be used"),
    ):

        def boom(args: object, exc: BaseException = exc) -> int:
            raise exc

        monkeypatch.setattr(data_cmd, "_show", boom)
        assert main(["data", "show"]) == 3
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("agent: error: ") and needle in err[0], err
    monkeypatch.setattr(data_cmd, "_show", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["data", "show"])
