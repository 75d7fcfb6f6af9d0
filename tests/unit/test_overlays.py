"""Overlays: hand-computed values per overlay, the drawdown-stop state machine, and property tests."""

from __future__ import annotations

import datetime as dt
import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.decision import PortfolioState, StopState
from agent.overlays import (
    OVERLAYS,
    SUM_TOL,
    OverlayContext,
    apply_overlays,
    drawdown_stop,
    effective_limits,
    entry_exit,
    group_caps,
    group_indices,
    hold_limits,
    is_enabled,
    max_weight,
    min_trade,
    no_trade_band,
    parametric_var,
    turnover_cap,
    var_limit,
    vol_target,
)
from agent.settings import DrawdownStopSettings, OverlaySettings, VarLimitSettings, VolTargetSettings

D0 = dt.date(2024, 3, 1)
Z99 = 2.3263478740408408  # norm.ppf(0.99), independent reference


def make_ctx(
    current,
    *,
    cov=None,
    nav: float = 1_000_000.0,
    peak_nav: float | None = None,
    stop: StopState | None = None,
    sessions_elapsed: int = 1,
    groups: dict[str, list[int]] | None = None,
    asof: dt.date = D0,
    tickers: tuple[str, ...] | None = None,
) -> OverlayContext:
    cur = np.asarray(current, dtype=float)
    n = cur.size
    tickers = tickers or tuple(f"T{i}" for i in range(n))
    cov = np.eye(n) * 1e-4 if cov is None else np.asarray(cov, dtype=float)
    peak = nav if peak_nav is None else peak_nav
    stop = stop if stop is not None else StopState(peak_nav=peak)
    state = PortfolioState(asof=asof, tickers=tickers, weights=cur, nav=nav, peak_nav=peak, stop=stop)
    return OverlayContext(
        asof=asof,
        tickers=tickers,
        current=cur,
        cov=cov,
        state=state,
        sessions_elapsed=sessions_elapsed,
        groups=groups or {},
        nav=nav,
    )


def valid(w: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() <= 1 + SUM_TOL)


# ----------------------------------------------------------------------------------------------- max_weight


def test_max_weight_caps_and_sends_excess_to_cash() -> None:
    ctx = make_ctx([0, 0, 0], tickers=("XLK", "XLF", "XLE"))
    cfg = OverlaySettings(max_weight=0.20)
    w, rec, _ = max_weight(np.array([0.312, 0.25, 0.10]), ctx, cfg, StopState())
    np.testing.assert_allclose(w, [0.20, 0.20, 0.10])
    assert rec.action == "capped"
    assert "XLK 31.2% > cap 20.0%" in rec.reason and "XLF 25.0% > cap 20.0%" in rec.reason
    assert rec.weights_after["cash"] == pytest.approx(0.50)
    assert rec.details["to_cash"] == pytest.approx(0.162)


def test_max_weight_within_cap_is_none() -> None:
    ctx = make_ctx([0, 0])
    w0 = np.array([0.2, 0.15])
    w, rec, _ = max_weight(w0, ctx, OverlaySettings(max_weight=0.2), StopState())
    np.testing.assert_array_equal(w, w0)
    assert rec.action == "none"


# ----------------------------------------------------------------------------------------------- group_caps


def test_group_caps_scale_members_proportionally() -> None:
    ctx = make_ctx([0, 0, 0], groups={"tech": [0, 1], "energy": [2]})
    cfg = OverlaySettings(group_caps={"tech": 0.30, "energy": 0.5})
    w, rec, _ = group_caps(np.array([0.30, 0.15, 0.20]), ctx, cfg, StopState())
    np.testing.assert_allclose(w, [0.20, 0.10, 0.20])  # tech 45% -> 30%: members x 2/3
    assert rec.action == "capped"
    assert "tech 45.0% > cap 30.0%" in rec.reason
    assert rec.weights_after["cash"] == pytest.approx(0.50)


