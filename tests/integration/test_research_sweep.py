"""`agent sweep` on real prices: a 2-worker LocalCluster equals the serial run cell for cell; a client killed
half-way (SIGKILL) resumes and runs only the missing cells; a failing cell is recorded and the sweep goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

# 8 small cells: two half-year windows x allocation x risk estimator, cheap (no models, no GARCH)
GRID = """\
profile = "equal-weight"
prices = "{prices}"
windows = ["2019-01-01:2019-06-30", "2019-07-01:2019-12-31"]
heatmap = ["allocation.method", "risk.method"]

[grid]
"allocation.method" = ["equal_weight", "min_variance"]
"risk.method" = ["ewma", "sample"]

[overrides]
"backtest.baselines" = ["equal_weight"]
"""
VOLATILE = ["replay_s", "cell_s", "worker"]


def _grid(tmp: Path, shared: Path, extra: str = "") -> Path:
    g = tmp / "grid.toml"
    g.write_text(GRID.format(prices=shared / "sector_etfs_daily.csv") + extra)
    return g


def _stable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=VOLATILE).reset_index(drop=True)


@pytest.fixture(scope="module")
def serial_table(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> pd.DataFrame:
    from agent.research.grid import load_grid
    from agent.research.runner import run_sweep

    tmp = tmp_path_factory.mktemp("serial")
    res = run_sweep(load_grid(_grid(tmp, shared_data)), tmp / "out", scheduler="serial")
    assert res.n_cells == 8 and res.n_run == 8 and res.n_failed == 0
    return pd.read_parquet(tmp / "out" / "sweep.parquet")


def test_two_worker_cluster_equals_serial(
    serial_table: pd.DataFrame, tmp_path: Path, shared_data: Path, isolated_env: Path
) -> None:
    from agent.research.grid import load_grid
    from agent.research.runner import run_sweep

    res = run_sweep(load_grid(_grid(tmp_path, shared_data)), tmp_path / "out", workers=2)
    assert res.workers == 2 and res.n_run == 8 and res.n_failed == 0
    dask_table = pd.read_parquet(tmp_path / "out" / "sweep.parquet")
    assert (serial_table["status"] == "ok").all()
    pd.testing.assert_frame_equal(_stable(dask_table), _stable(serial_table))
    assert dask_table["worker"].nunique() >= 1
    # the cells really differ (the comparison is not between constant rows)
    assert serial_table["m.strategy.sharpe"].nunique() > 2
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["best"]["n_trials"] == 8 and 0.0 <= summary["best"]["dsr"] <= 1.0
    assert "Net Sharpe" in (tmp_path / "out" / "summary.html").read_text()
    # a rerun finds every cell stored and runs nothing
    again = run_sweep(load_grid(_grid(tmp_path, shared_data)), tmp_path / "out", scheduler="serial")
    assert again.n_run == 0 and again.n_skipped == 8


def test_killed_sweep_resumes_only_missing_cells(
    serial_table: pd.DataFrame, tmp_path: Path, shared_data: Path
) -> None:
    from agent.research.grid import load_grid
    from agent.research.runner import run_sweep

    grid = _grid(tmp_path, shared_data)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update(AGENT_NO_PROGRESS="1", AGENT_SHARED_DATA=str(shared_data), AGENT_DATA_DIR=str(tmp_path / "d"))
    env["AGENT_STATE_DIR"] = str(tmp_path / "s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "sweep", str(grid), "--out", str(out), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the kill takes the client and its workers
    )
    cells = out / "cells"
    deadline = time.monotonic() + 240
    try:
        while not (cells.is_dir() and any(cells.glob("*.json"))):
            if proc.poll() is not None:
                pytest.fail(f"sweep exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no cell finished within 240 s")
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    done = {p.stem for p in cells.glob("*.json")}
    assert 1 <= len(done) < 8, f"kill came too late to test a resume: {len(done)} cells stored"
    assert not (out / "sweep.parquet").exists()
    ran: list[str] = []
    res = run_sweep(load_grid(grid), out, scheduler="serial", on_record=lambda r: ran.append(r["key"]))
    assert res.n_skipped == len(done) and res.n_run == 8 - len(done)
    assert set(ran).isdisjoint(done) and len(ran) == 8 - len(done)
    pd.testing.assert_frame_equal(_stable(pd.read_parquet(out / "sweep.parquet")), _stable(serial_table))


def test_failing_cell_is_recorded_and_the_sweep_goes_on(tmp_path: Path, shared_data: Path) -> None:
    from agent.research.grid import load_grid
    from agent.research.runner import run_sweep

    g = tmp_path / "grid.toml"
    g.write_text(
        f'profile = "equal-weight"\nprices = "{shared_data / "sector_etfs_daily.csv"}"\n'
        'windows = ["2019-01-01:2019-03-31", "1950"]\n[grid]\n"risk.ewma_lambda" = [0.94, 1.5]\n'
    )
    res = run_sweep(load_grid(g), tmp_path / "out", scheduler="serial")
    df = pd.read_parquet(tmp_path / "out" / "sweep.parquet")
    assert res.n_cells == 4 and res.n_failed == 3
    assert df["status"].tolist() == ["ok", "error", "error", "error"]
    errs = df["error"].tolist()
    assert "ewma_lambda" in errs[1] and "outside the data" in errs[2]
    assert all("\n" not in e for e in errs)


def test_cli_sweep_bad_grid_is_one_line_exit_2(tmp_path: Path) -> None:
    g = tmp_path / "g.toml"
    g.write_text('profile = "equal-weight"\nwindows = ["2019"]\ntypo = 1\n')
    p = subprocess.run(
        [sys.executable, "-m", "agent", "sweep", str(g), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "unknown key" in p.stderr
    assert not (tmp_path / "o").exists()


def test_existing_cluster_by_address_and_by_dask_config(
    serial_table: pd.DataFrame, tmp_path: Path, shared_data: Path
) -> None:
    """--scheduler ADDRESS and Dask's `scheduler-address` config both use the cluster that is already running."""
    import dask
    from distributed import LocalCluster

    from agent.research.grid import load_grid
    from agent.research.runner import run_sweep

    spec = load_grid(_grid(tmp_path, shared_data))
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        res = run_sweep(spec, tmp_path / "a", scheduler=cluster.scheduler_address)
        assert res.workers == 1 and res.n_run == 8
        with dask.config.set({"scheduler-address": cluster.scheduler_address}):
            res2 = run_sweep(spec, tmp_path / "b")
        assert res2.workers == 1 and res2.n_run == 8
        # the cluster outlives the sweeps (the sweep closes only clusters it started)
        assert cluster.status.name == "running"
    for d in ("a", "b"):
        pd.testing.assert_frame_equal(
            _stable(pd.read_parquet(tmp_path / d / "sweep.parquet")), _stable(serial_table)
        )


def test_cli_every_cell_failing_exits_1_and_bad_flags_exit_2(tmp_path: Path, shared_data: Path) -> None:
    g = tmp_path / "g.toml"
    g.write_text(
        f'profile = "equal-weight"\nprices = "{shared_data / "sector_etfs_daily.csv"}"\nwindows = ["1950"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update(AGENT_NO_PROGRESS="1", AGENT_SHARED_DATA=str(shared_data), AGENT_DATA_DIR=str(tmp_path / "d"))
    run = [sys.executable, "-m", "agent", "sweep", str(g), "--out", str(tmp_path / "o")]
    p = subprocess.run([*run, "--scheduler", "serial"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr
    assert "every cell failed" in p.stderr and "1 failed" in p.stdout
    assert pd.read_parquet(tmp_path / "o" / "sweep.parquet")["error"].str.contains("outside the data").all()
    p = subprocess.run(
        [*run, "--scheduler", "serial", "--workers", "2"], env=env, capture_output=True, text=True
    )
    assert p.returncode == 2 and "cannot be combined" in p.stderr
