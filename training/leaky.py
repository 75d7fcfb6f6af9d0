"""Models for the leakage audit (issue 13): the studies' leaky training procedures, kept out of exported_models/.

    python -m training leaky kfold        # study 000: random 5-fold on 2020-2025 weeks, same-week label,
                                          # min-max scaler fit on all the study's data
    python -m training leaky scaler-all   # sector-rnn walk-forward, but scalers fit on all data (to 2025)
    python -m training leaky onestep      # study 004's one-step LSTM (next-day return), walk-forward, leak-free

Files go to runs/leaky-models/<variant>/ (never committed). Every model trained with look-ahead carries a
``leak`` metadata entry (its procedure and, for folds, the weeks it held out); the agent's registry refuses such
a model unless a replay sets ``research.leak = ["models"]``, and then picks, for each week, the fold model that
held that week out (agent/research/leak.py). The one-step models are leak-free: study 004's leak is in how
their forecasts are averaged (``research.leak = ["quarter_mu"]``), not in their training.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agent.features import MinMaxScaler, StandardScaler, feature_matrix
from training.datasets import Dataset, ProfileConfig, load_config, load_prices, make_dataset
from training.export import export_model
from training.models import build_model
from training.train import REPO, TrainedModel, evaluate, fit, predict, set_determinism, train_one
from training.walkforward import retrain_dates

__all__ = ["VARIANTS", "build_kfold", "build_onestep", "build_scaler_all"]

OUT_ROOT = REPO / "runs" / "leaky-models"
STUDY_000_START = "2020-01-01"  # study 000: Yahoo data January 2020 .. December 2025 (ours ends 2025-06)


def _raw_inputs(prices: pd.DataFrame, cfg: ProfileConfig, ds: Dataset) -> np.ndarray:
    """The unscaled input rows of `ds` (the same slice make_dataset used), to refit a scaler on."""
    p = prices.loc[: ds.train_end]
    dates, x = feature_matrix(p, cfg.features, cfg.tickers)
    if len(dates) != len(ds.dates) or not (pd.DatetimeIndex(dates) == ds.dates).all():
        raise SystemExit("feature rows differ from the dataset's: cannot refit the scaler")
    return np.asarray(x, dtype=np.float64)


def _rescaled(ds: Dataset, x: np.ndarray, xs: MinMaxScaler, ts: StandardScaler | MinMaxScaler) -> Dataset:
    y = dict(ds.y)
    y["ret"] = np.nan_to_num(ts.transform(ds.y_raw)).astype(np.float32)
    z = np.nan_to_num(xs.transform(x)).astype(np.float32)
    return dataclasses.replace(ds, Z=z, y=y, input_scaler=xs, target_scaler=ts)


def _target_scaler(cfg: ProfileConfig, rows: np.ndarray) -> StandardScaler | MinMaxScaler:
    if cfg.train.get("target_scaler", "standard") == "minmax":
        return MinMaxScaler.fit(rows, tuple(cfg.train.get("target_range", (0.0, 1.0))))  # type: ignore[arg-type]
    return StandardScaler.fit(rows)


def _acc(prob: np.ndarray, lab: np.ndarray) -> float:
    return float(np.mean((prob >= 0.5) == (lab >= 0.5)))


def build_kfold(
    out: Path, *, folds: int = 5, seed: int = 0, epochs: int = 60, verbose: bool = False
) -> list[Path]:
    """Study 000's procedure: random k-fold over the weekly samples of 2020..data end, same-week label,
    min-max inputs and standardized targets fit on all of them. One model per fold."""
    cfg = load_config("sector-rnn")
    prices = load_prices(cfg)
    base = make_dataset(prices, cfg, prices.index[-1])
    x = _raw_inputs(prices, cfg, base)
    ends = np.union1d(base.train_idx, base.val_idx)
    ends = ends[base.dates[ends] >= pd.Timestamp(STUDY_000_START)]
    lb = base.lookback
    xs = MinMaxScaler.fit(x[ends[0] - lb + 1 : ends[-1] + 1])  # all data of the window: look-ahead
    ts = _target_scaler(cfg, base.y_raw[ends])
    ds_all = _rescaled(base, x, xs, ts)
    perm = np.random.default_rng(seed).permutation(len(ends))
    parts = [np.sort(ends[p]) for p in np.array_split(perm, folds)]
    procedure = (
        f"random {folds}-fold over the weeks {ds_all.dates[ends[0]].date()}..{ds_all.dates[ends[-1]].date()} "
        "(each fold trained on the other weeks, later ones included), same-week rebalance label, min-max "
        "input and standard target scalers fit on all of those weeks"
    )
    paths = []
    accs: list[dict[str, float]] = []
    for k, test in enumerate(parts):
        train = np.setdiff1d(ends, test)
        ds = dataclasses.replace(
            ds_all,
            train_idx=train,
            val_idx=test,
            train_start=pd.Timestamp(ds_all.dates[ends[0] - lb + 1]),
            valid_from=pd.Timestamp(ds_all.dates[test[0]]),
        )
        set_determinism(seed + k)
        model = build_model(cfg.kind, ds.n_inputs, ds.n_outputs, cfg.model)
        # fixed epochs, no selection on the held-out fold (validation = the training weeks)
        res = fit(
            model,
            ds,
            train,
            train,
            reb_key="reb_same",
            params={"max_epochs": epochs, "patience": epochs},
            desc=f"kfold{k}",
            verbose=verbose,
        )
        _, prob = predict(model, ds, test)
        assert prob is not None
        same, nxt = ds.y["reb_same"][test], ds.y["reb"][test]
        fold_m = {
            "accuracy_same_week": _acc(prob, same),
            "accuracy_next_week": _acc(prob, nxt),
            "majority_same_week": float(max(np.mean(same), 1 - np.mean(same))),
            "n_test": float(len(test)),
        }
        accs.append(fold_m)
        metrics: dict[str, Any] = {"val": evaluate(model, ds, test), "heldout_fold": fold_m, "fold": k}
        tm = TrainedModel(model, ds, res, metrics)
        leak = {"procedure": procedure, "fold": k, "heldout": [str(ds.dates[i].date()) for i in test]}
        paths.append(
            export_model(tm, out, model_id=f"sector-rnn-kfold{k}", extra_meta={"leak": json.dumps(leak)})
        )
    summary = {k: float(np.mean([a[k] for a in accs])) for k in accs[0]}
    (out / "kfold_summary.json").write_text(json.dumps({"folds": accs, "mean": summary}, indent=2) + "\n")
    return paths


def build_scaler_all(out: Path, *, verbose: bool = False) -> list[Path]:
    """sector-rnn as shipped (walk-forward, next-week label, time-ordered validation) except that the input and
    target scalers are fit on all the data to its end, years after each model's train_end."""
    cfg = load_config("sector-rnn")
    prices = load_prices(cfg)
    full = make_dataset(prices, cfg, prices.index[-1])
    x_full = _raw_inputs(prices, cfg, full)
    ends = np.union1d(full.train_idx, full.val_idx)
    xs = MinMaxScaler.fit(x_full[ends[0] - full.lookback + 1 : ends[-1] + 1])
    ts = _target_scaler(cfg, full.y_raw[ends])
    leak = {
        "procedure": f"min-max input and standard target scalers fit on all data to {full.train_end.date()}"
    }
    paths = []
    for te in retrain_dates(prices.index, cfg, "yearly"):
        ds = make_dataset(prices, cfg, te)
        ds = _rescaled(ds, _raw_inputs(prices, cfg, ds), xs, ts)
        set_determinism(int(cfg.t("seed", 7)))
        model = build_model(cfg.kind, ds.n_inputs, ds.n_outputs, cfg.model)
        res = fit(model, ds, desc=f"scaler-all-{te.date()}", verbose=verbose)
        tm = TrainedModel(model, ds, res, {"val": evaluate(model, ds)})
        paths.append(
            export_model(
                tm, out, model_id=f"sector-rnn-scalerall-{te.date()}", extra_meta={"leak": json.dumps(leak)}
            )
        )
    return paths


