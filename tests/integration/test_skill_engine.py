"""Skill-aware allocation through the real decision step on real prices (issue 9)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.errors import ConfigError
from agent.settings import load_settings

SKILL = {"allocation.method": "mean_variance", "allocation.risk_aversion": 2.5, "skill.enabled": True}


def _ctx(prices: pd.DataFrame, **over: object):
    from agent.data.store import PriceStore
    from agent.engine import EngineContext

    s = load_settings(profile="default", overrides={**SKILL, **over})
    return s, EngineContext.create(s, PriceStore.from_frame(prices, source="test"))


def _decide(s, ctx, asof: dt.date):
    from agent.decision import PortfolioState
    from agent.engine import decide

    return decide(asof, PortfolioState.initial(s.universe.tickers, 1e6), s, ctx)


def test_zero_skill_holds_the_reference_before_overlays(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    """First decisions: no matured forecast and an un-significant validation record → mu = pi → 1/N."""
    s, ctx = _ctx(sector_prices, **{"skill.gate_t": 50.0})
    d = _decide(s, ctx, dt.date(2021, 3, 5))
    rec = d.record
    sk = rec["skill"]
    assert sk["skill"]["used_ic"] == 0.0 and sk["skill"]["gated"] is True
    assert sk["posterior_mu"] == sk["prior_pi"]
    w = np.array([rec["optimizer"]["weights"][t] for t in s.universe.tickers])
    np.testing.assert_allclose(w, np.full(len(w), 1 / len(w)), atol=1e-6)
    # the record shows what the decision trusted and why
    assert sk["skill"]["validation"]["source"] == "validation" and sk["skill"]["live"]["n"] == 0
    assert set(sk) >= {"reference", "prior_pi", "views", "skill", "posterior_mu", "mu_used"}


def test_with_skill_the_weights_tilt_toward_the_forecast(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    s, ctx = _ctx(sector_prices, **{"skill.gate_t": 0.0, "skill.active_risk_aversion": 25.0})
    d = _decide(s, ctx, dt.date(2021, 3, 5))
    sk = d.record["skill"]
    used = sk["skill"]["used_ic"]
    w = np.array([d.record["optimizer"]["weights"][t] for t in s.universe.tickers])
    z = np.array([sk["views"]["z"][t] for t in s.universe.tickers])
    if used > 0:  # a positive measured IC: the tilt follows the forecast's ranking
        assert np.corrcoef(w - 1 / len(w), z)[0, 1] > 0.5
    else:
        np.testing.assert_allclose(w, 1 / len(w), atol=1e-6)


def test_oracle_is_refused_outside_a_replay(isolated_env: Path, sector_prices: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="look-ahead"):
        _ctx(sector_prices, **{"forecast.oracle_ic": 0.1})
    from agent.skill.stage import oracle_replay

    with oracle_replay(sector_prices):
        s, ctx = _ctx(sector_prices, **{"forecast.oracle_ic": 0.1, "forecast.model": "none"})
    d = _decide(s, ctx, dt.date(2021, 3, 5))
    assert d.record["forecast"]["source"] == "oracle-0.1"


def test_oracle_setting_on_the_cli_is_one_line_exit_2(isolated_env: Path, shared_data: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_") or k.startswith("AGENT_SHARED")}
    env.update(
        AGENT_NO_PROGRESS="1",
        AGENT_FORECAST__ORACLE_IC="0.1",
        AGENT_DATA_DIR=str(isolated_env / "d"),
        AGENT_STATE_DIR=str(isolated_env / "s"),
    )
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "backtest",
            "--replay",
            "2021",
            "--prices",
            str(shared_data / "sector_etfs_daily.csv"),
            "--out",
            str(isolated_env / "o"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "look-ahead" in p.stderr


def test_placebo_replaces_the_forecast_for_every_path(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    s, ctx = _ctx(
        sector_prices, **{"forecast.placebo": 3, "skill.enabled": False, "allocation.method": "max_sharpe"}
    )
    d = _decide(s, ctx, dt.date(2021, 3, 5))
    f = d.record["forecast"]
    assert f["source"] == "placebo-3" and f["used_mu"] != f["mu"]
    s2, ctx2 = _ctx(sector_prices, **{"forecast.placebo": 3})
    assert _decide(s2, ctx2, dt.date(2021, 3, 5)).record["forecast"]["used_mu"] == f["used_mu"]


def test_restart_with_the_saved_tracker_changes_nothing(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    """Daemon-style run with the tracker persisted beside the ledger: a restart half-way gives the same
    decision records as one uninterrupted process; a restart that forgets the tracker does not."""
    from agent.data.calendar import schedule
    from agent.decision import canonical_json
    from agent.runner import open_ledger, run_slot
    from agent.skill.store import flush, load_into, tracker_from_records

    dates = [d.date() for d in schedule("weekly", dt.date(2021, 1, 4), dt.date(2021, 9, 30))]
    over = {"skill.gate_t": 0.0, "skill.min_live": 5}

    def run(path: Path, restart_at: int | None, reload: bool = True) -> list[str]:
        s, ctx = _ctx(sector_prices, **over)
        ledger = open_ledger(path, s, durable=False)
        out: list[str] = []
        records: list[dict] = []
        for i, asof in enumerate(dates):
            if i == restart_at:
                ledger.close()
                s, ctx = _ctx(sector_prices, **over)
                ledger = open_ledger(path, s, durable=False)
                if reload:
                    load_into(ctx, path)
            res = run_slot(ledger, ctx, asof, keep_timings=False)
            flush(ctx, path)
            assert res.decision is not None
            out.append(json.dumps(res.decision.record["skill"]["skill"], sort_keys=True))
            records.append(json.loads(canonical_json(res.decision.record)))
        ledger.close()
        if restart_at is None:  # the hash-chained log alone rebuilds the tracker exactly
            rebuilt = tracker_from_records(records, s.skill.halflife)
            assert rebuilt.obs == ctx.skill.tracker.obs and len(rebuilt.obs) == len(dates)
        return out

    a = run(isolated_env / "a.sqlite", None)
    b = run(isolated_env / "b.sqlite", len(dates) // 2)
    assert a == b
    c = run(isolated_env / "c.sqlite", len(dates) // 2, reload=False)
    assert c != a  # forgetting the tracker is visible: the test can fail
    assert json.loads(a[-1])["live"]["n"] >= 20


def test_status_shows_validation_and_live_skill(tmp_path: Path, shared_data: Path) -> None:
    """The drift monitor on the operator's screen: `agent status` after `run --once` slots of the skill-aware
    default prints the model's validation skill next to its live skill and the IC the allocation used, as the
    last decision recorded them."""
    import json

    from tests.integration.agentproc import agent, agent_env

    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'profile = "default"\n[data]\nsource = "file"\nprices_file = "{shared_data / "sector_etfs_daily.csv"}"\n'
    )
    env = agent_env(tmp_path, shared_data)
    for slot in ("2024-01-05", "2024-01-12"):
        r = agent(env, "run", "--once", "--asof", slot, timeout=300)
        assert r.returncode == 0, r.stderr[-1500:]
    st = json.loads(agent(env, "status", "--json").stdout)
    last = json.loads((tmp_path / "state" / "decisions.jsonl").read_text().splitlines()[-1])
    recorded = last.get("record", last)["skill"]["skill"]
    assert st["skill"] == recorded
    text = agent(env, "status").stdout
    line = next(x for x in text.splitlines() if x.startswith("skill"))
    assert f"validation IC {recorded['validation']['ic']:+.3f}" in line
    assert f"live IC {recorded['live']['ic']:+.3f}" in line and "used IC" in line
