"""Look-ahead research modes: the studies' leaky procedures, replayed beside the leak-free profile (issue 13).

Why they exist: a published figure can only be judged against what its procedure would have produced here, on
the same data, window and costs. Each mode reproduces one leak the seed studies use:

* ``models`` — models trained with look-ahead (``python -m training leaky``): random k-fold on a time series
  (each week forecast by the fold model that held it out, trained on the weeks around it, later ones included),
  scalers fit on all data, study 000's same-week rebalance label. The registry refuses such a model anywhere
  else; here a week is matched to the fold that held it out.
* ``quarter_mu`` — study 004's mu: the mean of the one-step forecasts over the coming holding period, the
  forecast for session t+i made from realized prices up to t+i-1 (only the first is available at t).
* ``quarter_vol`` — study 004's sigma: each asset's one-step GARCH volatility averaged over the same future
  sessions (filtered on realized returns), times the decision's own correlation.

They run only inside ``leak_replay(frame)``, which `run_backtest` (``agent backtest``, sweep cells) enters when
``research.leak`` is set. Everywhere else (``agent run``, the daemon, ``audit replay``) ``leak_future`` raises a
ConfigError: one line, exit 2. Every decision of such a replay carries a ``look_ahead`` record section.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import pandas as pd

    from agent.forecast import ModelInfo
    from agent.settings import Settings

__all__ = [
    "LOOK_AHEAD_NOTE",
    "fold_model",
    "leak_future",
    "leak_replay",
    "model_leak",
    "quarter_mean_forecast",
    "quarter_vol_cov",
]

LOOK_AHEAD_NOTE = (
    "LOOK-AHEAD research replay (research.leak): decisions use information from after their date; "
    "a measurement of a study's procedure, not a strategy"
)

_FUTURE: contextvars.ContextVar[Any] = contextvars.ContextVar("leak_future", default=None)


@contextlib.contextmanager
def leak_replay(frame: pd.DataFrame) -> Iterator[None]:
    """Allow ``research.leak`` inside this block, handing the engine the whole price frame (the future)."""
    token = _FUTURE.set(frame)
    try:
        yield
    finally:
        _FUTURE.reset(token)


def leak_future(settings: Settings) -> pd.DataFrame | None:
    """The whole price frame when ``research.leak`` is set inside a replay; None when no mode is set.

    Raises ConfigError (one line, exit 2) for a leak mode outside a replay: `agent run`, the daemon, audit.
    """
    modes = settings.research.leak
    if not modes:
        return None
    future = _FUTURE.get()
    if future is None:
        raise ConfigError(
            f"research.leak = {list(modes)} uses future data (look-ahead) and is refused outside a replay "
            "(agent backtest, agent sweep)",
            hint="unset research.leak: it exists for the leakage audit in docs/RESULTS.md only",
        )
    return future


# ---------------------------------------------------------------------------------------------------------
# models trained with look-ahead
# ---------------------------------------------------------------------------------------------------------
def model_leak(meta: dict[str, str]) -> dict[str, Any] | None:
    """A model's look-ahead record (metadata key ``leak``), or None for a leak-free model."""
    raw = meta.get("leak")
    if not raw:
        return None
    try:
        out = json.loads(raw)
    except json.JSONDecodeError:
        return {"procedure": "unreadable leak metadata"}
    return out if isinstance(out, dict) else {"procedure": str(out)}


def _week(d: dt.date) -> tuple[int, int]:
    iso = d.isocalendar()
    return (iso[0], iso[1])


def fold_model(models: Sequence[ModelInfo], asof: dt.date) -> ModelInfo | None:
    """The fold model whose held-out weeks contain asof's ISO week (None when no model carries folds).

    ModelError when folds exist but none held this week out (the replay ran outside the folds' window).
    """
    folded: list[tuple[ModelInfo, list[str]]] = []
    for m in models:
        held = (model_leak(m.metadata) or {}).get("heldout")
        if held:
            folded.append((m, list(held)))
    if not folded:
        return None
    wk = _week(asof)
    for m, held in folded:
        if any(_week(dt.date.fromisoformat(d)) == wk for d in held):
            return m
    raise ModelError(f"no fold model held out the week of {asof} (the folds cover another window)")


# ---------------------------------------------------------------------------------------------------------
# study 004: quarter-ahead averages
# ---------------------------------------------------------------------------------------------------------
def _position(index: pd.Index, asof: dt.date) -> int:
    import pandas as pd

    i = int(index.searchsorted(pd.Timestamp(asof), side="right")) - 1
    if i < 0 or index[i].date() != asof:
        raise ValueError(f"{asof} is not a session of the price frame")
    return i


def quarter_mean_forecast(
    forecaster: Any, future: pd.DataFrame, tickers: Sequence[str], asof: dt.date, horizon: int, rows: int
) -> tuple[np.ndarray, int]:
    """Mean of one-step forecasts for sessions t+1..t+H, the one for t+i made at t+i-1 from realized prices.

    The model is the one selected at asof (as the study fits once and rolls it forward). Returns the mean and
    the number of steps (fewer than H where the data ends).
    """
    px = future[list(tickers)]
    idx = _position(px.index, asof)
    info = forecaster.registry.select(asof)
    steps = []
    for i in range(horizon):
        j = idx + i
        if j + 1 >= len(px):
            break
        window = px.iloc[max(0, j - rows + 1) : j + 1]
        fc = forecaster.forecast(window, px.index[j].date(), info=info)
        if fc.mu is None:
            raise ModelError(f"model {info.model_id} gives no return forecast to average")
        steps.append(np.asarray(fc.mu, dtype=float))
    if not steps:
        raise ValueError(f"no session after {asof} in the data to average over")
    return np.mean(steps, axis=0), len(steps)


def quarter_vol_cov(
    cov: np.ndarray,
    params: dict[str, dict[str, Any]],
    future: pd.DataFrame,
    tickers: Sequence[str],
    asof: dt.date,
    horizon: int,
    burn_in: int = 500,
) -> tuple[np.ndarray, dict[str, float], int]:
    """Study 004's quarterly covariance: the mean of each asset's one-step GARCH vol over t+1..t+H (filtered
    on realized returns with the parameters fit at t) times the decision's correlation.

    Assets without GARCH parameters (an EWMA fallback) keep their variance. Returns (cov, mean vols, steps).
    """
    from agent.risk.garch_model import GarchParams, filter_variance

    px = future[list(tickers)]
    idx = _position(px.index, asof)
    rets = px.pct_change(fill_method=None).to_numpy(dtype=float)
    lo, hi = max(1, idx - burn_in), min(len(px), idx + horizon + 1)
    steps = hi - idx - 1
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    new_sd = sd.copy()
    vols: dict[str, float] = {}
    if steps < 1:
        return cov, vols, 0
    for k, t in enumerate(tickers):
        if t not in params:
            continue
        prm = GarchParams.from_dict(params[t])
        var = filter_variance(rets[lo:hi, k], prm, backcast=prm.backcast)
        fut = var[idx + 1 - lo :]  # sigma^2 of t+1..t+steps, each conditional on returns up to the day before
        fut = fut[np.isfinite(fut)]
        if fut.size and np.all(fut > 0):
            new_sd[k] = float(np.mean(np.sqrt(fut)))  # the study averages volatilities (§5.5)
            vols[t] = round(new_sd[k], 12)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    out = corr * np.outer(new_sd, new_sd)
    if not np.all(np.isfinite(out)) or math.isnan(float(out.sum())):
        return cov, {}, steps
    return out, vols, steps
