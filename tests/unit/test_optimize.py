"""Optimizer: values against closed forms and scipy, constraint properties, fallbacks, DPP re-solve."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.allocate.optimize import OPTIMIZER_METHODS, Optimizer, factor_cov
from agent.settings import AllocationSettings


def _cov(n: int, seed: int, corr: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vols = rng.uniform(0.008, 0.02, n)
    c = np.full((n, n), corr) + (1 - corr) * np.eye(n)
    return c * np.outer(vols, vols)


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("mode", ["dpp", "rebuild"])
def test_max_sharpe_unconstrained_is_normalized_inverse_cov_times_excess(mode: str) -> None:
    n, rf = 5, 0.03
    cov = _cov(n, 1)
    w_star = np.array([0.1, 0.3, 0.2, 0.25, 0.15])  # a long-only tangency portfolio by construction
    excess = 0.8 * cov @ w_star
    mu = excess + rf / 252
    expected = np.linalg.solve(cov, mu - rf / 252)
    expected /= expected.sum()
    assert np.all(expected > 0)
    res = Optimizer("max_sharpe", n, risk_free_rate=rf, mode=mode).solve(mu, cov, None)
    assert res.reason_code == "ok" and res.method_used == "max_sharpe"
    np.testing.assert_allclose(res.weights, expected, atol=1e-6)
    sharpe = (excess @ expected) / math.sqrt(expected @ cov @ expected)
    assert res.objective == pytest.approx(sharpe, rel=1e-6)


def test_min_variance_two_assets_closed_form() -> None:
    s1, s2, rho = 0.012, 0.018, 0.3
    s12 = rho * s1 * s2
    cov = np.array([[s1**2, s12], [s12, s2**2]])
    w1 = (s2**2 - s12) / (s1**2 + s2**2 - 2 * s12)
    res = Optimizer("min_variance", 2).solve(np.zeros(2), cov, None)
    np.testing.assert_allclose(res.weights, [w1, 1 - w1], atol=1e-7)


@pytest.mark.parametrize("mode", ["dpp", "rebuild"])
def test_mean_variance_unconstrained_equals_inverse_cov_over_gamma(mode: str) -> None:
    n, gamma = 4, 3.0
    cov = _cov(n, 2)
    w_star = np.array([0.1, 0.2, 0.15, 0.05])  # interior, sum 0.5 < 1: no constraint binds with cash allowed
    mu = gamma * cov @ w_star
    res = Optimizer("mean_variance", n, risk_aversion=gamma, fully_invested=False, mode=mode).solve(
        mu, cov, None
    )
    np.testing.assert_allclose(res.weights, np.linalg.solve(cov, mu) / gamma, atol=1e-6)


def test_mean_variance_with_costs_matches_scipy() -> None:
    from scipy.optimize import minimize

    n, gamma, bps = 4, 5.0, 20.0
    cov = _cov(n, 3)
    mu = np.array([8e-4, 2e-4, 5e-4, -1e-4])
    prev = np.array([0.4, 0.3, 0.2, 0.1])
    res = Optimizer("mean_variance", n, risk_aversion=gamma, cost_bps=bps, max_weight=0.6).solve(
        mu, cov, prev
    )
    c = bps / 1e4

    def neg(w: np.ndarray) -> float:
        return -(mu @ w - gamma / 2 * w @ cov @ w - c * np.sqrt((w - prev) ** 2 + 1e-14).sum())

    ref = minimize(
        neg,
        prev,
        bounds=[(0, 0.6)] * n,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    assert -ref.fun <= res.objective + 1e-9  # ours is at least as good as scipy's local optimum
    np.testing.assert_allclose(res.weights, ref.x, atol=2e-3)


def test_max_sharpe_with_costs_and_turnover_is_exact_net_sharpe() -> None:
    """Homogenized costs/turnover give the net-of-cost max Sharpe: no feasible point of a grid beats it."""
    n, bps, cap = 3, 50.0, 0.6
    cov = _cov(n, 4)
    mu = np.array([9e-4, 6e-4, 3e-4])
    prev = np.array([0.1, 0.2, 0.7])
    res = Optimizer("max_sharpe", n, cost_bps=bps, turnover_cap=cap).solve(mu, cov, prev)
    assert res.method_used == "max_sharpe"
    assert np.abs(res.weights - prev).sum() <= cap + 1e-6
    c = bps / 1e4
    best = -np.inf
    g = np.linspace(0, 1, 201)
    for a in g:
        for b in g[g <= 1 - a + 1e-12]:
            w = np.array([a, b, 1 - a - b])
            if np.abs(w - prev).sum() <= cap:
                best = max(best, (mu @ w - c * np.abs(w - prev).sum()) / math.sqrt(w @ cov @ w))
    assert res.objective >= best - 1e-7


def test_target_volatility_respects_target_and_binds_with_positive_mu() -> None:
    n, target = 5, 0.08
    cov = _cov(n, 5)
    mu = np.linspace(2e-4, 1e-3, n)
    res = Optimizer("target_volatility", n, target_volatility=target, fully_invested=False).solve(
        mu, cov, None
    )
    vol = math.sqrt(res.weights @ cov @ res.weights * 252)
    assert res.method_used == "target_volatility"
    assert vol <= target + 1e-6
    assert vol == pytest.approx(target, abs=1e-5)


def test_bounds_and_group_caps_bind() -> None:
    n = 6
    cov = _cov(n, 6)
    mu = np.array([2e-3, 1.5e-3, 1e-4, 1e-4, 1e-4, 1e-4])
    opt = Optimizer(
        "max_sharpe", n, min_weight=0.05, max_weight=0.3, groups={"g": [0, 1]}, group_caps={"g": 0.4}
    )
    res = opt.solve(mu, cov, None)
    assert res.method_used == "max_sharpe"
    assert res.weights.min() >= 0.05 - 1e-6 and res.weights.max() <= 0.3 + 1e-6
    assert res.weights[:2].sum() == pytest.approx(0.4, abs=1e-6)
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-9)


# ----------------------------------------------------------------------------- degenerate inputs
def test_infeasible_bounds_detected_up_front() -> None:
    opt = Optimizer("max_sharpe", 5, max_weight=0.1)
    assert opt.bounds_reason == "infeasible_bounds"
    prev = np.full(5, 0.1)
    res = opt.solve(np.full(5, 1e-3), _cov(5, 7), prev)
    assert res.reason_code == "infeasible_bounds"
    assert res.method_used == "previous"
    np.testing.assert_allclose(res.weights, prev)
    assert [t["method"] for t in res.trace] == ["max_sharpe", "min_variance", "previous"]
    assert Optimizer("min_variance", 5, min_weight=0.3).bounds_reason == "infeasible_bounds"


def test_nan_mu_falls_back_to_min_variance() -> None:
    cov = _cov(4, 8)
    res = Optimizer("max_sharpe", 4).solve(np.array([1e-3, np.nan, 1e-3, 1e-3]), cov, None)
    assert res.reason_code == "bad_input_nan_mu"
    assert res.method_used == "min_variance"
    ref = Optimizer("min_variance", 4).solve(np.zeros(4), cov, None)
    np.testing.assert_allclose(res.weights, ref.weights, atol=1e-9)


def test_nan_cov_falls_back_to_previous_then_cash() -> None:
    cov = _cov(3, 9)
    cov[0, 1] = np.nan
    res = Optimizer("mean_variance", 3).solve(np.full(3, 1e-3), cov, np.array([0.2, 0.3, 0.4]))
    assert res.reason_code == "bad_input_nan_cov" and res.method_used == "previous"
    res = Optimizer("mean_variance", 3).solve(np.full(3, 1e-3), cov, np.array([np.nan, 0.3, 0.4]))
    assert res.method_used == "cash" and res.weights.sum() == 0


def test_non_psd_cov_is_repaired_and_recorded() -> None:
    cov = _cov(4, 10)
    lam, vec = np.linalg.eigh(cov)
    lam[0] = -0.5 * lam[-1]
    bad = vec @ np.diag(lam) @ vec.T
    res = Optimizer("max_sharpe", 4).solve(np.full(4, 5e-4), bad, None)
    assert res.reason_code == "non_psd_cov_repaired"
    assert res.method_used == "max_sharpe"
    assert {"method": "inputs", "status": "repaired", "reason": "non_psd_cov_repaired"} in res.trace
    f, repaired = factor_cov(bad)
    assert repaired and np.linalg.eigvalsh(f @ f.T).min() >= -1e-12


def test_no_positive_excess_return() -> None:
    cov = _cov(3, 11)
    mu = np.array([-1e-4, 0.0, 1e-4])
    rf = 0.05  # 0.05/252 ~ 2e-4 > every mu
    cash_ok = Optimizer("max_sharpe", 3, fully_invested=False, risk_free_rate=rf).solve(mu, cov, None)
    assert cash_ok.reason_code == "no_positive_excess_return" and cash_ok.weights.sum() == 0
    full = Optimizer("max_sharpe", 3, risk_free_rate=rf).solve(mu, cov, None)
    assert full.reason_code == "no_positive_excess_return" and full.method_used == "min_variance"
    assert full.weights.sum() == pytest.approx(1.0)


def test_infeasible_target_volatility_falls_back() -> None:
    cov = _cov(3, 12) * 4  # every portfolio far above 5% vol
    res = Optimizer("target_volatility", 3, target_volatility=0.05).solve(np.full(3, 1e-3), cov, None)
    assert res.reason_code == "infeasible" and res.method_used == "min_variance"


def test_turnover_cap_infeasible_from_cash_holds_previous() -> None:
    res = Optimizer("max_sharpe", 3, turnover_cap=0.5).solve(np.full(3, 1e-3), _cov(3, 13), np.zeros(3))
    assert res.reason_code == "infeasible" and res.method_used == "previous"


def test_solver_error_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    opt = Optimizer("max_sharpe", 3, solver="NOT_A_SOLVER")
    res = opt.solve(np.full(3, 1e-3), _cov(3, 14), np.full(3, 1 / 3))
    assert res.reason_code.startswith("solver_failed") and res.method_used == "previous"


# ----------------------------------------------------------------------------- DPP
@pytest.mark.parametrize("method", OPTIMIZER_METHODS)
def test_resolve_does_not_recompile(method: str) -> None:
    n = 6
    opt = Optimizer(
        method, n, cost_bps=10, turnover_cap=1.5, fully_invested=False, target_volatility=0.3, mode="dpp"
    )
    prog = opt.program()
    assert prog.problem.is_dpp()
    rng = np.random.default_rng(0)
    opt.solve(rng.uniform(1e-4, 1e-3, n), _cov(n, 15), np.full(n, 1 / n))
    compiled = prog.problem._cache.param_prog
    assert compiled is not None
    r2 = opt.solve(rng.uniform(1e-4, 1e-3, n), _cov(n, 16), np.full(n, 0.1))
    assert prog.problem._cache.param_prog is compiled  # same compiled program: parameters only
    assert r2.method_used == method
    assert opt.program() is prog


def test_auto_mode_rebuilds_for_large_n() -> None:
    assert Optimizer("max_sharpe", 10).rebuild is False
    assert Optimizer("max_sharpe", 200).rebuild is True


# ----------------------------------------------------------------------------- settings
def test_from_settings_maps_groups_and_caps() -> None:
    s = AllocationSettings(
        method="max_sharpe", max_weight=0.5, group_caps={"tech": 0.3}, turnover_cap=1.0, risk_free_rate=0.02
    )
    opt = Optimizer.from_settings(s, ["A", "B", "C", "D"], {"tech": ["B", "D"]}, cost_bps=5.0, horizon=5)
    np.testing.assert_array_equal(opt.group_caps["tech"][0], [1, 3])
    assert opt.cost_rate == pytest.approx(5e-4 / 5)
    assert opt.risk_free_daily == pytest.approx(0.02 / 252)
    assert opt.chain == ("max_sharpe", "min_variance", "previous", "cash")
    res = opt.solve(np.array([1e-3, 2e-3, 5e-4, 2e-3]), _cov(4, 17), np.full(4, 0.25))
    assert res.weights[[1, 3]].sum() <= 0.3 + 1e-6


def test_from_settings_rejects_rules() -> None:
    from agent.errors import ConfigError

    with pytest.raises(ConfigError):
        Optimizer.from_settings(AllocationSettings(method="equal_weight"), ["A", "B"], {}, 0.0)


# ----------------------------------------------------------------------------- properties
@st.composite
def _case(draw: st.DrawFn) -> dict:
    n = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n)) * 0.01
    cov = a @ a.T / n + np.diag(rng.uniform(2e-5, 4e-4, n))
    mu = rng.normal(3e-4, 8e-4, n)
    hi = draw(st.floats(min(1.0, 1.0 / n + 0.05), 1.0))
    lo = draw(st.sampled_from([0.0, 0.0, min(0.02, 1.0 / n - 0.01)]))
    prev = rng.dirichlet(np.ones(n)) * draw(st.floats(0.5, 1.0))
    return {
        "n": n,
        "cov": cov,
        "mu": mu,
        "prev": prev,
        "lo": max(lo, 0.0),
        "hi": hi,
        "full": draw(st.booleans()),
        "cap": draw(st.sampled_from([None, 0.3, 1.0])),
        "bps": draw(st.sampled_from([0.0, 10.0])),
        "gcap": draw(st.sampled_from([None, 0.5])),
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_case())
def test_every_optimizer_output_is_valid(case: dict) -> None:
    n = case["n"]
    groups = {"g": [0, 1]} if case["gcap"] is not None else {}
    caps = {"g": case["gcap"]} if case["gcap"] is not None else {}
    for method in OPTIMIZER_METHODS:
        opt = Optimizer(
            method,
            n,
            min_weight=case["lo"],
            max_weight=case["hi"],
            fully_invested=case["full"],
            groups=groups,
            group_caps=caps,
            turnover_cap=case["cap"],
            cost_bps=case["bps"],
            target_volatility=0.15,
        )
        res = opt.solve(case["mu"], case["cov"], case["prev"])
        w = res.weights
        assert np.all(np.isfinite(w)) and w.min() >= 0
        assert w.sum() <= 1 + 1e-6
        assert len(res.trace) >= 1 and res.trace[-1]["method"] == res.method_used
        if res.method_used in OPTIMIZER_METHODS:
            assert w.min() >= case["lo"] - 1e-6 and w.max() <= case["hi"] + 1e-6
            if case["full"]:
                assert w.sum() == pytest.approx(1.0, abs=1e-6)
            if caps:
                assert w[:2].sum() <= case["gcap"] + 1e-6
            if case["cap"] is not None:
                assert np.abs(w - case["prev"]).sum() <= case["cap"] + 1e-6
        elif res.method_used == "previous":
            np.testing.assert_allclose(w, case["prev"], atol=1e-9)
        elif res.method_used == "cash":
            assert w.sum() == 0


def test_a_solve_does_not_depend_on_the_solve_history() -> None:
    """Audit replay solves once, the daemon after many solves: the same inputs must give the same weights."""
    rng = np.random.default_rng(7)
    n = 12
    a = rng.normal(size=(400, n)) * 0.01
    cov = np.cov(a, rowvar=False)
    mu = rng.normal(size=n) * 3e-4 + 2e-4
    kw = {"max_weight": 0.3, "cost_bps": 5.0, "costs_in_objective": True}
    live = Optimizer("max_sharpe", n, **kw)
    for k in range(8):
        live.solve(mu * (1 + 0.3 * np.sin(k)), cov * (1 + 0.05 * k), np.full(n, 1 / n))
    replayed = Optimizer("max_sharpe", n, **kw).solve(mu, cov, np.full(n, 1 / n))
    np.testing.assert_array_equal(live.solve(mu, cov, np.full(n, 1 / n)).weights, replayed.weights)


def test_no_positive_excess_return_respects_the_turnover_cap() -> None:
    """Every excess return <= 0 with cash allowed: all cash is the answer only if the turnover cap allows selling
    everything. Here it does not (cap 0.3, fully invested before), so the fallback chain takes a capped step."""
    prev = np.array([0.5, 0.3, 0.2])
    opt = Optimizer("max_sharpe", 3, min_weight=0.0, max_weight=1.0, fully_invested=False, turnover_cap=0.3)
    res = opt.solve(np.full(3, -0.001), np.eye(3) * 1e-4, prev)
    assert res.reason_code == "no_positive_excess_return"
    assert res.method_used != "max_sharpe"
    assert np.abs(res.weights - prev).sum() <= 0.3 + 1e-6
    # with a cap that allows it, the answer is all cash
    wide = Optimizer("max_sharpe", 3, min_weight=0.0, max_weight=1.0, fully_invested=False, turnover_cap=1.0)
    out = wide.solve(np.full(3, -0.001), np.eye(3) * 1e-4, prev)
    assert out.method_used == "max_sharpe" and out.weights.sum() == 0
