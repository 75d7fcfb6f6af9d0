"""Paper-fill sizing: the one rule the ledger, the baselines and the backtest share.

At an execution close the book is worth V = cash + holdings. Trading to target weights w costs c (the shared
CostModel, on traded notional against the drifted holdings). Targets are applied to what is left after costs,
new_notional = w · (V − c), so cash never goes negative because of costs; c depends on the trades, so we solve
the small fixed point (it converges geometrically at rate ≈ bps/1e4; four iterations are exact to float noise).

Execution rules (`plan_rebalance`, issue 10 item 3). A decision at t is executed at a later close on holdings
that have drifted since, so the decision's dampeners (band, minimum trade, turnover cap) are not enough on their
own: the trades actually executed are what must meet them. `ExecutionRules` re-applies them to the executed
trades, against the drifted holdings at the execution close:

1. a liquidation to cash (every target 0: the drawdown stop) is executed in full, never dampened;
2. the turnover cap binds the executed turnover (sum |fill notional| / V, costs included), except for a first
   deployment out of an all-cash book unless `throttle_first_deployment`;
3. no fill is smaller than `min_notional` (currency) or changes a weight by less than `band`: such a position is
   KEPT exactly as held (its notional untouched, so costs never leave dust trades on it); a sale that would leave
   less than `min_notional` sells the whole position (no dust positions);
4. no dampening leaves a position above the per-asset cap or a group above its cap: a kept position above a cap
   is sold down to at most min(target, cap), by at least `min_notional`; the limits win over the turnover cap;
5. no dampening leaves the executed book above the decision's VaR limit (when the VaR overlay is enabled, the
   decision hands its Σ and limit to the execution as `agent.decision.ExecRisk`): its 1-day parametric VaR
   after costs is re-measured on the decision's Σ and, above the limit, weights are lowered toward cash, as
   little as the floors allow (`agent.execution_var`); the limit wins over the turnover cap and, should only a
   uniform scale of the whole book meet it, over the floors too.

Costs are then paid by the traded positions and cash only (kept positions stay exactly as they are). Caps are
measured against the value at the execution close, before costs: paying the costs lifts a kept position's
weight by V/(V − c) (a few 1e-6 of its weight at 5 bps); forcing a trade for that would cost more than it saves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.costs import TRADE_EPS, CostModel

if TYPE_CHECKING:
    from agent.decision import ExecRisk
    from agent.settings import Settings

__all__ = ["ExecutionPlan", "ExecutionRules", "plan_rebalance", "size_rebalance"]

_ITERATIONS = 4
_HELD_EPS = 1e-6  # a book whose weights sum to at most this holds nothing: a first deployment
_BISECT = 60
_CAP_TOL = 5e-10  # a weight this far above a cap is float noise, not a breach worth a forced sale
_VAR_TOL = 1e-9  # relative: a VaR this far above the limit is rounding of the targets, not a breach


def size_rebalance(
    value: float, holdings_notional: np.ndarray, targets: np.ndarray, cost_model: CostModel
) -> tuple[np.ndarray, float]:
    """New notional per asset and the cost paid, trading from `holdings_notional` to `targets` of `value`."""
    h = np.asarray(holdings_notional, dtype=float)
    w = np.asarray(targets, dtype=float)
    cost = cost_model.cost(w * value - h)
    for _ in range(_ITERATIONS):
        cost = cost_model.cost(w * (value - cost) - h)
    cost = min(cost, value)
    return w * (value - cost), float(cost)


@dataclass(frozen=True)
class ExecutionRules:
    """What every executed rebalance must meet (see the module docstring). Defaults impose nothing."""

    max_weight: float | None = None
    groups: tuple[tuple[tuple[int, ...], float], ...] = ()  # (member indices, cap)
    turnover_cap: float | None = None
    band: float = 0.0  # weight-change floor: a smaller change is not traded
    min_notional: float = 0.0  # currency: a smaller fill is not traded
    throttle_first_deployment: bool = False

    @property
    def empty(self) -> bool:
        return (
            self.max_weight is None
            and not self.groups
            and self.turnover_cap is None
            and self.band <= 0.0
            and self.min_notional <= 0.0
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ExecutionRules:
        """Caps from the allocation and the overlays (the tighter wins), the overlays' dampeners, and the
        execution's minimum notional (or the overlays' minimum trade, if larger)."""
        a, o, x = settings.allocation, settings.overlays, settings.execution
        caps = [c for c in (a.max_weight if a.max_weight < 1.0 else None, o.max_weight) if c is not None]
        tickers = settings.universe.tickers
        group_caps: dict[str, float] = {}
        for g, c in (*a.group_caps.items(), *o.group_caps.items()):
            group_caps[g] = min(float(c), group_caps.get(g, math.inf))
        return cls(
            max_weight=min(caps) if caps else None,
            groups=_group_index(tickers, settings.universe.groups, group_caps),
            turnover_cap=o.turnover_cap,
            band=float(o.no_trade_band),
            min_notional=max(float(x.min_notional), float(o.min_trade)),
            throttle_first_deployment=bool(o.throttle_first_deployment),
        )


def _group_index(
    tickers: Sequence[str], groups: Mapping[str, Sequence[str]], caps: Mapping[str, float]
) -> tuple[tuple[tuple[int, ...], float], ...]:
    pos = {t: i for i, t in enumerate(tickers)}
    return tuple(
        (tuple(sorted({pos[t] for t in groups[g] if t in pos})), float(cap))
        for g, cap in caps.items()
        if g in groups
    )


@dataclass(frozen=True)
class ExecutionPlan:
    """New notional per asset, the cost paid, which positions were kept as held, and what the rules changed.

    `weights`: the executed weights before costs (kept positions at their held weight); `var`: when the VaR
    limit lowered weights, {"before", "after", "limit", "lowered" (indices)}."""

    notional: np.ndarray
    cost: float
    kept: np.ndarray
    notes: tuple[str, ...] = field(default=())
    weights: np.ndarray | None = field(default=None, repr=False)
    var: dict[str, Any] | None = None


def _lower_caps(x: np.ndarray, rules: ExecutionRules, tol: float = 0.0) -> np.ndarray:
    """Per-asset cap, then each group scaled down to its cap (only breaches beyond `tol` are touched)."""
    out = np.asarray(x, dtype=float).copy()
    if rules.max_weight is not None:
        out = np.where(out > rules.max_weight + tol, rules.max_weight, out)
    for idx, cap in rules.groups:
        ii = list(idx)
        s = float(out[ii].sum()) if ii else 0.0
        if s > cap + tol:
            out[ii] *= cap / s
    return out


def _size_keeping(
    value: float, h: np.ndarray, e: np.ndarray, kept: np.ndarray, cm: CostModel
) -> tuple[np.ndarray, float]:
    """Like `size_rebalance`, but kept positions stay exactly as held and the cost is paid by the rest: traded
    positions get e·V·(R − c)/R of the value R = V − kept notional, so cash stays >= 0."""
    if not kept.any():
        return size_rebalance(value, h, e, cm)
    k = float(h[kept].sum())
    r = value - k
    if r <= 0.0:
        return h.copy(), 0.0

    def book(c: float) -> np.ndarray:
        return np.where(kept, h, e * value * (r - c) / r)

    cost = cm.cost(book(0.0) - h)
    for _ in range(_ITERATIONS + 2):
        cost = min(cm.cost(book(cost) - h), r)
    return book(cost), float(cost)


def _turnover(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum())


def plan_rebalance(
    value: float,
    holdings_notional: np.ndarray,
    targets: np.ndarray,
    cost_model: CostModel,
    rules: ExecutionRules | None,
    risk: ExecRisk | None = None,
) -> ExecutionPlan:
    """The fills to execute at this close: targets adjusted by `rules` against the drifted holdings, sized;
    then, with the decision's `risk`, the executed book brought within its VaR limit."""
    h = np.asarray(holdings_notional, dtype=float)
    w = np.asarray(targets, dtype=float)
    plan = _plan_rules(value, h, w, cost_model, rules)
    if risk is None or not (math.isfinite(value) and value > 0) or float(w.sum()) <= 0.0:
        return plan
    return _hold_var(value, h, cost_model, rules, plan, risk)


