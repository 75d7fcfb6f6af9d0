"""The point-in-time skill tracker, its SQLite store, the drift monitor and the training-time skill metrics."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.skill.monitor import skill_status
from agent.skill.store import SkillStore
from agent.skill.synthetic import oracle_forecast, placebo_forecast
from agent.skill.tracker import (
    ForecastObs,
    SkillEstimate,
    SkillTracker,
    combine_skill,
    ew_skill,
    prior_from_metrics,
    realized_ic,
    sustained_t,
)
from training.skill import cross_sectional_ic, validation_skill

TICKERS = ("A", "B", "C", "D", "E")


def _prices(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2021-01-04", periods=n, name="date")
    r = rng.normal(0.0005, 0.01, size=(n, len(TICKERS)))
    return pd.DataFrame(100 * np.cumprod(1 + r, axis=0), index=idx, columns=list(TICKERS))


def _obs(d: pd.Timestamp, mu: np.ndarray, h: int = 5) -> ForecastObs:
    return ForecastObs(d.date(), "m1", h, TICKERS, tuple(float(x) for x in mu))


def test_forecast_matures_only_when_its_horizon_has_elapsed() -> None:
    px = _prices()
    t = SkillTracker()
    made = px.index[40]
    t.record(_obs(made, np.arange(5.0)))
    # snapshots at asof = made + 0..4 sessions: the target window is still open, nothing matures
    for k in range(5):
        snap = px.iloc[: 41 + k]
        assert t.mature(snap.index, snap.to_numpy(), TICKERS) == []
        assert t.live(snap.index[-1].date()).n == 0
    snap = px.iloc[:46]  # asof = made + 5 sessions
    (done,) = t.mature(snap.index, snap.to_numpy(), TICKERS)
    assert done.matured_on == px.index[45].date()
    # independent reference: mean daily simple return over the 5 sessions after `made`
    realized = px.pct_change().iloc[41:46].mean().to_numpy()
    assert done.ic == pytest.approx(np.corrcoef(np.arange(5.0), realized)[0, 1], abs=1e-12)
    assert t.live(px.index[44].date()).n == 0  # asking about an earlier asof never sees it
    assert t.live(px.index[45].date()).n == 1


@pytest.mark.parametrize("lag", [1, 2])
def test_forecast_is_scored_on_the_returns_the_book_earns(lag: int) -> None:
    """Decided at close t, traded at close t+lag: the forecast is scored from close t+lag over its horizon.

    It matures at session t+lag+h (never earlier), and its IC is the correlation with the mean daily return of
    sessions t+lag+1 .. t+lag+h, the returns a position taken at the execution can earn.
    """
    px = _prices()
    t = SkillTracker()
    made = px.index[40]
    t.record(_obs(made, np.arange(5.0)))
    for k in range(5 + lag):
        snap = px.iloc[: 41 + k]
        assert t.mature(snap.index, snap.to_numpy(), TICKERS, lag) == []
    snap = px.iloc[: 46 + lag]
    (done,) = t.mature(snap.index, snap.to_numpy(), TICKERS, lag)
    assert done.matured_on == px.index[45 + lag].date()
    realized = px.pct_change().iloc[41 + lag : 46 + lag].mean().to_numpy()
    assert done.ic == pytest.approx(np.corrcoef(np.arange(5.0), realized)[0, 1], abs=1e-12)


def test_perturbing_prices_after_asof_changes_nothing() -> None:
    """Change every price after a cutoff: the live skill up to the cutoff is identical."""
    px = _prices(120, seed=3)
    rng = np.random.default_rng(9)
    cutoff = 90
    shocked = px.copy()
    shocked.iloc[cutoff + 1 :] *= rng.uniform(0.5, 1.5, size=shocked.iloc[cutoff + 1 :].shape)

    def run(frame: pd.DataFrame) -> list[dict]:
        t = SkillTracker(halflife=8)
        out = []
        for i in range(30, cutoff + 1, 5):
            snap = frame.iloc[: i + 1]  # point in time: rows <= asof
            t.record(_obs(frame.index[i], np.random.default_rng(i).normal(size=5)))
            t.mature(snap.index, snap.to_numpy(), TICKERS)
            out.append(t.live(frame.index[i].date()).to_dict())
        return out

    a, b = run(px), run(shocked)
    assert a == b
    assert a[-1]["n"] >= 10


def test_ew_skill_weights_recent_forecasts_more_and_has_a_standard_error() -> None:
    d0 = dt.date(2020, 1, 6)
    obs = [
        ForecastObs(d0 + dt.timedelta(weeks=i), "m", 5, TICKERS, (0,) * 5, d0 + dt.timedelta(weeks=i + 1), ic)
        for i, ic in enumerate([0.5] * 10 + [-0.5] * 10)
    ]
    asof = d0 + dt.timedelta(weeks=30)
    short, long_ = ew_skill(obs, asof, halflife=2), ew_skill(obs, asof, halflife=1e9)
    assert short.ic < -0.4 and long_.ic == pytest.approx(0.0, abs=1e-6)
    # equal weights, non-overlapping weekly forecasts: se = sample sd / sqrt(n)
    ics = np.array([o.ic for o in obs])
    assert long_.se == pytest.approx(ics.std(ddof=1) / math.sqrt(20), rel=1e-6)
    assert long_.n_eff == pytest.approx(20.0)


def test_overlapping_forecasts_count_less() -> None:
    d0 = dt.date(2020, 1, 6)
    daily = [
        ForecastObs(d0 + dt.timedelta(days=i), "m", 5, TICKERS, (0,) * 5, d0 + dt.timedelta(days=i + 7), ic)
        for i, ic in enumerate(np.random.default_rng(1).normal(0, 0.3, 40))
    ]
    est = ew_skill(daily, d0 + dt.timedelta(days=100), halflife=1e9)
    assert est.n == 40 and est.n_eff < 40 / 3


def test_combine_is_precision_weighted() -> None:
    prior = SkillEstimate(0.06, 0.02, 700, 140, "validation")
    live = SkillEstimate(0.0, 0.04, 30, 30, "live")
    c = combine_skill(prior, live)
    assert c.ic == pytest.approx((0.06 / 0.02**2) / (1 / 0.02**2 + 1 / 0.04**2))
    assert c.se == pytest.approx(math.sqrt(1 / (1 / 0.02**2 + 1 / 0.04**2)))
    empty = SkillEstimate(0.0, math.inf, 0, 0, "live")
    assert combine_skill(None, empty).ic == 0.0 and combine_skill(None, empty).t == 0.0
    assert combine_skill(prior, empty).ic == 0.06


def test_prior_from_metrics_reads_new_and_old_metadata() -> None:
    new = prior_from_metrics(
        {"val": {"n": 700, "skill_ic_cs": 0.03, "skill_ic_cs_se": 0.02, "skill_n_eff": 140}}, 2
    )
    assert new is not None and new.ic == 0.03 and new.se == pytest.approx(0.04)
    old = prior_from_metrics({"val": {"n": 500, "mean_ic": 0.02}})
    assert old is not None and old.se == pytest.approx(1 / math.sqrt(100))
    assert prior_from_metrics({"val": {"sharpe_ann": 1.0}}) is None and prior_from_metrics(None) is None


def test_store_round_trip_and_restart_changes_nothing(tmp_path) -> None:
    px = _prices(100, seed=5)
    db = tmp_path / "ledger.sqlite"
    t1 = SkillTracker(halflife=6)
    store = SkillStore(db, "p")
    for i in range(30, 100, 5):
        snap = px.iloc[: i + 1]
        t1.record(_obs(px.index[i], np.random.default_rng(i).normal(size=5)))
        store.save(t1.obs)
        t1.mature(snap.index, snap.to_numpy(), TICKERS)
        store.save(t1.obs)
        if i == 60:  # "restart" half-way: reload from the file and continue with the reloaded tracker
            t1 = store.load(halflife=6)
    ref = SkillTracker(halflife=6)
    for i in range(30, 100, 5):
        snap = px.iloc[: i + 1]
        ref.record(_obs(px.index[i], np.random.default_rng(i).normal(size=5)))
        ref.mature(snap.index, snap.to_numpy(), TICKERS)
    asof = px.index[-1].date()
    assert store.load(6).live(asof) == ref.live(asof) == t1.live(asof)
    assert store.load(6).obs == ref.obs
    assert SkillStore(db, "other").load().obs == []
    assert SkillStore(tmp_path / "missing.sqlite", "p").load().obs == []


def test_monitor_warns_on_negative_live_skill() -> None:
    d0 = dt.date(2020, 1, 6)
    t = SkillTracker(halflife=1e9)
    for i, ic in enumerate(np.random.default_rng(2).normal(-0.3, 0.1, 20)):
        t.obs.append(
            ForecastObs(
                d0 + dt.timedelta(weeks=i), "m", 5, TICKERS, (0,) * 5, d0 + dt.timedelta(weeks=i + 1), ic
            )
        )
    st = skill_status(t, d0 + dt.timedelta(weeks=40), SkillEstimate(0.05, 0.02, 700, 140, "validation"))
    assert st["warning"] is not None and st["warning"]["event"] == "skill_drift"
    assert st["validation"]["ic"] == 0.05 and st["live"]["ic"] < -0.2
    assert skill_status(SkillTracker(), d0, None)["warning"] is None


def test_placebo_and_oracle_have_the_skill_they_claim() -> None:
    rng = np.random.default_rng(0)
    asof = dt.date(2020, 3, 2)
    mu = rng.normal(0.0004, 0.002, 9)
    p1, p2 = placebo_forecast(mu, 9, 7, asof), placebo_forecast(mu, 9, 7, asof)
    np.testing.assert_array_equal(p1, p2)  # seeded by (seed, asof): a replay draws the same noise
    assert not np.array_equal(p1, placebo_forecast(mu, 9, 8, asof))
    ics = {0.0: [], 0.2: [], 0.6: []}
    for k in range(400):
        realized = rng.normal(0, 0.01, 30)
        d = asof + dt.timedelta(days=k)
        for ic in ics:
            ics[ic].append(realized_ic(oracle_forecast(realized, ic, 1, d), realized))
    for ic, vals in ics.items():
        assert np.mean(vals) == pytest.approx(ic, abs=0.03)


def test_training_validation_skill_against_references() -> None:
    rng = np.random.default_rng(4)
    true = rng.normal(size=(600, 9))
    pred = 0.2 * true + rng.normal(size=(600, 9))
    m = validation_skill(pred, true, np.zeros_like(true), horizon=5)
    ref_ic = np.mean([np.corrcoef(pred[i], true[i])[0, 1] for i in range(600)])
    assert m["skill_ic_cs"] == pytest.approx(ref_ic, abs=1e-12)
    np.testing.assert_allclose(
        cross_sectional_ic(pred, true)[:3], [np.corrcoef(pred[i], true[i])[0, 1] for i in range(3)]
    )
    assert m["skill_n_eff"] == 120 and m["skill_ic_cs_t"] > 2
    assert m["skill_mse_vs_zero"] == pytest.approx(np.mean((pred - true) ** 2) / np.mean(true**2))
    assert m["skill_mse_vs_rolling_mean"] == pytest.approx(m["skill_mse_vs_zero"])
    noise = validation_skill(rng.normal(size=(600, 9)), true, None, 5)
    assert abs(noise["skill_ic_cs_t"]) < 3.5 and abs(noise["skill_ic_cs"]) < 0.06


def _matured(n: int, d0: dt.date = dt.date(2021, 1, 4)) -> list[ForecastObs]:
    """n weekly forecasts, each matured a week after it was made (IC irrelevant: t_at supplies the t-stats)."""
    return [
        ForecastObs(
            d0 + dt.timedelta(weeks=i), "m", 5, TICKERS, (0.0,) * 5, d0 + dt.timedelta(weeks=i + 1), 0.1
        )
        for i in range(n)
    ]


def test_sustained_gate_opens_only_after_k_maturities_above_and_closes_at_once() -> None:
    """A hand-built t path: 2.5 from the 10th maturity on, one dip to 1.5 at the 20th. With k = 4 the gate (t
    >= 2) opens at the 13th maturity (the 10th-13th all >= 2), closes at the dip and stays closed until four
    maturities after it; k = 1 is the t-stat at asof alone."""
    obs = _matured(30)
    mat = [o.matured_on for o in obs if o.matured_on is not None]
    path = {m: (2.5 if i >= 9 else 0.5) for i, m in enumerate(mat)}
    path[mat[19]] = 1.5

    def t_at(d: dt.date) -> float:  # the t-stat as measured at d: the one at the latest maturity by then
        return path[max(m for m in mat if m <= d)]

    def opened(k: int) -> list[int]:
        return [i for i, m in enumerate(mat) if sustained_t(t_at, obs, m, k) >= 2.0]

    assert opened(1) == [i for i in range(30) if i >= 9 and i != 19]
    assert opened(4) == [12, 13, 14, 15, 16, 17, 18, *range(23, 30)]
    # before k forecasts have matured the gate cannot open at all
    assert sustained_t(lambda d: 9.0, obs, mat[2], 4) == -math.inf
    assert sustained_t(lambda d: 9.0, obs, mat[3], 4) == 9.0


def test_sustained_gate_is_point_in_time() -> None:
    """Only maturities on or before asof are asked for, and forecasts maturing later change nothing."""
    obs = _matured(20)
    asof = obs[9].matured_on
    assert asof is not None
    asked: list[dt.date] = []

    def t_at(d: dt.date) -> float:
        asked.append(d)
        return 3.0

    sustained_t(t_at, obs, asof, 5)
    assert asked and max(asked) <= asof
    later = [*obs[:10], *(dataclasses.replace(o, ic=-0.9) for o in obs[10:])]
    assert sustained_t(lambda d: float(d.toordinal()), later, asof, 5) == sustained_t(
        lambda d: float(d.toordinal()), obs, asof, 5
    )


@given(st.lists(st.floats(-5, 5), min_size=1, max_size=40), st.integers(1, 45), st.floats(-3, 3))
def test_sustained_t_is_the_minimum_of_the_last_k(ts: list[float], k: int, threshold: float) -> None:
    obs = _matured(len(ts))
    by = {o.matured_on: t for o, t in zip(obs, ts, strict=True)}
    asof = obs[-1].matured_on
    assert asof is not None
    got = sustained_t(lambda d: by[d], obs, asof, k)
    if k > len(ts):
        assert got == -math.inf
    else:
        assert got == min(ts[-k:])
        assert (got >= threshold) == all(t >= threshold for t in ts[-k:])
        assert got <= sustained_t(lambda d: by[d], obs, asof, max(1, k - 1))  # stricter with k
