"""Walk-forward orchestration: which dates to retrain on, and train + export one model per date.

Why its own module: it is the only place that needs both the trainer (:mod:`training.train`) and the exporter
(:mod:`training.export`, which needs the trainer's :class:`TrainedModel`). Kept apart, the dependencies run one
way — walkforward → export → train — and there is no import cycle.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from training.datasets import ProfileConfig, load_config, load_prices
from training.export import export_model, write_card
from training.train import REPO, train_one

__all__ = ["build_profile", "retrain_dates"]


def retrain_dates(
    index: pd.Index, cfg: ProfileConfig, cadence: str, start: str | None = None
) -> list[pd.Timestamp]:
    """train_end dates: 'yearly' = last session of each configured year that has a following session (the
    model is used in the next year); 'every-N' = the session before each block of N sessions from `start`."""
    index = pd.DatetimeIndex(index)
    out: list[pd.Timestamp] = []
    if cadence == "yearly":
        for y in cfg.years:
            pos = int(index.searchsorted(pd.Timestamp(f"{y}-12-31"), side="right"))
            if 0 < pos < len(index):
                out.append(pd.Timestamp(index[pos - 1]))
        return out
    if cadence.startswith("every-"):
        n = int(cadence.split("-", 1)[1])
        first = int(index.searchsorted(pd.Timestamp(start or "2020-01-01")))
        for pos in range(max(first, 1), len(index), n):
            out.append(pd.Timestamp(index[pos - 1]))
        return out
    raise SystemExit(f"unknown cadence {cadence!r} (yearly or every-N)")


def build_profile(
    profile: str,
    *,
    cadence: str = "yearly",
    window: int | None = None,
    start: str | None = None,
    out_root: Path | None = None,
    only: list[str] | None = None,
    verbose: bool = True,
) -> list[Path]:
    """Walk-forward: train and export one model per retrain date into <out_root>/<profile>/."""
    cfg = load_config(profile)
    if window is not None:
        cfg = cfg.replace(window=window)
    prices = load_prices(cfg)
    out_dir = (out_root or REPO / "exported_models") / cfg.profile
    paths = []
    for te in retrain_dates(prices.index, cfg, cadence, start):
        if only and str(te.date()) not in only and str(te.year) not in only:
            continue
        t0 = time.perf_counter()
        tm = train_one(cfg, prices, te, verbose=verbose)
        path = export_model(tm, out_dir, cadence=cadence)
        write_card(tm, path, cadence=cadence)
        v = tm.metrics["val"]
        brief = {
            k: round(v[k], 6)
            for k in ("mse", "mse_zero", "r2_vs_zero", "accuracy_next_week", "sharpe_ann")
            if k in v
        }
        print(f"[{cfg.profile}] wrote {path.name} in {time.perf_counter() - t0:.1f}s val {brief}", flush=True)
        paths.append(path)
    return paths