def test_group_caps_overlapping_groups_all_met_and_missing_group_noted() -> None:
    ctx = make_ctx([0, 0, 0], groups={"a": [0, 1], "b": [1, 2]})
    cfg = OverlaySettings(group_caps={"a": 0.4, "b": 0.3, "ghost": 0.1})
    w, rec, _ = group_caps(np.array([0.3, 0.3, 0.3]), ctx, cfg, StopState())
    # a: 0.6 -> 0.4 (x2/3): [0.2, 0.2, 0.3]; b: 0.5 -> 0.3 (x0.6): [0.2, 0.12, 0.18]
    np.testing.assert_allclose(w, [0.2, 0.12, 0.18])
    assert w[[0, 1]].sum() <= 0.4 and w[[1, 2]].sum() <= 0.3 + 1e-15
    assert "ghost" in rec.reason


def test_group_indices_maps_names() -> None:
    assert group_indices(("A", "B", "C"), {"g": ("C", "A", "Z")}) == {"g": [2, 0]}


# ----------------------------------------------------------------------------------------------- var_limit


def test_var_limit_one_cut() -> None:
    # one asset, daily sd 1%: VaR99 = 2.326% > 2% -> x0.8 -> 1.861% <= 2%
    ctx = make_ctx([0.0], cov=[[1e-4]])
    cfg = OverlaySettings(var_limit=VarLimitSettings(enabled=True))
    w, rec, _ = var_limit(np.array([1.0]), ctx, cfg, StopState())
    np.testing.assert_allclose(w, [0.8])
    assert rec.action == "cut_exposure"
    assert rec.details["steps"] == 1
    assert rec.details["var_before"] == pytest.approx(Z99 * 0.01)
    assert "99% 1-day VaR 2.33% > limit 2.00%" in rec.reason


def test_var_limit_repeats_cuts() -> None:
    # sd 2%: VaR 4.65% -> 3.72 -> 2.98 -> 2.38 -> 1.906 (four cuts): weight 0.8**4
    ctx = make_ctx([0.0], cov=[[4e-4]])
    cfg = OverlaySettings(var_limit=VarLimitSettings(enabled=True))
    w, rec, _ = var_limit(np.array([1.0]), ctx, cfg, StopState())
    np.testing.assert_allclose(w, [0.4096])
    assert rec.details["steps"] == 4 and not rec.details["exact_scale"]


def test_var_limit_scales_exactly_when_steps_run_out() -> None:
    ctx = make_ctx([0.0], cov=[[4e-4]])
    cfg = OverlaySettings(var_limit=VarLimitSettings(enabled=True, max_steps=2))
    w, rec, _ = var_limit(np.array([1.0]), ctx, cfg, StopState())
    np.testing.assert_allclose(w, [0.02 / (Z99 * 0.02)], rtol=1e-9)
    assert parametric_var(w, ctx.cov, 0.99) <= 0.02
    assert rec.details["exact_scale"] and "scaled exactly to the limit" in rec.reason


def test_var_limit_within_limit_and_bad_cov() -> None:
    cfg = OverlaySettings(var_limit=VarLimitSettings(enabled=True))
    w, rec, _ = var_limit(np.array([0.5]), make_ctx([0.0], cov=[[1e-4]]), cfg, StopState())
    assert rec.action == "none" and w[0] == 0.5
    w, rec, _ = var_limit(np.array([0.5]), make_ctx([0.0], cov=[[np.nan]]), cfg, StopState())
    assert rec.action == "skipped" and w[0] == 0.5


def test_parametric_var_matches_reference() -> None:
    cov = np.array([[1e-4, 0.5e-4], [0.5e-4, 4e-4]])
    w = np.array([0.5, 0.5])
    sd = math.sqrt(0.25 * 1e-4 + 0.25 * 4e-4 + 2 * 0.25 * 0.5e-4)
    assert parametric_var(w, cov, 0.99) == pytest.approx(Z99 * sd)
    assert parametric_var(w, cov, 0.95) == pytest.approx(NormalDist().inv_cdf(0.95) * sd)


# ----------------------------------------------------------------------------------------------- vol_target


def test_vol_target_scales_down() -> None:
    # two uncorrelated assets, daily sd 1%: daily var 0.5e-4, annual vol sqrt(252*0.5e-4) = 11.2250%
    ctx = make_ctx([0, 0], cov=np.eye(2) * 1e-4)
    cfg = OverlaySettings(vol_target=VolTargetSettings(enabled=True, target=0.10))
    w, rec, _ = vol_target(np.array([0.5, 0.5]), ctx, cfg, StopState())
    np.testing.assert_allclose(w, [0.5 * 0.890870806, 0.5 * 0.890870806], rtol=1e-8)
    assert rec.action == "scaled"
    assert rec.details["vol_after"] == pytest.approx(0.10)
    assert rec.weights_after["cash"] == pytest.approx(1 - 0.890870806)


