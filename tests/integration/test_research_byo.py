"""Bring your own universe: `python -m training build --config my.toml` trains on the agent's own store for the
settings' tickers and writes where the settings say; `agent backtest --config my.toml` then uses those models.
Tiny recipe (1 epoch, one train_end) to stay fast."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

RECIPE = """\
profile = "ignored"
data_file = "ignored.csv"
tickers = ["IGNORED"]
kind = "returns"
target = "fwd_mean_simple"
horizon = 5
years = [2019]
train_start = "2015-01-01"

[features]
features = ["ret"]
lookback = 10
frequency = "daily"

[model]
units = 4
layers = 1
dropout = 0.0

[train]
max_epochs = 1
patience = 1
seed = 7
batch_size = 64
input_scaler = "minmax"
target_scaler = "standard"
baseline_window = 10
"""


def _env(tmp: Path, shared: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update(AGENT_SHARED_DATA=str(shared), AGENT_NO_PROGRESS="1", AGENT_STATE_DIR=str(tmp / "state"))
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)


def test_build_from_settings_then_backtest(tmp_path: Path, shared_data: Path) -> None:
    settings = tmp_path / "my.toml"
    settings.write_text(
        'profile = "default"\n'
        '[universe]\ntickers = ["XLK", "XLF", "XLE", "XLV"]\nbenchmark = "SPY"\n'
        f'[data]\nsource = "file"\nprices_file = "{shared_data / "sector_etfs_daily.csv"}"\n'
        f'[paths]\ndata_dir = "{tmp_path / "store"}"\n'
        f'[forecast]\nmodels_dir = "{tmp_path / "models"}"\n'
    )
    (tmp_path / "recipe.toml").write_text(RECIPE)
    env = _env(tmp_path, shared_data)
    imp = _run(
        env,
        "-m",
        "agent",
        "data",
        "import",
        str(shared_data / "sector_etfs_daily.csv"),
        "--config",
        str(settings),
    )
    assert imp.returncode == 0, imp.stderr
    b = _run(
        env,
        "-m",
        "training",
        "build",
        "--config",
        str(settings),
        "--recipe",
        str(tmp_path / "recipe.toml"),
        "--quiet",
    )
    assert b.returncode == 0, b.stderr[-3000:]
    model = tmp_path / "models" / "default-2019-12-31.onnx"
    assert model.exists(), b.stdout

    from agent.forecast import ModelRegistry

    info = ModelRegistry(tmp_path / "models").models[0]
    assert info.metadata["tickers"] == '["XLK","XLF","XLE","XLV"]'
    bt = _run(
        env,
        "-m",
        "agent",
        "backtest",
        "--config",
        str(settings),
        "--start",
        "2020-01-01",
        "--end",
        "2020-03-31",
        "--no-report",
        "--out",
        str(tmp_path / "bt"),
    )
    assert bt.returncode == 0, bt.stderr[-3000:]
    log = (tmp_path / "bt" / "decisions.jsonl").read_text()
    assert "default-2019-12-31" in log  # the decisions used the model just built


def test_refuses_to_write_into_the_shipped_models(tmp_path: Path, shared_data: Path) -> None:
    settings = tmp_path / "my.toml"
    settings.write_text(f'profile = "default"\n[paths]\ndata_dir = "{tmp_path / "store"}"\n')
    b = _run(_env(tmp_path, shared_data), "-m", "training", "build", "--config", str(settings))
    assert b.returncode != 0
    assert "shipped" in b.stderr and b.stderr.strip().count("\n") == 0
