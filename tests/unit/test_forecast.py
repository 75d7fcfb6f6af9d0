"""agent.forecast: registry selection by date, validation of files/metadata/live inputs, inference, no torch."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from agent.errors import DataError, ModelError  # noqa: E402
from agent.features import FeatureSpec  # noqa: E402
from agent.forecast import ModelRegistry, OnnxForecaster, read_metadata  # noqa: E402
from tests.unit.test_training import TICKERS, synthetic_prices, tiny_config, tiny_export  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny trained model, copied with rewritten train_end/model_id to make a walk-forward folder."""
    d = tmp_path_factory.mktemp("models") / "tiny"
    src = tiny_export(d, train_end="2014-12-31")
    proto = onnx.load(str(src))
    for te in ("2013-12-31", "2015-12-31"):
        for e in proto.metadata_props:
            if e.key == "train_end":
                e.value = te
            if e.key == "model_id":
                e.value = f"tiny-{te}"
        onnx.save(proto, str(d / f"tiny-{te}.onnx"))
    return d


def test_registry_selects_newest_model_strictly_before_asof(model_dir: Path) -> None:
    reg = ModelRegistry(model_dir)
    assert [str(m.train_end) for m in reg.models] == ["2013-12-31", "2014-12-31", "2015-12-31"]
    assert reg.select(dt.date(2014, 1, 2)).model_id == "tiny-2013-12-31"
    assert reg.select("2014-12-31").model_id == "tiny-2013-12-31"  # train_end == asof is not allowed
    assert reg.select(dt.date(2015, 1, 1)).model_id == "tiny-2014-12-31"
    assert reg.select(dt.date(2030, 1, 1)).model_id == "tiny-2015-12-31"
    with pytest.raises(ModelError, match=r"no model .* before 2013-12-31"):
        reg.select(dt.date(2013, 12, 31))
    with pytest.raises(ModelError, match="no model"):
        ModelRegistry(model_dir / "missing").select(dt.date(2020, 1, 1))


def test_forecast_outputs_and_point_in_time(model_dir: Path) -> None:
    prices = synthetic_prices()
    fc = OnnxForecaster(model_dir, TICKERS, feature_spec=tiny_config().features, kind="returns")
    asof = dt.date(2015, 3, 2)
    r = fc.forecast(prices, asof)
    assert r.model_id == "tiny-2014-12-31" and r.kind == "returns" and r.horizon == 5
    assert r.mu is not None and r.mu.shape == (4,) and np.isfinite(r.mu).all()
    assert np.abs(r.mu).max() < 0.05  # mean daily simple return: a small number, not a scaled value
    assert r.weights is None and r.rebalance_prob is None and len(r.inputs_digest) == 64
    assert r.model_sha256 == read_metadata(r.model_path)[1]
    # rows after asof are ignored; the same inputs give the same digest and forecast
    future = prices.copy()
    future.loc["2015-03-03":] *= 1.7
    r2 = fc.forecast(future, asof)
    assert r2.inputs_digest == r.inputs_digest and np.array_equal(r2.mu, r.mu)
    # ticker order of the universe is respected
    rev = OnnxForecaster(model_dir, TICKERS[::-1]).forecast(prices, asof)
    assert rev.mu is not None and np.array_equal(rev.mu, r.mu[::-1])
    assert set(r.to_dict()["mu"]) == set(TICKERS)


def test_short_history_is_a_data_error(model_dir: Path) -> None:
    prices = synthetic_prices().loc[:"2015-01-20"].iloc[-15:]
    with pytest.raises(DataError, match="not enough history"):
        OnnxForecaster(model_dir, TICKERS).forecast(prices, dt.date(2015, 1, 20))


def test_model_for_other_tickers_or_features_is_rejected(model_dir: Path) -> None:
    prices = synthetic_prices()
    with pytest.raises(ModelError, match=r"other tickers.*EEE"):
        OnnxForecaster(model_dir, ("AAA", "BBB", "CCC", "EEE")).forecast(prices, dt.date(2015, 3, 2))
    with pytest.raises(ModelError, match="lookback: model 10 vs expected 60"):
        spec = FeatureSpec(("ret", "rsi", "vol"), lookback=60, rsi_warmup=20, vol_window=5)
        OnnxForecaster(model_dir, TICKERS, feature_spec=spec).forecast(prices, dt.date(2015, 3, 2))
    with pytest.raises(ModelError, match="kind returns, expected weights"):
        OnnxForecaster(model_dir, TICKERS, kind="weights").forecast(prices, dt.date(2015, 3, 2))