def test_vol_target_never_scales_up_but_caps_exposure() -> None:
    ctx = make_ctx([0, 0], cov=np.eye(2) * 1e-6)  # tiny vol: under target
    cfg = OverlaySettings(vol_target=VolTargetSettings(enabled=True, target=0.10))
    w, rec, _ = vol_target(np.array([0.3, 0.2]), ctx, cfg, StopState())
    np.testing.assert_array_equal(w, [0.3, 0.2])
    assert rec.action == "none"
    cfg = OverlaySettings(vol_target=VolTargetSettings(enabled=True, target=0.10, max_leverage=0.8))
    w, rec, _ = vol_target(np.array([0.6, 0.4]), ctx, cfg, StopState())
    np.testing.assert_allclose(w, [0.48, 0.32])
    assert rec.action == "scaled" and "exposure 100.0% > max 80.0%" in rec.reason


# ----------------------------------------------------------------------------------------------- turnover_cap


def test_turnover_cap_moves_partway() -> None:
    ctx = make_ctx([0.5, 0.5, 0.0])
    cfg = OverlaySettings(turnover_cap=0.4)
    w, rec, _ = turnover_cap(np.array([0.0, 0.5, 0.5]), ctx, cfg, StopState())
    np.testing.assert_allclose(w, [0.3, 0.5, 0.2])  # turnover 100% -> 40%: 0.4 of the way
    assert rec.action == "throttled"
    assert rec.details["turnover_after"] == pytest.approx(0.4)
    w, rec, _ = turnover_cap(np.array([0.4, 0.5, 0.1]), ctx, cfg, StopState())
    assert rec.action == "none"


# ----------------------------------------------------------------------------------------------- entry_exit


def test_entry_exit_study_003_thresholds() -> None:
    ctx = make_ctx([0.10, 0.0, 0.10, 0.0])
    cfg = OverlaySettings(entry_threshold=0.05, exit_threshold=0.05)
    w, rec, _ = entry_exit(np.array([0.04, 0.04, 0.06, 0.06]), ctx, cfg, StopState())
    # held 4% -> exit; new 4% -> no entry; held 6% stays; new 6% enters
    np.testing.assert_allclose(w, [0.0, 0.0, 0.06, 0.06])
    assert rec.action == "filtered"
    assert "exit T0 4.0% < 5.0%" in rec.reason and "no entry T1 4.0% < 5.0%" in rec.reason
    assert rec.weights_after["cash"] == pytest.approx(0.88)


def test_entry_exit_hysteresis() -> None:
    ctx = make_ctx([0.10, 0.0])
    cfg = OverlaySettings(entry_threshold=0.05, exit_threshold=0.03)
    w, _, _ = entry_exit(np.array([0.04, 0.04]), ctx, cfg, StopState())
    # held above the exit stays; new below the entry does not enter
    np.testing.assert_allclose(w, [0.04, 0.0])


def test_exposure_cuts_shrink_positions_without_exiting_them() -> None:
    """Study 003 enters and exits on the optimized weight. A 1/14 book whose VaR needs two 20% cuts ends at
    7.14% x 0.64 = 4.57% a position: with entry/exit judged after the cuts (the old order) every position was
    sold to cash; in the default order the cuts shrink the positions and the book stays invested."""
    n = 14
    w0 = np.full(n, 1.0 / n)
    sigma = 0.02  # daily vol of each asset, all perfectly correlated: VaR99 = 2.326 * 2% * exposure
    cov = np.full((n, n), sigma**2)
    ctx = make_ctx(w0, cov=cov)
    var = VarLimitSettings(enabled=True, limit=0.025, confidence=0.99, cut=0.20)
    cfg = OverlaySettings(var_limit=var, entry_threshold=0.05, exit_threshold=0.05)
    assert cfg.order.index("entry_exit") < cfg.order.index("var_limit")
    # VaR 4.65% -> 3.72% (x0.8) -> 2.98% (x0.64) -> 2.38% (x0.512): three cuts, 3.66% a position
    w, recs, _ = apply_overlays(w0, ctx, cfg)
    np.testing.assert_allclose(w, w0 * 0.8**3, rtol=1e-12)
    var_after = parametric_var(w, cov, 0.99)
    assert var_after == pytest.approx(Z99 * sigma * 0.8**3, rel=1e-9)
    assert var_after <= 0.025
    assert [r.action for r in recs] == ["none", "cut_exposure"]
    old_order = cfg.model_copy(update={"order": (*(n for n in cfg.order if n != "entry_exit"), "entry_exit")})
    w_old, recs_old, _ = apply_overlays(w0, ctx, old_order)
    assert float(w_old.sum()) == 0.0 and recs_old[-1].action == "filtered"  # what the move fixed


