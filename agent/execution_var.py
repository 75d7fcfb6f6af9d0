"""The VaR limit on the executed book (issue 10 item 3): which weights to lower, and by how much.

Why: the execution rules (`agent.execution`) keep drifted positions as held (band, minimum notional) or move
only part of the way (turnover cap), so the book actually executed is not the decision's targets, and its 1-day
parametric VaR, z·sqrt(wᵀΣw) on the decision's own Σ, can exceed the limit the decision's overlays met. The
execution step lowers weights until it holds again, trading as little as the rules allow:

* only weights are lowered (the freed weight goes to cash, as the VaR overlay does), so the per-asset and
  group caps keep holding;
* VaR is not monotone in each weight (lowering a hedge raises it), so a weight is lowered only while its
  marginal risk (Σw)_i is positive, the largest first, each by the least allowed amount that meets the limit
  (or, when it alone cannot, to its allowed weight of least risk), each position at most once per pass;
* allowed means what the execution rules allow: unchanged (as held), a buy or a sale of at least the floor, no
  residual position below the minimum notional; selling a position out is always allowed (the limit wins).

`agent.execution.plan_rebalance` sizes the result with costs, re-measures and, should a pass not be enough,
falls back to one uniform scale of the whole book (VaR is homogeneous of degree 1), which always meets it.
Pure numpy functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from agent.decision import ExecRisk

__all__ = ["lower_var", "risk_matrix"]

_MARGIN = 1.0 + 1e-9  # a forced sale exceeds the floor by this factor (float noise never leaves a dust fill)


def risk_matrix(risk: ExecRisk) -> np.ndarray:
    """The decision's daily Σ: its dense form, or rebuilt from the factor form exactly as the estimator did."""
    if risk.cov is not None:
        return np.asarray(risk.cov, dtype=float)
    if risk.loadings is None or risk.factor_var is None or risk.specific_var is None:
        raise ValueError("the execution's risk carries neither a covariance nor a factor model")
    from agent.risk.factor import FactorModel

    fm = FactorModel(
        loadings=np.asarray(risk.loadings, dtype=float),
        factor_var=np.asarray(risk.factor_var, dtype=float),
        specific_var=np.asarray(risk.specific_var, dtype=float),
        shrinkage=0.0,
        method="stored",
    )
    return fm.dense()


def _allowed(y: float, e: float, d: float, floor: float, residual: float) -> bool:
    """Whether the rules allow weight `y` for a position held at `d` and planned at `e` (y <= e)."""
    if y < 0.0 or y > e:
        return False
    if y in (0.0, d, e):
        return True
    mn = floor * _MARGIN
    if y >= d + mn:
        return True
    return y <= d - mn and y >= residual


def _snap_down(y: float, e: float, d: float, floor: float, residual: float) -> float:
    """The largest allowed weight <= y (0 always is)."""
    if _allowed(y, e, d, floor, residual):
        return y
    cands = [b for b in (d - floor * _MARGIN, d) if 0.0 <= b <= y and _allowed(b, e, d, floor, residual)]
    return max(cands, default=0.0)


def _snap_up(y: float, e: float, d: float, floor: float, residual: float) -> float:
    """The smallest allowed weight >= y (e, the planned weight, always is)."""
    if _allowed(y, e, d, floor, residual):
        return y
    cands = [
        b for b in (residual, d, d + floor * _MARGIN) if y <= b <= e and _allowed(b, e, d, floor, residual)
    ]
    return min(cands, default=e)


def lower_var(
    e: np.ndarray, d: np.ndarray, cov: np.ndarray, sd_goal: float, floor: float, residual: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lower weights of the planned book `e` (held: `d`) until sqrt(eᵀΣe) <= `sd_goal`, where the rules allow.

    `floor`: the smallest change a fill may make, as a weight; `residual`: the smallest position a sale may
    leave. Returns the new weights and which positions were lowered. Stops when the goal is met or no position
    with positive marginal risk is left to lower (the caller then falls back to a uniform scale).
    """
    out = np.asarray(e, dtype=float).copy()
    d = np.asarray(d, dtype=float)
    goal = sd_goal * sd_goal
    lowered = np.zeros(out.size, dtype=bool)
    for _ in range(out.size):
        g = cov @ out
        q = float(out @ g)
        if q <= goal:
            break
        cand = ~lowered & (out > 0.0) & (g > 0.0) & (np.diag(cov) > 0.0)
        if not cand.any():
            break
        i = int(np.flatnonzero(cand)[np.argmax(g[cand])])
        lowered[i] = True
        gi, sii, ei, di = float(g[i]), float(cov[i, i]), float(out[i]), float(d[i])

        def q_at(y: float, gi: float = gi, sii: float = sii, ei: float = ei, q: float = q) -> float:
            t = ei - y
            return q - 2.0 * t * gi + t * t * sii

        disc = gi * gi - sii * (q - goal)
        y = None
        if disc >= 0.0:  # q(t) <= goal for t in [t1, t2]: the least allowed reduction in it
            root = disc**0.5
            t1, t2 = (q - goal) / (gi + root), (gi + root) / sii
            if ei - t1 >= 0.0:
                y = _snap_down(ei - t1, ei, di, floor, residual)
                if y < ei - t2:
                    y = None
        if y is None:  # this position alone cannot meet it: its allowed weight of least risk
            ym = min(max(ei - gi / sii, 0.0), ei)
            y = min(
                (_snap_down(ym, ei, di, floor, residual), _snap_up(ym, ei, di, floor, residual)), key=q_at
            )
            if q_at(y) >= q:
                continue
        out[i] = y
    return out, lowered & (out != np.asarray(e, dtype=float))
