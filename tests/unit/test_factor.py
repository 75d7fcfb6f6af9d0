"""Shrunk correlation + PCA factor model (agent.risk.factor) and the optimizer's factor form.

References: scikit-learn's LedoitWolf / OAS for the intensities, the dense D R_s D for the model, and a dense
cvxpy re-solve (quad_form on the same Σ) for the factor-form optimization.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.allocate.optimize import Optimizer
from agent.risk.factor import factor_model, shrinkage_intensity, standardize

sk = pytest.importorskip("sklearn.covariance")


@settings(max_examples=20, deadline=None)
@given(t=st.integers(5, 80), n=st.integers(2, 120), seed=st.integers(0, 1000))
def test_shrinkage_equals_sklearn(t, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(t, 3)) @ rng.normal(size=(3, n)) + rng.normal(size=(t, n))
    z = standardize(x)
    lw = sk.LedoitWolf(assume_centered=True).fit(z).shrinkage_
    oas = sk.OAS(assume_centered=True).fit(z).shrinkage_
    assert shrinkage_intensity(z, "lw") == pytest.approx(lw, rel=1e-9, abs=1e-12)
    assert shrinkage_intensity(z, "oas") == pytest.approx(oas, rel=1e-9, abs=1e-12)


def test_all_components_reproduce_the_shrunk_correlation():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 4)) @ rng.normal(size=(4, 90)) * 0.01 + rng.normal(size=(60, 90)) * 0.01
    vols = rng.uniform(0.005, 0.03, 90)
    fm = factor_model(x, vols, k=60, method="lw")
    s = fm.shrinkage
    assert 0 < s < 1
    r = np.corrcoef(x, rowvar=False)
    ref = ((1 - s) * r + s * np.eye(90)) * np.outer(vols, vols)
    np.testing.assert_allclose(fm.dense(), ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(np.diag(fm.dense()), vols**2, rtol=1e-12)


def test_sp500_window_full_rank_by_construction(shared_data):
    import pandas as pd

    px = pd.read_csv(shared_data / "sp500_universe_daily.csv.gz", index_col="date", parse_dates=True)
    px = px.loc["2019-01-02":"2019-12-31"]
    px = px.loc[:, px.notna().all()]
    r = px.pct_change().iloc[1:].to_numpy()[-60:]
    n = r.shape[1]
    assert n >= 450
    assert np.linalg.matrix_rank(np.corrcoef(r, rowvar=False)) < n  # the plain 60-session correlation
    vols = r.std(axis=0)
    fm = factor_model(r, vols, k=10)
    sig = fm.dense()
    assert np.linalg.eigvalsh(sig).min() > 0
    np.testing.assert_allclose(np.diag(sig), vols**2, rtol=1e-10)
    assert np.all(fm.specific_var >= fm.shrinkage * vols**2 * (1 - 1e-9))


@pytest.mark.parametrize("method", ["max_sharpe", "min_variance", "target_volatility"])
def test_factor_form_solve_equals_dense_solve(method):
    rng = np.random.default_rng(11)
    n = 120
    x = rng.normal(size=(60, 5)) @ rng.normal(size=(5, n)) * 0.006 + rng.normal(size=(60, n)) * 0.01
    fm = factor_model(x, x.std(axis=0), k=8)
    cov = fm.dense()
    mu = np.abs(rng.normal(4e-4, 3e-4, n))
    prev = np.full(n, 1.0 / n)
    kw = {"max_weight": 0.05, "turnover_cap": 1.5, "cost_bps": 5.0, "horizon": 5, "target_volatility": 0.15}
    opt = Optimizer(method, n, mode="rebuild", **kw)
    a = opt.solve(mu, cov, prev, factor_model=fm)
    b = Optimizer(method, n, mode="rebuild", **kw).solve(mu, cov, prev)
    assert a.method_used == method and b.method_used == method
    np.testing.assert_allclose(a.weights, b.weights, atol=2e-5)
    assert a.objective == pytest.approx(b.objective, rel=1e-5, abs=1e-9)


def test_covariance_estimator_model_setting(sector_prices):
    from agent.risk.covariance import CovarianceEstimator
    from agent.settings import RiskSettings

    ret = sector_prices.pct_change().iloc[1:].loc[:"2019-12-31"]
    tick = list(ret.columns)
    full = CovarianceEstimator(RiskSettings(method="ewma"), tick, 5)
    assert not full.uses_factor_model  # auto below factor_min_n
    fac = CovarianceEstimator(RiskSettings(method="ewma", model="factor", factors=3), tick, 5)
    e_full = full.estimate(ret, ret.index[-1])
    e_fac = fac.estimate(ret, ret.index[-1])
    assert e_full.factor is None and e_fac.factor is not None and e_fac.factor.k == 3
    np.testing.assert_allclose(np.diag(e_fac.cov), np.diag(e_full.cov), rtol=1e-10)
    assert np.linalg.eigvalsh(e_fac.cov).min() > 0
    assert e_fac.to_record()["factor_model"]["k"] == 3
