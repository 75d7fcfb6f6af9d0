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
from agent.report import PLOT_FILES, format_metric, summary_table, write_report

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
        {"date": dec.repeat(2), "ticker": ["AAA", "BBB"] * len(dec), "quantity": 10.0, "cost": 1.25}
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
        "alphas": {"equal_weight": M.alpha(navs["strategy"], navs["equal_weight"])},
        "decisions_summary": {"decisions": len(dec), "fallbacks": 1},
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
        "weights.png",
        "rolling_sharpe.png",
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
        assert f"<th>{name}</th>" in html
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
    fr = plots.efficient_frontier(ar, n_points=200)  # fine grid: chords of the convex frontier stay close
    assert np.allclose(fr.weights.sum(axis=1), 1.0) and (fr.weights >= -1e-12).all()
    vols, rets = plots.random_portfolios(ar, n=2000, seed=1)
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
    a, b = plots.random_portfolios(ar, n=50, seed=1), plots.random_portfolios(ar, n=50, seed=1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
