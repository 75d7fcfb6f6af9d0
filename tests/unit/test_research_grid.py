"""Sweep grid parsing: the Cartesian product, stable content keys, and one-line errors for bad grids."""

from __future__ import annotations

import pytest

from agent.errors import ConfigError, UsageError
from agent.research.grid import cell_key, expand_cells, load_grid, parse_grid, window_dates

BASE = {"profile": "equal-weight", "windows": ["2019", "2020-2021"]}


def test_product_of_windows_universes_grid_and_paths() -> None:
    spec = parse_grid(
        {
            **BASE,
            "universes": {"a": ["XLK", "XLF"], "b": ["XLE"]},
            "grid": {"risk.method": ["ewma", "sample", "garch"], "allocation.max_weight": [0.2, 0.3]},
            "overrides": {"execution.cost_bps": 10.0},
            "montecarlo": {"paths": 4, "mean_block": 10, "seed": 7},
        }
    )
    cells = expand_cells(spec)
    assert len(cells) == 2 * 2 * 3 * 2 * 4
    assert spec.axes == ("window", "universe", "risk.method", "allocation.max_weight", "path")
    combos = {
        (
            c.window,
            c.universe,
            dict(c.overrides)["risk.method"],
            dict(c.overrides)["allocation.max_weight"],
            c.path,
        )
        for c in cells
    }
    assert len(combos) == len(cells)  # every combination exactly once
    assert all(dict(c.overrides)["execution.cost_bps"] == 10.0 for c in cells)
    assert all(c.seed == 7 and c.mean_block == 10.0 for c in cells)
    c0 = next(c for c in cells if c.universe == "b")
    assert c0.settings_overrides()["universe.tickers"] == ["XLE"]


def test_keys_are_stable_distinct_and_depend_on_the_data() -> None:
    spec = parse_grid({**BASE, "grid": {"risk.method": ["ewma", "sample"]}})
    keys = [cell_key(c, "data1") for c in expand_cells(spec)]
    assert len(set(keys)) == 4
    assert keys == [cell_key(c, "data1") for c in expand_cells(spec)]
    assert set(keys).isdisjoint(cell_key(c, "data2") for c in expand_cells(spec))


def test_no_grid_is_one_cell_per_window() -> None:
    cells = expand_cells(parse_grid(BASE))
    assert [c.window for c in cells] == ["2019", "2020-2021"]
    assert all(c.path is None and c.overrides == () for c in cells)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({**BASE, "grdi": {}}, "unknown key"),
        ({"profile": "x"}, "windows"),
        ({**BASE, "windows": []}, "empty list"),
        ({**BASE, "grid": {"method": [1]}}, "dotted"),
        ({**BASE, "grid": {"risk.method": []}}, "empty list"),
        ({**BASE, "grid": {"risk.method": ["a"]}, "overrides": {"risk.method": "b"}}, "both fixed"),
        ({**BASE, "grid": {"risk.method": ["a", "b"]}, "heatmap": ["risk.method", "x.y"]}, "not swept"),
        ({**BASE, "montecarlo": {"paths": 0}}, "paths"),
        ({**BASE, "montecarlo": {"paths": 3, "mean_block": 0.5}}, "mean_block"),
        ({**BASE, "universes": {"a": []}}, "universe"),
    ],
)
def test_bad_grids_raise_config_errors(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_grid(raw)


def test_bad_window_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_grid({**BASE, "windows": ["20x9"]})


def test_window_forms() -> None:
    import datetime as dt

    assert window_dates("2019") == (dt.date(2019, 1, 1), dt.date(2019, 12, 31))
    assert window_dates("2019-2020") == (dt.date(2019, 1, 1), dt.date(2020, 12, 31))
    assert window_dates("2019-03-01:2019-06-30") == (dt.date(2019, 3, 1), dt.date(2019, 6, 30))


def test_load_grid_file_errors(tmp_path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_grid(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("windows = [")
    with pytest.raises(ConfigError, match="TOML"):
        load_grid(bad)
    good = tmp_path / "g.toml"
    good.write_text('config = "my.toml"\nwindows = ["2019"]\n')
    assert load_grid(good).config == str((tmp_path / "my.toml").resolve())


def test_sweep_digest_covers_prices_and_the_config_text(tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from agent.research.runner import sweep_digest

    idx = pd.bdate_range("2020-01-01", periods=5, name="date")
    frame = pd.DataFrame({"A": np.arange(1.0, 6.0)}, index=idx)
    cfg = tmp_path / "my.toml"
    cfg.write_text('profile = "default"\n')
    spec = parse_grid({"config": str(cfg), "windows": ["2019"]})
    d1 = sweep_digest(spec, frame)
    assert sweep_digest(spec, frame) == d1
    assert sweep_digest(spec, frame.assign(A=frame["A"] * 1.01)) != d1
    cfg.write_text('profile = "default"\n[execution]\ncost_bps = 10\n')
    assert sweep_digest(spec, frame) != d1
