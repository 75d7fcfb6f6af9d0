"""Ledger: hand-checked fills and NAV, exactly-once execution, cancellation, atomicity, reopening, refusals."""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.costs import CostModel
from agent.decision import Decision, StopState
from agent.errors import LedgerError
from agent.ledger import Ledger

T2 = ("A", "B")
DAYS = [
    dt.date(2024, 1, 2),
    dt.date(2024, 1, 3),
    dt.date(2024, 1, 4),
    dt.date(2024, 1, 5),
    dt.date(2024, 1, 8),
]


def frame(rows: dict[str, list[float]], days: list[dt.date] = DAYS) -> pd.DataFrame:
    n = len(next(iter(rows.values())))
    idx = pd.DatetimeIndex(pd.to_datetime([d.isoformat() for d in days[:n]]), name="date")
    return pd.DataFrame(rows, index=idx, dtype="float64")


PX = frame({"A": [100.0, 110.0, 121.0, 100.0, 100.0], "B": [50.0, 50.0, 40.0, 50.0, 55.0]})


def decision(
    asof: dt.date, status: str = "rebalance", w: tuple[float, ...] = (0.5, 0.5), **rec: object
) -> Decision:
    return Decision(
        asof=asof,
        profile="p",
        status=status,  # type: ignore[arg-type]
        reason=f"{status} at {asof}",
        tickers=T2,
        targets=np.array(w, dtype=float),
        stop=StopState(peak_nav=10_000.0),
        record={"asof": asof, "targets": dict(zip(T2, w, strict=True)), **rec},
    )


def open_ledger(path: Path, *, bps: float = 10.0, fixed: float = 0.0, **kw: object) -> Ledger:
    args: dict = {
        "profile": "p",
        "tickers": T2,
        "initial_capital": 10_000.0,
        "cost_model": CostModel(bps, fixed),
    }
    args.update(kw)
    return Ledger(path, **args)


def step(
    ledger: Ledger, prices: pd.DataFrame, asof: dt.date, dec: Decision | None, exec_date: dt.date | None
) -> int:
    with ledger.transaction():
        ledger.advance(prices, asof)
        ledger.portfolio_state(asof)
        if dec is None:
            return 0
        return ledger.record_decision(asof.isoformat(), dec, exec_date, started_at="t", committed_at="t")


def floor10(x: float) -> float:
    return math.floor(x * 1e10) / 1e10


@pytest.fixture()
def ledger(tmp_path: Path) -> Ledger:
    led = open_ledger(tmp_path / "ledger.sqlite")
    yield led
    led.close()


