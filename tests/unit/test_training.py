"""training/: leak-free datasets, a tiny model that learns, the rebalance head vs the base rate, export parity,
metadata round trip, walk-forward dates and determinism. Tiny models only: the whole file runs in seconds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from agent.features import FeatureSpec  # noqa: E402
from agent.forecast import REQUIRED_KEYS, ModelRegistry  # noqa: E402
from training.datasets import ProfileConfig, load_config, load_prices, make_dataset  # noqa: E402
from training.export import REQUIRED_KEYS as EXPORT_KEYS  # noqa: E402
from training.export import ExportError, _to_onnx_bytes, export_model, parity_check, write_card  # noqa: E402
from training.models import build_model  # noqa: E402
from training.train import evaluate, fit, train_one  # noqa: E402
from training.walkforward import retrain_dates  # noqa: E402

TICKERS = ("AAA", "BBB", "CCC", "DDD")


def synthetic_prices(n: int = 1500, seed: int = 0, tickers: tuple[str, ...] = TICKERS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2012-01-02", periods=n, name="date")
    r = rng.normal(0.0003, 0.01, size=(n, len(tickers)))
    return pd.DataFrame(100 * np.exp(np.cumsum(r, axis=0)), index=idx, columns=list(tickers))


def tiny_config(**kw: object) -> ProfileConfig:
    base = ProfileConfig(
        profile="tiny",
        data_file="synthetic",
        tickers=TICKERS,
        kind="returns",
        target="fwd_mean_simple",
        horizon=5,
        features=FeatureSpec(("ret", "rsi", "vol"), lookback=10, rsi_warmup=20, vol_window=5),
        years=(2015, 2016),
        model={"units": 8, "layers": 1, "dropout": 0.1},
        train={"max_epochs": 3, "patience": 3, "seed": 1, "lr": 0.003, "min_samples": 40},
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def tiny_export(
    out_dir: Path, *, tickers: tuple[str, ...] = TICKERS, train_end: str = "2015-12-31", **kw: object
) -> Path:
    """Train and export a tiny model on synthetic prices (used by the forecast tests too)."""
    cfg = tiny_config(tickers=tickers, **kw)
    tm = train_one(cfg, synthetic_prices(tickers=tickers), train_end, verbose=False)
    path = export_model(tm, out_dir)
    write_card(tm, path)
    return path


def test_dataset_obeys_the_leak_rule() -> None:
    cfg = tiny_config()
    p = synthetic_prices()
    ds = make_dataset(p, cfg, "2015-06-30")
    assert ds.train_end == pd.Timestamp("2015-06-30")
    ends = np.concatenate([ds.train_idx, ds.val_idx])
    assert (ends + cfg.horizon <= len(ds.dates) - 1).all()  # t + H <= train_end
    assert (
        ds.dates[ds.val_idx[0]] == ds.valid_from and ds.val_idx[0] > ds.train_idx[-1] + cfg.horizon - 1
    )  # purged
    assert len(ds.val_idx) == pytest.approx(0.2 * len(ends) / 1.0, rel=0.1)
    # rewriting prices after train_end changes nothing (targets, inputs, scalers, digest)
    q = p.copy()
    q.loc["2015-07-01":] *= 3.0
    ds2 = make_dataset(q, cfg, "2015-06-30")
    np.testing.assert_array_equal(ds.Z, ds2.Z)
    np.testing.assert_array_equal(ds.y["ret"], ds2.y["ret"])
    assert ds.digest == ds2.digest
    # target = mean simple return over the next H sessions, by hand
    t = int(ds.train_idx[5])
    r = p.pct_change().to_numpy()
    np.testing.assert_allclose(ds.y_raw[t], r[t + 1 : t + 6].mean(axis=0), rtol=1e-12)


def test_tiny_model_learns_on_real_data(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SHARED_DATA", str(shared_data))
    cfg = load_config("default")
    cfg = cfg.replace(
        tickers=("XLK", "XLF", "XLE"),
        features=FeatureSpec(("ret", "rsi", "vol"), lookback=20, rsi_warmup=30),
        train_start="2012-01-01",
        model={"units": 8, "layers": 1, "dropout": 0.0},
        train={**cfg.train, "max_epochs": 6, "patience": 6, "lr": 0.003},
    )
    ds = make_dataset(load_prices(cfg), cfg, "2016-12-31")
    model = build_model(cfg.kind, ds.n_inputs, ds.n_outputs, cfg.model)
    res = fit(model, ds, verbose=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]  # it learns something (standardized 5-day targets)
    assert min(h["val_loss"] for h in res.history) == res.best_val_loss


def _regime_prices(n_weeks: int = 700, seed: int = 0) -> pd.DataFrame:
    """Daily prices whose volatility switches between long calm and turbulent regimes (planted signal)."""
    rng = np.random.default_rng(seed)
    vol_w, state = [], 0
    for _ in range(n_weeks):
        if rng.random() < (0.05 if state == 0 else 0.12):
            state = 1 - state
        vol_w.append(0.006 if state == 0 else 0.03)
    vol = np.repeat(vol_w, 5)
    idx = pd.bdate_range("2005-01-03", periods=len(vol), name="date")
    r = rng.normal(0, 1, size=(len(vol), 3)) * vol[:, None]
    return pd.DataFrame(100 * np.exp(np.cumsum(r, axis=0)), index=idx, columns=["AAA", "BBB", "CCC"])


def test_rebalance_head_beats_base_rate_on_planted_regimes() -> None:
    p = _regime_prices()
    cfg = tiny_config(
        tickers=("AAA", "BBB", "CCC"),
        kind="rebalance_returns",
        target="next_week_logret",
        features=FeatureSpec(("logret", "vol"), lookback=8, frequency="weekly", vol_window=4),
        model={"units": 16, "layers": 1, "dropout": 0.0},
        train={"max_epochs": 40, "patience": 8, "seed": 3, "lr": 0.01, "min_samples": 40},
        rebalance={"vol_weeks": 4, "k": 0.5, "min_periods": 26},
    )
    ds = make_dataset(p, cfg, str(p.index[-1].date()))
    model = build_model(cfg.kind, ds.n_inputs, ds.n_outputs, cfg.model)
    fit(model, ds, verbose=False)
    m = evaluate(model, ds)
    assert 0.1 < m["base_rate"] < 0.9
    assert m["accuracy_next_week"] > m["majority_accuracy"] + 0.1, m


def test_export_parity_metadata_round_trip_and_card(tmp_path: Path) -> None:
    path = tiny_export(tmp_path / "tiny")
    assert path.name == "tiny-2015-12-31.onnx" and path.with_suffix(".md").exists()
    reg = ModelRegistry(tmp_path / "tiny")
    assert not reg.rejected and [m.model_id for m in reg.models] == ["tiny-2015-12-31"]
    info = reg.models[0]
    assert set(REQUIRED_KEYS) <= set(info.metadata) and set(EXPORT_KEYS) == set(REQUIRED_KEYS)
    assert info.spec == tiny_config().features and info.tickers == TICKERS and info.kind == "returns"
    meta = info.metadata
    assert json.loads(meta["target"]) == {
        "type": "fwd_mean_simple",
        "horizon_sessions": 5,
        "frequency": "daily",
    }
    assert json.loads(meta["input_scaler"])["type"] == "minmax"
    assert json.loads(meta["target_scaler"])["type"] == "standard"
    assert meta["train_start"] < meta["valid_from"] <= meta["train_end"] == "2015-12-31"
    assert len(meta["data_sha256"]) == 64 and "mse_zero" in json.loads(meta["metrics"])["val"]
    assert json.loads(meta["config"])["model"]["units"] == 8
    # onnxruntime reproduces torch at batch 1 and 5 on held-out windows
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path))
    assert sess.get_inputs()[0].shape[0] == "batch"


def _tiny_model_and_windows() -> tuple[torch.nn.Module, np.ndarray]:
    torch.manual_seed(0)
    model = build_model("rebalance_returns", 6, 3, {"units": 8}).eval()
    x = np.random.default_rng(0).normal(size=(7, 5, 6)).astype(np.float32)
    return model, x


def test_parity_gate_accepts_good_and_refuses_wrong_graph() -> None:
    model, x = _tiny_model_and_windows()
    good = _to_onnx_bytes(model, torch.from_numpy(x[:2]), ["rebalance_prob", "returns"])
    assert parity_check(model, good, x) <= 1e-5
    torch.manual_seed(1)
    other = build_model("rebalance_returns", 6, 3, {"units": 8}).eval()
    with pytest.raises(ExportError, match="not written"):
        parity_check(other, good, x)


@pytest.mark.parametrize("kind", ["returns", "weights", "rebalance_returns"])
def test_recurrent_export_works_for_any_batch(kind: str) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = build_model(kind, 4, 3, {"units": 6, "layers": 2 if kind == "returns" else 1}).eval()
    x = np.random.default_rng(1).normal(size=(9, 7, 4)).astype(np.float32)
    outs = (
        ["returns"]
        if kind == "returns"
        else ["weights"]
        if kind == "weights"
        else ["rebalance_prob", "returns"]
    )
    sess = ort.InferenceSession(_to_onnx_bytes(model, torch.from_numpy(x[:1]), outs))  # traced at batch 1
    for b in (1, 3, 9):
        with torch.no_grad():
            ref = model(torch.from_numpy(x[:b]))
        ref = ref if isinstance(ref, tuple) else (ref,)
        for r, g in zip(ref, sess.run(None, {"x": x[:b]}), strict=True):
            np.testing.assert_allclose(g, r.numpy(), atol=1e-5)


def test_exports_are_deterministic(tmp_path: Path) -> None:
    a = tiny_export(tmp_path / "a").read_bytes()
    b = tiny_export(tmp_path / "b").read_bytes()
    assert a == b


def test_retrain_dates_yearly_and_every_n() -> None:
    cfg = tiny_config(years=(2013, 2014, 2017))
    idx = synthetic_prices(1000).index  # 2012-01-02 .. 2015-10
    yearly = retrain_dates(idx, cfg, "yearly")
    assert [str(d.date()) for d in yearly] == ["2013-12-31", "2014-12-31"]  # 2017: no data after it
    every = retrain_dates(idx, cfg, "every-20", start="2015-01-01")
    assert every[0] == pd.Timestamp("2014-12-31") and len(every) >= 10
    gaps = np.diff(idx.get_indexer(pd.DatetimeIndex(every)))
    assert (gaps == 20).all()
    with pytest.raises(SystemExit):
        retrain_dates(idx, cfg, "monthly")


def test_window_cadence_limits_training_rows() -> None:
    cfg = tiny_config(window=250)
    ds = make_dataset(synthetic_prices(), cfg, "2015-06-30")
    ends = np.concatenate([ds.train_idx, ds.val_idx])
    assert ends.min() >= len(ds.dates) - 250 and len(ends) <= 250


def test_cli_help() -> None:
    from training.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