# ----------------------------------------------------------------------------------------------- band / min trade


def test_no_trade_band_keeps_small_trades() -> None:
    ctx = make_ctx([0.3, 0.3, 0.4])
    cfg = OverlaySettings(no_trade_band=0.02)
    w, rec, _ = no_trade_band(np.array([0.31, 0.2, 0.49]), ctx, cfg, StopState())
    np.testing.assert_allclose(w, [0.3, 0.2, 0.49])
    assert rec.action == "banded" and "T0 +1.00%" in rec.reason


def test_no_trade_band_held_when_nothing_trades() -> None:
    ctx = make_ctx([0.3, 0.3, 0.4])
    cfg = OverlaySettings(no_trade_band=0.02)
    w, rec, _ = no_trade_band(np.array([0.31, 0.29, 0.39]), ctx, cfg, StopState())
    np.testing.assert_allclose(w, [0.3, 0.3, 0.4])
    assert rec.action == "held"
    w, rec, _ = no_trade_band(np.array([0.3, 0.3, 0.4]), ctx, cfg, StopState())
    assert rec.action == "none"  # no trade was proposed in the first place


def test_no_trade_band_trims_traded_assets_to_keep_sum_at_most_one() -> None:
    ctx = make_ctx([0.52, 0.30, 0.18])
    cfg = OverlaySettings(no_trade_band=0.05)
    w, rec, _ = no_trade_band(np.array([0.50, 0.50, 0.0]), ctx, cfg, StopState())
    # keep 0.52 (|Δ| 2% < 5%); the mix would be 1.02 -> traded T1 trimmed 0.50 -> 0.48
    np.testing.assert_allclose(w, [0.52, 0.48, 0.0])
    assert w.sum() <= 1 + SUM_TOL
    assert rec.details["trimmed_traded"] == pytest.approx(0.02)


def test_min_trade_drops_small_notionals() -> None:
    ctx = make_ctx([0.3, 0.3], nav=1_000_000.0)
    cfg = OverlaySettings(min_trade=5_000.0)
    w, rec, _ = min_trade(
        np.array([0.304, 0.2]), ctx, cfg, StopState()
    )  # 4,000 < 5,000 dropped; 100,000 kept
    np.testing.assert_allclose(w, [0.3, 0.2])
    assert rec.action == "dropped"
    w, rec, _ = min_trade(np.array([0.304, 0.296]), ctx, cfg, StopState())
    assert rec.action == "held"
    np.testing.assert_allclose(w, [0.3, 0.3])


# ----------------------------------------------------------------------------------------------- drawdown stop


def dd_cfg(**kw) -> OverlaySettings:
    return OverlaySettings(drawdown_stop=DrawdownStopSettings(enabled=True, **kw))


def step(stop: StopState, nav: float, day: int, *, cfg: OverlaySettings, elapsed: int = 1, w=(0.5, 0.5)):
    ctx = make_ctx([0.5, 0.5], nav=nav, stop=stop, sessions_elapsed=elapsed, asof=D0 + dt.timedelta(days=day))
    return drawdown_stop(np.asarray(w, dtype=float), ctx, cfg, stop)


