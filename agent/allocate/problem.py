"""The convex problems behind `agent.allocate.optimize.Optimizer`: building one cvxpy program per method, and
the rescaled parameter values fed to it for one solve.

Why separate: the formulation (constraints, DPP factor form, the max-Sharpe homogenization) is one job; the
Optimizer's fallback chain, validation and rounding is another. `cvxpy` is imported lazily, inside
`build_program`, as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from agent.allocate.optimize import Optimizer

__all__ = ["build_program", "factor_cov", "problem_values"]


def factor_cov(cov: np.ndarray, *, floor: float = 0.0) -> tuple[np.ndarray, bool]:
    """A factor F with F F' = cov (symmetrized), and whether cov had to be repaired (not PSD).

    Cholesky when cov is positive definite (fast); otherwise an eigen-decomposition with eigenvalues clipped at
    ``floor``. Tiny negative eigenvalues from round-off (> -1e-10 relative) do not count as a repair.
    """
    c = np.asarray(cov, dtype=float)
    sym = 0.5 * (c + c.T)
    scale = max(float(np.max(np.abs(np.diag(sym)))) if sym.size else 0.0, 1e-300)
    asym = float(np.max(np.abs(c - c.T))) / scale if sym.size else 0.0
    if floor <= 0:
        try:
            return np.linalg.cholesky(sym), asym > 1e-8
        except np.linalg.LinAlgError:
            pass
    lam, vec = np.linalg.eigh(sym)
    repaired = bool(lam.min() < -1e-10 * scale) or asym > 1e-8
    lam = np.maximum(lam, floor)
    return vec * np.sqrt(lam), repaired


@dataclass
class _Program:
    """One cvxpy problem and the handles needed to feed it and read it back."""

    problem: Any
    params: dict[str, Any]
    x: Any  # the weight variable (y for max-Sharpe)
    kappa: Any = None  # max-Sharpe homogenization variable
    lean: Any = None  # agent.allocate.lean.LeanProgram once compiled and checked (DPP programs only)
    lean_tried: bool = False


def build_program(opt: Optimizer, method: str, values: Mapping[str, Any] | None = None) -> _Program:
    """Build a method's problem: with Parameters (values None) or with constant data (rebuild mode)."""
    import cvxpy as cp

    n = opt.n
    const = values is not None
    vals: Mapping[str, Any] = values if values is not None else {}
    params: dict[str, Any] = {}

    def par(name: str, shape: tuple[int, ...], **kw: Any) -> Any:
        if const:
            return vals[name]
        params[name] = cp.Parameter(shape, name=name, **kw)
        return params[name]

    needs_trade = opt.turnover_cap is not None or opt.cost_rate > 0
    hom = method == "max_sharpe"
    x = cp.Variable(n, nonneg=True, name="y" if hom else "w")
    k = cp.Variable(nonneg=True, name="kappa") if hom else 1.0
    lo, hi = opt.min_weight, opt.max_weight
    cons: list[Any] = []
    if lo > 0:
        cons.append(x >= lo * k)
    if hi < 1:
        cons.append(x <= hi * k)
    if opt.fully_invested:
        cons.append(cp.sum(x) == k)
    elif method == "min_variance":
        cons.append(cp.sum(x) == opt.max_exposure)
    else:
        cons.append(cp.sum(x) <= k)
    for idx, cap in opt.group_caps.values():
        if idx.size:
            cons.append(cp.sum(x[idx]) <= cap * k)
    trade_sum = None
    if needs_trade:
        w_prev = par("w_prev", (n,))
        t = cp.Variable(n, nonneg=True, name="trade")
        anchor = k * w_prev if hom else w_prev
        cons += [t >= x - anchor, t >= anchor - x]
        trade_sum = cp.sum(t)
        if opt.turnover_cap is not None:
            cons.append(trade_sum <= opt.turnover_cap * k)
    cost = None
    if opt.cost_rate > 0 and trade_sum is not None:
        cost = par("cost", (), nonneg=True) * trade_sum
    risk: Any = None
    objective: Any = None
    if method != "target_volatility":
        if const and vals.get("G") is not None:  # factor form: O(N·k) instead of a dense N×N block
            risk = cp.sum_squares(vals["G"].T @ x) + cp.sum_squares(cp.multiply(vals["d_sqrt"], x))
        elif const:  # rebuild mode: a sparse quadratic block is what Clarabel factors fastest
            risk = cp.quad_form(x, cp.psd_wrap(vals["sigma_matrix"]))
        else:  # DPP: quad_form with a matrix Parameter is not DPP; a factor Parameter is
            risk = cp.sum_squares(par("F", (n, n)).T @ x)
    if method == "max_sharpe":
        mu = par("mu", (n,))
        cons.append(mu @ x - (cost if cost is not None else 0) >= 1)
        objective = cp.Minimize(risk)
    elif method == "min_variance":
        objective = (
            cp.Minimize(opt.risk_aversion / 2 * risk + cost) if cost is not None else cp.Minimize(risk)
        )
    elif method == "mean_variance":
        mu = par("mu", (n,))
        expr = mu @ x - opt.risk_aversion / 2 * risk
        objective = cp.Maximize(expr - cost if cost is not None else expr)
    else:  # target_volatility
        mu = par("mu", (n,))
        if const and vals.get("G") is not None:
            stacked = cp.hstack([vals["G"].T @ x, cp.multiply(vals["d_sqrt"], x)])
            cons.append(cp.norm(stacked, 2) <= vals["sigma"])
        else:
            cons.append(cp.norm(par("F", (n, n)).T @ x, 2) <= par("sigma", (), nonneg=True))
        objective = cp.Maximize(mu @ x - cost if cost is not None else mu @ x)
    problem = cp.Problem(objective, cons)
    if not const and not problem.is_dpp():  # pragma: no cover - a formulation bug, caught by tests
        raise RuntimeError(f"{method} problem is not DPP")
    return _Program(problem=problem, params=params, x=x, kappa=k if hom else None)


