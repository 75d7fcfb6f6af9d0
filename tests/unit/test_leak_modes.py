"""Look-ahead research modes (issue 13's leakage audit): refused outside a replay, labelled, and really leaky."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.errors import ConfigError, ModelError
from agent.forecast import ModelRegistry
from agent.research.leak import fold_model, leak_future, leak_replay, quarter_vol_cov
from agent.risk.garch_model import GarchParams
from agent.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "exported_models" / "sector-rnn" / "sector-rnn-2019-12-27.onnx"


def _leaky_copy(dst: Path, leak: dict | None) -> Path:
    """A shipped model with its id changed and (optionally) a `leak` metadata entry, as training.leaky writes."""
    import onnx

    m = onnx.load(str(SHIPPED))
    for p in m.metadata_props:
        if p.key == "model_id":
            p.value = dst.stem
    if leak is not None:
        e = m.metadata_props.add()
        e.key, e.value = "leak", json.dumps(leak)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(dst))
    return dst


def _fridays(start: str, n: int) -> list[str]:
    return [str(d.date()) for d in pd.date_range(start, periods=n, freq="W-FRI")]


def test_registry_refuses_a_model_trained_with_look_ahead(tmp_path: Path) -> None:
    _leaky_copy(
        tmp_path / "m-kfold0.onnx", {"procedure": "random 5-fold", "heldout": _fridays("2021-01-01", 4)}
    )
    reg = ModelRegistry(tmp_path)
    assert reg.models == []
    assert "trained with look-ahead (random 5-fold)" in reg.rejected[0][1]
    assert [m.model_id for m in ModelRegistry(tmp_path, allow_leaky=True).models] == ["m-kfold0"]


def test_fold_selection_picks_the_model_that_held_the_week_out(tmp_path: Path) -> None:
    weeks = _fridays("2021-01-01", 8)
    _leaky_copy(tmp_path / "m-kfold0.onnx", {"procedure": "k", "heldout": weeks[0::2]})
    _leaky_copy(tmp_path / "m-kfold1.onnx", {"procedure": "k", "heldout": weeks[1::2]})
    reg = ModelRegistry(tmp_path, allow_leaky=True)
    # a Wednesday in the week of weeks[1] and the Friday of weeks[2]
    assert reg.select(dt.date.fromisoformat(weeks[1]) - dt.timedelta(days=2)).model_id == "m-kfold1"
    assert reg.select(weeks[2]).model_id == "m-kfold0"
    with pytest.raises(ModelError, match="no fold model held out"):
        reg.select("2022-06-03")
    assert fold_model(ModelRegistry(tmp_path / "none", allow_leaky=True).models, dt.date(2021, 1, 8)) is None


def test_a_leaky_model_without_folds_is_chosen_by_train_end(tmp_path: Path) -> None:
    _leaky_copy(tmp_path / "m-scalerall.onnx", {"procedure": "scalers fit on all data"})
    reg = ModelRegistry(tmp_path, allow_leaky=True)
    assert reg.select("2020-03-06").model_id == "m-scalerall"
    with pytest.raises(ModelError, match="train_end before"):
        reg.select("2019-06-07")


def test_leak_modes_are_refused_outside_a_replay() -> None:
    s = load_settings(profile="default", overrides={"research.leak": ["quarter_mu"]})
    with pytest.raises(ConfigError, match=r"look-ahead.*refused outside a replay") as e:
        leak_future(s)
    assert "\n" not in e.value.one_line()
    frame = pd.DataFrame({"A": [1.0, 2.0]})
    with leak_replay(frame):
        assert leak_future(s) is frame
    with pytest.raises(ConfigError):  # the permission ends with the block
        leak_future(s)
    assert leak_future(load_settings(profile="default")) is None


def test_engine_context_refuses_a_leak_mode_outside_a_replay(gbm_frame: pd.DataFrame) -> None:
    from agent.data.store import PriceStore
    from agent.engine import EngineContext

    s = load_settings(
        profile="default", overrides={"research.leak": ["quarter_vol"], "forecast.model": "none"}
    )
    store = PriceStore.from_frame(gbm_frame, source="test")
    with pytest.raises(ConfigError, match=r"research\.leak"):
        EngineContext.create(s, store)
    with leak_replay(gbm_frame):
        ctx = EngineContext.create(s, store)
    assert ctx.leak_future is gbm_frame


def test_no_leak_mode_leaves_every_strategy_digest_unchanged() -> None:
    plain = load_settings(profile="default")
    assert (
        plain.strategy_digest()
        == load_settings(profile="default", overrides={"research.leak": []}).strategy_digest()
    )
    leaky = load_settings(profile="default", overrides={"research.leak": ["quarter_vol"]})
    assert leaky.strategy_digest() != plain.strategy_digest()


def _garch_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0003, 0.012, size=(n, 3))
    idx = pd.bdate_range("2020-01-01", periods=n)
    return pd.DataFrame(100 * np.cumprod(1 + r, axis=0), index=idx, columns=["A", "B", "C"])


def test_quarter_vol_reads_the_returns_after_asof_and_keeps_the_correlation() -> None:
    px = _garch_frame()
    prm = GarchParams(omega=2e-6, alphas=(0.08,), betas=(0.9,), mu=0.0, backcast=1.4e-4).to_dict()
    params = {"A": prm, "B": prm}  # C fell back to EWMA: its variance is kept
    cov = np.array([[1.0, 0.3, 0.1], [0.3, 2.0, 0.2], [0.1, 0.2, 1.5]]) * 1e-4
    t = 300
    asof = px.index[t].date()
    shocked = px.copy()
    shocked.iloc[t + 1 :] *= np.cumprod(
        1 + np.random.default_rng(5).normal(0, 0.03, size=(len(px) - t - 1, 3)), axis=0
    )
    a, vols_a, steps = quarter_vol_cov(cov, params, px, ["A", "B", "C"], asof, 63)
    b, vols_b, _ = quarter_vol_cov(cov, params, shocked, ["A", "B", "C"], asof, 63)
    assert steps == 63 and set(vols_a) == {"A", "B"}
    assert vols_a["A"] != vols_b["A"] and vols_b["A"] > vols_a["A"]  # wilder future, larger "forecast" vol
    assert a[2, 2] == cov[2, 2] == b[2, 2]
    corr = lambda m: m / np.sqrt(np.outer(np.diag(m), np.diag(m)))  # noqa: E731
    np.testing.assert_allclose(corr(a), corr(cov), atol=1e-12)
