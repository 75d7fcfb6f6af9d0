"""Configuration plumbing (issue 11): renamed GARCH lags with deprecated old names, the exchange calendar
reaching the decision's cool-down clock, one TRADING_DAYS and one cash_weight, and errors that used to be
swallowed now logged and recorded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from agent.decision import TRADING_DAYS, PortfolioState, StopState, cash_weight
from agent.errors import ConfigError
from agent.settings import RiskSettings, load_settings
from agent.settings_compat import ORDER_BEFORE_ENTRY_EXIT_MOVE


def _toml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_old_garch_names_map_to_the_new_ones_and_are_reported(isolated_env: Path) -> None:
    old = load_settings(_toml(isolated_env, "[risk]\ngarch_p = 2\ngarch_q = 1\n"))
    new = load_settings(_toml(isolated_env, "[risk]\narch_lags = 2\ngarch_lags = 1\n"))
    assert (old.risk.arch_lags, old.risk.garch_lags) == (2, 1) == (new.risk.arch_lags, new.risk.garch_lags)
    assert old.deprecations == (
        "risk.garch_p is deprecated: use risk.arch_lags",
        "risk.garch_q is deprecated: use risk.garch_lags",
    )
    assert new.deprecations == ()
    assert old.strategy_digest() == new.strategy_digest()  # one configuration, one digest


def test_digest_keeps_the_pre_rename_names() -> None:
    """The digest of a configuration is what it was before the rename (old logs still match in `audit`):
    it equals the digest computed with the old key names."""
    from agent.decision import digest

    s = load_settings(profile="default")
    # [research] (look-ahead modes) joins the digest only when a mode is set: absent here, as before it existed
    plain = {k: v for k, v in s.redacted().items() if k not in ("paths", "logging", "ops", "research")}
    risk = dict(plain["risk"])
    risk["garch_p"], risk["garch_q"] = risk.pop("arch_lags"), risk.pop("garch_lags")
    forecast = {**plain["forecast"], "horizon_average": True}  # removed no-op key: hashed as it always was
    assert "horizon_average" not in plain["forecast"]
    # entry/exit is off in the default profile: its move in the overlay order hashes as the order before it
    overlays = {**plain["overlays"], "order": list(ORDER_BEFORE_ENTRY_EXIT_MOVE)}
    assert plain["overlays"]["order"] != overlays["order"]
    # a key added later (skill.gate_sustain) hashes only away from the value that behaves as before it existed
    skill = {k: v for k, v in plain["skill"].items() if k != "gate_sustain"}
    assert plain["skill"]["gate_sustain"] == 1
    hashed = {**plain, "risk": risk, "forecast": forecast, "overlays": overlays, "skill": skill}
    assert s.strategy_digest() == digest(hashed)
    sustained = load_settings(profile="default", overrides={"skill.gate_sustain": 13})
    assert sustained.strategy_digest() != s.strategy_digest()


def test_the_entry_exit_move_changes_only_the_digests_of_books_it_changes(isolated_env: Path) -> None:
    """Entry/exit moved ahead of the exposure overlays. Without entry/exit its place decides nothing, so the
    digest is the one the old order had (old decision logs still match); with it on, the new default order
    decides differently from the old one, and the two digests differ."""
    old_order = "order = [" + ", ".join(f'"{n}"' for n in ORDER_BEFORE_ENTRY_EXIT_MOVE) + "]\n"
    thresholds = "entry_threshold = 0.05\nexit_threshold = 0.05\n"
    for profile in ("default", "demo", "djia-lstm-garch"):
        explicit_old = load_settings(_toml(isolated_env, "[overlays]\n" + old_order), profile=profile)
        assert load_settings(profile=profile).strategy_digest() == explicit_old.strategy_digest()
    on_new = load_settings(_toml(isolated_env, "[overlays]\n" + thresholds))
    on_old = load_settings(_toml(isolated_env, "[overlays]\n" + thresholds + old_order))
    assert on_new.overlays.order != on_old.overlays.order
    assert on_new.strategy_digest() != on_old.strategy_digest()


def test_the_removed_no_op_key_is_accepted_reported_and_ignored(isolated_env: Path) -> None:
    """forecast.horizon_average was read by nothing: a file that sets it still loads, is told so, and decides
    (and digests) exactly as one without it."""
    old = load_settings(_toml(isolated_env, "[forecast]\nhorizon_average = false\n"))
    new = load_settings(_toml(isolated_env, "[forecast]\nmodel = \"onnx\"\n"))
    assert old.deprecations == ("forecast.horizon_average had no effect and is ignored: remove it",)
    assert old.strategy_digest() == new.strategy_digest() == load_settings(profile="default").strategy_digest()
    assert "horizon_average" not in old.redacted()["forecast"]


def test_old_and_new_name_together_is_a_config_error(isolated_env: Path) -> None:
    with pytest.raises(ConfigError, match=r"garch_p is the deprecated name of risk\.arch_lags"):
        load_settings(_toml(isolated_env, "[risk]\ngarch_p = 2\narch_lags = 1\n"))
    assert RiskSettings(garch_p=3).arch_lags == 3  # direct construction accepts the old name too
    assert RiskSettings(garch_p=3, arch_lags=1).arch_lags == 3  # merged layers: the old name came from above


def test_deprecation_is_a_warning_event_on_the_cli(isolated_env: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    cfg = _toml(isolated_env, "[risk]\ngarch_q = 1\n")
    env = {**os.environ, "AGENT_CONFIG": str(cfg)}
    missing = isolated_env / "no-such-prices.csv"  # the run stops (exit 3) right after logging is set up
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "--log-format",
            "json",
            "backtest",
            "--replay",
            "2020-2020",
            "--prices",
            str(missing),
            "--out",
            str(isolated_env / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 3, out.stderr
    events = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert any(
        e.get("event") == "setting_deprecated" and e.get("level") == "warning" and "garch_q" in e["detail"]
        for e in events
    ), out.stderr


def test_one_trading_days_constant() -> None:
    from agent import metrics
    from agent.allocate import optimize, rules
    from agent.overlays import base as overlays

    assert TRADING_DAYS == 252
    assert metrics.PERIODS_PER_YEAR is TRADING_DAYS and overlays._ANNUAL is TRADING_DAYS
    assert optimize.PERIODS is TRADING_DAYS and rules.PERIODS is TRADING_DAYS


def test_cash_weight() -> None:
    assert cash_weight(np.array([0.2, 0.3])) == pytest.approx(0.5)
    assert cash_weight(np.array([0.6, 0.4 + 1e-12])) == 0.0  # never negative
    assert cash_weight(np.zeros(3)) == 1.0


@pytest.mark.parametrize(("calendar", "left"), [("XNYS", 1), ("XLON", 2)])
def test_cool_down_counts_sessions_on_the_configured_calendar(calendar: str, left: int) -> None:
    """2024-03-27 -> 2024-04-03 is 4 NYSE sessions but 3 London ones (Easter Monday): the drawdown stop's
    cool-down clock follows schedule.calendar."""
    from agent.data.store import PriceStore
    from agent.engine import EngineContext, decide
    from agent.settings import Settings
    from tests.synthetic import SECTORS, gbm_prices

    s = Settings(
        profile="synthetic",
        universe={"tickers": SECTORS, "benchmark": ""},
        schedule={"calendar": calendar},
        risk={"method": "ewma"},
        allocation={"method": "equal_weight"},
        forecast={"model": "none"},
        overlays={"drawdown_stop": {"enabled": True, "cooldown_sessions": 5}},
    )
    frame = gbm_prices(SECTORS, start="2022-06-01", end="2024-06-28", seed=5)
    ctx = EngineContext.create(s, PriceStore.from_frame(frame, validate=False))
    stop = StopState(status="cooling_down", stopped_on=dt.date(2024, 3, 20), sessions_left=5, peak_nav=1e6)
    state = PortfolioState(
        asof=None,
        tickers=SECTORS,
        weights=np.zeros(len(SECTORS)),
        nav=9e5,
        peak_nav=1e6,
        stop=stop,
        last_decision=dt.date(2024, 3, 27),
    )
    dec = decide(dt.date(2024, 4, 3), state, s, ctx)
    assert dec.record["stop_after"]["sessions_left"] == left
    assert dec.record["stop_after"]["status"] == "cooling_down"


def test_missing_tbill_file_is_logged_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    from structlog.testing import capture_logs

    from agent.backtest import _risk_free

    monkeypatch.setenv("AGENT_SHARED_DATA", str(tmp_path))  # no tbill_3m_daily.csv there
    monkeypatch.chdir(tmp_path)
    s = load_settings(profile="default").model_copy(deep=True)
    s = s.model_copy(update={"backtest": s.backtest.model_copy(update={"risk_free": "tbill"})})
    idx = pd.DatetimeIndex(["2024-01-02", "2024-01-03"])
    with capture_logs() as logs:
        rf, used = _risk_free(s, idx)
    assert rf == 0.0
    assert used["configured"] == "tbill" and used["used"] == "zero" and "tbill_3m_daily.csv" in used["reason"]
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["risk_free_unavailable"]


def test_tbill_rate_is_used_when_present(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from agent.backtest import _risk_free

    monkeypatch.setenv("AGENT_SHARED_DATA", str(shared_data))
    s = load_settings(profile="default")
    s = s.model_copy(update={"backtest": s.backtest.model_copy(update={"risk_free": "tbill"})})
    idx = pd.DatetimeIndex(["2024-01-02", "2024-01-03"])
    rf, used = _risk_free(s, idx)
    tb = pd.read_csv(shared_data / "tbill_3m_daily.csv", index_col="date", parse_dates=True)["dtb3_pct"]
    expected = tb.reindex(tb.index.union(idx)).ffill().reindex(idx) / 100.0 / 252.0
    np.testing.assert_allclose(rf.to_numpy(), expected.to_numpy())
    assert used["used"] == "tbill"


def test_solver_failure_keeps_its_message() -> None:
    from agent.allocate.optimize import Optimizer

    res = Optimizer("max_sharpe", 3, solver="NOT_A_SOLVER").solve(
        np.full(3, 1e-3), np.eye(3) * 1e-4, np.full(3, 1 / 3)
    )
    assert res.method_used == "previous"
    failed = res.trace[0]
    assert failed["method"] == "max_sharpe" and failed["reason"].startswith("solver_failed: SolverError: ")
    assert "NOT_A_SOLVER" in failed["reason"]


def test_old_name_in_the_environment_overrides_the_profile(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_RISK__GARCH_P", "3")
    s = load_settings(profile="default")  # the profile sets arch_lags = 1
    assert s.risk.arch_lags == 3
    assert "risk.garch_p is deprecated: use risk.arch_lags" in s.deprecations
