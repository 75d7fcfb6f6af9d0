"""Validation skill of a return forecaster, measured the way the agent measures it live.

Why: the agent moves weights only as far as a model's measured skill earns (issue 9). The prior for that skill
is the model's own walk-forward validation record, stored in its ONNX metadata (the ``metrics`` JSON) and its
model card. The numbers here are what `agent.skill` reads back as the prior:

* ``skill_ic_cs``: mean cross-sectional Pearson IC of forecast vs realized horizon return (one per date);
* ``skill_ic_cs_se``: its standard error with overlapping horizons accounted for (dates are sampled every
  ``horizon`` rows, so the IC series used for the error is not overlapping);
* ``skill_n_eff``: the number of non-overlapping dates that error rests on; ``skill_ic_cs_t``: IC / se;
* ``skill_ic_ts``: mean over assets of the time-series correlation of forecast vs realized;
* ``skill_hit_rate``: sign agreement; ``skill_mse_vs_zero`` / ``skill_mse_vs_rolling_mean``: MSE ratios
  (below 1 beats the naive forecast);
* ``skill_beta``: the pooled regression slope of the realized return on the forecast (cross-sectionally
  demeaned); 1 means calibrated, 0 means the forecast's spread carries no information.

Pure numpy; no torch, so the agent's tests can call it on synthetic data.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cross_sectional_ic", "validation_skill"]


def cross_sectional_ic(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-row Pearson correlation across assets (NaN where a row has no spread)."""
    p = np.asarray(pred, dtype=float)
    t = np.asarray(true, dtype=float)
    pc = p - p.mean(axis=1, keepdims=True)
    tc = t - t.mean(axis=1, keepdims=True)
    den = np.sqrt((pc**2).sum(axis=1) * (tc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (pc * tc).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def _ts_ic(pred: np.ndarray, true: np.ndarray) -> float:
    pc = pred - pred.mean(axis=0, keepdims=True)
    tc = true - true.mean(axis=0, keepdims=True)
    den = np.sqrt((pc**2).sum(axis=0) * (tc**2).sum(axis=0))
    ok = den > 0
    return float(np.mean((pc * tc).sum(axis=0)[ok] / den[ok])) if ok.any() else 0.0


def validation_skill(
    pred: np.ndarray, true: np.ndarray, baseline: np.ndarray | None = None, horizon: int = 1
) -> dict[str, float]:
    """Skill metrics of forecasts ``pred`` (rows = dates, cols = assets) against realized ``true``."""
    p = np.asarray(pred, dtype=float)
    t = np.asarray(true, dtype=float)
    h = max(int(horizon), 1)
    out: dict[str, float] = {}
    ic = cross_sectional_ic(p, t) if p.shape[1] >= 3 else np.full(len(p), np.nan)
    ic_ok = ic[np.isfinite(ic)]
    sub = ic[::h]
    sub = sub[np.isfinite(sub)]
    n_eff = len(sub)
    se = float(np.std(sub, ddof=1) / np.sqrt(n_eff)) if n_eff > 1 else float("nan")
    mean_ic = float(ic_ok.mean()) if len(ic_ok) else 0.0
    pc = p - p.mean(axis=1, keepdims=True)
    tc = t - t.mean(axis=1, keepdims=True)
    var_p = float(np.sum(pc**2))
    mse = float(np.mean((p - t) ** 2))
    mse0 = float(np.mean(t**2))
    out.update(
        skill_n=float(len(p)),
        skill_n_eff=float(n_eff),
        skill_horizon=float(h),
        skill_ic_cs=mean_ic,
        skill_ic_cs_se=se,
        skill_ic_cs_t=mean_ic / se if se and np.isfinite(se) and se > 0 else 0.0,
        skill_ic_ts=_ts_ic(p, t),
        skill_hit_rate=float(np.mean(np.sign(p) == np.sign(t))),
        skill_mse_vs_zero=mse / mse0 if mse0 > 0 else float("nan"),
        skill_beta=float(np.sum(pc * tc) / var_p) if var_p > 0 else 0.0,
        skill_pred_cs_std=float(np.mean(np.std(p, axis=1))),
        skill_true_cs_std=float(np.mean(np.std(t, axis=1))),
    )
    if baseline is not None:
        b = np.nan_to_num(np.asarray(baseline, dtype=float))
        mse_b = float(np.mean((b - t) ** 2))
        out["skill_mse_vs_rolling_mean"] = mse / mse_b if mse_b > 0 else float("nan")
    return out