def _plan_rules(
    value: float, h: np.ndarray, w: np.ndarray, cost_model: CostModel, rules: ExecutionRules | None
) -> ExecutionPlan:
    n = h.size
    if rules is None or rules.empty or not (math.isfinite(value) and value > 0) or float(w.sum()) <= 0.0:
        new, cost = size_rebalance(value, h, w, cost_model)
        return ExecutionPlan(new, cost, np.zeros(n, dtype=bool), weights=w)
    d = h / value
    cap = rules.turnover_cap
    throttle = cap is not None and (float(d.sum()) > _HELD_EPS or rules.throttle_first_deployment)
    eff = None
    if throttle and cap is not None:  # room for the costs the traded positions pay
        rate = cost_model.rate
        eff = cap - (rate * cap + cost_model.fixed * n / value) / (1.0 - rate)
    plan = _plan_once(value, h, w, cost_model, rules, eff)
    for _ in range(12):  # forced sales (caps) can add turnover: tighten the budget and plan again
        if eff is None or cap is None:
            break
        executed = float(np.abs(plan.notional - h).sum()) / value
        if executed <= cap or "limits win" in " ".join(plan.notes):
            break
        eff -= executed - cap + 1e-9
        plan = _plan_once(value, h, w, cost_model, rules, max(eff, 0.0))
    return plan