# ----------------------------------------------------------------------------------------------- fills and NAV
def test_hand_checked_fill_sequence(ledger: Ledger) -> None:
    r = 0.001  # 10 bps
    step(ledger, PX, DAYS[0], decision(DAYS[0]), DAYS[1])  # decide at close d0, trade at close d1
    step(ledger, PX, DAYS[1], decision(DAYS[1]), DAYS[2])  # same 50/50 targets again, trade at d2
    step(ledger, PX, DAYS[2], decision(DAYS[2], "hold"), None)
    step(ledger, PX, DAYS[3], None, None)

    # d1: from all cash. Traded notional is 0.5(V-c) per leg, so c = r (V - c) -> c = r V / (1 + r).
    v0 = 10_000.0
    c1 = r * v0 / (1 + r)
    sa1, sb1 = floor10(0.5 * (v0 - c1) / 110.0), floor10(0.5 * (v0 - c1) / 50.0)
    cash1 = v0 - sa1 * 110 - sb1 * 50 - r * (sa1 * 110 + sb1 * 50)
    # d2: prices moved; the book drifted to A 5494.5 / B 3996.0. Costs are on the trade from the DRIFTED book:
    # sell A down to 0.5(V-c), buy B up to it: sum|trade| = hA - hB, so c2 = r (hA - hB).
    ha, hb = sa1 * 121.0, sb1 * 40.0
    v2 = cash1 + ha + hb
    c2 = r * (ha - hb)
    sa2, sb2 = floor10(0.5 * (v2 - c2) / 121.0), floor10(0.5 * (v2 - c2) / 40.0)
    cash2 = cash1 - (sa2 - sa1) * 121 - (sb2 - sb1) * 40 - c2

    fills = ledger.fills_frame()
    assert list(fills["ticker"]) == ["A", "B", "A", "B"]
    assert list(fills["exec_date"].dt.date) == [DAYS[1], DAYS[1], DAYS[2], DAYS[2]]
    assert list(fills["price"]) == [110.0, 50.0, 121.0, 40.0]
    np.testing.assert_allclose(fills["shares"], [sa1, sb1, sa2 - sa1, sb2 - sb1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fills["notional"], fills["shares"] * fills["price"], rtol=0, atol=1e-8)
    assert fills["cost"][:2].sum() == pytest.approx(c1, abs=1e-8)
    assert fills["cost"][2:].sum() == pytest.approx(c2, abs=1e-8)
    assert c2 == pytest.approx(1.4985014985, abs=1e-9)  # against the last targets (50/50) it would be 0

    nav = ledger.nav_frame()
    assert list(nav.index.date) == DAYS[:4]
    expected_nav = [v0, v0 - c1, v2 - c2, cash2 + sa2 * 100 + sb2 * 50]
    np.testing.assert_allclose(nav["nav"], expected_nav, rtol=0, atol=1e-7)
    np.testing.assert_allclose(nav["cash"], [v0, cash1, cash2, cash2], rtol=0, atol=1e-7)
    np.testing.assert_allclose(nav["invested"], nav["nav"] - nav["cash"], rtol=0, atol=1e-8)
    assert (nav["cash"] >= 0).all() and nav["cash"].iloc[1] < 1e-6  # fully invested, costs never overdraw
    np.testing.assert_allclose(nav["peak"], [v0] * 4)
    np.testing.assert_allclose(nav["drawdown"], np.array(expected_nav) / v0 - 1, atol=1e-10)

    assert ledger.positions() == pytest.approx({"A": sa2, "B": sb2}, abs=1e-9)
    assert ledger.cash() == pytest.approx(cash2, abs=1e-7)
    ex = ledger.executions_frame()
    np.testing.assert_allclose(ex["nav_before"], [v0, v2], atol=1e-7)
    np.testing.assert_allclose(ex["turnover"], [(v0 - c1) / v0, (ha - hb) / v2], atol=1e-9)
    assert list(o["status"] for o in ledger.orders()) == ["filled"] * 6  # A, B, cash per rebalance


def test_portfolio_state_has_drifted_weights(ledger: Ledger) -> None:
    step(ledger, PX, DAYS[0], decision(DAYS[0], w=(0.5, 0.3)), DAYS[1])
    step(ledger, PX, DAYS[1], decision(DAYS[1], "hold"), None)
    with ledger.transaction():
        ledger.advance(PX, DAYS[2])
        st2 = ledger.portfolio_state(DAYS[2])
    sh = ledger.positions()
    vals = np.array([sh["A"] * 121.0, sh["B"] * 40.0])
    nav = ledger.cash() + vals.sum()
    assert st2.nav == pytest.approx(nav, abs=1e-8)
    np.testing.assert_allclose(st2.weights, vals / nav, atol=1e-9)
    assert st2.weights[0] > 0.5 + 0.01  # drifted up with A's +10%, not the 0.5 target
    assert st2.last_rebalance == DAYS[1] and st2.sessions_since_rebalance == 1
    assert st2.peak_nav == pytest.approx(10_000.0)
    assert st2.stop == StopState(peak_nav=10_000.0)
    with pytest.raises(LedgerError, match="marked to"):
        ledger.portfolio_state(DAYS[1])


def test_fresh_ledger_state_is_all_cash(ledger: Ledger) -> None:
    s = ledger.portfolio_state(DAYS[0])
    assert s.nav == 10_000.0 and s.cash_weight == 1.0 and s.asof == DAYS[0]
    assert (
        ledger.advance(PX, DAYS[0]).marked == 1
    )  # a fresh book starts marking at asof, not at the first row
    assert list(ledger.nav_frame().index.date) == [DAYS[0]]


def test_execution_happens_exactly_once_with_repeated_and_overlapping_advances(tmp_path: Path) -> None:
    ref = open_ledger(tmp_path / "ref.sqlite")
    step(ref, PX, DAYS[0], decision(DAYS[0], w=(0.7, 0.2)), DAYS[1])
    ref.advance(PX, DAYS[4])

    led = open_ledger(tmp_path / "l.sqlite")
    step(led, PX, DAYS[0], decision(DAYS[0], w=(0.7, 0.2)), DAYS[1])
    for upto in (DAYS[1], DAYS[1], DAYS[0], DAYS[2], DAYS[1], DAYS[4], DAYS[3], DAYS[4]):
        led.advance(PX, upto)
    fills = led.fills_frame()
    assert len(fills) == 2 and set(fills["exec_date"].dt.date) == {DAYS[1]}
    assert list(fills["price"]) == [110.0, 50.0]  # the exec date's closes
    pd.testing.assert_frame_equal(led.nav_frame(), ref.nav_frame())
    pd.testing.assert_frame_equal(fills, ref.fills_frame())
    assert led.cash() == ref.cash() and led.positions() == ref.positions()
    # a single advance over the whole range (one vectorized block per holding period) gives identical rows
    assert led.advance(PX, DAYS[4]).marked == 0


def test_daily_and_block_marking_agree_and_nothing_after_upto_is_read(tmp_path: Path) -> None:
    px = PX.copy()
    daily = open_ledger(tmp_path / "a.sqlite")
    block = open_ledger(tmp_path / "b.sqlite")
    for led in (daily, block):
        step(led, px, DAYS[0], decision(DAYS[0], w=(0.6, 0.4)), DAYS[1])
    for d in DAYS[1:4]:
        daily.advance(px, d)
    poisoned = px.copy()
    poisoned.loc[pd.Timestamp(DAYS[4])] = [np.inf, -1.0]  # a row after upto must never be used
    block.advance(poisoned, DAYS[3])
    pd.testing.assert_frame_equal(daily.nav_frame(), block.nav_frame())


def test_superseded_pending_orders_are_cancelled(ledger: Ledger) -> None:
    # lag 2: the d0 decision would trade at d2, but a newer rebalance at d1 supersedes it
    step(ledger, PX, DAYS[0], decision(DAYS[0], w=(1.0, 0.0)), DAYS[2])
    run2 = step(ledger, PX, DAYS[1], decision(DAYS[1], w=(0.0, 1.0)), DAYS[3])
    orders = ledger.orders(run_id=1)
    assert {o["status"] for o in orders} == {"cancelled"} and {o["cancelled_by"] for o in orders} == {run2}
    assert [e["run_id"] for e in ledger.events("cancelled")] == [1]
    step(ledger, PX, DAYS[2], decision(DAYS[2], "hold", w=(0.0, 0.0)), None)  # a hold does not cancel
    assert {o["status"] for o in ledger.orders(run_id=run2)} == {"pending"}
    ledger.advance(PX, DAYS[4])
    fills = ledger.fills_frame()
    assert list(fills["ticker"]) == ["B"] and list(fills["exec_date"].dt.date) == [DAYS[3]]
    assert {o["status"] for o in ledger.orders(run_id=run2)} == {"filled"}
    assert ledger.positions()["A"] == 0.0


def test_lag_zero_fills_at_the_decision_close_and_remarks_it(ledger: Ledger) -> None:
    step(ledger, PX, DAYS[0], decision(DAYS[0], w=(1.0, 0.0)), DAYS[0])
    assert ledger.nav_frame()["nav"].iloc[0] == 10_000.0  # marked before the decision
    res = ledger.advance(PX, DAYS[1])
    assert res.executed_runs == (1,) and res.marked == 2
    fills = ledger.fills_frame()
    assert list(fills["exec_date"].dt.date) == [DAYS[0]] and list(fills["price"]) == [100.0]
    c = 0.001 * 10_000 / 1.001
    nav = ledger.nav_frame()["nav"]
    assert nav.iloc[0] == pytest.approx(10_000 - c, abs=1e-7)
    assert nav.iloc[1] == pytest.approx((10_000 - c) * 1.1, abs=1e-6)


def test_missing_close_of_held_ticker_is_forward_filled_and_recorded(ledger: Ledger) -> None:
    px = PX.copy()
    px.loc[pd.Timestamp(DAYS[2]), "B"] = np.nan
    px.loc[pd.Timestamp(DAYS[3]), "B"] = np.nan
    step(ledger, px, DAYS[0], decision(DAYS[0]), DAYS[1])
    res = ledger.advance(px, DAYS[4])
    assert res.ffilled == ((DAYS[2], "B"), (DAYS[3], "B"))
    sh = ledger.positions()
    nav = ledger.nav_frame()["nav"]
    cash = ledger.cash()
    assert nav.loc["2024-01-04"] == pytest.approx(cash + sh["A"] * 121 + sh["B"] * 50, abs=1e-8)
    assert nav.loc["2024-01-05"] == pytest.approx(cash + sh["A"] * 100 + sh["B"] * 50, abs=1e-8)
    assert nav.loc["2024-01-08"] == pytest.approx(cash + sh["A"] * 100 + sh["B"] * 55, abs=1e-8)
    ev = ledger.events("ffill")
    assert [(e["date"], e["ticker"], e["detail"]["price"]) for e in ev] == [
        ("2024-01-04", "B", 50.0),
        ("2024-01-05", "B", 50.0),
    ]


def test_missing_column_and_unpriced_target_do_not_crash(ledger: Ledger) -> None:
    px = PX[["A"]]  # B has no prices at all: its target stays in cash, and that is recorded
    step(ledger, px, DAYS[0], decision(DAYS[0], w=(0.5, 0.5)), DAYS[1])
    ledger.advance(px, DAYS[2])
    assert ledger.positions()["B"] == 0.0 and ledger.positions()["A"] > 0
    c = 0.0005 * 10_000 / 1.0005  # only A trades: c = r * 0.5 (V - c)
    assert ledger.cash() == pytest.approx(0.5 * (10_000 - c), abs=1e-6)
    assert [e["ticker"] for e in ledger.events("unpriced")] == ["B"]


def test_exec_date_without_a_price_row_fills_at_the_next_session(ledger: Ledger) -> None:
    px = PX.drop(index=pd.Timestamp(DAYS[1]))  # the exec session is missing from the data
    step(ledger, px, DAYS[0], decision(DAYS[0]), DAYS[1])
    ledger.advance(px, DAYS[3])
    assert set(ledger.fills_frame()["exec_date"].dt.date) == {DAYS[2]}
    assert list(ledger.fills_frame()["price"]) == [121.0, 40.0]
    (shift,) = ledger.events("exec_shift")
    assert shift["detail"] == {"exec_date": "2024-01-03", "filled_on": "2024-01-04"}
    assert {o["filled_on"] for o in ledger.orders()} == {"2024-01-04"}


def test_fixed_cost_per_trade_and_cash_identity(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "f.sqlite", bps=5.0, fixed=2.0)
    step(led, PX, DAYS[0], decision(DAYS[0], w=(0.6, 0.4)), DAYS[1])
    led.advance(PX, DAYS[1])
    fills = led.fills_frame()
    np.testing.assert_allclose(fills["cost"], 0.0005 * fills["notional"].abs() + 2.0, atol=1e-9)
    assert led.cash() == pytest.approx(10_000 - fills["notional"].sum() - fills["cost"].sum(), abs=1e-8)
    assert led.cash() >= 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    bps=st.sampled_from([0.0, 1.0, 10.0, 50.0]),
    fixed=st.sampled_from([0.0, 0.5]),
    invested=st.sampled_from([1.0, 0.95]),
)
def test_cash_never_negative_and_accounting_identities(tmp_path_factory, seed, bps, fixed, invested) -> None:
    rng = np.random.default_rng(seed)
    n, t_len = 4, 12
    tickers = tuple(f"T{i}" for i in range(n))
    idx = pd.bdate_range("2024-01-01", periods=t_len, name="date")
    px = pd.DataFrame(
        rng.uniform(5, 500) * np.exp(np.cumsum(rng.normal(0, 0.05, (t_len, n)), 0)), idx, tickers
    )
    led = Ledger(
        tmp_path_factory.mktemp("h") / "l.sqlite",
        profile="p",
        tickers=tickers,
        initial_capital=float(rng.uniform(1e3, 1e7)),
        cost_model=CostModel(bps, fixed),
        durable=False,
    )
    days = list(idx.date)
    for i, d in enumerate(days[:-1]):
        w = rng.dirichlet(np.ones(n)) * invested
        w[rng.random(n) < 0.3] = 0.0
        with led.transaction():
            led.advance(px, d)
            led.record_decision(
                str(i), Decision(d, "p", "rebalance", "", tickers, w, StopState(), {}), days[i + 1]
            )
    led.advance(px, days[-1])
    nav = led.nav_frame()
    assert (nav["cash"] >= 0).all()
    sh = np.array(list(led.positions().values()))
    assert nav["nav"].iloc[-1] == pytest.approx(led.cash() + float(px.iloc[-1].to_numpy() @ sh), rel=1e-12)
    fills = led.fills_frame()
    cap = led.initial_capital
    assert led.cash() == pytest.approx(cap - fills["notional"].sum() - fills["cost"].sum(), abs=1e-6 * cap)


