"""The VaR limit holds on the executed book (issue 10, item 3): the execution rules (band, minimum notional,
turnover cap) must not leave the book actually executed above the decision's VaR limit.

The executed book is read from the plan's fills (post-fill weights against the NAV after costs) and its VaR is
computed here independently, with plain loops and the 99% normal quantile written out, not with the planner's
helpers.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.costs import CostModel
from agent.decision import Decision, ExecRisk, StopState
from agent.execution import ExecutionRules, plan_rebalance
from agent.execution_var import risk_matrix
from agent.ledger import Ledger
from agent.risk.factor import factor_model

Z99 = 2.3263478740408408  # the 99% quantile of the standard normal


def var_of(x: np.ndarray, cov: np.ndarray, z: float = Z99) -> float:
    """z·sqrt(xᵀΣx), summed by hand."""
    n = len(x)
    q = sum(float(x[i]) * float(cov[i, j]) * float(x[j]) for i in range(n) for j in range(n))
    return z * math.sqrt(max(q, 0.0))


def executed(value: float, h: np.ndarray, plan) -> tuple[np.ndarray, np.ndarray]:
    """Post-fill weights (against the NAV after costs) and the signed fills."""
    return plan.notional / (value - plan.cost), plan.notional - h


def _cov(vols: list[float], corr: list[list[float]]) -> np.ndarray:
    v = np.asarray(vols)
    return np.asarray(corr) * np.outer(v, v)


COV3 = _cov([0.020, 0.015, 0.010], [[1.0, 0.5, 0.3], [0.5, 1.0, 0.4], [0.3, 0.4, 1.0]])


def test_a_position_kept_by_the_band_is_sold_to_hold_the_var_limit() -> None:
    # targets 30/30/30 meet the limit; at the execution close the riskiest asset has drifted to 30.4% (within
    # the 0.5% band: kept as held) and the book's VaR is above the limit. The plan sells it by the band.
    value, w = 1e6, np.array([0.30, 0.30, 0.30])
    limit = var_of(w, COV3) * 1.0005
    h = np.array([0.304, 0.30, 0.29]) * value
    rules = ExecutionRules(max_weight=0.31, band=0.005, min_notional=100.0, turnover_cap=0.6)
    cm = CostModel(5.0)

    x0, _ = executed(value, h, plan_rebalance(value, h, w, cm, rules))  # the dampeners alone
    assert var_of(x0, COV3) > limit * (1 + 1e-6)

    plan = plan_rebalance(value, h, w, cm, rules, ExecRisk(limit, 0.99, cov=COV3))
    x, fills = executed(value, h, plan)
    assert var_of(x, COV3) <= limit * (1 + 1e-12)
    # the riskiest position is sold by exactly the band (no more: the least trade that meets the limit)
    assert fills[0] < 0 and abs(fills[0]) >= 0.005 * value
    assert plan.kept[1] and fills[1] == 0.0  # the position at its target stays exactly as held
    traded = np.abs(fills) > 0
    assert np.all(np.abs(fills[traded]) >= 0.005 * value * (1 - 1e-9))  # still no fill below the band
    assert plan.var is not None and plan.var["lowered"] == [0]
    assert math.isclose(plan.var["after"], var_of(x, COV3), rel_tol=1e-12)
    assert any("VaR" in n for n in plan.notes)


def test_the_turnover_cap_cannot_leave_the_book_above_the_var_limit() -> None:
    # the book holds 90% of the riskiest asset; the decision moves to a low-risk mix. The 20% turnover cap lets
    # the execution go only part of the way, so the book's VaR stays above the limit: the limit wins.
    value = 1e6
    h = np.array([0.90, 0.0, 0.0]) * value
    w = np.array([0.10, 0.10, 0.70])
    limit = 0.03
    assert var_of(w, COV3) <= limit
    rules = ExecutionRules(turnover_cap=0.20, band=0.005, min_notional=100.0)
    cm = CostModel(5.0)
    x0, f0 = executed(value, h, plan_rebalance(value, h, w, cm, rules))
    assert np.abs(f0).sum() / value <= 0.20 + 1e-9 and var_of(x0, COV3) > limit

    plan = plan_rebalance(value, h, w, cm, rules, ExecRisk(limit, 0.99, cov=COV3))
    x, _ = executed(value, h, plan)
    assert var_of(x, COV3) <= limit * (1 + 1e-12)
    assert x[0] < x0[0] and np.all(x <= x0 + 1e-12)  # only lowered, toward cash


def test_a_sale_below_the_minimum_notional_is_made_to_hold_the_limit() -> None:
    # $20,000 book, $2,500 minimum trade: the sale of 8% ($1,600) of asset 0 is below the minimum and so kept as
    # held, which leaves the book above the limit; the plan sells asset 0 by the minimum trade instead
    value = 20_000.0
    h = np.array([0.35, 0.30, 0.30]) * value
    w = np.array([0.27, 0.30, 0.30])
    limit = var_of(w, COV3) * 1.01
    rules = ExecutionRules(min_notional=2_500.0)
    cm = CostModel(5.0)
    x0, f0 = executed(value, h, plan_rebalance(value, h, w, cm, rules))
    assert not f0.any() and var_of(x0, COV3) > limit

    plan = plan_rebalance(value, h, w, cm, rules, ExecRisk(limit, 0.99, cov=COV3))
    x, fills = executed(value, h, plan)
    assert var_of(x, COV3) <= limit * (1 + 1e-12)
    assert (
        -2_500.0 * 1.001 <= fills[0] <= -2_500.0
    )  # the least sale the rules allow (plus its share of costs)
    np.testing.assert_array_equal(fills[1:], [0.0, 0.0])


def test_a_hedged_book_that_no_single_sale_helps_is_scaled_as_a_whole() -> None:
    # two strongly anti-correlated positions, both kept by a wide band: selling either one by the band (or out)
    # loses the hedge and RAISES the VaR, so only a uniform scale of the whole book meets the limit (the limit
    # wins over the band); VaR being homogeneous of degree 1, the scale is exactly limit / VaR
    cov = np.array([[1.0, -0.9], [-0.9, 1.0]]) * 0.02**2
    value, d = 1e6, np.array([0.5, 0.48])
    limit = var_of(d, cov) * 0.98
    plan = plan_rebalance(
        value, d * value, d.copy(), CostModel(5.0), ExecutionRules(band=0.2), ExecRisk(limit, 0.99, cov=cov)
    )
    x, _ = executed(value, d * value, plan)
    assert var_of(x, cov) <= limit * (1 + 1e-12)
    np.testing.assert_allclose(x / d, [0.98, 0.98], rtol=1e-9)
    assert any("limits win over the band" in n for n in plan.notes)


def test_a_book_within_the_limit_is_left_alone() -> None:
    value, w = 1e6, np.array([0.30, 0.30, 0.30])
    h = np.array([0.304, 0.30, 0.29]) * value
    rules = ExecutionRules(max_weight=0.31, band=0.005, min_notional=100.0)
    cm = CostModel(5.0)
    plain = plan_rebalance(value, h, w, cm, rules)
    risky = plan_rebalance(value, h, w, cm, rules, ExecRisk(0.05, 0.99, cov=COV3))
    np.testing.assert_array_equal(plain.notional, risky.notional)
    assert plain.notes == risky.notes and risky.var is None


# ------------------------------------------------------------------------------------------ property over states
@st.composite
def var_states(draw):
    n = draw(st.integers(2, 8))
    value = draw(st.floats(10_000.0, 5_000_000.0))
    k = draw(st.integers(1, n))
    a = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=n * k, max_size=n * k))).reshape(n, k)
    spec = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    scale = draw(st.floats(0.005, 0.03))
    cov = (a @ a.T + np.diag(spec)) * scale**2  # PSD, signed correlations (hedges) included
    raw = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    w = raw / raw.sum() * draw(st.floats(0.3, 1.0)) if raw.sum() > 0 else np.full(n, 0.5 / n)
    cap = draw(st.floats(max(1.0 / n, 0.05) + 0.01, 1.0))
    w = np.minimum(w, cap)
    rawd = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    d = rawd / rawd.sum() * draw(st.floats(0.0, 1.0)) if rawd.sum() > 0 else np.zeros(n)
    if draw(st.booleans()):  # held near the targets, drifted: what the band and the floor keep
        d = np.clip(w + np.array(draw(st.lists(st.floats(-0.01, 0.01), min_size=n, max_size=n))), 0, None)
        d = d / max(1.0, d.sum())
    rules = ExecutionRules(
        max_weight=cap,
        turnover_cap=draw(st.one_of(st.none(), st.floats(0.05, 1.5))),
        band=draw(st.sampled_from([0.0, 0.005, 0.02])),
        min_notional=draw(st.sampled_from([0.0, 100.0, 5_000.0])),
        throttle_first_deployment=draw(st.booleans()),
    )
    tv = var_of(w, cov)
    limit = max(tv * draw(st.floats(0.3, 1.5)), 1e-6)  # the targets themselves may break it
    cm = CostModel(draw(st.sampled_from([0.0, 5.0, 25.0])), draw(st.sampled_from([0.0, 1.0])))
    return value, d * value, w, cm, rules, ExecRisk(limit, 0.99, cov=cov)


@settings(max_examples=400, deadline=None)
@given(var_states())
def test_executed_book_meets_the_var_limit(case) -> None:
    value, h, w, cm, rules, risk = case
    plan = plan_rebalance(value, h, w, cm, rules, risk)
    x, fills = executed(value, h, plan)
    assert var_of(x, risk.cov) <= risk.var_limit * (1 + 1e-9), (
        var_of(x, risk.cov),
        risk.var_limit,
        plan.notes,
    )
    # and everything the rules promised still holds: caps, cash, kept positions exactly as held
    assert np.all(plan.notional / value <= rules.max_weight + 1e-9)
    assert np.all(plan.notional >= 0) and value - plan.cost - plan.notional.sum() >= -1e-6 * value
    np.testing.assert_array_equal(plan.notional[plan.kept], h[plan.kept])
    if plan.var is not None and not any("limits win over the band" in n for n in plan.notes):
        # the VaR step trades only what the floors allow (a sell-out of a small position is the exception)
        floor = max(rules.band * value, rules.min_notional)
        small = (np.abs(fills) > 1e-9) & (np.abs(fills) < floor * (1 - 1e-9))
        assert np.all(plan.notional[small] == 0.0), (fills, floor)


# ---------------------------------------------------------------------------------------- carrier and ledger
def test_the_factor_form_rebuilds_the_decisions_covariance_exactly() -> None:
    rng = np.random.default_rng(7)
    window = rng.normal(0, 0.01, size=(60, 120))
    fm = factor_model(window, np.full(120, 0.012), 5)
    risk = ExecRisk(0.02, 0.99, loadings=fm.loadings, factor_var=fm.factor_var, specific_var=fm.specific_var)
    back = ExecRisk.from_json(risk.to_json())
    assert back.cov is None  # N·(k+1) numbers stored, not N²
    np.testing.assert_array_equal(risk_matrix(back), fm.dense())
    dense = ExecRisk(0.02, 0.99, cov=COV3)
    np.testing.assert_array_equal(risk_matrix(ExecRisk.from_json(dense.to_json())), COV3)


def test_the_ledger_keeps_the_decisions_risk_until_its_orders_fill(tmp_path: Path) -> None:
    # a decision's Σ and limit go into the ledger with its pending orders; a NEW process (the ledger reopened)
    # executes them under the VaR re-check, records it, and drops the stored risk once filled
    tickers = ("A", "B", "C")
    days = [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)]
    idx = pd.DatetimeIndex(pd.to_datetime([d.isoformat() for d in days]))
    px = pd.DataFrame(
        {"A": [100.0, 100.0, 101.3], "B": [50.0, 50.0, 50.0], "C": [20.0, 20.0, 19.9]}, index=idx
    )
    w = np.array([0.30, 0.30, 0.30])
    limit = var_of(w, COV3) * 1.0005
    rules = ExecutionRules(max_weight=0.31, band=0.005, min_notional=100.0)

    def ledger() -> Ledger:
        return Ledger(
            tmp_path / "l.sqlite",
            profile="p",
            tickers=tickers,
            initial_capital=1e6,
            cost_model=CostModel(5.0),
            execution_rules=rules,
        )

    def dec(asof: dt.date) -> Decision:
        return Decision(
            asof, "p", "rebalance", "", tickers, w, StopState(), {}, exec_risk=ExecRisk(limit, 0.99, cov=COV3)
        )

    led = ledger()
    with led.transaction():
        led.advance(px, days[0])
        led.record_decision("1", dec(days[0]), days[1], started_at="t", committed_at="t")
    with led.transaction():
        led.advance(px, days[1])  # the first deployment, at the targets
        led.record_decision("2", dec(days[1]), days[2], started_at="t", committed_at="t")
    stored = led._conn.execute("SELECT key FROM state WHERE key LIKE 'orders.exec_risk.%'").fetchall()
    assert stored == [("orders.exec_risk.2",)]
    led.close()

    led = ledger()  # another process executes run 2's orders
    try:
        with led.transaction():
            led.advance(px, days[2])
        c = led._conn
        assert c.execute("SELECT COUNT(*) FROM state WHERE key LIKE 'orders.exec_risk.%'").fetchone()[0] == 0
        detail = json.loads(
            c.execute("SELECT detail FROM events WHERE kind = 'exec_rules' AND run_id = 2").fetchone()[0]
        )
        assert detail["var"]["lowered"] == ["A"] and detail["var"]["before"] > limit
        shares = dict(c.execute("SELECT ticker, shares FROM positions"))
        nav = c.execute("SELECT nav FROM nav WHERE date = ?", (days[2].isoformat(),)).fetchone()[0]
        x = np.array([shares[t] * px.loc[pd.Timestamp(days[2]), t] for t in tickers]) / nav
        assert var_of(x, COV3) <= limit * (1 + 1e-9)
    finally:
        led.close()
