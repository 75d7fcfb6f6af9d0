"""Every shipped return forecaster carries its validation skill (issue 9): the allocation's prior."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agent.forecast import ModelRegistry
from agent.skill.tracker import prior_from_metrics

ROOT = Path(__file__).resolve().parents[2] / "exported_models"
RETURN_PROFILES = ["default", "demo", "etf-lstm-mvo", "djia-lstm-garch", "lstm-proportional", "sector-rnn"]


@pytest.mark.parametrize("profile", RETURN_PROFILES)
def test_models_carry_validation_skill(profile: str) -> None:
    reg = ModelRegistry(ROOT / profile)
    assert reg.models
    for info in reg.models:
        val = json.loads(info.metadata["metrics"])["val"]
        for key in (
            "skill_ic_cs",
            "skill_ic_cs_se",
            "skill_n_eff",
            "skill_ic_ts",
            "skill_hit_rate",
            "skill_mse_vs_zero",
            "skill_mse_vs_rolling_mean",
        ):
            assert key in val and math.isfinite(val[key]), (info.model_id, key)
            assert "skill_target" + key.removeprefix("skill") in val, (info.model_id, key)  # training target
        # the error rests on non-overlapping samples only: every h-th row of a daily model, every row of a
        # weekly one (its rows are already h = 5 sessions apart)
        stride = val["skill_stride"]
        assert stride == (1 if profile == "sector-rnn" else val["skill_horizon"]), (info.model_id, stride)
        assert val["skill_n_eff"] * stride <= val["skill_n"] + stride
        assert val["skill_n_eff"] * stride >= val["skill_n"] - stride
        # the prior scores the window the book earns (execution lag 1), dropping samples past train_end
        assert val["skill_lag"] == 1 and val["skill_n"] + val["skill_dropped"] == val["skill_target_n"]
        assert val["skill_dropped"] >= 1
        metrics = json.loads(info.metadata["metrics"])
        assert f"close t+1 .. t+{1 + info.horizon} " in metrics["skill_window"]
        prior = prior_from_metrics(metrics)
        assert prior is not None and prior.ic == val["skill_ic_cs"]
        card = info.path.with_suffix(".md").read_text()
        assert "skill_ic_cs" in card and "skill_target_ic_cs" in card and metrics["skill_window"] in card
