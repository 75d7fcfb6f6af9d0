"""Fixed costs per trade (execution.fixed_cost > 0) in the strategy and every baseline (issue 10 item 4).

A fixed cost is currency: the baselines are simulated with the configured capital, like the strategy's ledger,
and their NAVs are scaled to start at 1.0 afterwards. The independent reference is the ledger itself: on the
same equal-weight targets, the strategy (ledger path) and the equal_weight baseline (vectorized simulator) must
agree to 1e-9 with a fixed cost too (with capital 1.0 they would not: the baseline would go bust)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.errors import AgentError, ConfigError
from agent.settings import load_settings


def _run(profile: str, prices: pd.DataFrame, out: Path, **over: object):  # type: ignore[no-untyped-def]
    from agent.backtest import run_backtest
    from agent.data.store import PriceStore

    s = load_settings(profile=profile, overrides=over)
    store = PriceStore.from_frame(prices, source="test")
    return run_backtest(s, store, dt.date(2021, 1, 1), dt.date(2021, 12, 31), out, write_report=False)


def _nav(res) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return pd.read_csv(res.out_dir / "nav.csv", index_col="date", parse_dates=True)


def test_fixed_cost_ledger_and_simulated_baseline_agree(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    over = {"backtest.baselines": ["equal_weight", "buy_and_hold"], "execution.fixed_cost": 25.0}
    res = _run("equal-weight", sector_prices, isolated_env / "fc", **over)
    nav = _nav(res)
    np.testing.assert_allclose(nav["strategy"], nav["equal_weight"], rtol=1e-9, atol=1e-12)
    free = _nav(
        _run("equal-weight", sector_prices, isolated_env / "free", **{**over, "execution.fixed_cost": 0.0})
    )
    # every fill pays 25 on a capital of 1e6: the gap is at least 25 per trade of the first rebalance
    s = load_settings(profile="equal-weight")
    n = len(s.universe.tickers)
    gap = free["equal_weight"].iloc[-1] - nav["equal_weight"].iloc[-1]
    assert gap > n * 25.0 / s.execution.initial_capital
    bh_gap = free["buy_and_hold"].iloc[-1] - nav["buy_and_hold"].iloc[-1]
    assert bh_gap == pytest.approx(
        n * 25.0 / s.execution.initial_capital * nav["buy_and_hold"].iloc[-1] / nav["buy_and_hold"].iloc[1],
        rel=0.05,
    )
    assert res.metrics["equal_weight"]["costs"] > 0


def test_fixed_cost_with_an_optimizer_and_every_baseline(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    res = _run("default", sector_prices, isolated_env / "opt", **{"execution.fixed_cost": 5.0})
    nav = _nav(res)
    assert {"strategy", "equal_weight", "buy_and_hold", "static_mvo"} <= set(nav.columns)
    assert np.isfinite(nav.to_numpy()).all() and (nav.to_numpy() > 0).all()
    np.testing.assert_allclose(nav.iloc[0].to_numpy(), 1.0, rtol=1e-12)


def test_costs_that_ruin_a_portfolio_are_one_configuration_error(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    # the strategy's ledger refuses the overdraft (LedgerError) or a baseline's NAV reaches zero (ConfigError):
    # either way one line naming the cause, never a traceback from the metrics
    with pytest.raises(AgentError, match=r"overdraw cash|NAV reaches zero on 2021-"):
        _run("equal-weight", sector_prices, isolated_env / "ruin", **{"execution.fixed_cost": 60_000.0})
    with pytest.raises(ConfigError, match="first deployment alone would cost the whole capital"):
        load_settings(profile="equal-weight", overrides={"execution.fixed_cost": 200_000.0})
