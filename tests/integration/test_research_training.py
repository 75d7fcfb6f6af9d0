"""Distributed walk-forward builds: a model built on a Dask worker is byte-identical to the same model built in
this process (tiny profile: 1 epoch, short window)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

TINY = """\
profile = "tiny-dist"
description = "test: 1-epoch LSTM on 3 sector ETFs"
data_file = "sector_etfs_daily.csv"
tickers = ["XLK", "XLF", "XLE"]
kind = "returns"
target = "fwd_mean_simple"
horizon = 5
years = [2018, 2019]
train_start = "2014-01-01"

[features]
features = ["ret"]
lookback = 10
frequency = "daily"

[model]
units = 4
layers = 1
dropout = 0.0

[train]
lr = 0.001
batch_size = 64
max_epochs = 1
patience = 1
seed = 7
valid_frac = 0.2
input_scaler = "minmax"
target_scaler = "standard"
baseline_window = 10
"""


def test_model_bytes_do_not_depend_on_the_worker(tmp_path: Path, shared_data: Path) -> None:
    from training.distributed import build_distributed, build_job, plan_jobs

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    jobs = plan_jobs([str(cfg)])
    assert [j.train_end[:4] for j in jobs] == ["2018", "2019"]
    local = {name: data for j in jobs for name, data in build_job(j)["files"].items()}
    written = build_distributed(jobs, tmp_path / "out", workers=2, verbose=False)
    assert [p.name for p in written] == ["tiny-dist-2018-12-31.onnx", "tiny-dist-2019-12-31.onnx"]
    for name, data in local.items():
        on_disk = (tmp_path / "out" / "tiny-dist" / name).read_bytes()
        assert hashlib.sha256(on_disk).hexdigest() == hashlib.sha256(data).hexdigest(), name
    # and the models differ from each other (the comparison is not between empty files)
    a, b = (p.read_bytes() for p in written)
    assert a != b and len(a) > 1000
