"""The analytic-gradient GARCH MLE (agent.risk.garch_mle) against `arch`, the independent reference.

Reference optimum: `arch` run with ``tol=1e-12``. At its default tolerance (SLSQP ftol 1e-6 on the summed
negative log-likelihood, finite-difference gradients) `arch` stops up to ~1e-3 away from the optimum along flat
directions (measured: MMM GARCH(1,1) ω 2.77494 vs 2.77586, our log-likelihood higher by 2.3e-7), so parameter
equality is checked against the tight fit, and the log-likelihood function against `arch`'s at its own
optimum.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.risk.garch import fit_garch
from agent.risk.garch_mle import arch_starting_values, fit_garch_mle, garch_negloglik
from tests.unit.garch_sim import simulate_garch

arch_univariate = pytest.importorskip("arch.univariate")

SPECS = [(p, q, dist) for dist in ("normal", "t") for (p, q) in ((1, 1), (2, 1), (1, 2))]


def _arch_model(y, p, q, dist, mean="constant"):
    from arch.univariate import GARCH, ConstantMean, Normal, StudentsT, ZeroMean

    m = (ConstantMean if mean == "constant" else ZeroMean)(y, rescale=False)
    m.volatility = GARCH(p=q, q=p)  # arch: p = shock lags, q = variance lags
    m.distribution = StudentsT() if dist == "t" else Normal()
    return m


def _arch_fit(m, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit(disp="off", show_warning=False, **kw)


_sim = simulate_garch


@pytest.mark.parametrize(("p", "q", "dist"), SPECS)
@pytest.mark.parametrize("mean", ["constant", "zero"])
def test_gradient_equals_finite_differences(p, q, dist, mean):
    y = _sim(600, 7, t_df=6.0 if dist == "t" else None)
    th = arch_starting_values(y, p, q, dist, mean)
    th = th + 0.01 * np.abs(th)  # off the grid point
    bc = float(np.sum((y[:75] - (y.mean() if mean == "constant" else 0)) ** 2 * 0.94 ** np.arange(75)))
    bc /= float(np.sum(0.94 ** np.arange(75)))
    f, g = garch_negloglik(th, y, p, q, dist, mean, bc)
    assert g is not None
    num = np.empty_like(th)
    for i in range(th.shape[0]):
        h = 1e-6 * max(1.0, abs(th[i]))
        up, dn = th.copy(), th.copy()
        up[i] += h
        dn[i] -= h
        num[i] = (
            garch_negloglik(up, y, p, q, dist, mean, bc, grad=False)[0]
            - garch_negloglik(dn, y, p, q, dist, mean, bc, grad=False)[0]
        ) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-6 * abs(f) / len(y))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), spec=st.sampled_from(SPECS))
def test_loglik_equals_arch_at_random_parameters(seed, spec):
    p, q, dist = spec
    rng = np.random.default_rng(seed)
    y = _sim(300, seed)
    a = rng.uniform(0.0, 0.2, q)
    b = rng.uniform(0.0, 0.75 / p, p)
    th = np.r_[rng.normal(0, 0.1), rng.uniform(0.01, 0.3), a, b]
    if dist == "t":
        th = np.r_[th, rng.uniform(2.5, 40)]
    m = _arch_model(y, p, q, dist)
    ref = m.fix(th).loglikelihood
    bc = arch_univariate.GARCH(p=q, q=p).backcast(y - y.mean())
    mine = -garch_negloglik(th, y, p, q, dist, "constant", bc, grad=False)[0]
    assert mine == pytest.approx(ref, rel=1e-10)


def _real_windows(prices):
    r = prices.loc[:"2019-12-31"].pct_change().iloc[1:]
    return {c: (r[c].dropna().to_numpy()[-1000:] * 100) for c in r.columns}


@pytest.fixture(scope="module")
def real_returns(djia_prices, sector_prices):
    out = _real_windows(djia_prices)
    out.update(_real_windows(sector_prices))
    assert len(out) >= 30 + 12
    return out


@pytest.mark.parametrize(("p", "q", "dist"), SPECS)
def test_real_returns_same_optimum_as_arch(real_returns, p, q, dist):
    """All 30 Dow names and the sector ETFs (1000 returns to 2019-12-31), each order and distribution."""
    worst_ll = worst_par = 0.0
    for name, y in real_returns.items():
        m = _arch_model(y, p, q, dist)
        res = _arch_fit(m)
        bc = m._backcast
        # our likelihood function at arch's own optimum equals arch's value there
        mine_at_arch = -garch_negloglik(res.params.to_numpy(), y, p, q, dist, "constant", bc, grad=False)[0]
        worst_ll = max(worst_ll, abs(mine_at_arch - res.loglikelihood) / abs(res.loglikelihood))
        fit = fit_garch_mle(y, p, q, dist)
        assert fit.converged, (name, fit.message)
        assert fit.backcast == pytest.approx(bc, rel=1e-13)
        tight = _arch_fit(_arch_model(y, p, q, dist), tol=1e-12)
        assert fit.loglik >= tight.loglikelihood - 1e-9 * abs(tight.loglikelihood), name
        assert fit.loglik >= res.loglikelihood - 1e-9 * abs(res.loglikelihood), name
        d = float(np.max(np.abs(fit.params - tight.params.to_numpy())))
        worst_par = max(worst_par, d)
        assert d <= 1e-4, (name, fit.params, tight.params.to_numpy())
    assert worst_ll <= 1e-8


def test_non_converged_fit_falls_back_to_arch_and_says_so(djia_prices):
    r = djia_prices["AAPL"].pct_change().dropna().to_numpy()[-800:]
    prm = fit_garch(r, p=2, q=1, maxiter=1)  # SLSQP stops at its iteration limit: not converged
    assert prm.estimator == "arch"
    assert "mle did not converge" in prm.message and "fitted with arch" in prm.message
    ok = fit_garch(r, p=2, q=1)
    assert ok.estimator == "mle" and ok.converged and ok.message == ""
    assert ok.to_dict()["estimator"] == "mle"


def test_fit_is_a_function_of_the_data_alone(djia_prices):
    """Cold start: the same returns give bit-identical parameters, whatever was fitted before."""
    r = djia_prices["MSFT"].pct_change().dropna().to_numpy()[-1000:]
    a = fit_garch(r, p=2, q=1)
    fit_garch(r[:-300], p=2, q=1)
    b = fit_garch(r, p=2, q=1)
    assert a.to_dict() == b.to_dict()
