"""The hard limits a trade dampener must not break: per-asset max weight, group caps, the VaR limit.

Why: the dampeners (no-trade band, minimum trade, turnover cap) keep some of the drifted current weights instead
of the targets. A drifted position can sit above a cap (prices moved), so keeping it would carry a breach into
the executed book. The rule here: a dampener's output is pulled back toward its input (the targets, which the
risk overlays have already brought within the limits) just far enough to meet every limit again. Per-asset caps
and group caps only ever lower weights (the freed weight goes to cash); the VaR limit, which is not monotone in
each weight, is met by moving the dampened book along the straight line back to the targets (the largest step
that keeps the VaR within the limit; VaR is convex, so that set is an interval).

Pure numpy functions, one job each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from agent.overlays.base import _quad, _tidy, parametric_var

if TYPE_CHECKING:
    from agent.overlays.base import OverlayContext
    from agent.settings import OverlaySettings

__all__ = ["Limits", "effective_limits", "hold_limits", "limit_breaches", "lower_to_limits"]

_BISECT = 60  # halvings of the VaR step: far below float noise of the weights


@dataclass(frozen=True)
class Limits:
    """Hard limits in index form: one cap for every asset, (indices, cap) per group, an optional VaR limit."""

    max_weight: float | None = None
    groups: tuple[tuple[str, np.ndarray, float], ...] = ()
    var_limit: float | None = None
    confidence: float = 0.99
    cov: np.ndarray | None = field(default=None, repr=False)

    @property
    def empty(self) -> bool:
        return self.max_weight is None and not self.groups and self.var_limit is None

    def var(self, w: np.ndarray) -> float:
        if self.cov is None:
            return 0.0
        return parametric_var(w, self.cov, self.confidence)


def _merge_caps(*caps: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in caps:
        for g, v in c.items():
            out[g] = min(float(v), out.get(g, math.inf))
    return out


def effective_limits(ctx: OverlayContext, cfg: OverlaySettings) -> Limits:
    """The limits that bind on this decision: the overlay settings' caps and VaR limit (when enabled) plus the
    context's hard limits from the allocation settings; the tighter one wins where both set a cap."""
    caps = [c for c in (cfg.max_weight, ctx.limits.max_weight if ctx.limits else None) if c is not None]
    group_caps = _merge_caps(cfg.group_caps, ctx.limits.group_caps if ctx.limits else {})
    groups = tuple(
        (g, np.asarray(sorted({int(i) for i in ctx.groups[g]}), dtype=int), cap)
        for g, cap in group_caps.items()
        if g in ctx.groups
    )
    v = cfg.var_limit
    var_ok = v.enabled and bool(np.all(np.isfinite(ctx.cov)))
    return Limits(
        max_weight=min(caps) if caps else None,
        groups=groups,
        var_limit=v.limit if var_ok else None,
        confidence=v.confidence,
        cov=ctx.cov if var_ok else None,
    )


def _lower_caps(x: np.ndarray, lim: Limits) -> np.ndarray:
    """Per-asset cap, then each group scaled down to its cap: only ever lowers weights."""
    out = np.asarray(x, dtype=float).copy()
    if lim.max_weight is not None:
        out = np.minimum(out, lim.max_weight)
    for _, idx, cap in lim.groups:
        s = float(out[idx].sum()) if idx.size else 0.0
        if s > cap:
            out[idx] *= cap / s
    return out


def lower_to_limits(x: np.ndarray, lim: Limits) -> np.ndarray:
    """The book `x` brought within every limit by lowering weights only (caps, groups, then a VaR scale)."""
    out = _lower_caps(_tidy(x), lim)
    if lim.var_limit is not None:
        var = lim.var(out)
        if var > lim.var_limit:  # VaR is homogeneous of degree 1: one scale meets it (a hair inside)
            out = out * (lim.var_limit / var) * (1.0 - 1e-12)
    return _tidy(out)


def hold_limits(out: np.ndarray, anchor: np.ndarray, lim: Limits) -> np.ndarray:
    """A dampened book `out` pulled back toward `anchor` (the dampener's input) until every limit holds.

    The anchor is first brought within the limits (a no-op when the risk overlays ran before the dampener).
    Weights above a cap are lowered to it, groups scaled down to their caps; if the VaR limit is still broken,
    the book moves along the line to the anchor by the smallest step that meets it. Positions that the dampener
    left as the anchor had them are never touched by the caps, so the dampener's trades survive where they can.
    """
    if lim.empty:
        return _tidy(out)
    a = lower_to_limits(anchor, lim)
    x = _tidy(_lower_caps(_tidy(out), lim))
    if lim.var_limit is None or lim.var(x) <= lim.var_limit:
        return x
    lo, hi = 0.0, 1.0  # weight on `a`: 0 gives x (breaks the limit), 1 gives a (meets it)
    for _ in range(_BISECT):
        mid = 0.5 * (lo + hi)
        if lim.var(x + mid * (a - x)) <= lim.var_limit:
            hi = mid
        else:
            lo = mid
    return _tidy(x + hi * (a - x))


def limit_breaches(w: np.ndarray, lim: Limits, tickers: Sequence[str], tol: float = 1e-9) -> list[str]:
    """Human-readable breaches of the limits by `w` (empty when every limit holds within `tol`)."""
    out: list[str] = []
    w = np.asarray(w, dtype=float)
    if lim.max_weight is not None:
        out += [
            f"{tickers[i]} {w[i]:.4%} > {lim.max_weight:.2%}"
            for i in np.flatnonzero(w > lim.max_weight + tol).tolist()
        ]
    for g, idx, cap in lim.groups:
        s = float(w[idx].sum()) if idx.size else 0.0
        if s > cap + tol:
            out.append(f"group {g} {s:.4%} > {cap:.2%}")
    if lim.var_limit is not None and lim.cov is not None:
        v = math.sqrt(_quad(w, lim.cov))
        var = parametric_var(w, lim.cov, lim.confidence)
        if var > lim.var_limit * (1 + 1e-9) + tol * v:
            out.append(f"VaR {var:.4%} > {lim.var_limit:.2%}")
    return out