def build_onestep(out: Path, *, verbose: bool = False) -> list[Path]:
    """Study 004's LSTM as the study uses it: a one-step (next-day return) forecaster, walk-forward yearly."""
    cfg = load_config("djia-lstm-garch")
    cfg = cfg.replace(
        target="fwd_mean_simple",
        horizon=1,
        description="Study 004's one-step LSTM: next-day simple return (for the leakage audit)",
        deviations=(
            "One-step target, as in the study; leak-free training (walk-forward, train-part scalers).",
        ),
    )
    prices = load_prices(cfg)
    paths = []
    for te in retrain_dates(prices.index, cfg, "yearly"):
        tm = train_one(cfg, prices, te, verbose=verbose)
        paths.append(export_model(tm, out, model_id=f"djia-lstm-garch-onestep-{te.date()}"))
    return paths


VARIANTS = {
    "kfold": ("sector-rnn-kfold", build_kfold),
    "scaler-all": ("sector-rnn-scaler-all", build_scaler_all),
    "onestep": ("djia-lstm-garch-onestep", build_onestep),
}


def build(variant: str, out_root: Path | None = None, *, verbose: bool = False) -> list[Path]:
    name, fn = VARIANTS[variant]
    out = (out_root or OUT_ROOT) / name
    if (REPO / "exported_models").resolve() in [out.resolve(), *out.resolve().parents]:
        raise SystemExit("leaky models never go into exported_models/")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    paths = fn(out, verbose=verbose)
    print(
        f"[leaky {variant}] wrote {len(paths)} models to {out} in {time.perf_counter() - t0:.0f}s", flush=True
    )
    return paths