def test_matches_vectorized_simulator(tmp_path: Path) -> None:
    from agent.simulate import simulate_targets

    rng = np.random.default_rng(3)
    n, t_len = 3, 30
    tickers = ("X", "Y", "Z")
    idx = pd.bdate_range("2024-01-01", periods=t_len, name="date")
    px = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.02, (t_len, n)), 0)), idx, tickers)
    dec_idx = list(range(0, t_len - 1, 5))
    targets = np.array([rng.dirichlet(np.ones(n)) for _ in dec_idx])
    cm = CostModel(10.0)
    led = Ledger(tmp_path / "l.sqlite", profile="p", tickers=tickers, initial_capital=1.0, cost_model=cm)
    days = list(idx.date)
    for k, i in enumerate(dec_idx):
        with led.transaction():
            led.advance(px, days[i])
            dec = Decision(days[i], "p", "rebalance", "", tickers, targets[k], StopState(), {})
            led.record_decision(str(i), dec, days[i + 1])
    led.advance(px, days[-1])
    sim = simulate_targets(px.to_numpy(), dec_idx, targets, lag=1, cost_model=cm, capital=1.0)
    np.testing.assert_allclose(led.nav_frame()["nav"].to_numpy(), sim.nav, rtol=1e-8)
    assert led.fills_frame()["cost"].sum() == pytest.approx(sim.costs, rel=1e-7)


