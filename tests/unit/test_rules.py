"""Rules: 1/N, forecast-proportional with a vol limit, softmax validation, static MVO, 60/40."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.allocate import rules
from agent.errors import ConfigError


def _cov(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vols = rng.uniform(0.008, 0.02, n)
    c = np.full((n, n), 0.3) + 0.7 * np.eye(n)
    return c * np.outer(vols, vols)


def test_equal_weight() -> None:
    r = rules.equal_weight(4)
    np.testing.assert_allclose(r.weights, 0.25)
    assert r.reason == "ok"
    with pytest.raises(ValueError):
        rules.equal_weight(0)


def test_proportional_weights_and_vol_limit() -> None:
    mu = np.array([2e-3, -1e-3, 1e-3, 1e-3])
    cov = np.diag([1e-6] * 4)  # tiny risk: the limit does not bind
    r = rules.proportional_to_forecast(mu, cov, 0.10)
    np.testing.assert_allclose(r.weights, [0.5, 0.0, 0.25, 0.25])
    assert r.reason == "ok"
    cov = _cov(4, 1)
    r = rules.proportional_to_forecast(mu, cov, 0.05)
    vol = math.sqrt(r.weights @ cov @ r.weights * 252)
    assert r.reason == "vol_limited" and vol == pytest.approx(0.05, rel=1e-6)
    np.testing.assert_allclose(r.weights / r.weights.sum(), [0.5, 0.0, 0.25, 0.25], atol=1e-8)


def test_proportional_cap_redistributes_then_cash() -> None:
    mu = np.array([6e-3, 2e-3, 2e-3])
    r = rules.proportional_to_forecast(mu, np.diag([1e-8] * 3), 1.0, max_weight=0.4)
    np.testing.assert_allclose(r.weights, [0.4, 0.3, 0.3])
    r = rules.proportional_to_forecast(np.array([1e-3, 1e-3, 0.0]), np.diag([1e-8] * 3), 1.0, max_weight=0.4)
    np.testing.assert_allclose(r.weights, [0.4, 0.4, 0.0])  # both capped: 20% cash


def test_proportional_all_nonpositive_is_cash() -> None:
    r = rules.proportional_to_forecast(np.array([-1e-3, 0.0]), _cov(2, 2), 0.1)
    assert r.reason == "no_positive_forecast" and r.weights.sum() == 0
    r = rules.proportional_to_forecast(np.array([np.nan, 1e-3]), _cov(2, 2), 0.1)
    assert r.reason == "bad_input_nan_mu" and r.weights.sum() == 0


def test_model_weights_validation() -> None:
    ok = rules.model_weights(np.array([0.2, 0.3, 0.5 + 5e-7]))
    assert ok.reason == "ok" and ok.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert rules.model_weights(np.array([0.5, np.nan, 0.5])).reason == "model_weights_not_finite"
    assert rules.model_weights(np.array([1.2, -0.2])).reason == "model_weights_negative"
    bad = rules.model_weights(np.array([0.2, 0.2]), fallback=np.array([0.0, 0.0]))
    assert bad.reason == "model_weights_bad_sum" and bad.weights.sum() == 0
    np.testing.assert_allclose(rules.model_weights(np.array([0.7, 0.7])).weights, 0.5)


def test_static_mvo_matches_closed_form_tangency() -> None:
    rng = np.random.default_rng(3)
    n, t = 3, 2000
    cov = _cov(n, 3)
    w_star = np.array([0.5, 0.3, 0.2])
    r = rng.multivariate_normal(0.5 * cov @ w_star * 50, cov, size=t)
    mu, s = r.mean(axis=0), np.cov(r, rowvar=False)
    expected = np.linalg.solve(s, mu)
    expected /= expected.sum()
    res = rules.static_mvo(r)
    assert np.all(expected > 0)  # long-only tangency for this seed: the bounds do not bind
    np.testing.assert_allclose(res.weights, expected, atol=1e-5)
    assert res.weights.sum() == pytest.approx(1.0)
    assert res.details["rows"] == t


def test_static_mvo_bounds_and_short_history() -> None:
    rng = np.random.default_rng(4)
    r = rng.normal(5e-4, 0.01, size=(500, 5))
    res = rules.static_mvo(r, min_weight=0.05, max_weight=0.4)
    assert res.weights.min() >= 0.05 - 1e-6 and res.weights.max() <= 0.4 + 1e-6
    short = rules.static_mvo(r[:1])
    assert short.reason == "insufficient_history"


def test_sixty_forty() -> None:
    r = rules.sixty_forty(["SPY", "GLD", "TLT"], "SPY", "TLT")
    np.testing.assert_allclose(r.weights, [0.6, 0.0, 0.4])
    with pytest.raises(ConfigError):
        rules.sixty_forty(["SPY"], "SPY", "TLT")


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    limit=st.floats(0.01, 0.5),
    cap=st.floats(0.05, 1.0),
)
def test_rule_outputs_are_valid(n: int, seed: int, limit: float, cap: float) -> None:
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 1e-3, n)
    a = rng.normal(size=(n, n)) * 0.01
    cov = a @ a.T + np.diag(rng.uniform(1e-5, 1e-4, n))
    for r in (
        rules.equal_weight(n),
        rules.proportional_to_forecast(mu, cov, limit, max_weight=cap),
        rules.model_weights(rng.dirichlet(np.ones(n))),
    ):
        w = r.weights
        assert np.all(np.isfinite(w)) and w.min() >= 0 and w.sum() <= 1 + 1e-9
    p = rules.proportional_to_forecast(mu, cov, limit, max_weight=cap)
    assert p.weights.max() <= cap + 1e-9
    assert math.sqrt(max(p.weights @ cov @ p.weights, 0) * 252) <= limit + 1e-6
