"""Convex allocation with cvxpy + Clarabel: built once, re-solved with new inputs, never raising.

Inputs are per session: ``mu`` is the daily expected return, ``cov`` the DAILY covariance; the risk-free rate
and the target volatility in the settings are annual and converted here (``/252`` and ``/sqrt(252)``).
Cash earns the risk-free rate, so every objective uses excess returns ``mu - r_f``.

Methods
-------
* ``max_sharpe``: long-only tangency portfolio via the homogenized (Cornuejols-Tutuncu) reformulation
  ``min y'Sy  s.t. (mu-rf)'y - c*sum|y - k*w_prev| >= 1, sum y = k (<= k with cash), l*k <= y <= u*k,
  sum_g y <= c_g*k, sum|y - k*w_prev| <= cap*k, k >= 0``; ``w = y/k``. Costs and the turnover cap are
  homogenized with ``k`` too, so the problem is *exact* for the net-of-cost Sharpe ratio
  ``((mu-rf)'w - c*|w - w_prev|_1) / sqrt(w'Sw)`` (the ``>= 1`` is tight at the optimum: scaling (y, k) down
  lowers the objective). With cash allowed the Sharpe ratio is scale-free, so the solver's scale is replaced by
  the largest feasible one (max exposure) whenever that does not lower the net Sharpe ratio.
  Every excess return <= 0: no portfolio has a positive Sharpe ratio. With cash allowed (and no lower bounds)
  the answer is all cash; fully invested, the fallback chain runs (min-variance by default). Either way the
  reason code is ``no_positive_excess_return``.
* ``min_variance``: ``min w'Sw`` (``gamma/2*w'Sw + c*|w - w_prev|_1`` when costs are in the objective, i.e.
  mean-variance with mu = 0, so costs and risk share units). With cash allowed it is the minimum-variance
  portfolio at the largest exposure the bounds and group caps permit (otherwise it would be all cash).
* ``mean_variance``: ``max (mu-rf)'w - gamma/2*w'Sw - c*|w - w_prev|_1``.
* ``target_volatility``: ``max (mu-rf)'w - c*|w - w_prev|_1  s.t.  w'Sw <= (sigma_annual/sqrt(252))^2``.

``c = cost_bps / 1e4 / horizon``: the one-off cost of a trade is amortized over the holding period (sessions)
so that it is comparable with per-session returns. ``w_prev`` must be the drifted holdings (see agent.costs).

Compile once (DPP)
------------------
Each problem is built once with cvxpy Parameters: ``mu``, a factor ``F`` with ``F F' = S`` (risk as
``sum_squares(F'w)``: ``quad_form`` with a matrix Parameter is not DPP), ``w_prev``, the cost coefficient and
the volatility target. Re-solving only rewrites parameter values; `agent.allocate.lean` then applies cvxpy's
compiled parameter map itself and calls Clarabel directly (bit-identical to ``problem.solve``). Inputs are
rescaled per solve (Sigma to unit mean variance, mu to unit max) so that Clarabel's tolerances are relative to
the data; results are unchanged.
Measured on the 2-core dev box (tests/bench/bench_optimize.py, median per solve, max-Sharpe): a dense n x n
factor Parameter makes Clarabel's KKT system dense, and from about n = 80 rebuilding the problem each time with
``quad_form(w, S)`` (a sparse P block) beats the DPP re-solve: n=28 DPP 2 ms vs rebuild 7 ms; n=100 DPP
42-76 ms vs rebuild 15 ms; n=500 DPP 0.62-0.68 s vs rebuild 0.36-0.45 s (the first DPP compile of
target-volatility at n=500 took 12 s). ``mode="auto"``
therefore uses DPP for ``n < REBUILD_MIN_N`` and rebuilds above.

Failures
--------
Nothing here raises on bad numbers. Each attempt (the requested method, then ``fallbacks`` in order, then cash
as the last resort) is recorded in ``trace``; ``reason_code`` is "ok" (or "non_psd_cov_repaired") when the
requested method succeeded, otherwise why it failed: ``infeasible_bounds`` (detected up front: n*max_weight < 1
fully invested, n*min_weight > 1, caps that cannot hold the lower bounds), ``no_positive_excess_return``,
``bad_input_nan_mu``, ``bad_input_nan_cov``, ``bad_input_w_prev``, ``infeasible``, ``unbounded``,
``solver_failed``, ``constraint_violation``. Fallbacks: ``min_variance`` (same constraints), ``equal_weight``
(1/N capped by max_weight and group caps, rest cash; rejected if it breaks the turnover cap), ``previous``
(hold the drifted weights: no trade), ``cash``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from agent.allocate.lean import solve_program
from agent.allocate.problem import _Program, _usable_factor, build_program, factor_cov, problem_values
from agent.allocate.result import AllocationResult
from agent.decision import TRADING_DAYS, round_weights
from agent.errors import describe

if TYPE_CHECKING:
    from agent.settings_sections import AllocationSettings

__all__ = [
    "OPTIMIZER_METHODS",
    "REBUILD_MIN_N",
    "AllocationResult",
    "Optimizer",
    "factor_cov",
]

Method = Literal["max_sharpe", "min_variance", "mean_variance", "target_volatility"]
Fallback = Literal["min_variance", "equal_weight", "previous", "cash"]
OPTIMIZER_METHODS: tuple[str, ...] = ("max_sharpe", "min_variance", "mean_variance", "target_volatility")
_NEEDS_MU = {"max_sharpe", "mean_variance", "target_volatility"}
PERIODS = TRADING_DAYS
# From this many assets on, rebuilding each solve beats the DPP re-solve (measured; see module docstring).
REBUILD_MIN_N = 80
_TOL = 1e-6  # constraint tolerance when validating a solution
_MU_EPS = 1e-12  # an excess return at or below this (per session) is not positive


class Optimizer:
    """A portfolio optimizer for one (method, n, constraints), compiled once and re-solved per decision."""

    def __init__(
        self,
        method: Method,
        n: int,
        *,
        min_weight: float = 0.0,
        max_weight: float = 1.0,
        fully_invested: bool = True,
        groups: Mapping[str, Sequence[int]] | None = None,
        group_caps: Mapping[str, float] | None = None,
        turnover_cap: float | None = None,
        cost_bps: float = 0.0,
        costs_in_objective: bool = True,
        risk_free_rate: float = 0.0,
        risk_aversion: float = 5.0,
        target_volatility: float = 0.10,
        solver: str = "CLARABEL",
        fallbacks: Sequence[Fallback] = ("min_variance", "previous", "cash"),
        horizon: int = 1,
        mode: Literal["auto", "dpp", "rebuild"] = "auto",
    ) -> None:
        if method not in OPTIMIZER_METHODS:
            raise ValueError(f"unknown optimizer method {method!r}; expected one of {OPTIMIZER_METHODS}")
        if n < 1:
            raise ValueError("n must be >= 1")
        if not 0 <= min_weight <= max_weight <= 1 or max_weight <= 0:
            raise ValueError(f"bad bounds [{min_weight}, {max_weight}]")
        if horizon < 1:
            raise ValueError("horizon must be >= 1")
        self.method: str = method
        self.n = int(n)
        self.min_weight = float(min_weight)
        self.max_weight = float(max_weight)
        self.fully_invested = bool(fully_invested)
        groups = dict(groups or {})
        caps = dict(group_caps or {})
        unknown = sorted(set(caps) - set(groups))
        if unknown:
            raise ValueError(f"group caps for undefined groups: {unknown}")
        self.group_caps: dict[str, tuple[np.ndarray, float]] = {}
        for g, cap in sorted(caps.items()):
            idx = np.asarray(sorted(set(int(i) for i in groups[g])), dtype=int)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"group {g!r} has indices outside 0..{n - 1}")
            self.group_caps[g] = (idx, float(cap))
        self.turnover_cap = None if turnover_cap is None else float(turnover_cap)
        self.cost_rate = float(cost_bps) / 1e4 / horizon if costs_in_objective else 0.0
        self.risk_free_daily = float(risk_free_rate) / PERIODS
        self.risk_aversion = float(risk_aversion)
        self.target_vol_daily = float(target_volatility) / math.sqrt(PERIODS)
        self.solver = solver
        chain: list[str] = [method]
        for f in fallbacks:
            if f not in chain:
                chain.append(f)
        if "cash" not in chain:
            chain.append("cash")
        self.chain: tuple[str, ...] = tuple(chain)
        self.rebuild = mode == "rebuild" or (mode == "auto" and self.n >= REBUILD_MIN_N)
        self.max_exposure, self.bounds_reason = self._check_bounds()
        self._programs: dict[str, _Program] = {}
        self.last_solver_stats: Any = None  # cvxpy SolverStats of the latest solve (benchmarks, debugging)
        self.last_path = ""  # "lean" or "cvxpy": how the latest optimizer solve ran (benchmarks, tests)
        self._fm: Any = None  # the factor model of the solve in progress (rebuild mode only)
        if not self.rebuild and self.bounds_reason is None:
            self._programs[method] = self._build(method)  # compile up front: the first decision is not slower

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_settings(
        cls,
        settings: AllocationSettings,
        tickers: Sequence[str],
        groups_by_name: Mapping[str, Sequence[str]] | None = None,
        cost_bps: float = 0.0,
        *,
        horizon: int = 1,
        mode: Literal["auto", "dpp", "rebuild"] = "auto",
    ) -> Optimizer:
        """Build from ``AllocationSettings``; ``static_mvo`` maps to max-Sharpe (it is max-Sharpe fit once)."""
        from agent.errors import ConfigError

        method = "max_sharpe" if settings.method == "static_mvo" else settings.method
        if method not in OPTIMIZER_METHODS:
            raise ConfigError(f"allocation.method {settings.method!r} is a rule, not an optimizer")
        pos = {t: i for i, t in enumerate(tickers)}
        groups: dict[str, list[int]] = {}
        for g, members in (groups_by_name or {}).items():
            missing = [m for m in members if m not in pos]
            if missing:
                raise ConfigError(f"group {g!r} names tickers not in the universe: {', '.join(missing)}")
            groups[g] = [pos[m] for m in members]
        missing_groups = sorted(set(settings.group_caps) - set(groups))
        if missing_groups:
            raise ConfigError(f"allocation.group_caps names undefined groups: {', '.join(missing_groups)}")
        return cls(
            cast(Method, method),
            len(tickers),
            min_weight=settings.min_weight,
            max_weight=settings.max_weight,
            fully_invested=settings.fully_invested,
            groups=groups,
            group_caps=dict(settings.group_caps),
            turnover_cap=settings.turnover_cap,
            cost_bps=cost_bps,
            costs_in_objective=settings.costs_in_objective,
            risk_free_rate=settings.risk_free_rate,
            risk_aversion=settings.risk_aversion,
            target_volatility=settings.target_volatility,
            solver=settings.solver,
            fallbacks=settings.fallbacks,
            horizon=horizon,
            mode=mode,
        )

    def _check_bounds(self) -> tuple[float, str | None]:
        """Largest exposure the bounds and caps allow, and a reason when they cannot be met at all."""
        n, lo, hi = self.n, self.min_weight, self.max_weight
        if n * lo > 1 + 1e-12:
            return 0.0, "infeasible_bounds"
        for idx, cap in self.group_caps.values():
            if idx.size * lo > cap + 1e-12:
                return 0.0, "infeasible_bounds"
        if self.group_caps:
            from scipy.optimize import linprog

            a_ub, b_ub = [], []
            for idx, cap in self.group_caps.values():
                row = np.zeros(n)
                row[idx] = 1.0
                a_ub.append(row)
                b_ub.append(cap)
            a_ub.append(np.ones(n))
            b_ub.append(1.0)
            res = linprog(-np.ones(n), A_ub=np.array(a_ub), b_ub=np.array(b_ub), bounds=[(lo, hi)] * n)
            exposure = float(-res.fun) if res.status == 0 else 0.0
        else:
            exposure = min(1.0, n * hi)
        if self.fully_invested and exposure < 1 - 1e-9:
            return exposure, "infeasible_bounds"
        return min(exposure, 1.0), None

    def program(self, method: str | None = None) -> _Program:
        """The compiled (DPP) program of a method, built on first use. For tests and introspection."""
        method = method or self.method
        if method not in self._programs:
            self._programs[method] = self._build(method)
        return self._programs[method]

    def _build(self, method: str, values: Mapping[str, Any] | None = None) -> _Program:
        """Build a method's problem: with Parameters (values None) or with constant data (rebuild mode)."""
        return build_program(self, method, values)

    # ------------------------------------------------------------------ solving
    def solve(
        self,
        mu: np.ndarray | None,
        cov: np.ndarray,
        w_prev: np.ndarray | None = None,
        *,
        factor_model: Any = None,
    ) -> AllocationResult:
        """Target weights for daily ``mu`` and ``cov`` from the drifted weights ``w_prev``. Never raises.

        ``factor_model`` (an `agent.risk.factor.FactorModel` whose dense form is ``cov``): in rebuild mode
        (large N) risk is posed in factor form, ‖Gᵀw‖² + ‖d^½∘w‖², so a solve costs O(N·k), not O(N²), and no
        N×N factorization is needed. Ignored by the compiled (DPP) small-N path."""
        t0 = time.perf_counter()
        n = self.n
        trace: list[dict[str, Any]] = []
        mu_arr, mu_bad = _vector(mu, n)
        prev, prev_bad = _vector(w_prev if w_prev is not None else np.zeros(n), n)
        if not prev_bad and (prev.min() < -1e-9 or prev.sum() > 1 + 1e-6):
            prev_bad = True
        cov_arr = None
        cov_bad = False
        factor = None
        repaired = False
        try:
            cov_arr = np.asarray(cov, dtype=float)
            cov_bad = cov_arr.shape != (n, n) or not np.all(np.isfinite(cov_arr))
        except (TypeError, ValueError):
            cov_bad = True
        self._fm = None
        if not cov_bad and factor_model is not None and self.rebuild and _usable_factor(factor_model, n):
            self._fm = factor_model
            factor = np.empty((n, 0))  # not used in factor form; marks the covariance as usable
        elif not cov_bad and cov_arr is not None:
            factor, repaired = factor_cov(cov_arr)
            if repaired:
                cov_arr = factor @ factor.T
                trace.append({"method": "inputs", "status": "repaired", "reason": "non_psd_cov_repaired"})
        for flag, reason in (
            (mu_bad and self.method in _NEEDS_MU, "bad_input_nan_mu"),
            (cov_bad, "bad_input_nan_cov"),
            (prev_bad, "bad_input_w_prev"),
        ):
            if flag:
                trace.append({"method": "inputs", "status": "rejected", "reason": reason})
        first_reason: str | None = None
        for name in self.chain:
            weights, status, reason, objective = self._attempt(
                name, mu_arr, mu_bad, cov_arr, cov_bad, factor, prev, prev_bad
            )
            trace.append({"method": name, "status": status, "reason": reason})
            if weights is not None:
                if name == self.method:
                    code = reason if reason != "ok" else "non_psd_cov_repaired" if repaired else "ok"
                else:
                    code = first_reason or reason
                return AllocationResult(
                    weights=weights,
                    status=status,
                    method_requested=self.method,
                    method_used=name,
                    reason_code=code,
                    trace=trace,
                    objective=objective,
                    solve_time_ms=(time.perf_counter() - t0) * 1e3,
                )
            if first_reason is None:
                first_reason = reason
        raise AssertionError("unreachable: cash always succeeds")  # pragma: no cover

    def _attempt(
        self,
        name: str,
        mu: np.ndarray,
        mu_bad: bool,
        cov: np.ndarray | None,
        cov_bad: bool,
        factor: np.ndarray | None,
        prev: np.ndarray,
        prev_bad: bool,
    ) -> tuple[np.ndarray | None, str, str, float | None]:
        """One link of the chain: (weights or None, status, reason, objective)."""
        n = self.n
        if name == "cash":
            return np.zeros(n), "fallback", "cash", None
        if name == "previous":
            if prev_bad:
                return None, "skipped", "bad_input_w_prev", None
            return round_weights(np.clip(prev, 0.0, None)), "fallback", "hold previous weights", None
        if name == "equal_weight":
            w = self._capped_equal_weight()
            if (
                self.turnover_cap is not None
                and not prev_bad
                and np.abs(w - prev).sum() > self.turnover_cap + _TOL
            ):
                return None, "rejected", "turnover_cap", None
            return w, "fallback", "equal weight within caps", None
        # an optimizer
        if self.bounds_reason is not None:
            return None, "skipped", self.bounds_reason, None
        if cov_bad or factor is None or cov is None:
            return None, "skipped", "bad_input_nan_cov", None
        if name in _NEEDS_MU and mu_bad:
            return None, "skipped", "bad_input_nan_mu", None
        uses_prev = self.turnover_cap is not None or self.cost_rate > 0
        if uses_prev and prev_bad:
            return None, "skipped", "bad_input_w_prev", None
        excess = mu - self.risk_free_daily if not mu_bad else np.zeros(n)
        if name == "max_sharpe" and float(excess.max()) <= _MU_EPS:
            # all cash is the answer only when the turnover cap allows selling everything; otherwise the
            # fallback chain runs (a capped min-variance step, or holding), so the cap holds on this path too
            to_cash_ok = self.turnover_cap is None or (
                not prev_bad and float(np.abs(prev).sum()) <= self.turnover_cap + 1e-12
            )
            if not self.fully_invested and self.min_weight == 0 and to_cash_ok:
                return np.zeros(n), "no_positive_excess_return", "no_positive_excess_return", 0.0
            return None, "skipped", "no_positive_excess_return", None
        values = self._values(name, excess, cov, factor, prev)
        try:
            prog = self._build(name, values) if self.rebuild else self.program(name)
            # compiled: the lean path (agent.allocate.lean), bit-identical to problem.solve, else problem.solve
            # with warm_start=False (an updated solver reuses the first problem's equilibration, which makes a
            # solution depend on the solve history at ~1e-8; audit replay and backtest = daemon need none)
            status, x, k, self.last_solver_stats, self.last_path = solve_program(
                prog, values, self.solver, compiled=not self.rebuild
            )
        except Exception as e:  # solver errors, numerical trouble: record (with the message) and fall back
            return None, "error", f"solver_failed: {describe(e)[:300]}", None
        if status not in ("optimal", "optimal_inaccurate"):
            reason = (
                "infeasible"
                if "infeasible" in status
                else "unbounded"
                if "unbounded" in status
                else "solver_failed"
            )
            return None, status, reason, None
        if x is None or not np.all(np.isfinite(x)):
            return None, status, "solver_failed", None
        if prog.kappa is not None:
            if k is None or not k > 1e-12:
                return None, status, "solver_failed", None
            w = np.asarray(x) / k
        else:
            w = np.asarray(x, dtype=float)
        w = self._finish(w)
        if name == "max_sharpe" and not self.fully_invested:
            w = self._max_exposure(w, excess, cov, prev)
        problem = self._violation(w, prev, name)
        if problem is not None:
            return None, status, "constraint_violation", None
        return w, status, "ok", self._objective(name, w, excess, cov, prev)

    def _values(
        self, name: str, excess: np.ndarray, cov: np.ndarray, factor: np.ndarray, prev: np.ndarray
    ) -> dict[str, Any]:
        """Parameter values for one solve, rescaled so that Clarabel sees O(1) data."""
        return problem_values(self, name, excess, cov, factor, prev)

    def _finish(self, w: np.ndarray) -> np.ndarray:
        """Clip solver noise to the bounds, never above full investment, and round for determinism."""
        w = np.clip(w, 0.0, self.max_weight)
        if self.min_weight > 0:
            w = np.where((w < self.min_weight) & (w > self.min_weight - 1e-6), self.min_weight, w)
        total = float(w.sum())
        if total > 1:
            w = w / total
        return round_weights(w)

    def _max_exposure(
        self, w: np.ndarray, excess: np.ndarray, cov: np.ndarray, prev: np.ndarray
    ) -> np.ndarray:
        """With cash allowed the Sharpe ratio is scale-free: take the largest feasible scale of the same mix."""
        total = float(w.sum())
        if total <= 0:
            return w
        scale = 1.0 / total
        pos = w > 0
        if self.max_weight < 1 and pos.any():
            scale = min(scale, float(np.min(self.max_weight / w[pos])))
        for idx, cap in self.group_caps.values():
            s = float(w[idx].sum()) if idx.size else 0.0
            if s > 0:
                scale = min(scale, cap / s)
        if scale <= 1 + 1e-9:
            return w
        cand = self._finish(w * scale)
        if self.turnover_cap is not None and np.abs(cand - prev).sum() > self.turnover_cap:
            return w
        before = self._objective("max_sharpe", w, excess, cov, prev)
        after = self._objective("max_sharpe", cand, excess, cov, prev)
        if before is not None and after is not None and after < before - 1e-9 * max(1.0, abs(before)):
            return w
        return cand

    def _capped_equal_weight(self) -> np.ndarray:
        w = np.full(self.n, min(1.0 / self.n, self.max_weight))
        for idx, cap in self.group_caps.values():
            s = float(w[idx].sum()) if idx.size else 0.0
            if s > cap:
                w[idx] *= cap / s
        return round_weights(w)

    def _violation(self, w: np.ndarray, prev: np.ndarray, name: str) -> str | None:
        """The first constraint an optimizer output breaks (beyond 1e-6), or None."""
        if not np.all(np.isfinite(w)):
            return "not finite"
        if w.min() < self.min_weight - _TOL or w.max() > self.max_weight + _TOL:
            return "bounds"
        total = float(w.sum())
        if total > 1 + _TOL:
            return "sum"
        need = 1.0 if self.fully_invested else (self.max_exposure if name == "min_variance" else 0.0)
        if total < need - _TOL:
            return "sum"
        for g, (idx, cap) in self.group_caps.items():
            if idx.size and float(w[idx].sum()) > cap + _TOL:
                return f"group {g}"
        if self.turnover_cap is not None and float(np.abs(w - prev).sum()) > self.turnover_cap + _TOL:
            return "turnover"
        return None

    def _objective(
        self, name: str, w: np.ndarray, excess: np.ndarray, cov: np.ndarray, prev: np.ndarray
    ) -> float | None:
        """The method's objective at ``w`` in original (daily) units, recomputed from the rounded weights."""
        var = float(w @ cov @ w)
        cost = self.cost_rate * float(np.abs(w - prev).sum())
        if name == "max_sharpe":
            return (float(excess @ w) - cost) / math.sqrt(var) if var > 0 else None
        if name == "min_variance":
            return self.risk_aversion / 2 * var + cost if self.cost_rate > 0 else var
        if name == "mean_variance":
            return float(excess @ w) - self.risk_aversion / 2 * var - cost
        return float(excess @ w) - cost


def _vector(v: Any, n: int) -> tuple[np.ndarray, bool]:
    """A float vector of length n and whether it is unusable (wrong shape, NaN, inf)."""
    try:
        a = np.asarray(v, dtype=float).ravel()
    except (TypeError, ValueError):
        return np.zeros(n), True
    if a.shape != (n,) or not np.all(np.isfinite(a)):
        return np.zeros(n), True
    return a, False
