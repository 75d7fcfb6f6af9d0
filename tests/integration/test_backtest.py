"""Backtest replay: same path as the daemon, point-in-time, deterministic, honest metrics, clear errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.settings import load_settings


def _agent(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_") or k.startswith("AGENT_SHARED")}
    e["AGENT_NO_PROGRESS"] = "1"
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=600
    )


@pytest.fixture()
def sector_file(shared_data: Path) -> Path:
    return shared_data / "sector_etfs_daily.csv"


def _run(profile: str, prices: pd.DataFrame, start: str, end: str, out: Path, **over: object):
    from agent.backtest import run_backtest
    from agent.data.store import PriceStore

    s = load_settings(profile=profile, overrides=over)
    store = PriceStore.from_frame(prices, source="test")
    return run_backtest(
        s, store, dt.date.fromisoformat(start), dt.date.fromisoformat(end), out, write_report=False
    )


def test_equal_weight_strategy_equals_the_simulated_baseline(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    """The ledger (strategy path) and the vectorized simulator (baselines) agree on the same targets."""
    res = _run(
        "equal-weight",
        sector_prices,
        "2020-01-01",
        "2021-12-31",
        isolated_env / "ew",
        **{"backtest.baselines": ["equal_weight", "buy_and_hold"]},
    )
    nav = pd.read_csv(res.out_dir / "nav.csv", index_col="date", parse_dates=True)
    assert nav["strategy"].iloc[0] == pytest.approx(1.0)
    np.testing.assert_allclose(nav["strategy"], nav["equal_weight"], rtol=1e-9, atol=1e-12)
    m = json.loads((res.out_dir / "metrics.json").read_text())
    assert m["strategy"]["costs"] == pytest.approx(m["equal_weight"]["costs"], rel=1e-6)
    assert m["strategy"]["turnover"] == pytest.approx(m["equal_weight"]["turnover"], rel=1e-6)


def test_metrics_match_an_independent_recomputation(isolated_env: Path, sector_prices: pd.DataFrame) -> None:
    res = _run("equal-weight", sector_prices, "2020-01-01", "2022-12-31", isolated_env / "m")
    nav = pd.read_csv(res.out_dir / "nav.csv", index_col="date", parse_dates=True)
    m = json.loads((res.out_dir / "metrics.json").read_text())
    for col in nav.columns:
        v = nav[col].to_numpy()
        r = v[1:] / v[:-1] - 1
        years = len(r) / 252
        peak = np.maximum.accumulate(v)
        assert m[col]["total_return"] == pytest.approx(v[-1] / v[0] - 1, rel=1e-8)
        assert m[col]["cagr"] == pytest.approx((v[-1] / v[0]) ** (1 / years) - 1, rel=1e-6)
        assert m[col]["volatility"] == pytest.approx(np.std(r, ddof=1) * np.sqrt(252), rel=1e-6)
        assert m[col]["sharpe"] == pytest.approx(np.mean(r) / np.std(r, ddof=1) * np.sqrt(252), rel=1e-6)
        assert m[col]["max_drawdown"] == pytest.approx(np.min(v / peak - 1), rel=1e-8)


def test_point_in_time_future_prices_do_not_change_past_decisions(
    isolated_env: Path, sector_prices: pd.DataFrame
) -> None:
    """Change every price after a cutoff: no decision up to the cutoff may change (full default pipeline)."""
    cutoff = pd.Timestamp("2021-03-31")
    a = _run("default", sector_prices, "2021-01-01", "2021-06-30", isolated_env / "a")
    shocked = sector_prices.copy()
    after = shocked.index > cutoff
    rng = np.random.default_rng(0)
    # +-15% noise per day: large enough to change every later decision, small enough not to be a spike that
    # validation (max_jump 0.5) refuses
    shocked.loc[after] = shocked.loc[after].to_numpy() * rng.uniform(
        0.85, 1.15, size=shocked.loc[after].shape
    )
    b = _run("default", shocked, "2021-01-01", "2021-06-30", isolated_env / "b")
    wa = pd.read_csv(a.out_dir / "weights.csv", index_col="date", parse_dates=True)
    wb = pd.read_csv(b.out_dir / "weights.csv", index_col="date", parse_dates=True)
    pd.testing.assert_frame_equal(wa.loc[:cutoff], wb.loc[:cutoff], check_dtype=False)
    assert not wa.loc[cutoff:].equals(wb.loc[cutoff:])  # the shock is visible afterwards: the test can fail
    ra = [json.loads(x) for x in (a.out_dir / "decisions.jsonl").read_text().splitlines()]
    rb = [json.loads(x) for x in (b.out_dir / "decisions.jsonl").read_text().splitlines()]
    for x, y in zip(ra, rb, strict=True):
        if pd.Timestamp(x["asof"]) <= cutoff:
            assert x["hash"] == y["hash"]


def test_two_runs_are_byte_identical(isolated_env: Path, sector_file: Path) -> None:
    outs = []
    for k in range(2):
        out = isolated_env / f"run{k}"
        r = _agent(
            "backtest",
            "--start",
            "2021-01-01",
            "--end",
            "2021-12-31",
            "--prices",
            str(sector_file),
            "--out",
            str(out),
            cwd=isolated_env,
        )
        assert r.returncode == 0, r.stderr
        outs.append(out)
    for name in (
        "weights.csv",
        "nav.csv",
        "trades.csv",
        "metrics.json",
        "decisions.jsonl",
        "report.html",
        "equity.png",
    ):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--replay", "2030-2031"], 3, "outside the data"),
        (["--replay", "1990-1991"], 3, "outside the data"),
        (["--replay", "2005"], 3, "too short for the lookback"),
        (["--replay", "20x"], 2, "--replay expects"),
        (["--profile", "nope", "--replay", "2020"], 2, "unknown profile"),
        (["--profile", "djia-lstm-garch", "--replay", "2020"], 3, "tickers missing"),
        (["--prices", "/nonexistent/file.csv", "--replay", "2020"], 3, "file.csv"),
    ],
)
def test_bad_input_is_one_line(
    isolated_env: Path, sector_file: Path, args: list[str], code: int, needle: str
) -> None:
    if "--prices" not in args:
        args = [*args, "--prices", str(sector_file)]
    r = _agent("backtest", *args, "--out", str(isolated_env / "bad"), cwd=isolated_env)
    assert r.returncode == code, (r.returncode, r.stderr)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and needle in err[0], r.stderr
    assert "Traceback" not in r.stderr


def test_drawdown_stop_reenters_after_its_cooldown(isolated_env: Path, sector_prices: pd.DataFrame) -> None:
    """Through the real replay path: the March 2020 crash trips a 10% stop, the book sits in cash for the
    cool-down, then re-enters and re-arms (peers get stuck in cash here)."""
    res = _run(
        "equal-weight",
        sector_prices,
        "2020-01-01",
        "2020-12-31",
        isolated_env / "dd",
        **{
            "overlays.drawdown_stop": {"enabled": True, "threshold": 0.10, "cooldown_sessions": 10},
            "backtest.baselines": ["buy_and_hold"],
        },
    )
    recs = [json.loads(x)["record"] for x in (res.out_dir / "decisions.jsonl").read_text().splitlines()]
    trans = recs[-1]["stop_after"]["transitions"]
    kinds = [t.split(" ")[0].split(":")[1] for t in trans]
    assert kinds[:4] == [
        "armed->stopped",
        "stopped->cooling_down",
        "cooling_down->reentered",
        "reentered->armed",
    ]
    stop_i = next(i for i, r in enumerate(recs) if r["stop_after"]["status"] == "stopped")
    assert sum(recs[stop_i]["targets"][t] for t in recs[stop_i]["tickers"]) == 0.0  # liquidated
    back = next(i for i, r in enumerate(recs) if r["stop_after"]["status"] == "reentered")
    assert back - stop_i == 2  # weekly decisions: 5 + 5 of 10 sessions served, then re-entry
    assert sum(recs[back]["targets"][t] for t in recs[back]["tickers"]) > 0.99  # invested again
    assert recs[-1]["stop_after"]["status"] == "armed"


def test_window_stops_where_the_universe_has_prices(isolated_env: Path, sector_prices: pd.DataFrame) -> None:
    """A store shared with a longer file: the replay ends at the universe's last full session, NAV stays sane."""
    from agent.data.calendar import sessions

    extra = pd.DataFrame(
        {"ZZZ": np.linspace(10.0, 11.0, 40)}, index=sessions("2025-07-01", "2025-09-30")[:40]
    )
    both = pd.concat([sector_prices, extra], axis=0).sort_index()
    res = _run("equal-weight", both, "2025-01-01", "2025-12-31", isolated_env / "tail")
    nav = pd.read_csv(res.out_dir / "nav.csv", index_col="date", parse_dates=True)
    assert nav.index[-1] == pd.Timestamp("2025-06-30")
    assert res.end == dt.date(2025, 6, 30)
    assert (nav > 0.5).all().all()


def test_missing_models_is_one_line_exit_3(isolated_env: Path, sector_file: Path) -> None:
    r = _agent(
        "backtest",
        "--replay",
        "2021",
        "--prices",
        str(sector_file),
        "--out",
        str(isolated_env / "nm"),
        cwd=isolated_env,
        env={"AGENT_MODELS_DIR": str(isolated_env / "no-models")},
    )
    assert r.returncode == 3, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "no usable model" in err[0] and "AGENT_MODELS_DIR" in err[0]
