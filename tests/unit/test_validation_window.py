"""The models' validation skill (the agent's prior) scores the returns the book earns: a forecast made at close t
is traded at close t+lag and earns close t+lag .. t+lag+h, the window the live tracker scores
(agent/skill/tracker.py). The training-target skill stays available as ``skill_target_*``. No price after
train_end is used: a sample whose window runs past it is dropped."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from agent.features import FeatureSpec
from agent.skill.tracker import ForecastObs, SkillTracker
from training.datasets import Dataset, ProfileConfig, make_dataset
from training.skill import book_skill, tradable_returns
from training.train import return_skill

TICKERS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")
TRAIN_END = "2016-12-30"


def _prices(n: int = 1600, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2011-01-03", periods=n, name="date")
    r = rng.normal(0.0003, 0.01, size=(n, len(TICKERS)))
    return pd.DataFrame(100 * np.exp(np.cumsum(r, axis=0)), index=idx, columns=list(TICKERS))


def _daily_cfg() -> ProfileConfig:
    return ProfileConfig(
        profile="tiny",
        data_file="synthetic",
        tickers=TICKERS,
        kind="returns",
        target="fwd_mean_simple",
        horizon=5,
        features=FeatureSpec(("ret",), lookback=10),
        train={"min_samples": 40},
    )


def _weekly_cfg() -> ProfileConfig:
    return dataclasses.replace(
        _daily_cfg(),
        kind="rebalance_returns",
        target="next_week_logret",
        features=FeatureSpec(("logret",), lookback=13, frequency="weekly"),
        rebalance={"vol_weeks": 4, "k": 1.0, "min_periods": 26},
    )


def _book_forecast(ds: Dataset, idx: np.ndarray, lag: int) -> np.ndarray:
    """A forecast equal to the book's window (mean daily simple return close t+lag .. t+lag+h), in the model's
    target units; rows whose window is past train_end get noise (they must be dropped, not scored)."""
    h = ds.cfg.horizon
    mu = tradable_returns(ds.closes, ds.row_session[idx], lag, h)
    noise = np.random.default_rng(lag).normal(0, 0.01, mu.shape)
    mu = np.where(np.isfinite(mu), mu, noise)
    return h * np.log1p(mu) if ds.cfg.target == "next_week_logret" else mu


@pytest.mark.parametrize("lag", [0, 1, 2])
@pytest.mark.parametrize("weekly", [False, True])
def test_prior_scores_the_window_the_book_earns(lag: int, weekly: bool) -> None:
    ds = make_dataset(_prices(), _weekly_cfg() if weekly else _daily_cfg(), TRAIN_END)
    idx = ds.val_idx
    m = return_skill(ds, idx, _book_forecast(ds, idx, lag), lag)
    assert m["skill_lag"] == lag
    assert m["skill_ic_cs"] > 0.999 and m["skill_ic_ts"] > 0.999 and m["skill_hit_rate"] > 0.999
    assert m["skill_beta"] == pytest.approx(1.0, abs=1e-6 if not weekly else 1e-2)
    # the training target: close t .. t+h (daily) or the next weekly row; the same forecast scores clearly less
    # there once the book trades later than the close the forecast was made at
    if lag == 0:  # the same window (weekly: the next ISO week is the next 5 sessions but in short weeks)
        assert m["skill_target_ic_cs"] == pytest.approx(m["skill_ic_cs"], abs=1e-9 if not weekly else 1e-2)
    else:
        assert m["skill_target_ic_cs"] < 0.9
    # and a forecast of the training target scores less on the book window
    old = return_skill(ds, idx, ds.y_raw[idx], lag)
    assert old["skill_target_ic_cs"] == pytest.approx(1.0, abs=1e-9)
    if lag > 0:
        assert old["skill_ic_cs"] < 0.9


def test_prior_matches_the_live_tracker() -> None:
    """Each validation sample's IC equals the IC the live tracker gives the same forecast (lag 1)."""
    ds = make_dataset(_prices(), _daily_cfg(), TRAIN_END)
    idx = ds.val_idx[-40:-2]
    rng = np.random.default_rng(1)
    pred = rng.normal(0, 0.002, (len(idx), len(TICKERS)))
    m = book_skill(pred, ds.closes, ds.row_session[idx], horizon=5, lag=1)
    tr = SkillTracker()
    for k, i in enumerate(idx):
        tr.record(ForecastObs(ds.dates[i].date(), "m", 5, TICKERS, tuple(pred[k])))
    tr.mature(ds.dates, ds.closes, TICKERS, lag=1)
    live = [o.ic for o in tr.obs]
    assert all(ic is not None for ic in live)
    assert m["skill_ic_cs"] == pytest.approx(float(np.mean(live)), abs=1e-12)


