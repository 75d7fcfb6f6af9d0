"""The skill step on synthetic data: gate, tilt direction, drift warning, record contents."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from agent.settings import load_settings
from agent.skill.stage import SkillState, skill_step
from agent.skill.tracker import ForecastObs, SkillTracker

TICKERS = ("XLK", "XLF", "XLY", "XLE", "XLV", "XLP", "XLI", "XLB", "XLU")


def _setup(ics: list[float], **over: object):
    s = load_settings(
        profile="default", overrides={"skill.enabled": True, "skill.gate_t": 2.0, "skill.min_live": 5, **over}
    )
    idx = pd.bdate_range("2021-01-04", periods=200, name="date")
    rng = np.random.default_rng(0)
    prices = pd.DataFrame(
        100 * np.cumprod(1 + rng.normal(0, 0.01, (200, 9)), axis=0), index=idx, columns=TICKERS
    )
    d0 = idx[0].date()
    tracker = SkillTracker(halflife=26)
    for i, ic in enumerate(ics):
        a = d0 + dt.timedelta(weeks=i)
        tracker.obs.append(ForecastObs(a, "m", 5, TICKERS, (0.0,) * 9, a + dt.timedelta(days=7), ic))
    cov = np.diag(np.linspace(1, 2, 9) * 1e-4)
    return s, prices, cov, SkillState(tracker=tracker)


def _step(s, prices, cov, state, mu):
    returns = prices.pct_change().iloc[1:]
    asof = prices.index[-1].date()
    fc = type("F", (), {"horizon": 5, "model_id": "m2"})()
    return skill_step(asof, prices, fc, mu, cov, returns, s, state, None)


def test_no_skill_no_tilt_and_full_record() -> None:
    s, prices, cov, state = _setup([0.3, -0.3] * 15)
    out = _step(s, prices, cov, state, np.linspace(-1, 1, 9) * 1e-3)
    assert out.used_ic == 0.0
    np.testing.assert_array_equal(out.mu, 2.5 * cov @ np.full(9, 1 / 9))
    for key in ("reference", "prior_pi", "views", "skill", "posterior_mu", "tracker_delta"):
        assert key in out.record
    assert out.record["tracker_delta"][0]["asof"] == prices.index[-1].date().isoformat()


def test_measured_skill_tilts_toward_the_forecast() -> None:
    s, prices, cov, state = _setup(list(np.random.default_rng(1).normal(0.15, 0.1, 40)))
    mu = np.linspace(-1, 1, 9) * 1e-3
    out = _step(s, prices, cov, state, mu)
    assert out.used_ic == pytest.approx(out.record["skill"]["combined"]["ic"]) and out.used_ic > 0.1
    tilt = out.mu - 2.5 * cov @ np.full(9, 1 / 9)
    assert np.corrcoef(tilt, mu)[0, 1] > 0.99  # diagonal Σ: the tilt is the forecast's ranking


def test_negative_live_skill_warns_and_holds_the_reference() -> None:
    s, prices, cov, state = _setup(list(np.random.default_rng(2).normal(-0.2, 0.1, 40)))
    out = _step(s, prices, cov, state, np.linspace(-1, 1, 9) * 1e-3)
    assert out.used_ic == 0.0
    assert out.record["warning"]["event"] == "skill_drift"


def test_sustained_gate_waits_for_lasting_evidence() -> None:
    """A run of lucky ICs lifts the t-stat over 2 for a few maturities: the plain gate opens, the sustained gate
    (t >= 2 at each of the last 13 maturities) does not; skill that has lasted opens both."""
    lucky = [0.1, -0.1] * 12 + [0.5] * 4
    mu = np.linspace(-1, 1, 9) * 1e-3
    s, prices, cov, state = _setup(lucky)
    plain = _step(s, prices, cov, state, mu)
    assert plain.record["skill"]["combined"]["t"] >= 2.0 and plain.used_ic > 0
    assert "gate_sustain" not in plain.record  # the default (1): the record is as before
    s, prices, cov, state = _setup(lucky, **{"skill.gate_sustain": 13})
    held = _step(s, prices, cov, state, mu)
    assert held.used_ic == 0.0 and held.record["skill"]["gated"]
    assert held.record["gate_sustain"] == 13 and held.record["gate_t_sustained"] < 2.0
    steady = list(np.random.default_rng(1).normal(0.15, 0.1, 30))
    s, prices, cov, state = _setup(steady, **{"skill.gate_sustain": 13})
    out = _step(s, prices, cov, state, mu)
    assert out.used_ic > 0.1 and out.record["gate_t_sustained"] >= 2.0


@pytest.mark.parametrize("lag", [0, 1, 2])
def test_oracle_targets_the_returns_the_book_earns(lag: int) -> None:
    """A decision at close t trades at close t+lag and then holds h sessions: that is the oracle's target.

    With IC 1 the oracle is the target itself (up to scale), so its cross-sectional correlation with the mean
    daily return from close t+lag to close t+lag+h is 1; against the window from close t (the book cannot earn
    its first ``lag`` sessions) it is not.
    """
    from agent.skill.stage import oracle_replay, substitute_forecast

    s, prices, _, _ = _setup(
        [], **{"forecast.oracle_ic": 1.0, "forecast.model": "none", "execution.lag_sessions": lag}
    )
    with oracle_replay(prices):
        state = SkillState.create(s)
    h, i = 5, 100
    asof = prices.index[i].date()
    mu, source = substitute_forecast(asof, None, h, s, state)
    assert source == "oracle-1.0" and mu is not None
    px = prices[list(s.universe.tickers)].to_numpy()

    def window(a: int) -> np.ndarray:
        return np.mean(px[a + 1 : a + h + 1] / px[a : a + h] - 1.0, axis=0)

    assert np.corrcoef(mu, window(i + lag))[0, 1] == pytest.approx(1.0, abs=1e-12)
    if lag:
        assert np.corrcoef(mu, window(i))[0, 1] < 0.99
    # no target window left in the data: no oracle (the replay's last decisions)
    last = prices.index[len(prices) - h - lag].date()
    assert substitute_forecast(last, None, h, s, state)[0] is None


def test_the_skill_step_scores_forecasts_from_the_execution_close() -> None:
    """skill_step matures a forecast made at t at session t + execution.lag_sessions + h, scored on that window."""
    from agent.skill.tracker import realized_ic

    s, prices, cov, _ = _setup([], **{"execution.lag_sessions": 1})
    state = SkillState(tracker=SkillTracker(halflife=26))
    fc = type("F", (), {"horizon": 5, "model_id": "m"})()
    mu = np.linspace(-1, 1, 9) * 1e-3
    returns = prices.pct_change().iloc[1:]
    i = 100
    skill_step(prices.index[i].date(), prices.iloc[: i + 1], fc, mu, cov, returns, s, state, None)
    for k in range(1, 7):  # t+1 .. t+6: open until the window from the execution close t+1 has elapsed
        snap = prices.iloc[: i + k + 1]
        out = skill_step(snap.index[-1].date(), snap, fc, None, cov, returns, s, state, None)
        matured = [o for o in out.record["tracker_delta"] if o["ic"] is not None]
        assert bool(matured) == (k == 6)
    px = prices[list(s.universe.tickers)].to_numpy()
    window = np.mean(px[i + 2 : i + 7] / px[i + 1 : i + 6] - 1.0, axis=0)
    assert matured[0]["ic"] == pytest.approx(realized_ic(mu, window), abs=1e-12)
    assert matured[0]["matured_on"] == prices.index[i + 6].date().isoformat()
