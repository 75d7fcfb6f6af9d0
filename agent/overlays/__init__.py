"""Risk and trading overlays applied to the optimizer's weights, in the shape of bt's algo stack.

Each overlay is one small pure function that does one job and says what it changed:

    overlay(weights, ctx, cfg, stop) -> (weights, OverlayRecord, StopState)

`apply_overlays` runs the enabled ones in `cfg.order`. Why this shape: every step of the decision log can be
checked on its own ("XLK 31.2% > cap 20.0%"), and the order is configuration, not code.

Conventions and contracts (see docs/ARCHITECTURE.md):
- Weights are long-only, aligned to `ctx.tickers`, and sum to at most 1; cash = 1 - sum. Every overlay returns
  finite, non-negative weights with sum <= 1 (+1e-9), given valid input.
- Weight removed by an overlay goes to **cash**. It is never redistributed to other assets: redistribution would
  silently raise positions the optimizer did not choose and could break another cap or the risk limits.
- An overlay runs only when it is named in `cfg.order` **and** enabled (see `is_enabled`); only those produce a
  record, so the records list is one per enabled overlay, in order. A name listed twice runs once (the drawdown
  stop must not count its cool-down twice). If the proposed weights had to be repaired (NaN, negative, sum > 1),
  an extra first record named "input" with action "repaired" says so.
- The trade-dampening overlays (`turnover_cap`, `no_trade_band`, `min_trade`) step aside while the drawdown stop
  is active (stopped / cooling down): a stop liquidation must reach cash in full, not "partway".
- Dampeners run last in the default order and act on trades only, but they never break a hard limit: a kept
  (drifted) position above a cap, a group cap or the VaR limit is pulled back within it (`limits.hold_limits`).
  The hard limits are the overlay settings' caps and VaR limit plus `ctx.limits` (the allocation's max weight and
  group caps, `HardLimits.from_settings`).
- The package: `base` (context, helpers), `risk` (caps, stop, VaR, vol target), `trading` (dampeners,
  entry/exit), `limits` (the hard limits the dampeners hold), `stack` (registry and `apply_overlays`).

numpy only; no scipy (the normal quantile comes from `statistics.NormalDist`).
"""

from agent.overlays.base import (
    HELD_EPS,
    SUM_TOL,
    HardLimits,
    OverlayContext,
    OverlayFn,
    group_indices,
    parametric_var,
)
from agent.overlays.limits import Limits, effective_limits, hold_limits, limit_breaches, lower_to_limits
from agent.overlays.risk import drawdown_stop, group_caps, max_weight, var_limit, vol_target
from agent.overlays.stack import OVERLAYS, apply_overlays, is_enabled
from agent.overlays.trading import entry_exit, min_trade, no_trade_band, turnover_cap

__all__ = [
    "HELD_EPS",
    "OVERLAYS",
    "SUM_TOL",
    "HardLimits",
    "Limits",
    "OverlayContext",
    "OverlayFn",
    "apply_overlays",
    "drawdown_stop",
    "effective_limits",
    "entry_exit",
    "group_caps",
    "group_indices",
    "hold_limits",
    "is_enabled",
    "limit_breaches",
    "lower_to_limits",
    "max_weight",
    "min_trade",
    "no_trade_band",
    "parametric_var",
    "turnover_cap",
    "var_limit",
    "vol_target",
]
