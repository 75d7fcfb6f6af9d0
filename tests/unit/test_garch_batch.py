"""The lock-step batched GARCH MLE (agent.risk.garch_batch) gives every asset exactly what `fit_garch_mle` gives
it alone: parameters, log-likelihood, iteration and evaluation counts, message, bit for bit (np.array_equal),
so a batched refit decides like a per-asset one and restart equivalence is untouched."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from agent.risk.garch import fit_garch, fit_garch_many
from agent.risk.garch_batch import fit_garch_mle_batch
from agent.risk.garch_mle import fit_garch_mle

SPECS = [(p, q, dist) for dist in ("normal", "t") for (p, q) in ((1, 1), (2, 1), (1, 2))]


def _windows(prices: pd.DataFrame) -> list[np.ndarray]:
    r = prices.loc[:"2019-12-31"].pct_change().iloc[1:]
    return [r[c].dropna().to_numpy()[-1000:] * 100 for c in r.columns]


def _same(a, b) -> bool:
    return (
        np.array_equal(a.params, b.params)
        and a.loglik == b.loglik
        and (a.converged, a.message, a.n_iter, a.n_eval, a.backcast)
        == (b.converged, b.message, b.n_iter, b.n_eval, b.backcast)
    )


@pytest.fixture(scope="module")
def real(djia_prices, sector_prices):
    out = _windows(djia_prices) + _windows(sector_prices)
    assert len(out) >= 30 + 12
    return out


@pytest.mark.parametrize(("p", "q", "dist"), SPECS)
def test_batch_bit_identical_on_dow_and_sectors(real, p, q, dist):
    """All 30 Dow names and the 12 sector ETFs in one batch (two lock-step blocks), each order and distribution."""
    batch = fit_garch_mle_batch(real, p, q, dist)
    for y, b in zip(real, batch, strict=True):
        assert not isinstance(b, Exception)
        assert _same(fit_garch_mle(y, p, q, dist), b)


@pytest.mark.parametrize("seed", range(4))
def test_batch_bit_identical_on_random_windows(djia_prices, sector_prices, seed):
    """Random windows of random lengths (so the batch has several length groups), mean zero or constant."""
    rng = np.random.default_rng(seed)
    prices = pd.concat([djia_prices, sector_prices], axis=1, sort=True)
    r = prices.pct_change().iloc[1:]
    cols = rng.choice(r.shape[1], size=13, replace=False)
    ys = []
    for c in cols:
        s = r.iloc[:, c].dropna().to_numpy() * 100
        n = int(rng.choice([300, 500, 1000]))
        start = int(rng.integers(0, s.shape[0] - n))
        ys.append(s[start : start + n])
    p, q, dist = SPECS[int(rng.integers(len(SPECS)))]
    mean = "zero" if seed % 2 else "constant"
    batch = fit_garch_mle_batch(ys, p, q, dist, mean, block=int(rng.integers(1, 9)))  # type: ignore[arg-type]
    for y, b in zip(ys, batch, strict=True):
        assert not isinstance(b, Exception)
        assert _same(fit_garch_mle(y, p, q, dist, mean), b)  # type: ignore[arg-type]


def test_fit_garch_many_equals_fit_garch_with_per_asset_fallbacks(djia_prices):
    """Bad inputs raise for that asset only; a non-converged MLE falls back to `arch` per asset and says so."""
    r = djia_prices.pct_change().iloc[1:]
    series = [r[c].dropna().to_numpy()[-800:] for c in r.columns[:5]]
    series.insert(2, np.full(5, 0.01))  # too short: fit_garch raises ValueError
    many = fit_garch_many(series, 2, 1, fitted_on="2019-12-31")
    assert isinstance(many[2], ValueError)
    for s, m in zip(series, many, strict=True):
        if len(s) < 10:
            continue
        one = fit_garch(s, 2, 1, fitted_on="2019-12-31")
        assert not isinstance(m, Exception)
        assert dataclasses.asdict(m) == dataclasses.asdict(one)
    tight = fit_garch_many(series[:2], 2, 1, maxiter=1)  # SLSQP stops at its iteration limit
    for s, m in zip(series[:2], tight, strict=True):
        one = fit_garch(s, 2, 1, maxiter=1)
        assert not isinstance(m, Exception)
        assert m.estimator == one.estimator == "arch" and m.message == one.message
        assert dataclasses.asdict(m) == dataclasses.asdict(one)


def test_covariance_refit_batched_equals_per_asset(djia_prices):
    """The estimator's cold refit of all assets: batched and one-at-a-time give the same Σ and parameters."""
    from agent.risk.covariance import CovarianceEstimator
    from agent.settings import RiskSettings

    ret = djia_prices.iloc[-800:].pct_change().iloc[1:, :12]
    ret.iloc[:700, 3] = np.nan  # too few observations: recorded as a fallback by both
    out = []
    for batched in (True, False):
        est = CovarianceEstimator(RiskSettings(fit_window=500), tuple(ret.columns), 5)
        est.batch_refit = batched
        out.append(est.estimate(ret, ret.index[-1]))
    a, b = out
    assert a.params == b.params and a.fallbacks == b.fallbacks and a.method == b.method
    assert np.array_equal(a.cov, b.cov)
