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
- Dampeners run last in the default order and act on trades only: they do not re-check caps or risk limits, so a
  kept (drifted) position may stay above a cap by less than the band / minimum trade. Put them before the risk
  overlays in `cfg.order` if the limits must bind exactly after dampening.

numpy only; no scipy (the normal quantile comes from `statistics.NormalDist`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from agent.decision import TRADING_DAYS, OverlayRecord, PortfolioState, StopState, cash_weight
from agent.settings import OverlaySettings

__all__ = [
    "HELD_EPS",
    "OVERLAYS",
    "SUM_TOL",
    "OverlayContext",
    "OverlayFn",
    "apply_overlays",
    "drawdown_stop",
    "entry_exit",
    "group_caps",
    "group_indices",
    "is_enabled",
    "max_weight",
    "min_trade",
    "no_trade_band",
    "parametric_var",
    "turnover_cap",
    "var_limit",
    "vol_target",
]

SUM_TOL = 1e-9  # weights may sum to 1 + SUM_TOL (float noise); never more
HELD_EPS = 1e-6  # a current weight at or below this counts as "not held" (entry/exit rule)
_TRADE_EPS = 1e-12  # |Δw| at or below this is no trade at all
_ANNUAL = TRADING_DAYS
_MAX_LISTED = 5  # names spelled out in a reason before "+N more"
_STOP_ACTIVE = ("stopped", "cooling_down")


@dataclass(frozen=True, eq=False)
class OverlayContext:
    """Everything an overlay may look at besides the proposed weights. Arrays are aligned to `tickers`.

    `current` are the drifted weights held now; `cov` is the DAILY covariance; `sessions_elapsed` counts trading
    sessions since the previous decision (the drawdown stop's cool-down clock); `groups` maps a group name to its
    member indices.
    """

    asof: dt.date
    tickers: tuple[str, ...]
    current: np.ndarray
    cov: np.ndarray
    state: PortfolioState
    sessions_elapsed: int
    groups: dict[str, list[int]] = field(default_factory=dict)
    nav: float = 0.0

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
        )


OverlayFn = Callable[
    [np.ndarray, OverlayContext, OverlaySettings, StopState], tuple[np.ndarray, OverlayRecord, StopState]
]


def group_indices(tickers: Sequence[str], groups: Mapping[str, Sequence[str]]) -> dict[str, list[int]]:
    """Group name -> member indices in `tickers` (names not in the universe are ignored)."""
    pos = {t: i for i, t in enumerate(tickers)}
    return {g: [pos[t] for t in members if t in pos] for g, members in groups.items()}


# ----------------------------------------------------------------------------------------------- helpers


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


def _stop_active(cfg: OverlaySettings, stop: StopState) -> bool:
    return cfg.drawdown_stop.enabled and stop.status in _STOP_ACTIVE


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


# ----------------------------------------------------------------------------------------------- overlays


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


def drawdown_stop(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """Portfolio stop-loss as an explicit state machine: armed → stopped → cooling_down → reentered → armed.

    - armed: peak = max(peak, NAV); a drawdown from the peak beyond `threshold` liquidates to cash (→ stopped,
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
    if not math.isfinite(peak) or peak <= 0.0:  # uninitialised: start from the book's peak
        book_peak = float(ctx.state.peak_nav)
        peak = max(book_peak, nav) if math.isfinite(book_peak) and book_peak > 0 else nav
    st = dataclasses.replace(stop, peak_nav=peak)

    def details(extra: dict[str, Any] | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {
            "status": st.status, "sessions_left": st.sessions_left, "peak_nav": st.peak_nav, "nav": nav
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


def turnover_cap(
    weights: np.ndarray, ctx: OverlayContext, cfg: OverlaySettings, stop: StopState
) -> tuple[np.ndarray, OverlayRecord, StopState]:
    """If turnover sum|w − current| exceeds the cap, move only partway: w = current + (cap/turnover)·(w − current).

    A convex mix of two valid books is valid (sum <= 1), so no rescaling is needed.
    """
    name = "turnover_cap"
    w = _tidy(weights)
    if _stop_active(cfg, stop):
        return _bypass(name, w, ctx, stop)
    cap = cfg.turnover_cap
    cur = _current(ctx)
    turnover = float(np.abs(w - cur).sum())
    if cap is None or turnover <= cap:
        reason = (
            f"turnover {_pct(turnover)} within cap {_pct(cap)}" if cap is not None else "no cap configured"
        )
        return w, _record(name, "none", reason, w, ctx, {"turnover": turnover, "cap": cap}), stop
    frac = cap / turnover
    out = _tidy(cur + frac * (w - cur))
    reason = f"turnover {_pct(turnover)} > cap {_pct(cap)}: moved {_pct(frac)} of the way to the targets"
    details = {
        "turnover_before": turnover,
        "turnover_after": float(np.abs(out - cur).sum()),
        "cap": cap,
        "fraction": frac,
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
    name: str, verb: str, w: np.ndarray, ctx: OverlayContext, keep: np.ndarray, cur: np.ndarray, why: str
) -> tuple[np.ndarray, OverlayRecord]:
    """Shared tail of the band and minimum-trade overlays: keep `cur` where `keep`, then fit under 1."""
    trade = np.abs(w - cur) > _TRADE_EPS
    suppressed = keep & trade
    if not trade.any():
        return w, _record(name, "none", "no trades proposed", w, ctx)
    if not suppressed.any():
        return w, _record(name, "none", f"every trade clears the {why}", w, ctx)
    out = np.where(keep, cur, w)
    out, trimmed = _fit_under_one(out, keep)
    out = _tidy(out)
    skipped = [f"{ctx.tickers[i]} {float(w[i] - cur[i]):+.2%}" for i in np.flatnonzero(suppressed)]
    details: dict[str, Any] = {"kept": {ctx.tickers[i]: float(cur[i]) for i in np.flatnonzero(suppressed)}}
    if trimmed > 0.0:
        details["trimmed_traded"] = trimmed
    if not (trade & ~keep).any():
        reason = f"every trade within the {why}: holding current weights ({_listing(skipped)})"
        return out, _record(name, "held", reason, out, ctx, details)
    reason = f"{len(skipped)} trade(s) within the {why} skipped: {_listing(skipped)}"
    if trimmed > 0.0:
        reason += f"; traded weights trimmed by {_pct(trimmed)} to keep the sum <= 100%"
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
    out, rec = _keep_current(name, "banded", w, ctx, keep, cur, f"{_pct(cfg.no_trade_band)} band")
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
    out, rec = _keep_current(name, "dropped", w, ctx, keep, cur, f"minimum trade of {cfg.min_trade:,.2f}")
    return out, rec, stop


# ----------------------------------------------------------------------------------------------- the stack

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
    return _tidy(w), records, stop
