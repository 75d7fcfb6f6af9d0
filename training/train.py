"""Training loop, validation metrics and the walk-forward driver.

Deterministic by construction: one thread, fixed seeds, `torch.use_deterministic_algorithms(True)`, shuffling
from a seeded numpy Generator. Early stopping watches the time-ordered validation split (never a random one).
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from agent.forecast import mean_daily_simple
from training.datasets import Dataset, ProfileConfig, make_dataset, window_batch
from training.losses import bce_mse, drawdown_loss, mse
from training.models import build_model
from training.skill import DEFAULT_LAG, book_skill, overlap_stride, validation_skill

__all__ = [
    "FitResult",
    "TrainedModel",
    "evaluate",
    "fit",
    "predict",
    "return_skill",
    "set_determinism",
    "skill_window",
    "train_one",
]

REPO = Path(__file__).resolve().parent.parent


def set_determinism(seed: int) -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    seconds: float


def _batches(idx: np.ndarray, bs: int, rng: np.random.Generator, contiguous: bool) -> Iterator[np.ndarray]:
    if contiguous:  # time-ordered chunks (the allocator's cost term needs consecutive sessions)
        chunks = [idx[i : i + bs] for i in range(0, len(idx), bs)]
        for k in rng.permutation(len(chunks)):
            yield chunks[k]
    else:
        perm = rng.permutation(idx)
        for i in range(0, len(perm), bs):
            yield perm[i : i + bs]


def _loss(model: torch.nn.Module, ds: Dataset, ends: np.ndarray, reb_key: str = "reb") -> torch.Tensor:
    cfg = ds.cfg
    x = torch.from_numpy(window_batch(ds.Z, ends, ds.lookback))
    if cfg.kind == "returns":
        return mse(model(x), torch.from_numpy(ds.y["ret"][ends]))
    if cfg.kind == "rebalance_returns":
        logit, ret = model.logits(x)  # type: ignore[operator]
        lab = torch.from_numpy(ds.y[reb_key][ends].astype(np.float32))
        return bce_mse(
            logit, lab, ret, torch.from_numpy(ds.y["ret"][ends]), float(cfg.loss.get("bce_weight", 1.0))
        )
    w = model(x)
    nxt = torch.from_numpy(ds.y["next"][ends].astype(np.float32))
    return drawdown_loss(w, nxt, float(cfg.loss.get("lam", 20.0)), float(cfg.loss.get("cost", 0.001)))


def _progress_enabled() -> bool:
    return not os.environ.get("AGENT_NO_PROGRESS") and sys.stderr.isatty()


def fit(
    model: torch.nn.Module,
    ds: Dataset,
    train_idx: np.ndarray | None = None,
    val_idx: np.ndarray | None = None,
    *,
    reb_key: str = "reb",
    params: dict[str, Any] | None = None,
    desc: str = "",
    verbose: bool = True,
) -> FitResult:
    """Adam + early stopping on the validation loss; restores the best epoch's weights."""
    p = {**ds.cfg.train, **(params or {})}
    seed = int(p.get("seed", 7))
    set_determinism(seed)
    rng = np.random.default_rng(seed)
    tr = ds.train_idx if train_idx is None else train_idx
    va = ds.val_idx if val_idx is None else val_idx
    opt = torch.optim.Adam(model.parameters(), lr=float(p.get("lr", 1e-3)))
    bs, clip = int(p.get("batch_size", 32)), float(p.get("grad_clip", 1.0))
    max_epochs, patience = int(p.get("max_epochs", 30)), int(p.get("patience", 5))
    contiguous = ds.cfg.kind == "weights"
    best, best_epoch, best_state, bad = float("inf"), -1, copy.deepcopy(model.state_dict()), 0
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    bar = tqdm(range(max_epochs), desc=desc or ds.cfg.profile, leave=False, disable=not _progress_enabled())
    for epoch in bar:
        model.train()
        tot, n = 0.0, 0
        for b in _batches(tr, bs, rng, contiguous):
            opt.zero_grad()
            loss = _loss(model, ds, b, reb_key)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{desc or ds.cfg.profile}: non-finite training loss at epoch {epoch + 1}"
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            tot += float(loss.detach()) * len(b)
            n += len(b)
        model.eval()
        with torch.no_grad():
            vl = float(_loss(model, ds, va, reb_key)) if not contiguous else _chunked_val(model, ds, va, bs)
        rec = {"epoch": epoch + 1, "train_loss": tot / max(n, 1), "val_loss": vl}
        history.append(rec)
        bar.set_postfix(train=f"{rec['train_loss']:.5f}", val=f"{vl:.5f}")
        if verbose:
            tqdm.write(
                f"  {desc or ds.cfg.profile} epoch {epoch + 1:3d} train {rec['train_loss']:.6f} val {vl:.6f}"
            )
        if vl < best - 1e-9:
            best, best_epoch, best_state, bad = vl, epoch + 1, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(history, best_epoch, best, time.perf_counter() - t0)


