"""The trade dampeners and the entry/exit rule: overlays that act on trades (w − current), not on risk.

The dampeners (turnover cap, no-trade band, minimum trade) keep some drifted current weights instead of the
targets; they step aside while the drawdown stop is active (a stop liquidation must reach cash in full), and
they never leave a position above a hard limit (`agent.overlays.limits`): where keeping a drifted weight would
break a cap or the VaR limit, the limit wins.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.overlays.base import (
    _TRADE_EPS,
    HELD_EPS,
    OverlayContext,
    _bypass,
    _current,
    _fit_under_one,
    _listing,
    _pct,
    _record,
    _stop_active,
    _tidy,
)
from agent.overlays.limits import Limits, effective_limits, hold_limits

if TYPE_CHECKING:
    from agent.decision import OverlayRecord, StopState
    from agent.settings import OverlaySettings

__all__ = ["entry_exit", "min_trade", "no_trade_band", "turnover_cap"]


def _turnover(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum())


def turnover_cap(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """If turnover sum|w − current| exceeds the cap, move only partway: w = current + f·(w − current).

    A convex mix of two valid books is valid (sum <= 1). f = cap/turnover unless the partial book would keep a
    drifted position above a hard limit: then the limits are restored (`hold_limits`) and f is the largest step
    whose limit-holding book still meets the cap (bisection); if the limits alone need more turnover than the cap,
    the limits win and the record says so. A first deployment from an all-cash book is not throttled unless
    `throttle_first_deployment` is set: a fully invested profile must not sit in cash for weeks at start.
    """
    name = "turnover_cap"
    w = _tidy(weights)
    if _stop_active(cfg, stop):
        return _bypass(name, w, ctx, stop)
    cap = cfg.turnover_cap
    cur = _current(ctx)
    turnover = _turnover(w, cur)
    if cap is not None and float(cur.sum()) <= HELD_EPS and not cfg.throttle_first_deployment:
        reason = f"first deployment from cash (turnover {_pct(turnover)}): not throttled"
        details = {"turnover": turnover, "cap": cap, "first_deployment": True}
        return w, _record(name, "none", reason, w, ctx, details), stop
    if cap is None or turnover <= cap:
        reason = (
            f"turnover {_pct(turnover)} within cap {_pct(cap)}" if cap is not None else "no cap configured"
        )
        return w, _record(name, "none", reason, w, ctx, {"turnover": turnover, "cap": cap}), stop
    lim = effective_limits(ctx, cfg)
    frac = cap / turnover
    mixed = _tidy(cur + frac * (w - cur))
    out = hold_limits(mixed, w, lim)
    limited = not np.array_equal(out, mixed)
    if limited:

        def book(f: float) -> np.ndarray:
            return hold_limits(cur + f * (w - cur), w, lim)

        lo, hi = 0.0, 1.0
        if _turnover(book(0.0), cur) > cap:
            hi = 0.0
        for _ in range(60 if hi > 0 else 0):
            mid = 0.5 * (lo + hi)
            if _turnover(book(mid), cur) <= cap:
                lo = mid
            else:
                hi = mid
        frac = lo
        out = book(lo)
    reason = f"turnover {_pct(turnover)} > cap {_pct(cap)}: moved {_pct(frac)} of the way to the targets"
    if limited:
        reason += "; drifted positions above a hard limit cut back to it"
    details = {
        "turnover_before": turnover,
        "turnover_after": _turnover(out, cur),
        "cap": cap,
        "fraction": frac,
        "limits_held": limited,
    }
    return out, _record(name, "throttled", reason, out, ctx, details), stop


def entry_exit(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """Study 003's entry/exit rule: enter a position only at >= entry_threshold, exit a held one below
    exit_threshold. The freed weight goes to cash. "Held" means current weight > HELD_EPS.
    """
    name = "entry_exit"
    w = _tidy(weights)
    cur = _current(ctx)
    held = cur > HELD_EPS
    no_entry = np.flatnonzero(~held & (w > 0.0) & (w < cfg.entry_threshold))
    exits = np.flatnonzero(held & (w > 0.0) & (w < cfg.exit_threshold))
    if no_entry.size == 0 and exits.size == 0:
        reason = f"no target below the entry {_pct(cfg.entry_threshold)} / exit {_pct(cfg.exit_threshold)} thresholds"
        return w, _record(name, "none", reason, w, ctx), stop
    items = [f"exit {ctx.tickers[i]} {_pct(float(w[i]))} < {_pct(cfg.exit_threshold)}" for i in exits]
    items += [
        f"no entry {ctx.tickers[i]} {_pct(float(w[i]))} < {_pct(cfg.entry_threshold)}" for i in no_entry
    ]
    freed = float(w[exits].sum() + w[no_entry].sum())
    details = {
        "exited": {ctx.tickers[i]: float(w[i]) for i in exits},
        "not_entered": {ctx.tickers[i]: float(w[i]) for i in no_entry},
        "to_cash": freed,
    }
    out = w.copy()
    out[exits] = 0.0
    out[no_entry] = 0.0
    out = _tidy(out)
    reason = f"{_listing(items)}; {_pct(freed)} to cash"
    return out, _record(name, "filtered", reason, out, ctx, details), stop


def _keep_current(
    name: str,
    verb: str,
    w: np.ndarray,
    ctx: OverlayContext,
    keep: np.ndarray,
    cur: np.ndarray,
    why: str,
    lim: Limits,
) -> tuple[np.ndarray, OverlayRecord]:
    """Shared tail of the band and minimum-trade overlays: keep `cur` where `keep`, fit under 1, then pull kept
    positions back within the hard limits (a drifted position above a cap is cut to it: the limit wins)."""
    trade = np.abs(w - cur) > _TRADE_EPS
    suppressed = keep & trade
    if not trade.any():
        return w, _record(name, "none", "no trades proposed", w, ctx)
    if not suppressed.any():
        return w, _record(name, "none", f"every trade clears the {why}", w, ctx)
    out = np.where(keep, cur, w)
    out, trimmed = _fit_under_one(out, keep)
    out = _tidy(out)
    held = hold_limits(out, w, lim)
    cut = np.flatnonzero(np.abs(held - out) > _TRADE_EPS)
    out = held
    skipped = [f"{ctx.tickers[i]} {float(w[i] - cur[i]):+.2%}" for i in np.flatnonzero(suppressed)]
    details: dict[str, Any] = {"kept": {ctx.tickers[i]: float(cur[i]) for i in np.flatnonzero(suppressed)}}
    if trimmed > 0.0:
        details["trimmed_traded"] = trimmed
    if cut.size:
        details["cut_to_limits"] = {ctx.tickers[i]: float(out[i]) for i in cut}
    if not (trade & ~keep).any() and not cut.size:
        reason = f"every trade within the {why}: holding current weights ({_listing(skipped)})"
        return out, _record(name, "held", reason, out, ctx, details)
    reason = f"{len(skipped)} trade(s) within the {why} skipped: {_listing(skipped)}"
    if trimmed > 0.0:
        reason += f"; traded weights trimmed by {_pct(trimmed)} to keep the sum <= 100%"
    if cut.size:
        reason += f"; {_listing([ctx.tickers[i] for i in cut])} cut back within the hard limits"
    return out, _record(name, verb, reason, out, ctx, details)


def no_trade_band(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """Per asset, skip a trade smaller than the band (keep the current weight): fewer, larger trades cost less.

    If keeping some current weights would push the sum above 1, the assets that do trade are trimmed (kept
    positions stay untouched). Action "held" when no asset trades at all.
    """
    name = "no_trade_band"
    w = _tidy(weights)
    if _stop_active(cfg, stop):
        return _bypass(name, w, ctx, stop)
    cur = _current(ctx)
    keep = np.abs(w - cur) < cfg.no_trade_band
    band = f"{_pct(cfg.no_trade_band)} band"
    out, rec = _keep_current(name, "banded", w, ctx, keep, cur, band, effective_limits(ctx, cfg))
    return out, rec, stop


def min_trade(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """Drop trades whose notional |Δw|·NAV is below `min_trade` (keep the current weight): not worth the ticket.

    Same sum <= 1 repair as the band. Action "held" when every trade is dropped.
    """
    name = "min_trade"
    w = _tidy(weights)
    if _stop_active(cfg, stop):
        return _bypass(name, w, ctx, stop)
    cur = _current(ctx)
    nav = float(ctx.nav) if math.isfinite(ctx.nav) else 0.0
    keep = np.abs(w - cur) * nav < cfg.min_trade
    why = f"minimum trade of {cfg.min_trade:,.2f}"
    out, rec = _keep_current(name, "dropped", w, ctx, keep, cur, why, effective_limits(ctx, cfg))
    return out, rec, stop