def test_drawdown_full_cycle_with_explicit_transitions() -> None:
    cfg = dd_cfg(threshold=0.10, cooldown_sessions=5)
    prop = np.array([0.5, 0.5])
    stop = StopState(peak_nav=100.0)
    w, rec, stop = step(stop, 110.0, 0, cfg=cfg)  # new peak
    assert rec.action == "none" and stop.status == "armed" and stop.peak_nav == 110.0
    w, rec, stop = step(stop, 97.9, 1, cfg=cfg)  # 97.9/110 - 1 = -11.0%
    assert rec.action == "liquidated" and stop.status == "stopped"
    np.testing.assert_array_equal(w, [0.0, 0.0])
    assert stop.sessions_left == 5 and stop.stopped_on == D0 + dt.timedelta(days=1)
    assert stop.transitions[-1] == "2024-03-02:armed->stopped (drawdown -11.0% beyond -10.0%)"
    assert rec.details["transitions"] == [stop.transitions[-1]]
    w, rec, stop = step(stop, 97.9, 2, cfg=cfg)
    assert stop.status == "cooling_down" and stop.sessions_left == 4 and rec.action == "cooling_down"
    assert stop.transitions[-1].startswith("2024-03-03:stopped->cooling_down")
    for day, left in ((3, 3), (4, 2), (5, 1)):
        w, rec, stop = step(stop, 97.9, day, cfg=cfg)
        assert stop.status == "cooling_down" and stop.sessions_left == left
        np.testing.assert_array_equal(w, [0.0, 0.0])
        assert rec.details["transitions"] == []
    w, rec, stop = step(stop, 97.9, 6, cfg=cfg)
    assert stop.status == "reentered" and rec.action == "reentered"
    np.testing.assert_array_equal(w, prop)  # the proposal passes through
    assert stop.peak_nav == 97.9  # peak reset at re-entry
    assert stop.transitions[-1].startswith("2024-03-07:cooling_down->reentered")
    w, rec, stop = step(stop, 97.0, 7, cfg=cfg)
    assert stop.status == "armed" and rec.action == "rearmed"
    np.testing.assert_array_equal(w, prop)
    assert [t.split(":", 1)[1].split(" ")[0] for t in stop.transitions] == [
        "armed->stopped",
        "stopped->cooling_down",
        "cooling_down->reentered",
        "reentered->armed",
    ]


def test_drawdown_no_restop_right_after_reentry() -> None:
    """The peers' bug: liquidate, sit in cash (NAV flat at the stop level), re-enter, and stop again at once
    because the drawdown is still measured from the old peak. With peak_reset="reentry" the agent stays in."""
    cfg = dd_cfg(threshold=0.10, cooldown_sessions=5, peak_reset="reentry")
    stop = StopState(peak_nav=100.0)
    _, rec, stop = step(stop, 88.0, 0, cfg=cfg)
    assert stop.status == "stopped"
    _, _, stop = step(stop, 88.0, 7, cfg=cfg, elapsed=5)  # weekly: the whole cool-down in one step
    assert stop.status == "reentered" and stop.peak_nav == 88.0
    navs = [87.5, 88.5, 86.0, 84.0]  # small further losses from the re-entry level, all within 10%
    for i, nav in enumerate(navs):
        w, rec, stop = step(stop, nav, 14 + 7 * i, cfg=cfg, elapsed=5)
        assert stop.status == "armed", rec.reason
        np.testing.assert_array_equal(w, [0.5, 0.5])
    assert stop.peak_nav == 88.5
    # and a real new 10% drawdown from the new peak still stops
    _, rec, stop = step(stop, 79.0, 60, cfg=cfg, elapsed=5)
    assert stop.status == "stopped" and rec.action == "liquidated"


def test_drawdown_peak_reset_never_restops_on_the_old_drawdown() -> None:
    cfg = dd_cfg(threshold=0.10, cooldown_sessions=5, peak_reset="never")
    stop = StopState(peak_nav=100.0)
    _, _, stop = step(stop, 88.0, 0, cfg=cfg)
    w, rec, stop = step(stop, 88.0, 7, cfg=cfg, elapsed=5)
    assert stop.status == "reentered" and stop.peak_nav == 100.0
    np.testing.assert_array_equal(w, [0.5, 0.5])  # re-entry itself still passes the proposal through
    w, rec, stop = step(stop, 88.5, 14, cfg=cfg, elapsed=5)
    assert stop.status == "stopped" and rec.action == "liquidated"
    assert [t.split(":", 1)[1].split(" ")[0] for t in rec.details["transitions"]] == [
        "reentered->armed",
        "armed->stopped",
    ]
    np.testing.assert_array_equal(w, [0.0, 0.0])


