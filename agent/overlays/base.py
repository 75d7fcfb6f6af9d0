"""Shared pieces of the overlays: the context every overlay sees, the hard limits, and small helpers.

Why a separate module: the risk overlays, the trade dampeners and the limit keeper all build on the same
invariant (finite, non-negative weights summing to at most 1) and the same record format.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.decision import TRADING_DAYS, OverlayRecord, PortfolioState, StopState, cash_weight
from agent.settings import OverlaySettings

if TYPE_CHECKING:
    import datetime as dt

    from agent.settings import Settings

__all__ = [
    "HELD_EPS",
    "SUM_TOL",
    "HardLimits",
    "OverlayContext",
    "OverlayFn",
    "group_indices",
    "parametric_var",
]

SUM_TOL = 1e-9  # weights may sum to 1 + SUM_TOL (float noise); never more
HELD_EPS = 1e-6  # a current weight at or below this counts as "not held" (entry/exit rule)
_TRADE_EPS = 1e-12  # |Δw| at or below this is no trade at all
_ANNUAL = TRADING_DAYS
_MAX_LISTED = 5  # names spelled out in a reason before "+N more"
_STOP_ACTIVE = ("stopped", "cooling_down")


@dataclass(frozen=True)
class HardLimits:
    """Limits configured outside `[overlays]` that every executed book must meet: the allocation's per-asset
    maximum weight and its group caps. The overlay settings' own `max_weight`, `group_caps` and VaR limit are
    added to these by `agent.overlays.limits.effective_limits`.
    """

    max_weight: float | None = None
    group_caps: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> HardLimits:
        """The allocation's caps (a max weight of 1 is no cap)."""
        a = settings.allocation
        cap = float(a.max_weight) if a.max_weight < 1.0 else None
        return cls(max_weight=cap, group_caps=dict(a.group_caps))


@dataclass(frozen=True, eq=False)
class OverlayContext:
    """Everything an overlay may look at besides the proposed weights. Arrays are aligned to `tickers`.

    `current` are the drifted weights held now; `cov` is the DAILY covariance; `sessions_elapsed` counts trading
    sessions since the previous decision (the drawdown stop's cool-down clock); `groups` maps a group name to its
    member indices. `limits` are hard limits set outside the overlay settings (the allocation's max weight and
    group caps): the dampeners hold them too (see `agent.overlays.limits`).
    """

    asof: dt.date
    tickers: tuple[str, ...]
    current: np.ndarray
    cov: np.ndarray
    state: PortfolioState
    sessions_elapsed: int
    groups: dict[str, list[int]] = field(default_factory=dict)
    nav: float = 0.0
    limits: HardLimits | None = None

    def __post_init__(self) -> None:
        n = len(self.tickers)
        cur = np.asarray(self.current, dtype=float)
        cov = np.asarray(self.cov, dtype=float)
        if cur.shape != (n,):
            raise ValueError(f"current weights have shape {cur.shape}, expected ({n},)")
        if cov.shape != (n, n):
            raise ValueError(f"covariance has shape {cov.shape}, expected ({n}, {n})")
        for name, idx in self.groups.items():
            bad = [i for i in idx if not 0 <= int(i) < n]
            if bad:
                raise ValueError(f"group {name!r} has member indices outside 0..{n - 1}: {bad}")
        object.__setattr__(self, "current", cur)
        object.__setattr__(self, "cov", cov)

    @classmethod
    def from_state(
        cls,
        state: PortfolioState,
        cov: np.ndarray,
        *,
        asof: dt.date,
        sessions_elapsed: int,
        groups: Mapping[str, Sequence[str]] | None = None,
        limits: HardLimits | None = None,
    ) -> OverlayContext:
        """Build from the book: current weights and NAV from `state`, groups given by ticker names."""
        return cls(
            asof=asof,
            tickers=tuple(state.tickers),
            current=np.asarray(state.weights, dtype=float),
            cov=np.asarray(cov, dtype=float),
            state=state,
            sessions_elapsed=int(sessions_elapsed),
            groups=group_indices(state.tickers, groups or {}),
            nav=float(state.nav),
            limits=limits,
        )


