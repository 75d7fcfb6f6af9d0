"""Validation skill of a return forecaster, measured the way the agent measures it live.

Why: the agent moves weights only as far as a model's measured skill earns (issue 9). The prior for that skill
is the model's own walk-forward validation record, stored in its ONNX metadata (the ``metrics`` JSON) and its
model card. The numbers here are what `agent.skill` reads back as the prior.

Which window (the book's, as the live tracker): a forecast made at close t is traded at close t+lag
(``execution.lag_sessions``, 1 in every profile) and held ``h`` sessions, so the book earns close t+lag ..
close t+lag+h. The ``skill_*`` keys score each validation forecast, converted to a mean daily simple return as
the agent converts it, against the mean daily simple return over that window, computed from *daily* closes even
for weekly-feature models (`agent.skill.tracker.SkillTracker.mature` scores live forecasts the same way). A
sample whose window ends after the last close the model may see (its ``train_end``) is dropped, never filled.
The same metrics against the training target (close t .. t+h, or the next weekly row) are kept as
``skill_target_*``: they credit the model with returns the book cannot earn from its first ``lag`` sessions.

* ``skill_ic_cs``: mean cross-sectional Pearson IC of forecast vs realized horizon return (one per date);
* ``skill_ic_cs_se``: its standard error with overlapping horizons accounted for (dates are sampled every
  ``horizon`` rows, so the IC series used for the error is not overlapping);
* ``skill_n_eff``: the number of non-overlapping dates that error rests on; ``skill_ic_cs_t``: IC / se;
* ``skill_ic_ts``: mean over assets of the time-series correlation of forecast vs realized;
* ``skill_hit_rate``: sign agreement; ``skill_mse_vs_zero`` / ``skill_mse_vs_rolling_mean``: MSE ratios
  (below 1 beats the naive forecast; on the book window they compare the forecast, in mean daily simple return,
  with a window it was not trained on — the training-target ratios are ``skill_target_mse_*``);
* ``skill_beta``: the pooled regression slope of the realized return on the forecast (cross-sectionally
  demeaned); 1 means calibrated, 0 means the forecast's spread carries no information.

Pure numpy; no torch, so the agent's tests can call it on synthetic data.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_LAG",
    "book_skill",
    "cross_sectional_ic",
    "overlap_stride",
    "tradable_returns",
    "validation_skill",
]

DEFAULT_LAG = 1  # execution.lag_sessions of every shipped agent profile


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


def overlap_stride(rows: np.ndarray, horizon: int) -> int:
    """How many sample rows a ``horizon``-session window spans: the step between samples whose windows do not
    overlap. ``rows`` are the samples' daily positions (1 apart for daily models, ~5 for weekly ones), so a weekly
    model's consecutive samples are already independent at h = 5 (stride 1), a daily model's h apart."""
    r = np.asarray(rows, dtype=float)
    spacing = float(np.median(np.diff(r))) if len(r) > 1 else 1.0
    return max(1, int(np.ceil(max(int(horizon), 1) / max(spacing, 1.0) - 1e-9)))


def validation_skill(
    pred: np.ndarray,
    true: np.ndarray,
    baseline: np.ndarray | None = None,
    horizon: int = 1,
    stride: int | None = None,
) -> dict[str, float]:
    """Skill metrics of forecasts ``pred`` (rows = dates, cols = assets) against realized ``true``.

    ``stride``: rows between non-overlapping samples for the IC's standard error (default ``horizon``, right
    for daily rows; `overlap_stride` gives it from the samples' positions)."""
    p = np.asarray(pred, dtype=float)
    t = np.asarray(true, dtype=float)
    h = max(int(horizon), 1)
    k = h if stride is None else max(int(stride), 1)
    out: dict[str, float] = {}
    ic = cross_sectional_ic(p, t) if p.shape[1] >= 3 else np.full(len(p), np.nan)
    ic_ok = ic[np.isfinite(ic)]
    sub = ic[::k]
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
        skill_stride=float(k),
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


def tradable_returns(
    closes: np.ndarray, rows: np.ndarray, lag: int = DEFAULT_LAG, horizon: int = 1
) -> np.ndarray:
    """Mean daily simple return from close ``rows + lag`` to close ``rows + lag + horizon`` (positions into the
    daily ``closes``), one row per sample; a sample whose window ends past the last close is all NaN.

    The same arithmetic as the live tracker (`agent.skill.tracker.SkillTracker.mature`).
    """
    c = np.asarray(closes, dtype=float)
    r = np.asarray(rows, dtype=np.int64)
    lag, h = max(int(lag), 0), max(int(horizon), 1)
    out = np.full((len(r), c.shape[1]), np.nan)
    start = r + lag
    ok = (r >= 0) & (start + h < len(c))
    if ok.any():
        s0 = start[ok]
        tot = np.zeros((len(s0), c.shape[1]))
        for k in range(h):  # session k+1 of the window: close s0+k -> s0+k+1
            tot += c[s0 + k + 1] / c[s0 + k] - 1.0
        out[ok] = tot / h
    return out


def book_skill(
    pred: np.ndarray,
    closes: np.ndarray,
    rows: np.ndarray,
    *,
    horizon: int,
    lag: int = DEFAULT_LAG,
    baseline: np.ndarray | None = None,
) -> dict[str, float]:
    """`validation_skill` of ``pred`` (mean daily simple returns, one row per sample at daily position ``rows``)
    against the returns the book earns from them, close t+lag .. t+lag+horizon.

    ``closes`` must end at the model's train_end: samples whose window runs past it (or holds a missing price)
    are dropped, so no price after train_end is used. Adds ``skill_lag`` and ``skill_dropped`` (samples dropped).
    """
    realized = tradable_returns(closes, rows, lag, horizon)
    keep = np.isfinite(realized).all(axis=1)
    p = np.asarray(pred, dtype=float)[keep]
    b = None if baseline is None else np.asarray(baseline, dtype=float)[keep]
    if not keep.any():
        return {"skill_n": 0.0, "skill_lag": float(lag), "skill_dropped": float(len(keep))}
    out = validation_skill(p, realized[keep], b, horizon, overlap_stride(np.asarray(rows)[keep], horizon))
    out.update(skill_lag=float(max(int(lag), 0)), skill_dropped=float(np.sum(~keep)))
    return out
