"""agent.report: every file written, a self-contained HTML with the numbers, byte-identical reruns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agent import metrics as M
from agent import plots
from agent.report import PLOT_FILES, format_metric, frontier, summary_table, write_report

TICKERS = ["AAA", "BBB", "CCC", "DDD"]


def _inputs() -> dict[str, Any]:
    idx = pd.bdate_range("2021-06-01", "2022-12-30", name="date")
    rng = np.random.default_rng(5)
    ar = pd.DataFrame(
        rng.normal(0.0004, 0.011, (len(idx), 4)) + rng.normal(0, 0.006, (len(idx), 1)),
        index=idx,
        columns=TICKERS,
    )
    ar.iloc[0] = 0.0
    ew = (1 + ar.mean(axis=1)).cumprod()
    strat = (1 + ar[["AAA", "BBB"]].mean(axis=1) * 1.2).cumprod()
    navs = pd.DataFrame({"strategy": strat / strat.iloc[0], "equal_weight": ew / ew.iloc[0]})
    dec = idx[::42]
    w = pd.DataFrame(rng.dirichlet(np.ones(5), len(dec)), index=dec, columns=[*TICKERS, "cash"])
    trades = pd.DataFrame(
        {
            "run_id": np.arange(1, len(dec) + 1).repeat(2),
            "exec_date": [d.date().isoformat() for d in (dec + pd.offsets.BDay(1)).repeat(2)],
            "ticker": ["AAA", "BBB"] * len(dec),
            "shares": 10.0,
            "price": 101.5,
            "notional": [1015.0, 3e-6] * len(dec),  # every second fill is dust
            "cost": 1.25,
        }
    )
    metrics = M.metrics_table(
        navs, turnover={"strategy": 4.25}, n_rebalances={"strategy": len(dec)}, costs={"strategy": 0.0031}
    )
    return {
        "navs": navs,
        "weights": w,
        "trades": trades,
        "metrics": metrics,
        "per_year": M.per_period_table(navs),
        "rebalance_dates": list(dec),
        "asset_returns": ar.iloc[1:],
        "portfolio_points": None,
        "meta": {
            "profile": "unit-test",
            "window": "2021-06-01 to 2022-12-30",
            "costs": "10 bps on |Δw|",
            "data": "synthetic <demo> & co",
            "deviations": ["labels from past data only", "no k-fold shuffling"],
        },
        "windows": {"2022": {c: M.window_metrics(navs[c], "2022-01-01", "2022-12-31") for c in navs}},
        "kfold": {c: M.kfold_metrics(navs[c], 5) for c in navs},
        "decisions_summary": {"decisions": len(dec), "fallbacks": 1},
        "n_random": 2000,  # fewer random portfolios: the frontier test below checks the frontier itself
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    inputs = _inputs()
    a = write_report(tmp_path_factory.mktemp("a") / "out", **inputs)
    b = write_report(tmp_path_factory.mktemp("b"), **inputs)
    return a, b, inputs


def test_writes_every_file(written: tuple[Path, Path, dict[str, Any]]) -> None:
    a, _, _ = written
    assert a.name == "report.html"
    for name in PLOT_FILES:
        data = (a.parent / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    assert set(PLOT_FILES) == {
        "equity.png",
        "drawdown.png",
        "yearly_returns.png",
        "weights.png",
        "rolling_sharpe.png",
        "rolling_volatility.png",
        "rolling_beta.png",
        "frontier.png",
    }
    assert not list(a.parent.glob(".*.tmp"))  # no temp files left behind


def test_byte_identical_across_writes(written: tuple[Path, Path, dict[str, Any]]) -> None:
    a, b, _ = written
    for name in ["report.html", *PLOT_FILES]:
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes(), name


def test_png_has_no_software_or_time_metadata(written: tuple[Path, Path, dict[str, Any]]) -> None:
    data = (written[0].parent / "equity.png").read_bytes()
    assert b"Software" not in data and b"Creation Time" not in data and b"tIME" not in data


def test_html_is_self_contained(written: tuple[Path, Path, dict[str, Any]]) -> None:
    html = written[0].read_text(encoding="utf-8")
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html).lower()  # base64 may spell anything
    assert "http" not in text  # no external resources or links of any kind
    assert "<script" not in text and "<link" not in text and "url(" not in text and "@import" not in text
    assert 'src="' not in text.replace('src=""', "")
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(imgs) == len(PLOT_FILES)
    assert all(src.startswith("data:image/png;base64,") for src in imgs)
    # the embedded bytes are the PNG files
    import base64

    assert base64.b64decode(imgs[0].split(",", 1)[1]) == (written[0].parent / "equity.png").read_bytes()


def test_html_shows_header_metrics_years_and_notes(written: tuple[Path, Path, dict[str, Any]]) -> None:
    html = written[0].read_text(encoding="utf-8")
    metrics = written[2]["metrics"]
    assert "unit-test" in html and "10 bps on |Δw|" in html
    assert "synthetic &lt;demo&gt; &amp; co" in html  # escaped
    for name, m in metrics.items():
        assert f"<th>{plots.display_name(name)}</th>" in html
        for key in ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar"):
            assert format_metric(key, m[key]) in html, (name, key)
    mdd = metrics["strategy"]["max_drawdown"]
    assert f"{mdd * 100:.2f}%" in html and mdd < 0  # max drawdown as a (negative) percentage
    assert format_metric("turnover", 4.25) == "4.25" and "4.25" in html
    assert "0.31%" in html  # costs as a percentage of initial capital
    per = written[2]["per_year"]["strategy"]
    for year in ("2021", "2022"):
        assert f"<th>{year}</th>" in html
        assert format_metric("total_return", per[year]["total_return"]) in html
    assert "labels from past data only" in html and "no k-fold shuffling" in html
    assert "Named windows" in html and "k-fold" in html and "fallbacks" in html


def test_year_major_per_year_is_accepted(tmp_path: Path) -> None:
    inputs = _inputs()
    by_name = inputs["per_year"]
    year_major: dict[str, dict[str, Any]] = {}
    for name, years in by_name.items():
        for y, m in years.items():
            year_major.setdefault(y, {})[name] = m
    inputs["per_year"] = year_major
    a = write_report(tmp_path / "ym", **inputs).read_text(encoding="utf-8")
    inputs["per_year"] = by_name
    b = write_report(tmp_path / "nm", **inputs).read_text(encoding="utf-8")
    assert a == b


def test_degenerate_inputs_still_write_a_report(tmp_path: Path) -> None:
    idx = pd.bdate_range("2022-01-03", periods=30, name="date")
    navs = pd.DataFrame({"strategy": np.ones(30)}, index=idx)  # flat: undefined ratios
    path = write_report(
        tmp_path,
        navs=navs,
        weights=pd.DataFrame(columns=["AAA", "cash"]),
        trades=None,
        metrics=M.metrics_table(navs),
        per_year={},
        rebalance_dates=[],
        asset_returns=pd.DataFrame({"AAA": [0.01]}, index=idx[:1]),  # too short for a frontier
        portfolio_points=None,
        meta={"profile": "flat"},
    )
    html = path.read_text(encoding="utf-8")
    assert "—" in html and "No trades." in html
    assert all((tmp_path / n).exists() for n in PLOT_FILES)


def test_summary_table_is_fixed_width() -> None:
    metrics = _inputs()["metrics"]
    text = summary_table(metrics)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == 2 + len(metrics)
    assert len({len(line) for line in lines}) == 1
    assert lines[2].startswith("strategy") and lines[3].startswith("equal_weight")
    assert format_metric("max_drawdown", metrics["strategy"]["max_drawdown"]) in lines[2]
    assert format_metric("sharpe", float("nan")) == "—"


def test_format_metric_conventions() -> None:
    assert format_metric("max_drawdown", -0.2131) == "-21.31%"
    assert format_metric("sharpe", 1.176) == "1.18"
    assert format_metric("psr", 0.83891) == "0.839"
    assert format_metric("n_rebalances", 7) == "7"
    assert format_metric("sortino", None) == "—"


def test_efficient_frontier_is_on_or_left_of_random_portfolios() -> None:
    ar = _inputs()["asset_returns"]
    fr = frontier.efficient_frontier(ar, n_points=200)  # fine grid: chords of the convex frontier stay close
    assert np.allclose(fr.weights.sum(axis=1), 1.0) and (fr.weights >= -1e-12).all()
    vols, rets = frontier.random_portfolios(ar, n=2000, seed=1)
    # no random portfolio beats the frontier: for each, the frontier reaches its return with no more vol
    eff_v, eff_r = fr.vols, fr.rets
    for v, r in zip(vols[:300], rets[:300], strict=True):
        j = np.searchsorted(eff_r, r)
        if 0 < j < len(eff_r):
            lo, hi = j - 1, j
            t = (r - eff_r[lo]) / (eff_r[hi] - eff_r[lo])
            assert eff_v[lo] + t * (eff_v[hi] - eff_v[lo]) <= v + 1e-3
    assert vols.min() >= fr.vols.min() - 1e-9  # nothing below the global minimum variance
    assert rets.max() <= fr.rets.max() + 1e-12 and rets.min() >= fr.rets.min() - 1e-12
    a, b = frontier.random_portfolios(ar, n=50, seed=1), frontier.random_portfolios(ar, n=50, seed=1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_palette_never_repeats_and_never_looks_like_cash() -> None:
    for n in (5, 31, 54, 80):
        cols = plots.distinct_colors(n, exclude=[plots.CASH_COLOR])
        assert len(cols) == n == len(set(cols)) and plots.CASH_COLOR not in cols
        rgb = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in cols]
        assert not any(r == g == b for r, g, b in rgb)  # no grey at all
    names = ["strategy", "equal_weight", "benchmark", *[f"p{i}" for i in range(12)]]
    assert len(set(plots.portfolio_colors(names).values())) == len(names)


def test_tearsheet_sections_show_metrics_module_numbers(written: tuple[Path, Path, dict[str, Any]]) -> None:
    html = written[0].read_text(encoding="utf-8")
    navs = written[2]["navs"]
    stats = M.tearsheet_stats(navs["strategy"])
    for key in (
        "trailing_3M",
        "trailing_YTD",
        "trailing_1Y",
        "var_95",
        "cvar_95",
        "best_month",
        "worst_month",
    ):
        assert format_metric(key, stats[key]) in html, key
    assert "Trailing MTD" in html and "Hit rate" in html and "VaR 95%" in html
    worst = M.drawdown_table(navs["strategy"], 10)
    assert "Worst drawdowns" in html and worst[0]["trough"] in html
    assert format_metric("depth", worst[0]["depth"]) in html
    grid = M.monthly_returns_grid(navs["strategy"])
    assert 'class="heat"' in html and f"{grid.loc[2022, 6] * 100:.1f}" in html


def test_report_fixes_from_the_issue(written: tuple[Path, Path, dict[str, Any]]) -> None:
    html = written[0].read_text(encoding="utf-8")
    # every table scrolls sideways on a phone; every chart has a narrow rendering for small screens
    assert html.count("<table") == html.count('<div class="scroll"><table')
    assert html.count('<source media="(max-width: 600px)"') == len(PLOT_FILES)
    # kurtosis convention and the deflated Sharpe's number of trials are stated
    assert "non-excess" in html and "Deflated Sharpe (1 trial: = PSR)" in html
    # the strategy against every baseline, with readable labels (no snake_case keys)
    assert "Strategy vs Equal weight" in html and "Tracking error (ann.)" in html
    assert ">excess_total_return<" not in html and ">tracking_error<" not in html
    # money has units; dust fills are counted, not listed
    n = len(written[2]["weights"])
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert "$1,015.00" in text and "3e-06" not in text and ">$0.00<" not in text
    assert f"dust fills not listed</dt><dd>{n} (|notional| &lt; $0.01" in html
    assert f"total transaction costs</dt><dd>${1.25 * 2 * n:,.2f}" in html


def test_equity_marks_execution_sessions_not_decisions() -> None:
    from agent.report.page import _execution_dates

    trades = _inputs()["trades"]
    marks, kind = _execution_dates(trades, ["2021-06-01"])
    assert kind == "executions"
    assert marks == sorted(set(trades["exec_date"][trades["notional"].abs() >= 0.01]))
    assert _execution_dates(None, ["2021-06-01"]) == (["2021-06-01"], "decisions")
