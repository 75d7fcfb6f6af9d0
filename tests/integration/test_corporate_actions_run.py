"""Corporate actions through the real `run --once` path (one AgentRunner per slot, as one process per slot).

Between two scheduled slots the configured price file is re-issued with history re-adjusted as a vendor does
after a 4:1 split (XLK: every close x 0.25) and a 1% dividend (XLF: every close x 0.99). The store detects the
re-adjustment and re-reads the history; the ledger rebases the held shares. The NAV path must equal a control
run on unchanged history to 1e-9, and the rebase must be in the ledger's events and in the decision log.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SLOTS = ["2020-01-10", "2020-01-17", "2020-01-24", "2020-01-31"]
FACTORS = {"XLK": 0.25, "XLF": 0.99}


def _settings(root: Path, prices: Path):  # type: ignore[no-untyped-def]
    from agent.settings import load_settings

    cfg = root / "agent.toml"
    cfg.write_text(
        'profile = "equal-weight"\n'
        f'[paths]\nstate_dir = "{root / "state"}"\ndata_dir = "{root / "data"}"\n'
        f'[data]\nsource = "file"\nprices_file = "{prices}"\n'
    )
    return load_settings(cfg)


def _book(root: Path, prices: Path, frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, list[dict]]:
    """Run the slots in order, writing frames[i] to the price file before slot i."""
    from agent.ledger import open_reader
    from agent.service.job import run_once

    for slot, df in zip(SLOTS, frames, strict=True):
        df.to_csv(prices, index_label="date", float_format="%.10g")
        out = run_once(_settings(root, prices), dt.date.fromisoformat(slot))
        assert out.exit_code == 0, out.message
    led = open_reader(root / "state" / "ledger.sqlite")
    assert led is not None
    try:
        return led.nav_frame(), led.events("corporate_action")
    finally:
        led.close()


@pytest.fixture()
def no_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each run's own config file only (AGENT_STATE_DIR etc. would override it)."""
    import os

    for k in list(os.environ):
        if k.startswith("AGENT_") and k not in ("AGENT_SHARED_DATA", "AGENT_REQUIRE_SHARED_DATA"):
            monkeypatch.delenv(k, raising=False)


@pytest.mark.usefixtures("no_agent_env")
def test_split_and_dividend_between_two_runs_keep_the_nav_path(tmp_path: Path, sector_prices) -> None:
    from agent.decisionlog import DecisionLog
    from agent.ledger import open_reader

    base = sector_prices.loc["2018-01-01":"2020-03-31"]
    adjusted = base.copy()
    for t, f in FACTORS.items():
        adjusted[t] = adjusted[t] * f
    ctrl, treat = tmp_path / "control", tmp_path / "treated"
    ctrl.mkdir()
    treat.mkdir()
    nav_c, ev_c = _book(ctrl, ctrl / "prices.csv", [base] * 4)
    nav_t, ev_t = _book(treat, treat / "prices.csv", [base, base, adjusted, adjusted])

    assert ev_c == []
    assert sorted(e["ticker"] for e in ev_t) == sorted(FACTORS)
    for e in ev_t:
        assert e["date"] == SLOTS[1]  # the last session the book had marked
        assert e["detail"]["factor"] == pytest.approx(FACTORS[e["ticker"]], rel=1e-9)
    assert list(nav_t.index) == list(nav_c.index) and len(nav_c) >= 15
    np.testing.assert_allclose(nav_t["nav"].to_numpy(), nav_c["nav"].to_numpy(), rtol=1e-9, atol=0)
    # a 75% "loss" on XLK would be far outside this; record the largest difference for the report
    rel = float(np.max(np.abs(nav_t["nav"].to_numpy() / nav_c["nav"].to_numpy() - 1)))
    print(f"max relative NAV difference treated vs control: {rel:.3g}")

    recs = [json.loads(line) for line in (treat / "state" / "decisions.jsonl").read_text().splitlines()]
    acts = [r["record"].get("corporate_actions") for r in recs]
    assert acts[0] is None and acts[1] is None and acts[3] is None
    assert sorted(a["ticker"] for a in acts[2]) == sorted(FACTORS)
    led = open_reader(treat / "state" / "ledger.sqlite")
    assert led is not None
    try:
        assert DecisionLog(treat / "state" / "decisions.jsonl").verify(led).ok
    finally:
        led.close()
    from agent.commands.status import _human, collect_status

    st = collect_status(_settings(treat, treat / "prices.csv"))
    assert sorted(a["ticker"] for a in st["corporate_actions"]) == sorted(FACTORS)
    assert "corp. actions 2 rebase(s)" in _human(st)