def test_truncated_and_corrupt_files_are_rejected(model_dir: Path, tmp_path: Path) -> None:
    good = (model_dir / "tiny-2014-12-31.onnx").read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "trunc.onnx").write_bytes(good[: len(good) // 2])
    (bad / "noise.onnx").write_bytes(np.random.default_rng(0).bytes(4000))
    (bad / "empty.onnx").write_bytes(b"")
    for name in ("trunc.onnx", "noise.onnx", "empty.onnx"):
        with pytest.raises(ModelError) as e:
            ModelRegistry.load(bad / name)
        assert "\n" not in e.value.one_line() and name in e.value.one_line()
    reg = ModelRegistry(bad)
    assert reg.models == [] and len(reg.rejected) == 3
    # metadata missing a required key
    proto = onnx.load_from_string(good)
    keep = [(e.key, e.value) for e in proto.metadata_props if e.key != "tickers"]
    del proto.metadata_props[:]
    for k, v in keep:
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(bad / "nometa.onnx"))
    with pytest.raises(ModelError, match="lacks metadata keys: tickers"):
        ModelRegistry.load(bad / "nometa.onnx")
    # a graph whose input shape disagrees with its metadata
    proto = onnx.load_from_string(good)
    for e in proto.metadata_props:
        if e.key == "feature_spec":
            e.value = json.dumps({**json.loads(e.value), "lookback": 11})
    onnx.save(proto, str(bad / "shape.onnx"))
    with pytest.raises(ModelError, match="does not match its metadata"):
        ModelRegistry.load(bad / "shape.onnx")


def test_weekly_log_return_conversion() -> None:
    from agent.forecast import ModelInfo

    info = ModelInfo(
        path=Path("x.onnx"),
        model_id="m",
        profile="p",
        kind="rebalance_returns",
        train_end=dt.date(2020, 1, 1),
        tickers=("A",),
        spec=FeatureSpec(("logret",), lookback=13, frequency="weekly"),
        horizon=5,
        target={"type": "next_week_logret", "horizon_sessions": 5},
        sha256="",
        metadata={},
    )
    mu = OnnxForecaster._to_mean_daily_simple(np.array([np.log(1.05)]), info)
    assert (1 + mu[0]) ** 5 == pytest.approx(1.05)


def test_forecast_in_fresh_interpreter_never_imports_torch(model_dir: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys, datetime as dt
        import numpy as np, pandas as pd
        import agent.forecast as f
        assert "onnxruntime" not in sys.modules, "onnxruntime must be imported lazily"
        rng = np.random.default_rng(0)
        idx = pd.bdate_range("2012-01-02", periods=1500, name="date")
        r = rng.normal(0.0003, 0.01, size=(1500, 4))
        prices = pd.DataFrame(100 * np.exp(np.cumsum(r, axis=0)), index=idx, columns={list(TICKERS)!r})
        res = f.OnnxForecaster({str(model_dir)!r}, {TICKERS!r}).forecast(prices, dt.date(2015, 3, 2))
        assert np.isfinite(res.mu).all()
        assert "torch" not in sys.modules and "training" not in sys.modules, sorted(sys.modules)
        print("ok", res.model_id)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok tiny-2014-12-31" in out.stdout


def test_a_corrupt_newest_model_is_a_recorded_substitution(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The newest model truncated: the forecast runs on the older one, names the skipped file in the result
    (`skipped`, and `skipped_models` in to_dict) and logs one `model.substituted` warning."""
    import shutil

    from agent.forecast import _WARNED
    from agent.logging import configure_logging

    d = tmp_path / "m"
    d.mkdir()
    for te in ("2013-12-31", "2014-12-31"):
        shutil.copy(model_dir / f"tiny-{te}.onnx" if te != "2014-12-31" else _src(model_dir), d)
    newest = (model_dir / "tiny-2015-12-31.onnx").read_bytes()
    (d / "tiny-2015-12-31.onnx").write_bytes(newest[: len(newest) // 2])
    configure_logging("INFO", "json", None)
    _WARNED.clear()
    prices = synthetic_prices()
    fc = OnnxForecaster(d, TICKERS)
    r = fc.forecast(prices, dt.date(2016, 3, 1))
    assert str(r.train_end) == "2014-12-31"
    assert [name for name, _ in r.skipped] == ["tiny-2015-12-31.onnx"]
    assert "corrupt or truncated" in r.skipped[0][1]
    assert r.to_dict()["skipped_models"][0][0] == "tiny-2015-12-31.onnx"
    fc.forecast(prices, dt.date(2016, 3, 2))  # the warning is said once per process, not at every decision
    err = capsys.readouterr().err
    assert err.count('"model.substituted"') == 1 and "tiny-2015-12-31.onnx" in err
    # before the corrupt file's date it could not have been chosen: no substitution
    early = fc.forecast(prices, dt.date(2015, 6, 1))
    assert early.skipped == () and "skipped_models" not in early.to_dict()


def _src(model_dir: Path) -> Path:
    """The model file with train_end 2014-12-31 (the fixture's original export)."""
    for p in model_dir.glob("*.onnx"):
        if read_metadata(p)[0]["train_end"] == "2014-12-31":
            return p
    raise AssertionError("fixture model missing")