@pytest.mark.parametrize("lag", [0, 1, 2])
def test_a_window_past_train_end_is_dropped(lag: int) -> None:
    p = _prices()
    ds = make_dataset(p, _daily_cfg(), TRAIN_END)
    idx = ds.val_idx
    h, last = ds.cfg.horizon, len(ds.closes) - 1
    assert (
        ds.dates[-1] == pd.Timestamp(TRAIN_END) and ds.row_session[idx[-1]] == last - h
    )  # target ends there
    book = tradable_returns(ds.closes, ds.row_session[idx], lag, h)
    assert np.isfinite(book[: len(idx) - lag]).all() and np.isnan(book[len(idx) - lag :]).all()
    m = return_skill(ds, idx, _book_forecast(ds, idx, lag), lag)
    assert m["skill_dropped"] == lag and m["skill_n"] == len(idx) - lag
    assert m["skill_target_n"] == len(idx)
    # no price after train_end reaches the metrics: rewriting them changes nothing
    q = p.copy()
    q.loc[pd.Timestamp(TRAIN_END) + pd.Timedelta(days=1) :] *= 3.0
    ds2 = make_dataset(q, _daily_cfg(), TRAIN_END)
    assert return_skill(ds2, idx, _book_forecast(ds2, idx, lag), lag) == m


def test_weekly_windows_run_on_daily_sessions() -> None:
    """Weekly rows are the last session of each ISO week; the book window is counted in daily sessions."""
    ds = make_dataset(_prices(), _weekly_cfg(), TRAIN_END)
    pos = ds.row_session[ds.val_idx]
    assert (np.diff(pos) >= 3).all() and (pos[1:] - pos[:-1] <= 5).all()
    i = pos[3]
    expect = np.mean(ds.closes[i + 2 : i + 7] / ds.closes[i + 1 : i + 6] - 1.0, axis=0)
    np.testing.assert_allclose(tradable_returns(ds.closes, pos[3:4], 1, 5)[0], expect, rtol=1e-12)
    # the last weekly sample (its target is the final week) has no full book window before train_end
    m = return_skill(ds, ds.val_idx, np.zeros((len(ds.val_idx), len(TICKERS))) + 1e-3, 1)
    assert m["skill_dropped"] == 1


def test_the_error_rests_on_non_overlapping_samples_daily_or_weekly() -> None:
    """A daily model's h-session windows overlap for h rows, a weekly model's rows are already h apart: the
    IC's standard error must use every h-th daily row but every weekly row (n_eff 5x larger, not understated)."""
    from training.skill import overlap_stride, validation_skill

    assert overlap_stride(np.arange(100), 5) == 5
    assert overlap_stride(np.arange(0, 500, 5), 5) == 1
    assert overlap_stride(np.arange(0, 500, 5), 10) == 2
    assert overlap_stride(np.arange(0, 500, 5), 1) == 1
    rng = np.random.default_rng(3)
    true = rng.normal(size=(200, 9))
    pred = 0.3 * true + rng.normal(size=(200, 9))
    weekly = validation_skill(pred, true, None, 5, overlap_stride(np.arange(0, 1000, 5), 5))
    daily = validation_skill(pred, true, None, 5)
    assert weekly["skill_n_eff"] == 200 and daily["skill_n_eff"] == 40
    assert weekly["skill_ic_cs_se"] < daily["skill_ic_cs_se"]