OverlayFn = Callable[
    [np.ndarray, OverlayContext, OverlaySettings, StopState], tuple[np.ndarray, OverlayRecord, StopState]
]


def group_indices(tickers: Sequence[str], groups: Mapping[str, Sequence[str]]) -> dict[str, list[int]]:
    """Group name -> member indices in `tickers` (names not in the universe are ignored)."""
    pos = {t: i for i, t in enumerate(tickers)}
    return {g: [pos[t] for t in members if t in pos] for g, members in groups.items()}


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _listing(items: list[str]) -> str:
    if len(items) <= _MAX_LISTED:
        return ", ".join(items)
    return ", ".join(items[:_MAX_LISTED]) + f" (+{len(items) - _MAX_LISTED} more)"


def _tidy(w: np.ndarray) -> np.ndarray:
    """Finite, non-negative, sum <= 1: the invariant every overlay output meets (clears float noise only)."""
    out = np.asarray(w, dtype=float).copy()
    out[~np.isfinite(out)] = 0.0
    out = np.maximum(out, 0.0)
    s = float(out.sum())
    if s > 1.0:
        out = out / s
    return out + 0.0  # no negative zeros


def _current(ctx: OverlayContext) -> np.ndarray:
    """The held weights, made valid: drift or float noise can leave them slightly outside the invariant."""
    return _tidy(ctx.current)


def _weights_after(w: np.ndarray, ctx: OverlayContext) -> dict[str, float]:
    d = {t: float(x) for t, x in zip(ctx.tickers, w, strict=True)}
    d["cash"] = cash_weight(w)
    return d


def _record(
    name: str,
    action: str,
    reason: str,
    w: np.ndarray,
    ctx: OverlayContext,
    details: dict[str, Any] | None = None,
) -> OverlayRecord:
    return OverlayRecord(
        name=name, action=action, reason=reason, weights_after=_weights_after(w, ctx), details=details or {}
    )


def _quad(w: np.ndarray, cov: np.ndarray) -> float:
    """wᵀΣw, clipped at 0 (a slightly non-PSD Σ must not give a negative variance)."""
    return max(0.0, float(w @ cov @ w))


def parametric_var(w: np.ndarray, cov: np.ndarray, confidence: float) -> float:
    """1-day parametric (normal, zero-mean) VaR as a fraction of NAV: z·sqrt(wᵀΣw) with a daily Σ."""
    z = NormalDist().inv_cdf(confidence)
    return z * math.sqrt(_quad(np.asarray(w, dtype=float), np.asarray(cov, dtype=float)))


def _bypass(
    name: str, w: np.ndarray, ctx: OverlayContext, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    reason = f"drawdown stop is {stop.status}: the move to cash is not dampened"
    return w, _record(name, "bypassed", reason, w, ctx, {"stop_status": stop.status}), stop


def _fit_under_one(w: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, float]:
    """Mixing kept current weights with traded targets can sum above 1; trim the traded ones to fit.

    Kept positions are left untouched (they are the trades we chose not to make); the traded assets are scaled
    down proportionally. Feasible because the kept weights come from `current`, which sums to <= 1.
    Returns the weights and the fraction trimmed (0 when nothing had to change).
    """
    total = float(w.sum())
    if total <= 1.0 + SUM_TOL:
        return w, 0.0
    k = float(w[kept].sum())
    t = float(w[~kept].sum())
    if t <= 0.0:  # cannot happen with a valid current; fall back to a uniform scale
        return w / total, total - 1.0
    out = w.copy()
    out[~kept] *= max(0.0, 1.0 - k) / t
    return out, total - 1.0


def _stop_active(cfg: OverlaySettings, stop: StopState) -> bool:
    return cfg.drawdown_stop.enabled and stop.status in _STOP_ACTIVE