def _plan_once(
    value: float, h: np.ndarray, w0: np.ndarray, cm: CostModel, rules: ExecutionRules, eff: float | None
) -> ExecutionPlan:
    n = h.size
    notes: list[str] = []
    d = h / value
    w = _lower_caps(w0, rules)
    floor = max(rules.min_notional / value, rules.band)  # the smallest change a fill may make, as a weight

    def book(f: float) -> np.ndarray:
        """A step f toward the targets, within the caps; a sale that would leave a residual position below the
        minimum notional sells it all (no dust positions)."""
        x = _lower_caps(d + f * (w - d), rules)
        residual = (x < d) & (x > 0) & (x * value < rules.min_notional) & (d * value >= rules.min_notional)
        return np.where(residual, 0.0, x)

    # 1. turnover budget on the executed trades
    e = book(1.0)
    if eff is not None and _turnover(e, d) > eff:
        lo, hi = 0.0, 1.0
        if _turnover(book(0.0), d) > eff:
            hi = 0.0
            notes.append("the caps alone need more turnover than the cap: limits win")
        for _ in range(_BISECT if hi > 0 else 0):
            mid = 0.5 * (lo + hi)
            if _turnover(book(mid), d) <= eff:
                lo = mid
            else:
                hi = mid
        e = book(lo)
        notes.append(f"turnover {_turnover(w, d):.2%} over the cap: moved {lo:.1%} of the way")

    # 2. floors: a change below the band / minimum notional is kept as held, unless that breaks a cap (3.)
    kept = np.zeros(n, dtype=bool)
    force = np.zeros(n, dtype=bool)  # positions that may not be kept: they break a cap
    new, cost = _size_keeping(value, h, e, kept, cm)
    for _ in range(2 * n + 2):
        change = np.abs(e - d)
        small = ~kept & ~force & (change < floor) & ((d > 0) | (e > 0))  # incl. no change: no dust from costs
        kept |= small
        e = np.where(kept, d, e)
        excess = float(e.sum()) - 1.0
        if excess > 1e-12:  # kept sells left less cash: trim the buys' increments
            buys = ~kept & (e > d)
            b = float((e - d)[buys].sum())
            if b > 0.0:
                e = np.where(buys, d + (e - d) * max(0.0, (b - excess) / b), e)
        e = _force_limits(e, w, d, kept, floor, rules)
        force |= kept & (e != d)
        kept &= e == d
        # costs scale the traded positions by (R - c)/R: a fill that then drops below the floor is kept instead
        new, cost = _size_keeping(value, h, e, kept, cm)
        fills = np.abs(new - h)
        tiny = ~kept & ~force & (fills > TRADE_EPS) & (fills < max(rules.min_notional, rules.band * value))
        over = kept & _over_caps(new / value, w, rules)
        if not (tiny.any() or small.any() or over.any()) and excess <= 1e-12:
            break
        kept |= tiny
        if over.any():  # a kept weight above a cap (against the value at the close): sell it instead
            force |= over
            kept &= ~over
            e = np.where(over, np.maximum(0.0, np.minimum(w, d - floor * (1.0 + 1e-9))), e)
        e = np.where(kept, d, e)
    if kept.any():
        notes.append(
            f"{int(kept.sum())} position(s) kept as held (change below the band or minimum notional)"
        )
    return ExecutionPlan(new, cost, kept, tuple(notes), weights=e)


def _over_caps(x: np.ndarray, w: np.ndarray, rules: ExecutionRules) -> np.ndarray:
    """Positions above the per-asset cap, and the overweight members (above target) of a group over its cap."""
    cap = rules.max_weight if rules.max_weight is not None else np.inf
    over = x > cap + _CAP_TOL
    for idx, cap in rules.groups:
        ii = np.asarray(idx, dtype=int)
        if ii.size and float(x[ii].sum()) > cap + _CAP_TOL:
            over[ii] |= x[ii] > w[ii]
    return over


