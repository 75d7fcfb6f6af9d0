"""The overlay stack: the registry of overlays by name and `apply_overlays`, which runs them in `cfg.order`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from agent.overlays.base import (
    _TRADE_EPS,
    SUM_TOL,
    OverlayContext,
    OverlayFn,
    _listing,
    _pct,
    _record,
    _tidy,
)
from agent.overlays.limits import effective_limits, limit_breaches, lower_to_limits
from agent.overlays.risk import drawdown_stop, group_caps, max_weight, var_limit, vol_target
from agent.overlays.trading import entry_exit, min_trade, no_trade_band, turnover_cap

if TYPE_CHECKING:
    from agent.decision import OverlayRecord, StopState
    from agent.settings import OverlaySettings

__all__ = ["OVERLAYS", "apply_overlays", "is_enabled"]

OVERLAYS: dict[str, OverlayFn] = {
    "max_weight": max_weight,
    "group_caps": group_caps,
    "drawdown_stop": drawdown_stop,
    "var_limit": var_limit,
    "vol_target": vol_target,
    "turnover_cap": turnover_cap,
    "entry_exit": entry_exit,
    "no_trade_band": no_trade_band,
    "min_trade": min_trade,
}


def is_enabled(name: str, cfg: OverlaySettings) -> bool:
    """Whether an overlay is configured to do anything: only these run and leave a record."""
    return {
        "max_weight": cfg.max_weight is not None,
        "group_caps": bool(cfg.group_caps),
        "drawdown_stop": cfg.drawdown_stop.enabled,
        "var_limit": cfg.var_limit.enabled,
        "vol_target": cfg.vol_target.enabled,
        "turnover_cap": cfg.turnover_cap is not None,
        "entry_exit": cfg.entry_threshold > 0 or cfg.exit_threshold > 0,
        "no_trade_band": cfg.no_trade_band > 0,
        "min_trade": cfg.min_trade > 0,
    }.get(name, False)


def apply_overlays(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings
) -> tuple[np.ndarray, list[OverlayRecord], StopState]:
    """Run the enabled overlays in `cfg.order`; return the final weights, one record each, and the stop state.

    The stop state starts from `ctx.state.stop` and is returned unchanged when the drawdown stop does not run.
    The output always meets the hard limits (`effective_limits`): should any still be broken after the stack (a
    cap set only in the allocation settings, with the optimizer's proposal or a fallback above it), the weights
    are lowered to them and an extra last record named "limits" says so.
    """
    raw = np.asarray(weights, dtype=float)
    if raw.shape != (len(ctx.tickers),):
        raise ValueError(f"weights have shape {raw.shape}, expected ({len(ctx.tickers)},)")
    w = _tidy(raw)
    records: list[OverlayRecord] = []
    problems = []
    if not np.all(np.isfinite(raw)):
        problems.append(f"{int((~np.isfinite(raw)).sum())} non-finite weight(s) set to 0")
    if np.any(np.nan_to_num(raw) < -_TRADE_EPS):
        problems.append("negative weights set to 0 (long-only)")
    total = float(np.nan_to_num(raw).clip(min=0).sum())
    if total > 1.0 + SUM_TOL:
        problems.append(f"weights summed to {_pct(total)}: scaled to 100%")
    if problems:
        records.append(_record("input", "repaired", "; ".join(problems), w, ctx))
    stop = ctx.state.stop
    seen: set[str] = set()
    for name in cfg.order:
        if name in seen or not is_enabled(name, cfg):
            continue
        seen.add(name)
        w, rec, stop = OVERLAYS[name](w, ctx, cfg, stop)
        records.append(rec)
    w = _tidy(w)
    lim = effective_limits(ctx, cfg)
    breaches = limit_breaches(w, lim, ctx.tickers)
    if breaches:  # e.g. a proposal above the allocation's caps with no overlay configured to cut it
        w = lower_to_limits(w, lim)
        reason = f"hard limits restored: {_listing(breaches)}; the excess to cash"
        records.append(_record("limits", "capped", reason, w, ctx, {"breaches": breaches}))
    return w, records, stop