def test_drawdown_cooldown_shorter_than_sessions_elapsed() -> None:
    cfg = dd_cfg(cooldown_sessions=3)
    _, _, stop = step(StopState(peak_nav=100.0), 85.0, 0, cfg=cfg)
    _, _, stop = step(stop, 85.0, 7, cfg=cfg, elapsed=5)
    assert stop.status == "reentered" and stop.sessions_left == 0
    assert stop.transitions[-1].startswith("2024-03-08:stopped->reentered")


def test_drawdown_cooldown_longer_than_sessions_elapsed() -> None:
    cfg = dd_cfg(cooldown_sessions=12)
    _, _, stop = step(StopState(peak_nav=100.0), 85.0, 0, cfg=cfg)
    statuses = []
    for k in range(1, 4):
        _, _, stop = step(stop, 85.0, 7 * k, cfg=cfg, elapsed=5)
        statuses.append((stop.status, stop.sessions_left))
    assert statuses == [("cooling_down", 7), ("cooling_down", 2), ("reentered", 0)]


def test_drawdown_exactly_at_threshold_does_not_stop_and_peak_initialises() -> None:
    cfg = dd_cfg(threshold=0.10)
    _, rec, stop = step(StopState(peak_nav=100.0), 90.0, 0, cfg=cfg)
    assert stop.status == "armed" and rec.action == "none"
    # an uninitialised stop peak (0) starts from the book's running peak
    ctx = make_ctx([0.5, 0.5], nav=100.0, peak_nav=120.0, stop=StopState())
    _, rec, stop = drawdown_stop(np.array([0.5, 0.5]), ctx, cfg, StopState())
    assert stop.status == "stopped" and stop.peak_nav == 120.0


def test_stop_liquidation_is_not_dampened_by_later_overlays() -> None:
    cfg = OverlaySettings(
        drawdown_stop=DrawdownStopSettings(enabled=True),
        turnover_cap=0.2,
        no_trade_band=0.5,
        min_trade=1e9,
    )
    ctx = make_ctx([0.5, 0.5], nav=85.0, peak_nav=100.0)
    w, recs, stop = apply_overlays(np.array([0.5, 0.5]), ctx, cfg)
    np.testing.assert_array_equal(w, [0.0, 0.0])
    assert stop.status == "stopped"
    assert [(r.name, r.action) for r in recs] == [
        ("drawdown_stop", "liquidated"),
        ("turnover_cap", "bypassed"),
        ("no_trade_band", "bypassed"),
        ("min_trade", "bypassed"),
    ]


# ----------------------------------------------------------------------------------------------- apply_overlays


def test_apply_overlays_records_enabled_only_in_order() -> None:
    cfg = OverlaySettings(
        order=("vol_target", "max_weight", "group_caps", "min_trade", "max_weight"),
        max_weight=0.3,
        vol_target=VolTargetSettings(enabled=True, target=0.5),
        var_limit=VarLimitSettings(enabled=True),  # enabled but not in the order: does not run
    )
    ctx = make_ctx([0.0, 0.0, 0.0])
    w, recs, stop = apply_overlays(np.array([0.5, 0.3, 0.2]), ctx, cfg)
    assert [r.name for r in recs] == ["vol_target", "max_weight"]
    np.testing.assert_allclose(w, [0.3, 0.3, 0.2])
    assert stop == ctx.state.stop
    assert is_enabled("group_caps", cfg) is False and is_enabled("max_weight", cfg) is True


def test_apply_overlays_default_order_all_enabled() -> None:
    cfg = OverlaySettings(
        max_weight=0.4,
        group_caps={"g": 0.6},
        drawdown_stop=DrawdownStopSettings(enabled=True),
        var_limit=VarLimitSettings(enabled=True),
        vol_target=VolTargetSettings(enabled=True),
        turnover_cap=1.0,
        no_trade_band=0.01,
        entry_threshold=0.05,
        exit_threshold=0.05,
        min_trade=100.0,
    )
    ctx = make_ctx([0.2, 0.2, 0.2], groups={"g": [0, 1]})
    _, recs, _ = apply_overlays(np.array([0.5, 0.3, 0.2]), ctx, cfg)
    assert [r.name for r in recs] == list(cfg.order)