def problem_values(
    opt: Optimizer, name: str, excess: np.ndarray, cov: np.ndarray, factor: np.ndarray, prev: np.ndarray
) -> dict[str, Any]:
    """Parameter values for one solve, rescaled so that Clarabel sees O(1) data."""
    mean_var = float(np.mean(np.diag(cov)))
    s_risk = 1.0 / mean_var if mean_var > 1e-300 else 1.0
    if name == "max_sharpe":
        s_mu = 1.0 / float(excess.max())
    elif name == "target_volatility":
        m = float(np.max(np.abs(excess)))
        s_mu = 1.0 / m if m > 1e-300 else 1.0
    else:
        s_mu = s_risk  # mean-variance / min-variance: one scale for the whole objective
    values: dict[str, Any] = {
        "mu": excess * s_mu,
        "F": factor * math.sqrt(s_risk),
        "w_prev": prev,
        "cost": opt.cost_rate * s_mu,
        "sigma": opt.target_vol_daily * math.sqrt(s_risk),
    }
    fm = getattr(opt, "_fm", None)
    if opt.rebuild and fm is not None:
        values["G"] = fm.sqrt_factor() * math.sqrt(s_risk)
        values["d_sqrt"] = np.sqrt(fm.specific_var * s_risk)
    elif opt.rebuild:
        values["sigma_matrix"] = cov * s_risk
    return values


def _usable_factor(fm: Any, n: int) -> bool:
    """A factor model of the right shape with finite loadings and positive specific variances."""
    try:
        g = np.asarray(fm.sqrt_factor(), dtype=float)
        d = np.asarray(fm.specific_var, dtype=float)
    except (AttributeError, TypeError, ValueError):
        return False
    return (
        g.ndim == 2
        and g.shape[0] == n
        and d.shape == (n,)
        and bool(np.all(np.isfinite(g)))
        and bool(np.all(np.isfinite(d)) and np.all(d > 0))
    )
