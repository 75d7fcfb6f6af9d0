"""The risk overlays: per-asset and group caps, the drawdown stop, the VaR limit and the volatility target.

Each lowers weights only (the excess goes to cash, never to other assets, which could break another cap).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.decision import cash_weight
from agent.overlays.base import (
    _ANNUAL,
    _STOP_ACTIVE,
    OverlayContext,
    _current,
    _listing,
    _pct,
    _quad,
    _record,
    _tidy,
    parametric_var,
)

if TYPE_CHECKING:
    from agent.decision import OverlayRecord, StopState
    from agent.settings import OverlaySettings

__all__ = ["RELEASE_EPS", "drawdown_stop", "group_caps", "max_weight", "var_limit", "vol_target"]

# a book this far under the target's exposure is taken as cut (drift and costs leave a fully invested book a few
# basis points short of the target, which must not count as a cut in force)
RELEASE_EPS = 0.01


def max_weight(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """Cap each weight at `cfg.max_weight`; the excess goes to cash (not to other assets: that could break caps)."""
    w = _tidy(weights)
    cap = cfg.max_weight
    if cap is None:
        return w, _record("max_weight", "none", "no cap configured", w, ctx), stop
    over = np.flatnonzero(w > cap)
    if over.size == 0:
        top = float(w.max()) if w.size else 0.0
        return (
            w,
            _record("max_weight", "none", f"largest weight {_pct(top)} within cap {_pct(cap)}", w, ctx),
            stop,
        )
    excess = float((w[over] - cap).sum())
    items = [f"{ctx.tickers[i]} {_pct(float(w[i]))} > cap {_pct(cap)}" for i in over]
    details = {"capped": {ctx.tickers[i]: float(w[i]) for i in over}, "cap": cap, "to_cash": excess}
    out = w.copy()
    out[over] = cap
    out = _tidy(out)
    reason = f"{_listing(items)}; {_pct(excess)} to cash"
    return out, _record("max_weight", "capped", reason, out, ctx, details), stop


def group_caps(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """Scale a group's members down proportionally to meet its cap; the excess goes to cash.

    Groups are processed in configuration order. Scaling only ever lowers weights, so a cap met earlier stays met
    when a later (overlapping) group is scaled.
    """
    w = _tidy(weights)
    items: list[str] = []
    ok: list[str] = []
    details: dict[str, Any] = {"groups": {}, "missing": []}
    for group, cap in cfg.group_caps.items():
        idx = ctx.groups.get(group)
        if idx is None:
            details["missing"].append(group)
            continue
        members = np.asarray(sorted(set(int(i) for i in idx)), dtype=int)
        s = float(w[members].sum()) if members.size else 0.0
        if s > cap:
            factor = cap / s
            w[members] *= factor
            items.append(f"{group} {_pct(s)} > cap {_pct(cap)} (members x{factor:.3f})")
            details["groups"][group] = {"before": s, "cap": cap, "factor": factor, "to_cash": s - cap}
        else:
            ok.append(f"{group} {_pct(s)} <= {_pct(cap)}")
    w = _tidy(w)
    note = f"; groups not defined: {', '.join(details['missing'])}" if details["missing"] else ""
    if not items:
        reason = (f"all group caps met ({_listing(ok)})" if ok else "no group caps evaluated") + note
        return w, _record("group_caps", "none", reason, w, ctx, details), stop
    to_cash = sum(g["to_cash"] for g in details["groups"].values())
    reason = f"{_listing(items)}; {_pct(to_cash)} to cash{note}"
    return w, _record("group_caps", "capped", reason, w, ctx, details), stop


def _daily_peak_applies(stop: StopState, peak_reset: str) -> bool:
    """Whether the book's all-time daily peak NAV is the stop's peak: always, unless a re-entry reset the peak
    (the book's peak then may predate the reset; the stop keeps its own peak since the reset)."""
    return peak_reset == "never" or not any("->reentered" in t for t in stop.transitions)


def drawdown_stop(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """Portfolio stop-loss as an explicit state machine: armed → stopped → cooling_down → reentered → armed.

    - armed: peak = max(peak, the book's daily peak NAV, NAV) (the daily peak between decisions counts, as the
      record reports it; after a re-entry reset, the book's daily peak since the reset); a drawdown from the peak
      beyond `threshold` liquidates to cash (→ stopped,
      `cooldown_sessions` to serve).
    - stopped / cooling_down: each decision serves `ctx.sessions_elapsed` sessions; weights stay 0 while any remain;
      when none remain → reentered: the proposal passes through and, with peak_reset="reentry", the peak becomes
      the NAV now (otherwise the stale peak would stop the agent again at once, forever in cash).
    - reentered: the next decision re-arms and evaluates the drawdown as armed, in the same call.
    Every transition is appended to `stop.transitions` and listed in the record.
    """
    s_cfg = cfg.drawdown_stop
    w = _tidy(weights)
    nav = float(ctx.nav)
    day = ctx.asof.isoformat()
    new: list[str] = []
    peak = float(stop.peak_nav)
    book_peak = float(ctx.state.peak_nav)
    book_ok = math.isfinite(book_peak) and book_peak > 0
    if not math.isfinite(peak) or peak <= 0.0:  # uninitialised: start from the book's peak
        peak = max(book_peak, nav) if book_ok else nav
    elif book_ok and _daily_peak_applies(stop, s_cfg.peak_reset):
        peak = max(peak, book_peak)  # the book's daily peak, the one the record reports
    elif ctx.state.peak_since_reset is not None and math.isfinite(ctx.state.peak_since_reset):
        peak = max(peak, float(ctx.state.peak_since_reset))  # after a re-entry reset: the daily peak since it
    st = dataclasses.replace(stop, peak_nav=peak)

    def details(extra: dict[str, Any] | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {
            "status": st.status,
            "sessions_left": st.sessions_left,
            "peak_nav": st.peak_nav,
            "nav": nav,
        }
        d["transitions"] = list(new)
        return d | (extra or {})

    if not math.isfinite(nav):
        rec = _record(
            "drawdown_stop", "skipped", f"NAV {nav} is not finite: stop state unchanged", w, ctx, details()
        )
        return w, rec, st

    def move(to: str, why: str) -> None:
        nonlocal st
        text = f"{day}:{st.status}->{to}" + (f" ({why})" if why else "")
        new.append(text)
        st = dataclasses.replace(st, status=to, transitions=(*st.transitions, text))  # type: ignore[arg-type]

    if st.status in _STOP_ACTIVE:
        elapsed = max(0, int(ctx.sessions_elapsed))
        left = st.sessions_left - elapsed
        if left > 0:
            if st.status == "stopped":
                move("cooling_down", f"{left} of {s_cfg.cooldown_sessions} cash sessions left")
            st = dataclasses.replace(st, sessions_left=left)
            out = np.zeros_like(w)
            reason = f"in cash after the stop on {st.stopped_on}: {left} session(s) left ({elapsed} elapsed)"
            return out, _record("drawdown_stop", "cooling_down", reason, out, ctx, details()), st
        why = f"cool-down of {s_cfg.cooldown_sessions} sessions served"
        if s_cfg.peak_reset == "reentry":
            why += f"; peak reset {peak:,.2f} -> {nav:,.2f}"
            st = dataclasses.replace(st, peak_nav=nav)
        st = dataclasses.replace(st, sessions_left=0)
        move("reentered", why)
        return w, _record("drawdown_stop", "reentered", f"re-entered: {why}", w, ctx, details()), st

    if st.status == "reentered":
        move("armed", "")

    peak = max(st.peak_nav, nav)
    st = dataclasses.replace(st, peak_nav=peak)
    dd = nav / peak - 1.0 if peak > 0 else 0.0
    limit = -s_cfg.threshold
    if dd < limit:
        move("stopped", f"drawdown {_pct(dd)} beyond {_pct(limit)}")
        st = dataclasses.replace(st, stopped_on=ctx.asof, sessions_left=s_cfg.cooldown_sessions)
        out = np.zeros_like(w)
        reason = (
            f"drawdown {_pct(dd)} from peak {peak:,.2f} beyond {_pct(limit)}: liquidated to cash for "
            f"{s_cfg.cooldown_sessions} sessions"
        )
        return out, _record("drawdown_stop", "liquidated", reason, out, ctx, details({"drawdown": dd})), st
    action = "rearmed" if new else "none"
    reason = f"drawdown {_pct(dd)} from peak {peak:,.2f} within {_pct(limit)}"
    if new:
        reason = "re-armed; " + reason
    return w, _record("drawdown_stop", action, reason, w, ctx, details({"drawdown": dd})), st


def var_limit(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """Cut exposure by `cut` per step while the 1-day parametric VaR exceeds `limit` (study 003: 99% > 2% → −20%).

    If `max_steps` cuts are not enough, the weights are then scaled exactly to the limit, so the output always
    meets it. A covariance that is not finite cannot measure risk: the overlay skips and says so (the estimator
    upstream is responsible for repairing Σ).
    """
    v_cfg = cfg.var_limit
    w = _tidy(weights)
    name = "var_limit"
    if not np.all(np.isfinite(ctx.cov)):
        return w, _record(name, "skipped", "covariance is not finite: VaR not measured", w, ctx), stop
    conf = v_cfg.confidence
    var0 = parametric_var(w, ctx.cov, conf)
    label = f"{conf:.0%} 1-day VaR" if round(conf * 100, 6).is_integer() else f"{conf:.1%} 1-day VaR"
    if var0 <= v_cfg.limit:
        floor = (1.0 - v_cfg.release) * v_cfg.limit
        held, exposure = float(_current(ctx).sum()), float(w.sum())
        if v_cfg.release > 0 and var0 > floor and held < exposure - RELEASE_EPS:
            # inside the release band, below the target's exposure (a cut still in force): stay at the current
            # exposure rather than step back up, so a VaR hovering at the limit does not buy and sell 20% a time
            out = _tidy(w * (held / exposure))
            reason = (
                f"{label} {var0:.2%} within the release band {floor:.2%}..{v_cfg.limit:.2%}: exposure held at "
                f"{_pct(held)} (target {_pct(exposure)}) -> VaR {parametric_var(out, ctx.cov, conf):.2%}"
            )
            details = {"var": var0, "limit": v_cfg.limit, "release_floor": floor, "exposure_held": held}
            return out, _record(name, "held_exposure", reason, out, ctx, details), stop
        reason = f"{label} {var0:.2%} <= limit {v_cfg.limit:.2%}"
        return w, _record(name, "none", reason, w, ctx, {"var": var0, "limit": v_cfg.limit}), stop
    out = w.copy()
    var = var0
    steps = 0
    while var > v_cfg.limit and steps < v_cfg.max_steps:
        out = out * (1.0 - v_cfg.cut)
        var = parametric_var(out, ctx.cov, conf)
        steps += 1
    exact = var > v_cfg.limit
    if exact:  # VaR is homogeneous of degree 1 in w: one exact scale meets the limit (a hair inside it)
        out = out * (v_cfg.limit / var) * (1.0 - 1e-12)
        var = parametric_var(out, ctx.cov, conf)
    out = _tidy(out)
    reason = (
        f"{label} {var0:.2%} > limit {v_cfg.limit:.2%}: cut exposure {_pct(v_cfg.cut)} x{steps}"
        + (" then scaled exactly to the limit" if exact else "")
        + f" -> VaR {var:.2%}, exposure {_pct(float(w.sum()))} -> {_pct(float(out.sum()))}"
    )
    details = {
        "var_before": var0,
        "var_after": var,
        "limit": v_cfg.limit,
        "steps": steps,
        "exact_scale": exact,
    }
    return out, _record(name, "cut_exposure", reason, out, ctx, details), stop


def vol_target(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """Scale down so annualized vol sqrt(252·wᵀΣw) <= target and exposure <= max_leverage; the rest to cash.

    Scale-down only: `max_leverage` is at most 1 (fully invested), and scaling an under-target book up would
    override the optimizer's own cash decision, so the target works as a volatility cap (study 002).
    """
    t_cfg = cfg.vol_target
    w = _tidy(weights)
    name = "vol_target"
    if not np.all(np.isfinite(ctx.cov)):
        return w, _record(name, "skipped", "covariance is not finite: volatility not measured", w, ctx), stop
    vol = math.sqrt(_ANNUAL * _quad(w, ctx.cov))
    exposure = float(w.sum())
    f_vol = t_cfg.target / vol if vol > t_cfg.target else 1.0
    f_lev = t_cfg.max_leverage / exposure if exposure > t_cfg.max_leverage else 1.0
    factor = min(f_vol, f_lev)
    details = {"vol_before": vol, "target": t_cfg.target, "exposure_before": exposure, "factor": factor}
    if factor >= 1.0:
        reason = f"annualized vol {_pct(vol)} within target {_pct(t_cfg.target)}"
        return w, _record(name, "none", reason, w, ctx, details), stop
    out = _tidy(w * factor)
    vol_after = math.sqrt(_ANNUAL * _quad(out, ctx.cov))
    parts = []
    if f_vol < 1.0:
        parts.append(f"annualized vol {_pct(vol)} > target {_pct(t_cfg.target)}")
    if f_lev < 1.0:
        parts.append(f"exposure {_pct(exposure)} > max {_pct(t_cfg.max_leverage)}")
    reason = f"{'; '.join(parts)}: scaled x{factor:.3f} -> vol {_pct(vol_after)}, {_pct(cash_weight(out))} cash"
    details["vol_after"] = vol_after
    return out, _record(name, "scaled", reason, out, ctx, details), stop