def test_apply_overlays_repairs_bad_input_and_says_so() -> None:
    cfg = OverlaySettings(max_weight=0.9)
    ctx = make_ctx([0.0, 0.0, 0.0])
    w, recs, _ = apply_overlays(np.array([np.nan, -0.1, 0.5]), ctx, cfg)
    np.testing.assert_allclose(w, [0.0, 0.0, 0.5])
    assert recs[0].name == "input" and recs[0].action == "repaired"
    with pytest.raises(ValueError):
        apply_overlays(np.array([0.5, 0.5]), ctx, cfg)


def test_records_are_json_serialisable() -> None:
    from agent.decision import canonical_json

    cfg = OverlaySettings(max_weight=0.2, drawdown_stop=DrawdownStopSettings(enabled=True))
    ctx = make_ctx([0.0, 0.0], nav=80.0, peak_nav=100.0)
    _, recs, stop = apply_overlays(np.array([0.5, 0.5]), ctx, cfg)
    assert canonical_json([r.to_dict() for r in recs])
    assert StopState.from_dict(stop.to_dict()) == stop


def test_context_from_state() -> None:
    state = PortfolioState.initial(("A", "B", "C"), 1000.0)
    ctx = OverlayContext.from_state(state, np.eye(3), asof=D0, sessions_elapsed=5, groups={"g": ("A", "C")})
    assert ctx.groups == {"g": [0, 2]} and ctx.nav == 1000.0
    with pytest.raises(ValueError):
        OverlayContext.from_state(state, np.eye(2), asof=D0, sessions_elapsed=1)


# ----------------------------------------------------------------------------------------------- properties


@st.composite
def books(draw):
    n = draw(st.integers(1, 6))
    unit = st.floats(0.0, 1.0, allow_nan=False)

    def book() -> np.ndarray:
        raw = np.array(draw(st.lists(unit, min_size=n, max_size=n)))
        total = draw(st.sampled_from([0.0, 0.3, 0.9, 1.0]) | unit)
        return raw / raw.sum() * total if raw.sum() > 0 else raw

    w, cur = book(), book()
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.floats(1e-3, 0.08))
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n)) * scale
    cov = a @ a.T / n + np.eye(n) * scale**2 * 0.01
    members = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    cfg = OverlaySettings(
        max_weight=draw(st.floats(0.05, 1.0)),
        group_caps={"g": draw(st.floats(0.01, 1.0))},
        drawdown_stop=DrawdownStopSettings(enabled=True, threshold=draw(st.floats(0.01, 0.5))),
        var_limit=VarLimitSettings(
            enabled=True,
            limit=draw(st.floats(0.001, 0.1)),
            cut=draw(st.floats(0.01, 1.0)),
            max_steps=draw(st.integers(1, 30)),
        ),
        vol_target=VolTargetSettings(
            enabled=True, target=draw(st.floats(0.01, 0.5)), max_leverage=draw(st.floats(0.1, 1.0))
        ),
        turnover_cap=draw(st.floats(0.01, 2.0)),
        no_trade_band=draw(st.floats(0.0, 0.3)),
        entry_threshold=draw(st.floats(0.0, 0.2)),
        exit_threshold=draw(st.floats(0.0, 0.2)),
        min_trade=draw(st.floats(0.0, 200_000.0)),
    )
    nav = draw(st.floats(1_000.0, 2_000_000.0))
    peak = nav * draw(st.floats(1.0, 1.5))
    ctx = make_ctx(cur, cov=cov, nav=nav, peak_nav=peak, groups={"g": members})
    return w, ctx, cfg


