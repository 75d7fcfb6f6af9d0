"""The leakage audit's research modes on real data and real models (issue 13 item 5).

The inverse of the point-in-time tests: a look-ahead decision at t must change when prices after t change (it
really uses the future), while the leak-free decision at t stays byte-identical. And `agent run --once` refuses
a look-ahead setting with one line and exit 2.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.settings import load_settings

pytestmark = pytest.mark.shared_data

REPO = Path(__file__).resolve().parents[2]
ASOF = dt.date(2021, 3, 5)
# the default profile (shipped models, GARCH) on the study-faithful path, so mu and sigma reach the weights
PLAIN = {"skill.enabled": False, "allocation.method": "max_sharpe"}


def _shocked_after(frame: pd.DataFrame, asof: dt.date, seed: int = 11) -> pd.DataFrame:
    out = frame.copy()
    after = out.index > pd.Timestamp(asof)
    noise = np.random.default_rng(seed).normal(0.0, 0.02, size=(int(after.sum()), out.shape[1]))
    out.loc[after] = out.loc[after].to_numpy() * np.cumprod(1 + noise, axis=0)
    return out


def _decide(frame: pd.DataFrame, overrides: dict) -> dict:
    from agent.data.store import PriceStore
    from agent.decision import PortfolioState
    from agent.engine import EngineContext, decide, decision_without_timings
    from agent.research.leak import leak_replay

    s = load_settings(profile="default", overrides={**PLAIN, **overrides})
    store = PriceStore.from_frame(frame, source="test")
    with leak_replay(store.load()):
        ctx = EngineContext.create(s, store)
    d = decide(ASOF, PortfolioState.initial(s.universe.tickers, 1e6), s, ctx)
    return decision_without_timings(d.record)


def test_a_look_ahead_decision_changes_with_the_future_and_the_leak_free_one_does_not(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    shocked = _shocked_after(sector_prices, ASOF)
    free_a, free_b = _decide(sector_prices, {}), _decide(shocked, {})
    assert free_a == free_b  # point in time: the future is invisible
    assert "look_ahead" not in free_a

    leak = {"research.leak": ["quarter_mu", "quarter_vol"]}
    a, b = _decide(sector_prices, leak), _decide(shocked, leak)
    la, lb = a["look_ahead"], b["look_ahead"]
    assert la["modes"] == ["quarter_mu", "quarter_vol"] and "LOOK-AHEAD" in la["note"]
    assert la["quarter_mu"]["steps"] == lb["quarter_mu"]["steps"] == 5  # weekly: the coming 5 sessions
    assert la["quarter_mu"]["mu"] != lb["quarter_mu"]["mu"]
    assert la["quarter_vol"]["garch_vols"] != lb["quarter_vol"]["garch_vols"]
    assert (
        a["optimizer"]["weights"] != b["optimizer"]["weights"]
    )  # the decision at t moved with prices after t
    # the first of the averaged one-step forecasts is the one available at t: the rest is the look-ahead
    assert a["inputs"]["prices"] == b["inputs"]["prices"]


def _fold_models(dst: Path, weeks: list[str]) -> None:
    import onnx

    src = REPO / "exported_models" / "sector-rnn" / "sector-rnn-2019-12-27.onnx"
    for k in (0, 1):
        m = onnx.load(str(src))
        for p in m.metadata_props:
            if p.key == "model_id":
                p.value = f"sector-rnn-kfold{k}"
        e = m.metadata_props.add()
        e.key, e.value = "leak", json.dumps({"procedure": "test folds", "heldout": weeks[k::2]})
        dst.mkdir(parents=True, exist_ok=True)
        onnx.save(m, str(dst / f"sector-rnn-kfold{k}.onnx"))


def test_a_models_replay_takes_each_week_from_its_fold_and_is_labelled(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    from agent.backtest import run_backtest
    from agent.data.store import PriceStore
    from agent.errors import ModelError

    weeks = [str(d.date()) for d in pd.date_range("2021-01-01", "2021-03-31", freq="W-FRI")]
    models = isolated_env / "folds"
    _fold_models(models, weeks)
    store = PriceStore.from_frame(sector_prices, source="test")
    over = {"forecast.models_dir": str(models), "execution.cost_bps": 0.0}
    with pytest.raises(ModelError, match="trained with look-ahead"):  # never without the research mode
        run_backtest(
            load_settings(profile="sector-rnn", overrides=over),
            store,
            dt.date(2021, 1, 4),
            dt.date(2021, 3, 26),
            isolated_env / "plain",
            write_report=False,
        )
    s = load_settings(profile="sector-rnn", overrides={**over, "research.leak": ["models"]})
    out = isolated_env / "leaky"
    run_backtest(s, store, dt.date(2021, 1, 4), dt.date(2021, 3, 26), out, write_report=True)
    recs = [json.loads(x)["record"] for x in (out / "decisions.jsonl").read_text().splitlines()]
    assert len(recs) >= 10
    for r in recs:
        wk = dt.date.fromisoformat(r["asof"]).isocalendar()[1]
        held = [i for i, w in enumerate(weeks) if dt.date.fromisoformat(w).isocalendar()[1] == wk]
        assert r["forecast"]["model_id"] == f"sector-rnn-kfold{held[0] % 2}"
        assert r["look_ahead"]["model"] == {"id": r["forecast"]["model_id"], "procedure": "test folds"}
    detail = json.loads((out / "metrics_detail.json").read_text())
    assert detail["look_ahead"]["modes"] == ["models"]
    assert "LOOK-AHEAD research replay" in (out / "report.html").read_text()


@pytest.mark.parametrize(
    "args", [("run", "--once", "--asof", "2021-04-23"), ("run",)], ids=["once", "daemon"]
)
def test_agent_run_refuses_a_look_ahead_mode_with_one_line(
    tmp_path: Path, shared_data: Path, args: tuple[str, ...]
) -> None:
    from tests.integration.agentproc import agent, agent_env

    env = agent_env(tmp_path, shared_data, AGENT_RESEARCH__LEAK='["quarter_mu"]')
    r = agent(env, *args, timeout=300)
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("agent: error:")]
    assert len(errors) == 1 and "look-ahead" in errors[0] and "refused outside a replay" in errors[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "state" / "ledger.sqlite").exists()  # refused before anything was written