# ----------------------------------------------------------------------------------------------- atomicity
def _snapshot(led: Ledger) -> tuple:
    return (
        led.positions(),
        led.cash(),
        led.nav_frame().to_dict("list"),
        led.runs(),
        led.orders(),
        led.last_marked,
    )


def test_exception_inside_transaction_rolls_everything_back(ledger: Ledger) -> None:
    step(ledger, PX, DAYS[0], decision(DAYS[0]), DAYS[1])
    before = _snapshot(ledger)
    with pytest.raises(RuntimeError, match="boom"), ledger.transaction():
        ledger.advance(PX, DAYS[2])  # fills the d0 orders and marks two sessions
        ledger.record_decision("x", decision(DAYS[2], w=(0.1, 0.1)), DAYS[3])
        ledger.set_state("engine.cache", {"k": 1})
        raise RuntimeError("boom")
    assert _snapshot(ledger) == before
    assert not ledger.has_run("x") and ledger.get_state("engine.cache") is None
    assert ledger.fills_frame().empty
    # nested transactions are savepoints: an inner failure that the caller handles keeps the outer work
    with ledger.transaction():
        ledger.advance(PX, DAYS[1])
        with pytest.raises(ValueError), ledger.transaction():
            ledger.set_state("k", 1)
            raise ValueError
    assert ledger.last_marked == DAYS[1] and ledger.get_state("k") is None


