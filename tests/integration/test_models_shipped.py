"""The shipped models: every file loads with onnxruntime, its metadata is complete, each profile has a model
usable from 2020-01-02, and no model is ever selected for a date on or before its own train_end."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.forecast import REQUIRED_KEYS, ModelRegistry, OnnxForecaster

ROOT = Path(__file__).resolve().parents[2] / "exported_models"
PROFILES = {  # profile -> (tickers count, years of train_end shipped)
    "default": (9, [2019, 2020, 2021, 2022, 2023, 2024]),
    "demo": (20, [2019, 2020, 2021]),
    "sector-rnn": (5, [2019, 2020, 2021, 2022, 2023, 2024]),
    "lstm-allocator": (5, [2019, 2020, 2021, 2022, 2023]),
    "lstm-proportional": (4, [2019, 2020, 2021, 2022, 2023, 2024]),
    "etf-lstm-mvo": (16, [2019, 2020, 2021, 2022, 2023, 2024]),
    "djia-lstm-garch": (30, [2019, 2020, 2021, 2022, 2023]),
}


def _registry(profile: str) -> ModelRegistry:
    reg = ModelRegistry(ROOT / profile)
    if not reg.models and not reg.rejected:
        pytest.fail(
            f"no shipped models for {profile} in {ROOT / profile} (run `python -m training build-all`)"
        )
    return reg


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_model_loads_and_has_complete_metadata(profile: str) -> None:
    reg = _registry(profile)
    assert reg.rejected == []
    n_tickers, years = PROFILES[profile]
    assert sorted(m.train_end.year for m in reg.models) == years
    for info in reg.models:
        ModelRegistry.load(info.path)  # onnxruntime session + input shape check
        assert set(REQUIRED_KEYS) <= set(info.metadata)
        meta = info.metadata
        assert info.profile == profile and info.model_id == info.path.stem == f"{profile}-{info.train_end}"
        assert len(info.tickers) == n_tickers
        assert meta["train_start"] < meta["valid_from"] <= meta["train_end"]
        metrics = json.loads(meta["metrics"])
        assert metrics["n_train"] > 0 and metrics["n_val"] > 0 and "val" in metrics
        assert len(meta["data_sha256"]) == 64 and meta["code_version"]
        assert json.loads(meta["config"])["profile"] == profile
        assert info.path.with_suffix(".md").exists(), "model card missing"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_walk_forward_never_uses_a_model_that_saw_its_future(profile: str) -> None:
    reg = _registry(profile)
    assert reg.select(dt.date(2020, 1, 2)).train_end < dt.date(2020, 1, 2)  # a 2020 replay has a model
    for d in pd.bdate_range("2020-01-02", "2025-06-30", freq="7D"):
        info = reg.select(d.date())
        assert info.train_end < d.date()
        assert info.train_end.year == d.year - 1 or (
            info.train_end.year < d.year - 1 and d.year > max(m.train_end.year for m in reg.models)
        ), f"{d.date()} uses {info.model_id}"


def test_folder_is_small() -> None:
    total = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    assert total < 20 * 1024 * 1024, f"exported_models/ is {total / 1e6:.1f} MB"
    assert (ROOT / "README.md").exists()


@pytest.mark.parametrize("profile", ["default", "sector-rnn", "djia-lstm-garch", "lstm-allocator"])
def test_shipped_model_forecasts_on_real_prices(profile: str, shared_data: Path) -> None:
    reg = _registry(profile)
    info = reg.models[0]
    data_file = json.loads(info.metadata["config"])["data_file"]
    prices = pd.read_csv(shared_data / data_file, index_col="date", parse_dates=True).astype("float64")
    res = OnnxForecaster(ROOT / profile, info.tickers).forecast(prices, dt.date(2020, 1, 3))
    assert res.train_end < dt.date(2020, 1, 3)
    if res.kind == "weights":
        assert res.weights is not None and res.weights.sum() == pytest.approx(1.0, abs=1e-5)
    else:
        assert res.mu is not None and np.isfinite(res.mu).all() and np.abs(res.mu).max() < 0.05
    if res.kind == "rebalance_returns":
        assert res.rebalance_prob is not None and 0.0 <= res.rebalance_prob <= 1.0
