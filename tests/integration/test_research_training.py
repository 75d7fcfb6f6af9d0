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


def test_distributed_tune_trials_match_local_and_resume(tmp_path: Path, shared_data: Path) -> None:
    """Optuna trials run on Dask workers give the loss the same setting gives in this process; with a storage
    URL a rerun resumes the study instead of starting over."""
    from training.distributed_tune import evaluate_trial, tune_distributed

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    db = f"sqlite:///{tmp_path / 'study.db'}"
    kw = {"max_epochs": 1, "workers": 1, "storage": db, "study_name": "t", "verbose": False}
    first = tune_distributed(str(cfg), trials=2, train_end="2018-12-31", **kw)
    assert len(first["trials"]) == 2
    again = tune_distributed(str(cfg), trials=3, train_end="2018-12-31", **kw)
    assert len(again["trials"]) == 3 and again["trials"][:2] == first["trials"]
    t0 = first["trials"][0]
    assert evaluate_trial(str(cfg), "2018-12-31", t0["params"], 1) == t0["val_loss"]
