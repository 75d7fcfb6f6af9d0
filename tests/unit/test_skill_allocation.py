"""Reference portfolios, implied returns and the skill-calibrated posterior (issue 9).

The identity is checked against the real cvxpy optimizer: with mu = pi = delta * Sigma @ w_ref and bounds that
allow the reference, mean-variance returns the reference to 1e-6. The BL posterior is checked against the
textbook precision-form formula (an independent inversion), and the zero-skill cases against pi exactly.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.allocate.black_litterman import (
    bl_posterior,
    forecast_scores,
    grinold_kahn,
    skill_gate,
    skill_views,
)
from agent.allocate.optimize import Optimizer
from agent.allocate.reference import implied_returns, inverse_vol, reference_weights, risk_parity


def _cov(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n)) * 0.01
    vols = rng.uniform(0.008, 0.02, n)
    corr = a @ a.T
    d = np.sqrt(np.diag(corr))
    corr = corr / np.outer(d, d)
    corr = 0.6 * corr + 0.4 * np.eye(n)
    return corr * np.outer(vols, vols)


@pytest.mark.parametrize("kind", ["equal_weight", "inverse_vol", "risk_parity"])
@pytest.mark.parametrize("delta", [1.0, 2.5, 8.0])
def test_identity_mean_variance_returns_the_reference(kind: str, delta: float) -> None:
    n = 9
    cov = _cov(n, 3)
    w_ref = reference_weights(kind, cov)
    pi = implied_returns(cov, w_ref, delta)
    opt = Optimizer("mean_variance", n, max_weight=0.3, risk_aversion=delta, cost_bps=5.0, horizon=5)
    res = opt.solve(pi, cov, np.zeros(n))  # from cash: fully invested, the cost term is the same for every w
    assert res.method_used == "mean_variance"
    np.testing.assert_allclose(res.weights, w_ref, atol=1e-6)


def test_identity_max_sharpe_and_given_weights() -> None:
    n = 5
    cov = _cov(n, 11)
    w_ref = reference_weights(
        "weights", cov, tickers=list("ABCDE"), given={"A": 0.1, "B": 0.2, "C": 0.3, "D": 0.25, "E": 0.15}
    )
    pi = implied_returns(cov, w_ref, 3.0)
    res = Optimizer("max_sharpe", n, costs_in_objective=False).solve(pi, cov, None)
    np.testing.assert_allclose(res.weights, w_ref, atol=1e-6)


def test_identity_breaks_when_bounds_forbid_the_reference() -> None:
    """The identity holds only with bounds that allow the reference (a max_weight below a reference weight)."""
    n = 4
    cov = _cov(n, 2)
    w_ref = np.array([0.4, 0.3, 0.2, 0.1])
    pi = implied_returns(cov, w_ref, 2.5)
    res = Optimizer("mean_variance", n, max_weight=0.3, risk_aversion=2.5).solve(pi, cov, None)
    assert res.weights.max() <= 0.3 + 1e-6
    assert np.abs(res.weights - w_ref).max() > 0.05


def test_risk_parity_equalizes_risk_contributions() -> None:
    cov = _cov(7, 5)
    w = risk_parity(cov)
    rc = w * (cov @ w)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(rc / rc.sum(), np.full(7, 1 / 7), atol=1e-8)
    # diagonal covariance: ERC is inverse volatility
    d = np.diag([1e-4, 4e-4, 9e-4])
    np.testing.assert_allclose(risk_parity(d), inverse_vol(d), atol=1e-10)
    np.testing.assert_allclose(inverse_vol(d), np.array([1, 0.5, 1 / 3]) / (1 + 0.5 + 1 / 3))


def test_reference_cap_redistributes() -> None:
    cov = np.diag([1e-6, 1e-4, 1e-4, 1e-4])  # inverse vol puts ~77% in the first name
    w = reference_weights("inverse_vol", cov, max_weight=0.4)
    assert w.max() <= 0.4 + 1e-12
    assert w.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not in the universe"):
        reference_weights("weights", cov, tickers=list("ABCD"), given={"Z": 1.0})


def _bl_textbook(pi, cov, p, q, omega, tau):
    """Precision form: [(tau S)^-1 + P' O^-1 P]^-1 [(tau S)^-1 pi + P' O^-1 q] (independent reference)."""
    ts_inv = np.linalg.inv(tau * cov)
    o_inv = np.linalg.inv(omega)
    a = ts_inv + p.T @ o_inv @ p
    b = ts_inv @ pi + p.T @ o_inv @ q
    return np.linalg.solve(a, b)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), tau=st.floats(0.01, 1.0), ic=st.floats(0.01, 0.9))
def test_bl_posterior_matches_precision_form(seed: int, tau: float, ic: float) -> None:
    n = 6
    cov = _cov(n, seed)
    rng = np.random.default_rng(seed)
    pi = implied_returns(cov, np.full(n, 1 / n), 2.5)
    z = forecast_scores(rng.normal(size=n))
    p, q, omega = skill_views(pi, cov, z, ic, 5, tau)
    got = bl_posterior(pi, cov, p, q, omega, tau)
    np.testing.assert_allclose(got, _bl_textbook(pi, cov, p, q, omega, tau), rtol=1e-7, atol=1e-12)


def test_bl_reduces_to_grinold_kahn_for_uncorrelated_assets() -> None:
    cov = np.diag([1e-4, 2e-4, 3e-4, 4e-4])
    pi = implied_returns(cov, np.full(4, 0.25), 2.5)
    z = forecast_scores(np.array([0.3, -0.1, 0.2, -0.4]))
    p, q, omega = skill_views(pi, cov, z, 0.1, 5, 0.05)
    np.testing.assert_allclose(
        bl_posterior(pi, cov, p, q, omega, 0.05), grinold_kahn(pi, cov, z, 0.1, 5), rtol=1e-12
    )


@pytest.mark.parametrize("combine", ["bl", "gk"])
def test_zero_skill_is_exactly_pi_and_the_reference(combine: str) -> None:
    n = 9
    cov = _cov(n, 8)
    w_ref = reference_weights("equal_weight", cov)
    pi = implied_returns(cov, w_ref, 2.5)
    z = forecast_scores(np.random.default_rng(1).normal(size=n))
    ic = skill_gate(0.0, 0.0, 2.0)
    if combine == "bl":
        p, q, omega = skill_views(pi, cov, z, ic, 5, 0.05)
        mu = bl_posterior(pi, cov, p, q, omega, 0.05)
    else:
        mu = grinold_kahn(pi, cov, z, ic, 5)
    np.testing.assert_array_equal(mu, pi)
    res = Optimizer("mean_variance", n, max_weight=0.3, risk_aversion=2.5).solve(mu, cov, None)
    np.testing.assert_allclose(res.weights, w_ref, atol=1e-6)


def test_gate_and_tilt_grow_with_skill() -> None:
    assert skill_gate(0.05, 1.9, 2.0) == 0.0
    assert skill_gate(0.05, 2.1, 2.0) == 0.05
    assert skill_gate(-0.05, 5.0, 0.0) == 0.0
    assert skill_gate(0.05, 0.1, 0.0) == 0.05  # threshold 0 disables the gate (still no negative skill)
    n = 9
    cov = _cov(n, 4)
    w_ref = reference_weights("equal_weight", cov)
    pi = implied_returns(cov, w_ref, 25.0)  # an active risk aversion at which no bound binds up to IC 0.1
    z = forecast_scores(np.linspace(-1, 1, n))
    opt = Optimizer("mean_variance", n, max_weight=0.3, risk_aversion=25.0)
    dist = []
    for ic in (0.0, 0.01, 0.03, 0.1):
        p, q, omega = skill_views(pi, cov, z, ic, 5, 0.05)
        w = opt.solve(bl_posterior(pi, cov, p, q, omega, 0.05), cov, None).weights
        dist.append(float(np.abs(w - w_ref).sum()))
    assert dist[0] < 1e-6
    assert all(b > a for a, b in itertools.pairwise(dist))
    # the tilt goes toward the forecast: the best-scored name gains weight
    assert w[-1] > w_ref[-1] and w[0] < w_ref[0]


def test_forecast_scores_without_spread_are_zero() -> None:
    np.testing.assert_array_equal(forecast_scores(np.full(4, 0.001)), np.zeros(4))
    z = forecast_scores(np.array([1.0, 2.0, 3.0]))
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)
