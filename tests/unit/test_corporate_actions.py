"""Corporate actions: a re-adjusted price history rebases held shares so that NAV stays continuous.

The reference is a control ledger fed the unchanged history. The treated ledger sees the same prices up to its
last mark, then a history in which one ticker is rescaled by a split factor and another by a dividend factor
(every row, as a vendor's re-adjustment of the past plus post-event prices at the new scale means for a
holder). Its NAV path must equal the control's to 1e-9 (relative), with the rebase recorded as an event.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.ledger.actions import readjust_factors
from tests.unit.test_ledger import DAYS, PX, decision, frame, open_ledger, step


def _scaled(px: pd.DataFrame, factors: dict[str, float]) -> pd.DataFrame:
    out = px.copy()
    for t, f in factors.items():
        out[t] = out[t] * f
    return out


def _run(path: Path, first: pd.DataFrame, second: pd.DataFrame) -> tuple[pd.DataFrame, object]:
    """Rebalance at d0 (fill d1), mark to d2 on `first`; then advance to d4 on `second`, rebalancing at d3."""
    led = open_ledger(path)
    step(led, first, DAYS[0], decision(DAYS[0], w=(0.6, 0.4)), DAYS[1])
    step(led, first, DAYS[2], decision(DAYS[2], "hold"), None)
    step(led, second, DAYS[3], decision(DAYS[3], w=(0.3, 0.7)), DAYS[4])
    step(led, second, DAYS[4], None, None)
    return led.nav_frame(), led


def test_split_and_dividend_keep_the_nav_path(tmp_path: Path) -> None:
    nav_c, ctrl = _run(tmp_path / "c.sqlite", PX, PX)
    adjusted = _scaled(PX, {"A": 0.25, "B": 0.99})  # A: 4:1 split; B: a 1% dividend
    nav_t, led = _run(tmp_path / "t.sqlite", PX, adjusted)
    assert list(nav_t.index) == list(nav_c.index) and len(nav_c) == 5
    np.testing.assert_allclose(nav_t["nav"], nav_c["nav"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(nav_t["peak"], nav_c["peak"], rtol=1e-9, atol=0)
    ev = led.events("corporate_action")
    assert [(e["date"], e["ticker"]) for e in ev] == [(DAYS[2].isoformat(), "A"), (DAYS[2].isoformat(), "B")]
    a, b = ev
    assert a["detail"]["factor"] == pytest.approx(0.25, rel=1e-12)
    assert b["detail"]["factor"] == pytest.approx(0.99, rel=1e-12)
    # shares x4 for the split, /0.99 for the dividend; the value at the last mark is unchanged
    assert a["detail"]["shares_after"] == pytest.approx(4 * a["detail"]["shares_before"], rel=1e-12)
    assert b["detail"]["shares_after"] == pytest.approx(b["detail"]["shares_before"] / 0.99, rel=1e-12)
    for e in ev:
        assert e["detail"]["value_after"] == pytest.approx(e["detail"]["value_before"], rel=1e-12)
    # the fills after the event trade the same notional at the new scale
    fc, ft = ctrl.fills_frame(), led.fills_frame()
    np.testing.assert_allclose(ft["notional"], fc["notional"], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(ft["cost"], fc["cost"], rtol=1e-9, atol=1e-9)
    assert ctrl.events("corporate_action") == []
    ctrl.close()
    led.close()


def test_unchanged_history_and_unheld_tickers_record_nothing(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "l.sqlite")
    step(led, PX, DAYS[0], decision(DAYS[0], w=(1.0, 0.0)), DAYS[1])  # only A is held
    step(led, PX, DAYS[2], None, None)
    step(led, _scaled(PX, {"B": 0.5}), DAYS[3], None, None)  # B re-adjusted, but not held
    assert led.events("corporate_action") == []
    assert led.positions()["B"] == 0.0
    led.close()


def test_a_forward_filled_mark_is_not_a_basis_for_a_factor(tmp_path: Path) -> None:
    """A close missing at the last mark (forward-filled) and delivered late is a correction, not a split."""
    gap = PX.copy()
    gap.loc[pd.Timestamp(DAYS[2]), "A"] = np.nan
    led = open_ledger(tmp_path / "l.sqlite")
    step(led, gap, DAYS[0], decision(DAYS[0]), DAYS[1])
    step(led, gap, DAYS[2], None, None)
    shares = led.positions()["A"]
    step(led, PX, DAYS[3], None, None)  # the real close for d2 arrives
    assert led.events("corporate_action") == []
    assert led.positions()["A"] == shares
    led.close()


def test_rebase_rolls_back_with_the_run(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "l.sqlite")
    step(led, PX, DAYS[0], decision(DAYS[0]), DAYS[1])
    step(led, PX, DAYS[2], None, None)
    before = led.positions()
    with pytest.raises(RuntimeError), led.transaction():
        led.advance(_scaled(PX, {"A": 0.25}), DAYS[3])
        raise RuntimeError("the run failed after advancing")
    assert led.positions() == before and led.events("corporate_action") == []
    led.close()


def test_readjust_factors() -> None:
    old = np.array([100.0, 50.0, np.nan, 10.0, 0.0, 7.0])
    new = np.array([25.0, 50.0, 3.0, 10.0 * (1 + 1e-12), 5.0, np.nan])
    f = readjust_factors(old, new)
    assert f[0] == 0.25
    assert np.isnan(f[1:]).all()  # unchanged, unknown, float noise, non-positive, missing


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fa=st.floats(0.02, 50.0),
    fb=st.floats(0.9, 1.0),
    seed=st.integers(0, 10_000),
)
def test_any_rescaling_keeps_the_nav_path(tmp_path_factory, fa: float, fb: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(5)]
    px = frame(
        {
            "A": list(100 * np.cumprod(1 + rng.normal(0, 0.03, 5))),
            "B": list(50 * np.cumprod(1 + rng.normal(0, 0.03, 5))),
        },
        days,
    )
    w1 = float(rng.uniform(0, 1))
    w2 = float(rng.uniform(0, 1 - w1))
    d = tmp_path_factory.mktemp("ca")
    navs = []
    for name, second in (("c", px), ("t", _scaled(px, {"A": fa, "B": fb}))):
        led = open_ledger(d / f"{name}.sqlite", bps=10.0, fixed=1.0)
        step(led, px, days[0], decision(days[0], w=(w1, w2)), days[1])
        step(led, px, days[2], None, None)
        step(led, second, days[3], decision(days[3], w=(w2, w1)), days[4])
        step(led, second, days[4], None, None)
        navs.append(led.nav_frame()["nav"].to_numpy())
        led.close()
    np.testing.assert_allclose(navs[1], navs[0], rtol=1e-9, atol=0)