@settings(max_examples=50, deadline=None)
@given(books())
def test_every_overlay_output_is_valid_and_meets_its_limit(case) -> None:
    w0, ctx, cfg = case
    stop = ctx.state.stop
    for name, fn in OVERLAYS.items():
        w, rec, _ = fn(w0, ctx, cfg, stop)
        assert valid(w), (name, w)
        assert set(rec.weights_after) == {*ctx.tickers, "cash"}
        assert rec.weights_after["cash"] >= 0
    w, _, _ = max_weight(w0, ctx, cfg, stop)
    assert np.all(w <= cfg.max_weight)
    w, _, _ = group_caps(w0, ctx, cfg, stop)
    assert w[ctx.groups["g"]].sum() <= cfg.group_caps["g"] * (1 + 1e-12)
    w, _, _ = var_limit(w0, ctx, cfg, stop)
    assert parametric_var(w, ctx.cov, cfg.var_limit.confidence) <= cfg.var_limit.limit
    assert np.all(w <= w0 + 1e-15)  # cutting exposure only lowers weights
    w, _, _ = vol_target(w0, ctx, cfg, stop)
    assert math.sqrt(252 * max(0.0, w @ ctx.cov @ w)) <= cfg.vol_target.target * (1 + 1e-9)
    assert w.sum() <= cfg.vol_target.max_leverage * (1 + 1e-12)
    lim = effective_limits(ctx, cfg)
    w, _, _ = turnover_cap(w0, ctx, cfg, stop)
    # the cap binds unless the hard limits alone need more turnover (then the limits win)
    forced = np.abs(hold_limits(ctx.current, w0, lim) - ctx.current).sum()
    if ctx.current.sum() > 1e-6:  # a first deployment from cash is not throttled
        assert np.abs(w - ctx.current).sum() <= max(cfg.turnover_cap, forced) + 1e-9
    for fn in (no_trade_band, min_trade):  # each asset: current, target, a trimmed target, or cut to its cap
        w, _, _ = fn(w0, ctx, cfg, stop)
        at_cur = np.isclose(w, ctx.current, atol=1e-12)
        cut = np.minimum(ctx.current, cfg.max_weight)
        assert np.all(at_cur | (w <= np.maximum(w0, cut) + 1e-12))


@settings(max_examples=50, deadline=None)
@given(books())
def test_full_stack_output_is_valid(case) -> None:
    w0, ctx, cfg = case
    w, recs, stop = apply_overlays(w0, ctx, cfg)
    assert valid(w)
    assert [r.name for r in recs] == [n for n in cfg.order if is_enabled(n, cfg)]
    assert recs[-1].weights_after == {
        **dict(zip(ctx.tickers, w.tolist(), strict=True)),
        "cash": max(0.0, 1 - w.sum()),
    }
    if stop.status == "stopped":
        np.testing.assert_array_equal(w, np.zeros_like(w))


def test_drawdown_after_reentry_measures_from_the_daily_peak_since_the_reset() -> None:
    """After a re-entry reset, a peak the book reached BETWEEN two decisions counts (the book's daily peak since
    the reset, `PortfolioState.peak_since_reset`), as the daily peak does before any reset."""
    import dataclasses

    cfg = dd_cfg(threshold=0.10, cooldown_sessions=5, peak_reset="reentry")
    stop = StopState(peak_nav=100.0)
    _, _, stop = step(stop, 88.0, 0, cfg=cfg)
    _, _, stop = step(stop, 88.0, 7, cfg=cfg, elapsed=5)
    assert stop.status == "reentered" and stop.peak_nav == 88.0
    # at the next decision NAV is 85, but the book touched 95 in between (daily marks): 85/95 - 1 = -10.5%
    ctx = make_ctx([0.5, 0.5], nav=85.0, stop=stop, sessions_elapsed=5, asof=D0 + dt.timedelta(days=14))
    ctx = dataclasses.replace(ctx, state=dataclasses.replace(ctx.state, peak_since_reset=95.0))
    _w, rec, stop2 = drawdown_stop(np.array([0.5, 0.5]), ctx, cfg, stop)
    assert stop2.status == "stopped" and rec.action == "liquidated", rec.reason
    assert stop2.peak_nav == 95.0
    # without the intraperiod peak the same decision stays invested (85/88 - 1 = -3.4%)
    ctx0 = make_ctx([0.5, 0.5], nav=85.0, stop=stop, sessions_elapsed=5, asof=D0 + dt.timedelta(days=14))
    _, rec0, stop0 = drawdown_stop(np.array([0.5, 0.5]), ctx0, cfg, stop)
    assert stop0.status == "armed", rec0.reason