def test_process_crash_mid_transaction_leaves_previous_state(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    led = open_ledger(path)
    step(led, PX, DAYS[0], decision(DAYS[0]), DAYS[1])
    before = _snapshot(led)
    led.close()
    script = textwrap.dedent(
        f"""
        import os, sys, datetime as dt
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_ledger import open_ledger, decision, PX, DAYS
        led = open_ledger({str(path)!r})
        with led.transaction():
            led.advance(PX, DAYS[3])
            led.record_decision("crash", decision(DAYS[3]), DAYS[4])
            os._exit(9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    led = open_ledger(path)
    assert _snapshot(led) == before and not led.has_run("crash")
    step(led, PX, DAYS[3], decision(DAYS[3]), DAYS[4])  # the next run completes the work
    assert len(led.fills_frame()) == 2 and led.last_marked == DAYS[3]


# ----------------------------------------------------------------------------------------------- idempotency, reopen
def test_has_run_and_a_committed_slot_cannot_be_recorded_twice(ledger: Ledger) -> None:
    assert not ledger.has_run(DAYS[0].isoformat()) and ledger.run_for_slot("nope") is None
    run_id = step(ledger, PX, DAYS[0], decision(DAYS[0]), DAYS[1])
    assert run_id == 1 and ledger.has_run(DAYS[0].isoformat())
    run = ledger.run_for_slot(DAYS[0].isoformat())
    assert (run["status"], run["asof"], run["exec_date"]) == ("rebalance", "2024-01-02", "2024-01-03")
    before = _snapshot(ledger)
    with pytest.raises(LedgerError, match="already committed"):
        ledger.record_decision(DAYS[0].isoformat(), decision(DAYS[0]), DAYS[1])
    assert _snapshot(ledger) == before
    assert ledger.last_run()["run_id"] == 1 and "decision_json" not in ledger.last_run()
    ledger.record_failure("2024-01-03", "prices missing", asof=DAYS[1], started_at="t")
    assert [(f["slot"], f["reason"]) for f in ledger.failures()] == [("2024-01-03", "prices missing")]
    assert not ledger.has_run("2024-01-03")  # a failed slot stays open for the rerun


def test_empty_readers(ledger: Ledger) -> None:
    assert ledger.nav_frame().empty and list(ledger.nav_frame().columns) == [
        "nav",
        "cash",
        "invested",
        "peak",
        "drawdown",
    ]
    assert ledger.nav_frame()["nav"].dtype == np.float64 and ledger.fills_frame().empty
    assert ledger.runs() == [] and ledger.last_run() is None and ledger.cash() == 10_000.0
    assert ledger.positions() == {"A": 0.0, "B": 0.0} and ledger.last_marked is None


def test_reopening_restores_the_same_state(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    led = open_ledger(path)
    step(led, PX, DAYS[0], decision(DAYS[0], w=(0.3, 0.6)), DAYS[1])
    step(led, PX, DAYS[1], decision(DAYS[1], "hold"), None)
    led.advance(PX, DAYS[2])
    led.set_state("engine.garch", {"params": [0.1, 0.2]})
    snap, state = _snapshot(led), led.portfolio_state(DAYS[2])
    fills = led.fills_frame()
    led.close()
    again = open_ledger(path, initial_capital=123.0)  # the stored capital wins
    assert _snapshot(again) == snap
    pd.testing.assert_frame_equal(again.fills_frame(), fills)
    s2 = again.portfolio_state(DAYS[2])
    np.testing.assert_array_equal(s2.weights, state.weights)
    assert (s2.nav, s2.peak_nav, s2.stop, s2.last_rebalance) == (
        state.nav,
        state.peak_nav,
        state.stop,
        state.last_rebalance,
    )
    assert again.get_state("engine.garch") == {"params": [0.1, 0.2]} and again.initial_capital == 10_000.0


def test_same_inputs_give_identical_rows(tmp_path: Path) -> None:
    def run(name: str) -> list:
        led = open_ledger(tmp_path / name, bps=7.0)
        step(led, PX, DAYS[0], decision(DAYS[0], w=(1 / 3, 0.6)), DAYS[1])
        step(led, PX, DAYS[2], decision(DAYS[2], w=(0.2, 0.7)), DAYS[3])
        led.advance(PX, DAYS[4])
        con = sqlite3.connect(tmp_path / name)
        out = [
            con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("runs", "orders", "fills", "nav", "positions", "cash", "state")
        ]
        con.close()
        return out

    assert run("a.sqlite") == run("b.sqlite")


def test_durability_pragmas(tmp_path: Path) -> None:
    assert open_ledger(tmp_path / "d.sqlite").pragmas() == {"journal_mode": "wal", "synchronous": 2}
    assert open_ledger(tmp_path / "f.sqlite", durable=False).pragmas() == {
        "journal_mode": "wal",
        "synchronous": 0,
    }


# ----------------------------------------------------------------------------------------------- refusals
def test_foreign_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(LedgerError, match="not a ledger database") as junk_err:
        open_ledger(junk)
    assert junk_err.value.exit_code == 3  # a bad state directory: exit 3, like the other state problems
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="foreign"):
        open_ledger(other)
    good = tmp_path / "good.sqlite"
    open_ledger(good).close()
    data = bytearray(good.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # smash a b-tree page
    good.write_bytes(bytes(data))
    with pytest.raises(LedgerError, match=r"corrupt|not a ledger") as bad:
        open_ledger(good)
    assert bad.value.exit_code == 3


def test_profile_or_universe_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    open_ledger(path).close()
    with pytest.raises(LedgerError, match="belongs to profile 'p'"):
        open_ledger(path, profile="other")
    with pytest.raises(LedgerError, match="universe"):
        open_ledger(path, tickers=("A", "B", "C"))
    with pytest.raises(LedgerError, match="universe"):
        open_ledger(path, tickers=("B", "A"))


def test_bad_decisions_are_refused(ledger: Ledger) -> None:
    ledger.advance(PX, DAYS[1])
    with pytest.raises(LedgerError, match="exec_date"):
        ledger.record_decision("a", decision(DAYS[1]), None)
    with pytest.raises(LedgerError, match="before the decision date"):
        ledger.record_decision("a", decision(DAYS[1]), DAYS[0])
    with pytest.raises(LedgerError, match="sum to at most 1"):
        ledger.record_decision("a", decision(DAYS[1], w=(0.7, 0.7)), DAYS[2])
    with pytest.raises(LedgerError, match="profile"):
        ledger.record_decision(
            "a", Decision(DAYS[1], "q", "hold", "", T2, np.zeros(2), StopState(), {}), None
        )
    ledger.record_decision("b", decision(DAYS[1], "hold"), None)
    with pytest.raises(LedgerError, match="before the last committed run"):
        ledger.record_decision("c", decision(DAYS[0], "hold"), None)
    assert ledger.run_count() == 1


def test_peak_since_reset_equals_the_scan_of_every_session_since_the_reentry(tmp_path: Path) -> None:
    """portfolio_state's peak since the stop's re-entry takes the running peak when it rose after the re-entry
    (two indexed lookups); it must equal MAX(nav) over the sessions since the re-entry, for every re-entry date
    (before, at and after the all-time peak, with the book recovering above it or not)."""
    days = list(pd.bdate_range("2024-01-02", periods=40).date)
    rng = np.random.default_rng(7)
    a = 100.0 * np.cumprod(1.0 + rng.normal(0.0, 0.03, len(days)))
    px = frame({"A": a.tolist(), "B": [50.0] * len(days)}, days)
    led = open_ledger(tmp_path / "l.sqlite")
    try:
        step(led, px, days[0], decision(days[0], w=(1.0, 0.0)), days[1])
        step(led, px, days[-1], None, None)
        checked = 0
        for i, r in enumerate(days[1:], start=1):
            stop = StopState(peak_nav=1.0, status="reentered", transitions=(f"{r}:cooling_down->reentered",))
            for upto in (days[-1], days[-1] + dt.timedelta(days=3)):  # on the last mark, and a later asof
                got = led.portfolio_state(upto)
                fast = led._peak_since_reset(stop, upto, (days[-1].isoformat(), got.peak_nav))
                scan = led._peak_since_reset(stop, upto)
                assert fast == scan, (i, r, fast, scan)
                checked += 1
        navs = [n for (n,) in led._conn.execute("SELECT nav FROM nav ORDER BY date")]
        assert max(navs) > navs[-1] and max(navs[:20]) != max(navs[20:])  # both branches are exercised
    finally:
        led.close()
    assert checked == 2 * (len(days) - 1)
