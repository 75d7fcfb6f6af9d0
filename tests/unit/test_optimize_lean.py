"""The lean re-solve (agent.allocate.lean) against cvxpy's own `problem.solve`: same solver, same settings, same
answer, on every optimizer method, N = 5, 9, 30, with and without groups, a turnover cap and costs; and the
ordinary path whenever the lean one declines (an untested release, a status other than Solved, another solver)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.allocate import lean
from agent.allocate.optimize import OPTIMIZER_METHODS, Optimizer
from agent.allocate.problem import factor_cov, problem_values

CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "capped": {
        "max_weight": 0.45,
        "turnover_cap": 0.8,
        "cost_bps": 10.0,
        "fully_invested": False,
        "groups": {"g": [0, 1], "h": [2, 3]},
        "group_caps": {"g": 0.5, "h": 0.6},
    },
}


def _inputs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    load = rng.normal(size=(n, 3)) * 0.008
    r = rng.normal(size=(400, 3)) @ load.T + rng.normal(size=(400, n)) * 0.01
    cov = np.cov(r, rowvar=False)
    mu = rng.normal(4e-4, 6e-4, n)
    mu[0] = abs(mu[0]) + 1e-4  # at least one positive excess return: max-Sharpe is posed
    return mu, cov, rng.dirichlet(np.ones(n)) * rng.uniform(0.7, 1.0)


def _ordinary(opt: Optimizer) -> Optimizer:
    """The same optimizer without the lean path: every solve through `problem.solve`."""
    for name in opt.chain:
        if name in OPTIMIZER_METHODS:
            opt.program(name).lean_tried = True
    return opt


def _cvxpy_x(opt: Optimizer, name: str, values: dict[str, Any]) -> list[np.ndarray]:
    prog = opt.program(name)
    for key, p in prog.params.items():
        p.value = values[key]
    prog.problem.solve(solver="CLARABEL", warm_start=False)
    assert prog.problem.status == "optimal"
    outs = [prog.x] if prog.kappa is None else [prog.x, prog.kappa]
    return [np.asarray(v.value, dtype=float) for v in outs]


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("n", [5, 9, 30])
@pytest.mark.parametrize("method", OPTIMIZER_METHODS)
def test_lean_solution_equals_problem_solve(method: str, n: int, config: str) -> None:
    kw = dict(CONFIGS[config], target_volatility=0.25, mode="dpp")
    opt = Optimizer(method, n, **kw)  # type: ignore[arg-type]
    ref = _ordinary(Optimizer(method, n, **kw))  # type: ignore[arg-type]
    rng = np.random.default_rng(1000 * n + len(config))
    paths = []
    for _ in range(5):
        mu, cov, prev = _inputs(n, rng)
        got, want = opt.solve(mu, cov, prev), ref.solve(mu, cov, prev)
        paths.append(opt.last_path)
        assert got.method_used == want.method_used and got.reason_code == want.reason_code
        np.testing.assert_allclose(got.weights, want.weights, rtol=0, atol=1e-7)
        assert ref.last_path in ("cvxpy", "")
        # the raw solver output (before rounding), for the requested method
        prog = opt.program(method)
        if prog.lean is None or not prog.params:
            continue
        excess = mu - opt.risk_free_daily
        if method == "max_sharpe" and excess.max() <= 0:
            continue
        factor, _ = factor_cov(cov)
        values = problem_values(opt, method, excess, cov, factor, prev)
        lean_x = prog.lean.solve(values)
        if lean_x is None:  # not Solved: the ordinary path decides (checked below)
            continue
        for a, b in zip(lean_x, _cvxpy_x(opt, method, values), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)
    # the lean path did run (after the first, ordinary solve that compiles it) exactly on the releases it was
    # checked against; on any other cvxpy/Clarabel the ordinary path decides (the equalities above still hold)
    assert ("lean" in paths) == lean.lean_tested()


@st.composite
def _case(draw: st.DrawFn) -> dict:
    n = draw(st.integers(2, 7))
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    a = rng.normal(size=(n, n)) * 0.01
    return {
        "n": n,
        "cov": a @ a.T / n + np.diag(rng.uniform(2e-5, 4e-4, n)),
        "mu": rng.normal(3e-4, 8e-4, n),
        "prev": rng.dirichlet(np.ones(n)) * draw(st.floats(0.5, 1.0)),
        "hi": draw(st.floats(min(1.0, 1.0 / n + 0.05), 1.0)),
        "full": draw(st.booleans()),
        "cap": draw(st.sampled_from([None, 0.3, 1.0])),
        "bps": draw(st.sampled_from([0.0, 10.0])),
        "gcap": draw(st.sampled_from([None, 0.5])),
        "scale": draw(st.floats(0.5, 2.0)),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_case())
def test_lean_and_ordinary_paths_agree_on_random_problems(case: dict) -> None:
    n = case["n"]
    groups = {"g": [0, 1]} if case["gcap"] is not None else {}
    caps = {"g": case["gcap"]} if case["gcap"] is not None else {}
    for method in OPTIMIZER_METHODS:
        kw = dict(
            max_weight=case["hi"],
            fully_invested=case["full"],
            groups=groups,
            group_caps=caps,
            turnover_cap=case["cap"],
            cost_bps=case["bps"],
            target_volatility=0.15,
        )
        opt, ref = Optimizer(method, n, **kw), _ordinary(Optimizer(method, n, **kw))  # type: ignore[arg-type]
        for k in range(3):  # the first solve compiles the lean path; the next ones use it
            mu, cov = case["mu"] * case["scale"] ** k, case["cov"] * (1 + 0.1 * k)
            got, want = opt.solve(mu, cov, case["prev"]), ref.solve(mu, cov, case["prev"])
            assert (got.method_used, got.reason_code, got.status) == (
                want.method_used,
                want.reason_code,
                want.status,
            )
            np.testing.assert_allclose(got.weights, want.weights, rtol=0, atol=1e-7)


def test_untested_release_takes_the_ordinary_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lean, "_TESTED_CVXPY", ())
    opt = Optimizer("max_sharpe", 6, cost_bps=5.0, turnover_cap=1.0, mode="dpp")
    rng = np.random.default_rng(3)
    for _ in range(3):
        mu, cov, prev = _inputs(6, rng)
        assert opt.solve(mu, cov, prev).method_used == "max_sharpe"
        assert opt.last_path == "cvxpy"
    assert opt.program().lean is None


def test_a_status_other_than_solved_goes_to_problem_solve() -> None:
    """An infeasible turnover cap after the lean path exists: cvxpy reports the status, the chain falls back."""
    n = 4
    opt = Optimizer("max_sharpe", n, turnover_cap=0.5, mode="dpp")
    rng = np.random.default_rng(5)
    mu, cov, _ = _inputs(n, rng)
    opt.solve(mu, cov, np.full(n, 1 / n))
    assert opt.program().lean is not None
    res = opt.solve(mu, cov, np.zeros(n))  # from all cash, fully invested needs turnover 1 > 0.5
    assert res.reason_code == "infeasible" and res.method_used == "previous"
    assert res.trace[0] == {"method": "max_sharpe", "status": "infeasible", "reason": "infeasible"}
    assert opt.last_path == "cvxpy"


def test_another_solver_is_never_lean() -> None:
    opt = Optimizer("min_variance", 5, solver="SCS", mode="dpp")
    rng = np.random.default_rng(6)
    for _ in range(2):
        mu, cov, prev = _inputs(5, rng)
        opt.solve(mu, cov, prev)
        assert opt.last_path == "cvxpy"
    assert opt.program().lean is None


def test_rebuild_mode_is_never_lean() -> None:
    opt = Optimizer("max_sharpe", 5, mode="rebuild")
    rng = np.random.default_rng(7)
    mu, cov, prev = _inputs(5, rng)
    opt.solve(mu, cov, prev)
    opt.solve(mu, cov, prev)
    assert opt.last_path == "cvxpy"
