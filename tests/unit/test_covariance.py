"""Covariance estimators and the stateful GARCH Σ estimator: values against independent references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import DataError
from agent.risk import (
    CovarianceEstimator,
    GarchParams,
    arch_backcast,
    assemble_covariance,
    ewma_covariance,
    ewma_variance,
    filter_state,
    forecast_variance,
    make_psd,
    refit_epoch,
    rolling_correlation,
    sample_covariance,
)
from agent.settings import RiskSettings


# ---------------------------------------------------------------------------------------------- helpers
def garch_panel(n_rows: int, n_assets: int, seed: int = 0, start: str = "2018-01-01") -> pd.DataFrame:
    """Correlated GARCH(1,1) returns on weekdays (so a refit block of k weekdays is k rows)."""
    rng = np.random.default_rng(seed)
    corr = 0.3 + 0.7 * np.eye(n_assets)
    chol = np.linalg.cholesky(corr)
    z = rng.standard_normal((n_rows + 200, n_assets)) @ chol.T
    omega = rng.uniform(1e-6, 4e-6, n_assets)
    alpha = rng.uniform(0.04, 0.1, n_assets)
    beta = rng.uniform(0.82, 0.9, n_assets)
    s = omega / (1 - alpha - beta)
    out = np.empty_like(z)
    e = np.zeros(n_assets)
    for t in range(z.shape[0]):
        s = omega + alpha * e**2 + beta * s
        e = np.sqrt(s) * z[t]
        out[t] = e
    idx = pd.bdate_range(start, periods=n_rows, name="date")
    return pd.DataFrame(out[200:] + 2e-4, index=idx, columns=[f"A{i}" for i in range(n_assets)])


def risk(**kw) -> RiskSettings:
    base = {
        "method": "garch",
        "garch_p": 1,
        "garch_q": 1,
        "fit_window": 400,
        "min_observations": 250,
        "refit_every": 10,
        "corr_window": 60,
    }
    base.update(kw)
    return RiskSettings(**base)


def assert_psd(cov: np.ndarray, tol: float = 1e-12) -> None:
    assert np.all(np.isfinite(cov))
    np.testing.assert_array_equal(cov, cov.T)
    ev = np.linalg.eigvalsh(cov)
    assert ev[0] >= -tol * max(1.0, abs(ev[-1])), ev[0]


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return garch_panel(560, 4, seed=3)


# ---------------------------------------------------------------------------------------------- pure functions
def ewma_reference(x: np.ndarray, lam: float) -> np.ndarray:
    s = np.zeros((x.shape[1], x.shape[1]))
    for r in x:
        s = lam * s + (1 - lam) * np.outer(r, r)
    return s / (1 - lam ** x.shape[0])


def test_ewma_equals_reference_loop():
    x = np.random.default_rng(0).standard_normal((300, 5)) * 0.01
    for lam in (0.94, 0.97):
        np.testing.assert_allclose(ewma_covariance(x, lam), ewma_reference(x, lam), rtol=1e-12)
        np.testing.assert_allclose(ewma_variance(x, lam), np.diag(ewma_reference(x, lam)), rtol=1e-12)
    # a window keeps only the last rows
    np.testing.assert_allclose(
        ewma_covariance(x, 0.94, window=100), ewma_reference(x[-100:], 0.94), rtol=1e-12
    )


def test_ewma_with_missing_values_normalizes_per_asset():
    x = np.random.default_rng(1).standard_normal((200, 3)) * 0.01
    x[:50, 1] = np.nan  # listed later
    lam = 0.94
    w = lam ** np.arange(199, -1, -1)
    v1 = np.sum(w[50:] * x[50:, 1] ** 2) / np.sum(w[50:])
    cov = ewma_covariance(x, lam)
    assert cov[1, 1] == pytest.approx(v1, rel=1e-12)
    assert cov[0, 0] == pytest.approx(np.sum(w * x[:, 0] ** 2) / w.sum(), rel=1e-12)
    assert ewma_variance(x, lam)[1] == pytest.approx(v1, rel=1e-12)
    assert_psd(cov)


def test_sample_cov_and_correlation_match_numpy():
    x = np.random.default_rng(2).standard_normal((250, 6)) * 0.01 + 1e-3
    np.testing.assert_allclose(sample_covariance(x), np.cov(x, rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(sample_covariance(x, 100), np.cov(x[-100:], rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(rolling_correlation(x, 60), np.corrcoef(x[-60:], rowvar=False), atol=1e-13)
    ref = pd.DataFrame(x).rolling(60).corr().iloc[-6:].to_numpy()
    np.testing.assert_allclose(rolling_correlation(x, 60), ref, atol=1e-12)


def test_correlation_of_constant_series_is_zero():
    x = np.random.default_rng(3).standard_normal((80, 3))
    x[:, 2] = 0.001
    c = rolling_correlation(x, 60)
    np.testing.assert_array_equal(c[2], [0.0, 0.0, 1.0])
    assert np.all(np.isfinite(c))


def test_make_psd_repairs_and_keeps_variances():
    a = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]) * 1e-4  # not PSD
    fixed, repaired, min_eig = make_psd(a, 1e-10)
    assert repaired and min_eig < 0
    assert_psd(fixed)
    assert np.linalg.eigvalsh(fixed)[0] > 0
    np.testing.assert_allclose(np.diag(fixed), np.diag(a), rtol=1e-12)
    good = np.array([[2e-4, 1e-5], [1e-5, 1e-4]])
    same, repaired, min_eig = make_psd(good, 1e-10)
    assert not repaired and min_eig > 0
    np.testing.assert_array_equal(same, good)
    with pytest.raises(ValueError, match="non-finite"):
        make_psd(np.array([[np.nan]]))


def test_refit_epoch_is_a_function_of_the_date():
    d = pd.bdate_range("2024-01-01", periods=30).to_numpy()
    e = refit_epoch(d, 10)
    assert np.all(np.diff(e) >= 0) and set(np.diff(e)) <= {0, 1}
    # blocks are exactly 10 weekdays long
    _, counts = np.unique(e, return_counts=True)
    assert set(counts[1:-1]) == {10}
    # a weekend belongs to the block of the preceding Friday's successor Monday count
    assert (
        refit_epoch(np.array(["2024-01-06"], dtype="datetime64[D]"), 1)[0]
        == refit_epoch(np.array(["2024-01-08"], dtype="datetime64[D]"), 1)[0]
    )


# ---------------------------------------------------------------------------------------------- properties
@settings(max_examples=40, deadline=None)
@given(
    n_rows=st.integers(3, 90),
    n_assets=st.integers(1, 80),
    window=st.integers(10, 60),
    shrink=st.sampled_from([0.0, 0.05, 0.5]),
    nan_frac=st.sampled_from([0.0, 0.1]),
    method=st.sampled_from(["ewma", "sample", "garch"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_sigma_is_finite_symmetric_psd(n_rows, n_assets, window, shrink, nan_frac, method, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, n_assets)) * rng.uniform(0.001, 0.05, n_assets)
    if nan_frac:
        holes = rng.random(x.shape) < nan_frac
        holes[:, 0] = False  # keep one complete series so that some variance is estimable
        x[holes] = np.nan
    if n_assets > 2:
        x[:, 1] = 0.0 if n_rows % 2 else x[:, 1]  # a dead series now and then
    df = pd.DataFrame(
        x, index=pd.bdate_range("2021-01-01", periods=n_rows), columns=[f"T{i}" for i in range(n_assets)]
    )
    cfg = risk(
        method=method, corr_window=max(10, window), sample_window=20, shrinkage=shrink, min_observations=250
    )
    est = CovarianceEstimator(cfg, tuple(df.columns), horizon=5).estimate(df, df.index[-1])
    assert_psd(est.cov)
    assert np.all(np.isfinite(est.vols)) and np.all(est.vols > 0)
    assert np.all(np.isfinite(est.corr)) and np.allclose(np.diag(est.corr), 1.0)
    if method == "garch":  # too short for GARCH: every asset on EWMA, each with a reason
        assert est.method == "ewma"
        assert {f["ticker"] for f in est.fallbacks} == set(df.columns)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 120), t=st.integers(3, 70), shrink=st.floats(0, 1), seed=st.integers(0, 10_000))
def test_assembled_covariance_psd(n, t, shrink, seed):
    rng = np.random.default_rng(seed)
    corr = rolling_correlation(rng.standard_normal((t, n)), window=t)  # singular when n >= t
    vols = rng.uniform(1e-3, 0.1, n)
    cov, repaired, min_eig = assemble_covariance(vols, corr, shrink, 1e-10)
    assert_psd(cov)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), vols, rtol=1e-8)
    if shrink >= 0.01:
        assert not repaired and min_eig > 0


def test_shrinkage_for_short_correlation_windows():
    df = garch_panel(120, 70, seed=4)
    tick = tuple(df.columns)
    plain = CovarianceEstimator(risk(method="ewma", corr_window=60), tick, 1).estimate(df, df.index[-1])
    assert_psd(plain.cov)
    shrunk_cfg = risk(method="garch", corr_window=60, shrinkage=0.2, min_observations=250)
    shrunk = CovarianceEstimator(shrunk_cfg, tick, 1).estimate(df, df.index[-1])
    assert not shrunk.repaired and shrunk.min_eig > 0
    raw = rolling_correlation(df.to_numpy(), 60)
    np.testing.assert_allclose(
        shrunk.corr[~np.eye(70, dtype=bool)], 0.8 * raw[~np.eye(70, dtype=bool)], atol=1e-10
    )
    unshrunk = CovarianceEstimator(risk(shrinkage=0.0), tick, 1).estimate(df, df.index[-1])
    assert unshrunk.repaired and unshrunk.min_eig < 1e-10  # 60 rows, 70 assets: singular, repaired
    assert_psd(unshrunk.cov)


# ---------------------------------------------------------------------------------------------- estimator
def test_garch_sigma_is_d_r_d_with_horizon_average(panel):
    cfg = risk()
    asof = panel.index[-1]
    est = CovarianceEstimator(cfg, tuple(panel.columns), horizon=21).estimate(panel, asof)
    assert est.method == "garch" and not est.fallbacks and est.refit
    assert set(est.params) == set(panel.columns)
    # independent recomputation from the recorded parameters
    x = panel.to_numpy()
    fit_end = np.flatnonzero(panel.index.to_numpy().astype("datetime64[D]") >= _anchor(asof, 10))[0]
    fit_start = fit_end + 1 - 400
    var = []
    for i, t in enumerate(panel.columns):
        d = est.params[t]
        assert d["fitted_on"] == panel.index[fit_end].date().isoformat() and d["n_obs"] == 400
        prm = GarchParams(omega=d["omega"], alphas=tuple(d["alphas"]), betas=tuple(d["betas"]), mu=d["mu"])
        backcast = _arch_backcast(x[fit_start : fit_end + 1, i])
        _, state = filter_state(x[fit_start:, i], prm, backcast=backcast)
        var.append(np.mean(forecast_variance(prm, state, 21)))
    vols = np.sqrt(var)
    corr = np.corrcoef(x[-60:], rowvar=False)
    np.testing.assert_allclose(est.vols, vols, rtol=1e-10)
    np.testing.assert_allclose(est.cov, corr * np.outer(vols, vols), rtol=1e-9)
    assert_psd(est.cov)


def _anchor(asof, every):
    e = refit_epoch(np.array([np.datetime64(asof, "D")]), every)[0]
    return np.busday_offset(np.datetime64("1970-01-05"), e * every, roll="forward")


def _arch_backcast(r):
    return arch_backcast(r - r.mean())


def test_refit_cadence_and_filter_forward(panel):
    cfg = risk()
    tick = tuple(panel.columns)
    est = CovarianceEstimator(cfg, tick, horizon=5)
    days = panel.index[-25:]
    epochs = refit_epoch(days.to_numpy(), 10)
    prev = None
    for k, d in enumerate(days):
        e = est.estimate(panel.loc[:d], d)
        new_block = k == 0 or epochs[k] != epochs[k - 1]
        assert e.refit == new_block, (d, e.refit)
        if not new_block:
            assert e.params == prev.params  # parameters unchanged between refits
            # and the variance equals a fresh filter over the whole window with those parameters
            x = panel.loc[:d].to_numpy()
            for i, t in enumerate(tick):
                p = e.params[t]
                prm = GarchParams(
                    omega=p["omega"], alphas=tuple(p["alphas"]), betas=tuple(p["betas"]), mu=p["mu"]
                )
                fit_end = panel.index.get_loc(pd.Timestamp(p["fitted_on"]))
                bc = _arch_backcast(x[fit_end + 1 - 400 : fit_end + 1, i])
                _, s = filter_state(x[fit_end + 1 - 400 :, i], prm, backcast=bc)
                assert e.vols[i] ** 2 == pytest.approx(np.mean(forecast_variance(prm, s, 5)), rel=1e-10)
        prev = e
    assert est.n_refits == len(set(epochs.tolist()))


def test_schedule_does_not_depend_on_start_date(panel):
    cfg = risk()
    tick = tuple(panel.columns)
    a = CovarianceEstimator(cfg, tick, 5)
    for d in panel.index[-30:-5]:
        ea = a.estimate(panel.loc[:d], d)
    b = CovarianceEstimator(cfg, tick, 5)
    eb = b.estimate(panel.loc[: panel.index[-6]], panel.index[-6])
    for t in tick:  # same refit session; warm vs cold start agree to optimizer tolerance
        assert ea.params[t]["fitted_on"] == eb.params[t]["fitted_on"]
        assert ea.params[t]["omega"] == pytest.approx(eb.params[t]["omega"], rel=2e-2)
    np.testing.assert_allclose(ea.cov, eb.cov, rtol=2e-3)


def test_no_lookahead_rows_after_asof_are_ignored(panel):
    cfg = risk()
    tick = tuple(panel.columns)
    asof = panel.index[-20]
    future = panel.copy()
    future.iloc[-19:] = future.iloc[-19:] * 50 + 0.3  # garbage after asof
    clean = CovarianceEstimator(cfg, tick, 5).estimate(panel.loc[:asof], asof)
    dirty = CovarianceEstimator(cfg, tick, 5).estimate(future, asof)
    np.testing.assert_array_equal(clean.cov, dirty.cov)
    assert clean.params == dirty.params and clean.asof == asof.date()
    # the same through the cache: a run fed frames that extend beyond asof
    s1, s2 = CovarianceEstimator(cfg, tick, 5), CovarianceEstimator(cfg, tick, 5)
    for d in panel.index[-30:-20]:
        r1 = s1.estimate(panel.loc[:d], d)
        r2 = s2.estimate(future, d)
        np.testing.assert_array_equal(r1.cov, r2.cov)


def test_backwards_asof_recomputes_and_keeps_cache(panel):
    cfg = risk()
    tick = tuple(panel.columns)
    live = CovarianceEstimator(cfg, tick, 5)
    for d in panel.index[-40:-10]:
        live.estimate(panel.loc[:d], d)
    old = panel.index[-35]
    replay = live.estimate(panel, old)
    reference = CovarianceEstimator(cfg, tick, 5).estimate(panel, old)
    np.testing.assert_array_equal(replay.cov, reference.cov)  # both cold fits of the same data
    # the live cache was left alone: continuing the run refits only if a new block starts
    n = live.n_refits
    nxt = live.estimate(panel, panel.index[-10])
    same_block = refit_epoch(panel.index[[-11, -10]].to_numpy(), 10)
    assert nxt.refit == (same_block[0] != same_block[1])
    assert live.n_refits == n + int(nxt.refit)


def test_shorter_frame_reuses_cache_and_revised_data_refits(panel):
    cfg = risk()
    tick = tuple(panel.columns)
    est = CovarianceEstimator(cfg, tick, 5)
    days = [
        d
        for d in panel.index[-25:]
        if refit_epoch(np.array([d.to_numpy()]), 10)[0]
        == refit_epoch(np.array([panel.index[-25].to_numpy()]), 10)[0]
    ]
    assert len(days) >= 2
    e0 = est.estimate(panel.loc[: days[0]], days[0])
    n = est.n_refits
    # a lookback snapshot that starts later than the fit window: the cache still applies
    e1 = est.estimate(panel.loc[: days[1]].iloc[-100:], days[1])
    assert est.n_refits == n and not e1.refit and e1.params == e0.params
    # a revised return inside the window invalidates the cache
    revised = panel.copy()
    revised.iloc[-200, 0] += 0.01
    e2 = est.estimate(revised.loc[: days[1]], days[1])
    assert e2.refit and est.n_refits == n + 1


def test_too_short_series_falls_back_to_ewma(panel):
    df = panel.copy()
    df.iloc[: len(df) - 100, 2] = np.nan  # listed 100 sessions ago
    cfg = risk()
    est = CovarianceEstimator(cfg, tuple(df.columns), 5).estimate(df, df.index[-1])
    assert est.method == "garch+ewma"
    (fb,) = est.fallbacks
    assert fb["ticker"] == "A2" and fb["from"] == "garch" and fb["to"] == "ewma"
    # the fit window ends at the first session of the current refit block, so it holds fewer than 100
    n_fit = 100 - (len(df) - 1 - df.index.searchsorted(pd.Timestamp(est.params["A0"]["fitted_on"])))
    assert f"too few observations: {n_fit} < min_observations 250" in fb["reason"]
    assert "A2" not in est.params and set(est.params) == {"A0", "A1", "A3"}
    ref = ewma_variance(df.to_numpy(), 0.94)[2]
    assert est.vols[2] ** 2 == pytest.approx(ref, rel=1e-9)
    assert_psd(est.cov)


def test_nan_gap_is_skipped_and_dead_asset_recorded(panel):
    df = panel.copy()
    df.iloc[-150:-148, 1] = np.nan  # a two-day gap inside the window: GARCH skips it
    df.iloc[:, 3] = np.nan  # no data at all: median fallback, recorded
    cfg = risk()
    est = CovarianceEstimator(cfg, tuple(df.columns), 5).estimate(df, df.index[-1])
    assert "A1" in est.params
    reasons = {f["ticker"]: f for f in est.fallbacks}
    assert set(reasons) == {"A3"}
    assert reasons["A3"]["to"] == "median" and "no finite returns" in reasons["A3"]["reason"]
    assert est.vols[3] ** 2 == pytest.approx(np.median(est.vols[:3] ** 2), rel=1e-9)
    assert np.all(np.isfinite(est.cov))
    assert_psd(est.cov)


def test_ewma_and_sample_methods(panel):
    tick = tuple(panel.columns)
    x = panel.to_numpy()
    e = CovarianceEstimator(risk(method="ewma", ewma_lambda=0.97), tick, 5).estimate(panel, panel.index[-1])
    assert e.method == "ewma" and not e.params
    np.testing.assert_allclose(e.cov, ewma_reference(x, 0.97), rtol=1e-9)
    s = CovarianceEstimator(risk(method="sample", sample_window=100), tick, 5).estimate(
        panel, panel.index[-1]
    )
    assert s.method == "sample"
    np.testing.assert_allclose(s.cov, np.cov(x[-100:], rowvar=False), rtol=1e-10)
    rec = s.to_record()
    assert rec["cov"]["A0"]["A1"] == pytest.approx(s.cov[0, 1]) and rec["method"] == "sample"


def test_bad_input_raises_data_error(panel):
    est = CovarianceEstimator(risk(method="ewma"), ("A0", "ZZZ"), 5)
    with pytest.raises(DataError, match="ZZZ"):
        est.estimate(panel, panel.index[-1])
    est = CovarianceEstimator(risk(method="ewma"), ("A0",), 5)
    with pytest.raises(DataError, match="no returns"):
        est.estimate(panel, panel.index[0] - pd.Timedelta(days=5))


def test_real_djia_sigma(djia_prices):
    ret = djia_prices.iloc[-700:].pct_change().iloc[1:, :8]
    cfg = risk(garch_p=1, garch_q=2, fit_window=500)  # arch naming: study 004's α1, β1, β2
    est = CovarianceEstimator(cfg, tuple(ret.columns), 63).estimate(ret, ret.index[-1])
    assert est.method == "garch", est.fallbacks
    params = next(iter(est.params.values()))
    assert len(params["alphas"]) == 1 and len(params["betas"]) == 2
    assert_psd(est.cov)
    ann = est.vols * np.sqrt(252)
    assert np.all((ann > 0.05) & (ann < 1.5))


def test_block_start_before_history_fits_latest_and_reuses(panel):
    cfg = risk(refit_every=5000)  # the current block began in 2008, before the frame's first row
    est = CovarianceEstimator(cfg, tuple(panel.columns), 5)
    d0 = panel.index[-10]
    e0 = est.estimate(panel.loc[:d0], d0)
    assert e0.refit and e0.params["A0"]["fitted_on"] == d0.date().isoformat()
    for d in panel.index[-9:]:
        e = est.estimate(panel.loc[:d], d)
        assert not e.refit and e.params == e0.params
    assert est.n_refits == 1


def test_make_psd_large_n_uses_cholesky_check():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((400, 250))
    pd_cov = a.T @ a / 400  # positive definite
    same, repaired, min_eig = make_psd(pd_cov, 1e-10)
    assert not repaired and np.isnan(min_eig)
    np.testing.assert_array_equal(same, 0.5 * (pd_cov + pd_cov.T))
    low = a[:60].T @ a[:60] / 60  # rank 60 < 250: singular
    fixed, repaired, min_eig = make_psd(low, 1e-10)
    assert repaired and min_eig < 1e-10
    assert_psd(fixed)