def _chunked_val(model: torch.nn.Module, ds: Dataset, va: np.ndarray, bs: int) -> float:
    """Validation loss of the allocator on the same contiguous chunking as training."""
    losses = [float(_loss(model, ds, va[i : i + bs])) * len(va[i : i + bs]) for i in range(0, len(va), bs)]
    return sum(losses) / len(va)


def predict(model: torch.nn.Module, ds: Dataset, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw model outputs: (returns or weights, rebalance prob or None)."""
    with torch.no_grad():
        x = torch.from_numpy(window_batch(ds.Z, ends, ds.lookback))
        out = model(x)
    if isinstance(out, tuple):
        return out[1].numpy().astype(np.float64), out[0].numpy()[:, 0].astype(np.float64)
    return out.numpy().astype(np.float64), None


def _acc(prob: np.ndarray, lab: np.ndarray) -> float:
    return float(np.mean((prob >= 0.5) == (lab >= 0.5)))


def evaluate(
    model: torch.nn.Module, ds: Dataset, idx: np.ndarray | None = None, *, lag: int = DEFAULT_LAG
) -> dict[str, float]:
    """Validation metrics in raw units, next to naive baselines (zero and rolling-mean forecasts).

    ``lag``: sessions from a forecast's close to the close it is traded at (``execution.lag_sessions``); the
    ``skill_*`` metrics score the returns the book earns from there (`return_skill`).
    """
    idx = ds.val_idx if idx is None else idx
    out, prob = predict(model, ds, idx)
    m: dict[str, float] = {"n": float(len(idx))}
    if ds.cfg.kind == "weights":
        r = ds.y["next"][idx]
        cost = float(ds.cfg.loss.get("cost", 0.001))
        turn = np.r_[0.0, np.abs(np.diff(out, axis=0)).sum(axis=1)]
        rp = (out * r).sum(axis=1) - cost * turn
        ew = r.mean(axis=1)
        m.update(
            mean_daily_return=float(rp.mean()),
            sharpe_ann=float(rp.mean() / rp.std() * np.sqrt(252)) if rp.std() > 0 else 0.0,
            ew_mean_daily_return=float(ew.mean()),
            ew_sharpe_ann=float(ew.mean() / ew.std() * np.sqrt(252)) if ew.std() > 0 else 0.0,
            mean_turnover=float(turn[1:].mean()) if len(turn) > 1 else 0.0,
            max_weight_mean=float(out.max(axis=1).mean()),
        )
        return m
    pred = ds.target_scaler.inverse_transform(out) if ds.target_scaler is not None else out
    true = ds.y_raw[idx]
    base = np.nan_to_num(ds.baseline[idx])
    mse_m = float(np.mean((pred - true) ** 2))
    mse_0 = float(np.mean(true**2))
    mse_b = float(np.mean((base - true) ** 2))
    m.update(
        mse=mse_m,
        mse_zero=mse_0,
        mse_rolling_mean=mse_b,
        r2_vs_zero=1.0 - mse_m / mse_0 if mse_0 > 0 else 0.0,
        r2_vs_rolling_mean=1.0 - mse_m / mse_b if mse_b > 0 else 0.0,
        hit_rate=float(np.mean(np.sign(pred) == np.sign(true))),
        mean_ic=_mean_ic(pred, true),
    )
    m.update(return_skill(ds, idx, pred, lag))  # issue 9: the allocation's skill prior
    if prob is not None:
        lab = ds.y["reb"][idx]
        same = ds.y["reb_same"][idx]
        br = float(np.mean(lab))
        m.update(
            accuracy_next_week=_acc(prob, lab),
            base_rate=br,
            majority_accuracy=max(br, 1 - br),
            persistence_accuracy=float(
                np.nanmean(np.where(np.isfinite(same), (same >= 0.5) == (lab >= 0.5), np.nan))
            ),
            brier=float(np.mean((prob - lab) ** 2)),
        )
    return m


def return_skill(ds: Dataset, idx: np.ndarray, pred: np.ndarray, lag: int = DEFAULT_LAG) -> dict[str, float]:
    """Skill of the return forecasts ``pred`` (raw target units) made at rows ``idx``, the agent's prior.

    ``skill_*``: against the returns the book earns, close t+lag .. t+lag+h from the daily closes (weekly models
    too), the forecast converted to mean daily simple returns as the agent converts it; samples whose window
    runs past train_end are dropped. ``skill_target_*``: the same metrics against the training target.
    """
    h = ds.cfg.horizon
    base = np.nan_to_num(ds.baseline[idx])
    target = validation_skill(pred, ds.y_raw[idx], base, h, overlap_stride(ds.row_session[idx], h))
    out = book_skill(
        mean_daily_simple(pred, ds.cfg.target, h),
        ds.closes,
        ds.row_session[idx],
        horizon=h,
        lag=lag,
        baseline=mean_daily_simple(base, ds.cfg.target, h),
    )
    out.update({"skill_target" + k.removeprefix("skill"): v for k, v in target.items()})
    return out


def _mean_ic(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean cross-sectional Pearson correlation of forecasts with outcomes (0 when undefined)."""
    if pred.shape[1] < 3:
        return float("nan")
    pc = pred - pred.mean(axis=1, keepdims=True)
    tc = true - true.mean(axis=1, keepdims=True)
    den = np.sqrt((pc**2).sum(axis=1) * (tc**2).sum(axis=1))
    ok = den > 0
    return float(np.mean((pc * tc).sum(axis=1)[ok] / den[ok])) if ok.any() else 0.0


@dataclass
class TrainedModel:
    model: torch.nn.Module
    ds: Dataset
    fit: FitResult
    metrics: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def _cv_accuracy(ds: Dataset, reb_key: str, folds: int, params: dict[str, Any]) -> list[float]:
    """Time-ordered expanding-window folds (study 000 used k-fold; a random k-fold would leak the future)."""
    ends = np.concatenate([ds.train_idx, ds.val_idx])
    blocks = np.array_split(ends, folds + 1)
    accs = []
    for k in range(1, folds + 1):
        past = np.concatenate(blocks[:k])
        nv = max(8, len(past) // 5)
        tr, va, te = past[:-nv], past[-nv:], blocks[k]
        if len(tr) < 20:
            continue
        model = build_model(ds.cfg.kind, ds.n_inputs, ds.n_outputs, ds.cfg.model)
        fit(model, ds, tr, va, reb_key=reb_key, params=params, desc=f"cv{k}-{reb_key}", verbose=False)
        _, prob = predict(model, ds, te)
        assert prob is not None
        accs.append(_acc(prob, ds.y[reb_key][te]))
    return accs


def skill_window(cfg: ProfileConfig, lag: int = DEFAULT_LAG) -> str:
    """What the ``skill_*`` and ``skill_target_*`` metrics score (stored in the metadata and the model card)."""
    h = cfg.horizon
    target = (
        f"the mean daily simple return close t .. t+{h}"
        if cfg.target == "fwd_mean_simple"
        else "the next weekly row's log return"
    )
    return (
        f"skill_* (the agent's validation prior): the forecast made at close t, as a mean daily simple return, vs "
        f"the mean daily simple return the book earns, close t+{lag} .. t+{lag + h} (execution lag {lag}, horizon "
        f"{h} sessions, daily closes), samples whose window ends after train_end dropped; skill_target_*: the "
        f"same metrics vs the training target, {target}"
    )


def train_one(
    cfg: ProfileConfig,
    prices: pd.DataFrame,
    train_end: str | pd.Timestamp,
    *,
    verbose: bool = True,
    lag: int = DEFAULT_LAG,
) -> TrainedModel:
    """Train the model whose data ends at `train_end`; metrics on the time-ordered validation split (the skill
    prior on the returns the book earns with execution lag ``lag``)."""
    ds = make_dataset(prices, cfg, train_end)
    set_determinism(int(cfg.t("seed", 7)))
    model = build_model(cfg.kind, ds.n_inputs, ds.n_outputs, cfg.model)
    res = fit(model, ds, desc=f"{cfg.profile}-{ds.train_end.date()}", verbose=verbose)
    metrics: dict[str, Any] = {
        "val": evaluate(model, ds, lag=lag),
        "train": evaluate(model, ds, ds.train_idx, lag=lag),
        "best_epoch": res.best_epoch,
        "epochs_run": len(res.history),
        "best_val_loss": res.best_val_loss,
        "n_train": len(ds.train_idx),
        "n_val": len(ds.val_idx),
    }
    if cfg.kind == "rebalance_returns":
        # the study's "same-week" label (computable from the inputs), trained the same way, for comparison only
        same = build_model(cfg.kind, ds.n_inputs, ds.n_outputs, cfg.model)
        fit(same, ds, reb_key="reb_same", desc="same-week", verbose=False)
        _, prob = predict(same, ds, ds.val_idx)
        assert prob is not None
        metrics["val"]["accuracy_same_week_model"] = _acc(prob, ds.y["reb_same"][ds.val_idx])
        folds = int(cfg.rebalance.get("cv_folds", 5))
        cv_next = _cv_accuracy(ds, "reb", folds, {})
        cv_same = _cv_accuracy(ds, "reb_same", folds, {})
        metrics["cv"] = {
            "scheme": f"{folds} time-ordered expanding-window folds",
            "accuracy_next_week_per_fold": cv_next,
            "accuracy_next_week_mean": float(np.mean(cv_next)) if cv_next else None,
            "accuracy_same_week_per_fold": cv_same,
            "accuracy_same_week_mean": float(np.mean(cv_same)) if cv_same else None,
        }
    if cfg.kind != "weights":
        metrics["skill_window"] = skill_window(cfg, lag)
    # (training time is logged, not stored: it would make rebuilt files differ)
    return TrainedModel(model, ds, res, metrics)