def _force_limits(
    e: np.ndarray, w: np.ndarray, d: np.ndarray, kept: np.ndarray, floor: float, rules: ExecutionRules
) -> np.ndarray:
    """Kept positions that break a cap are sold: to min(target, cap), and by at least the floor (so the forced
    fill is never a dust trade). A group over its cap first buys less into the group."""
    out = e.copy()
    mn = floor * (1.0 + 1e-9)
    if rules.max_weight is not None:
        over = kept & (out > rules.max_weight + _CAP_TOL)
        out[over] = np.maximum(0.0, np.minimum(w[over], d[over] - mn))
    for idx, cap in rules.groups:
        ii = np.asarray(idx, dtype=int)
        if ii.size == 0 or float(out[ii].sum()) <= cap + _CAP_TOL:
            continue
        buys = ii[~kept[ii] & (out[ii] > d[ii])]  # first buy less into the group (no dust fill that way)
        b = float((out[buys] - d[buys]).sum()) if buys.size else 0.0
        if b > 0.0:
            cut = min(b, float(out[ii].sum()) - cap)
            out[buys] = d[buys] + (out[buys] - d[buys]) * (1.0 - cut / b)
        order = ii[np.argsort(-(out[ii] - w[ii]))]  # then sell kept overweights, biggest first
        for i in order:
            if float(out[ii].sum()) <= cap + _CAP_TOL:  # the buys' cut may leave float noise above it
                break
            if out[i] > w[i]:
                out[i] = max(0.0, min(w[i], d[i] - mn))
    return _lower_caps(out, rules, _CAP_TOL)


def _hold_var(
    value: float,
    h: np.ndarray,
    cm: CostModel,
    rules: ExecutionRules | None,
    plan: ExecutionPlan,
    risk: ExecRisk,
) -> ExecutionPlan:
    """The planned book within the decision's VaR limit (rule 5): measured after costs, on the decision's Σ.

    Weights are lowered where the floors allow (`agent.execution_var.lower_var`), the result is sized and
    re-measured (costs move the weights by a few 1e-5), and the goal tightened until it holds; a buy that the
    costs shrink below the floor is kept as held instead. Should that not converge, one uniform scale of the
    whole book meets the limit exactly (the book after costs is then exactly the scaled weights)."""
    from agent.execution_var import lower_var, risk_matrix
    from agent.overlays.base import parametric_var

    cov = risk_matrix(risk)
    limit, conf = float(risk.var_limit), float(risk.confidence)

    def var_of(notional: np.ndarray, cost: float) -> float:
        nav = value - cost
        return parametric_var(notional / nav, cov, conf) if nav > 0 else 0.0

    before = var_of(plan.notional, plan.cost)
    if before <= limit * (1.0 + _VAR_TOL):
        return plan
    n = h.size
    d = h / value
    floor = max(rules.min_notional / value, rules.band) if rules is not None else 0.0
    residual = rules.min_notional / value if rules is not None else 0.0
    z = NormalDist().inv_cdf(conf)
    e0 = np.asarray(plan.weights if plan.weights is not None else plan.notional / value, dtype=float)
    e = e0 = np.where(plan.kept, d, e0)
    lowered = np.zeros(n, dtype=bool)
    goal = limit
    result: tuple[np.ndarray, float, np.ndarray, float] | None = None
    for _ in range(2 * n + 8):
        e, low = lower_var(e, d, cov, goal / z, floor, residual)
        lowered |= low
        kept = (e == d) & (d > 0.0)
        new, cost = _size_keeping(value, h, e, kept, cm)
        fills = new - h
        tiny = ~kept & (fills > TRADE_EPS) & (fills < floor * value)  # costs shrank a buy below the floor
        if tiny.any():
            e = np.where(tiny, d, e)
            continue
        after = var_of(new, cost)
        if after <= limit:
            result = (new, cost, kept, after)
            break
        goal *= limit / after * (1.0 - 1e-12)
    note = "lowered {k} position(s) toward cash"
    if result is None:  # the floors would not let it converge: one uniform scale (the limit wins)
        v = parametric_var(e0, cov, conf)
        e = e0 * (limit / v) * (1.0 - 1e-12) if v > limit else e0
        new, cost = size_rebalance(value, h, e, cm)
        result = (new, cost, np.zeros(n, dtype=bool), var_of(new, cost))
        lowered = e < e0
        note = (
            "scaled the whole book toward cash ({k} position(s)): limits win over the band and minimum trade"
        )
    new, cost, kept, after = result
    label = f"{conf:.0%}" if round(conf * 100, 6).is_integer() else f"{conf:.1%}"
    text = (
        f"executed book's {label} 1-day VaR {before:.4%} over the limit {limit:.4%} (the decision's covariance): "
        + note.format(k=int(lowered.sum()))
        + f" -> {after:.4%}"
    )
    notes = tuple(x for x in plan.notes if not x.startswith(f"{int(plan.kept.sum())} position(s) kept"))
    if kept.any():
        notes += (f"{int(kept.sum())} position(s) kept as held (change below the band or minimum notional)",)
    var = {"before": before, "after": after, "limit": limit, "lowered": np.flatnonzero(lowered).tolist()}
    return ExecutionPlan(new, cost, kept, (*notes, text), weights=e, var=var)
