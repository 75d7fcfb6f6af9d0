"""The skill-aware allocation step: forecast + measured skill + reference -> the mu the optimizer uses.

Why: one function that the decision step calls (daemon, backtest, audit replay alike), between the covariance
and the optimizer. It

1. replaces the forecast by a placebo or (replay only) an oracle when the settings ask for one;
2. records the forecast in the skill tracker and matures older forecasts whose horizon has elapsed by asof,
   using only the point-in-time price snapshot;
3. measures skill: validation IC from the model's metadata (prior) and live IC of matured forecasts, combined by
   precision; the gate zeroes it when its t-statistic is below ``skill.gate_t`` (with ``skill.gate_sustain`` > 1:
   at any of the last that many maturities);
4. builds the reference portfolio and its implied returns pi = delta * Sigma @ w_ref (delta =
   ``allocation.risk_aversion``, the optimizer's own), and the posterior mu (Black–Litterman or Grinold–Kahn).

The returned record section shows the prior, the views, the measured skill (validation, live, combined, used)
and the posterior, so every decision says how far its forecast was trusted and why.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.allocate.black_litterman import (
    bl_posterior,
    forecast_scores,
    grinold_kahn,
    skill_gate,
    skill_views,
)
from agent.allocate.reference import implied_returns, reference_weights
from agent.errors import ConfigError
from agent.skill.synthetic import oracle_forecast, placebo_forecast
from agent.skill.tracker import (
    ForecastObs,
    SkillEstimate,
    SkillTracker,
    combine_skill,
    prior_from_metrics,
    sustained_t,
)

if TYPE_CHECKING:
    import pandas as pd

    from agent.settings import Settings

__all__ = [
    "SkillOutcome",
    "SkillState",
    "engine_step",
    "engine_substitute",
    "forecast_source",
    "oracle_replay",
    "skill_step",
    "substitute_forecast",
]

_ORACLE_FUTURE: contextvars.ContextVar[Any] = contextvars.ContextVar("oracle_future", default=None)


@contextlib.contextmanager
def oracle_replay(future_prices: pd.DataFrame) -> Iterator[None]:
    """Allow ``forecast.oracle_ic`` inside this block only, giving it the full price history (look-ahead).

    Research code (docs/make_skill.py, tests) wraps a replay in it; no command-line path ever does, so an oracle
    setting anywhere else is refused with a ConfigError (exit 2).
    """
    token = _ORACLE_FUTURE.set(future_prices)
    try:
        yield
    finally:
        _ORACLE_FUTURE.reset(token)


@dataclass
class SkillState:
    """What the skill step keeps across decisions of one run (lives on the EngineContext)."""

    tracker: SkillTracker
    oracle_future: Any = None  # full price frame: only inside oracle_replay()
    static_ref: np.ndarray | None = None
    pending: list[ForecastObs] = field(default_factory=list)  # changed observations not yet persisted

    @classmethod
    def create(cls, settings: Settings, tracker: SkillTracker | None = None) -> SkillState:
        future = _ORACLE_FUTURE.get()
        if settings.forecast.oracle_ic is not None and future is None:
            raise ConfigError(
                "forecast.oracle_ic uses future returns (look-ahead) and is refused outside a research replay",
                hint="unset forecast.oracle_ic; use forecast.placebo = SEED for a no-skill control",
            )
        return cls(tracker=tracker or SkillTracker(halflife=settings.skill.halflife), oracle_future=future)

    def take_pending(self) -> list[ForecastObs]:
        """Observations recorded or matured since the last call (for SkillStore.save after the ledger commit)."""
        out, self.pending = self.pending, []
        return out


@dataclass(frozen=True)
class SkillOutcome:
    mu: np.ndarray  # the posterior mean the optimizer gets (per session, includes the risk-free rate)
    reference: np.ndarray
    used_ic: float
    record: dict[str, Any]


def _vec(tickers: tuple[str, ...], x: np.ndarray) -> dict[str, float]:
    return {t: round(float(v), 12) for t, v in zip(tickers, np.asarray(x, dtype=float), strict=True)}


def _est(e: SkillEstimate | None) -> dict[str, Any] | None:
    return None if e is None else e.to_dict()


def _oracle_mu(
    future: pd.DataFrame,
    tickers: tuple[str, ...],
    asof: dt.date,
    horizon: int,
    ic: float,
    seed: int,
    lag: int = 0,
) -> np.ndarray | None:
    """The oracle's forecast at asof: IC ``ic`` against the returns the book can earn from this decision.

    A decision at close ``asof`` is executed at close ``asof + lag`` sessions (``execution.lag_sessions``) and
    held for ``horizon`` sessions, so the oracle's target is the mean daily return from close t+lag to close
    t+lag+horizon. (Drawn against close t .. close t+horizon, a window the book cannot earn from its first
    session, its IC against the book's returns was about (h-lag)/h of the nominal one: 0.07 for IC 0.1.)
    """
    import pandas as pd

    px = future[list(tickers)]
    idx = int(px.index.searchsorted(pd.Timestamp(asof), side="right")) - 1
    start = idx + max(int(lag), 0)
    if idx < 0 or start + horizon >= len(px) or px.index[idx].date() != asof:
        return None
    block = px.iloc[start : start + horizon + 1].to_numpy(dtype=float)
    realized = np.mean(block[1:] / block[:-1] - 1.0, axis=0)
    return oracle_forecast(realized, ic, seed, asof)


def forecast_source(settings: Settings, state: SkillState | None) -> str:
    """Source label: "model", "placebo-SEED" or "oracle-IC" (the latter only when a research replay allowed it)."""
    f = settings.forecast
    if f.placebo is not None:
        return f"placebo-{f.placebo}"
    if f.oracle_ic is not None and state is not None and state.oracle_future is not None:
        return f"oracle-{f.oracle_ic}"
    return "model"


def substitute_forecast(
    asof: dt.date, mu: np.ndarray | None, horizon: int, settings: Settings, state: SkillState | None
) -> tuple[np.ndarray | None, str]:
    """The forecast after the research switches: a seeded placebo, or (replay only) an oracle, else the model's.

    Applied by the engine before any allocation, so the study-faithful path sees the same noise.
    """
    tickers = settings.universe.tickers
    source = forecast_source(settings, state)
    if source.startswith("placebo"):
        assert settings.forecast.placebo is not None
        return placebo_forecast(mu, len(tickers), settings.forecast.placebo, asof), source
    if source.startswith("oracle"):
        assert state is not None and settings.forecast.oracle_ic is not None
        seed = settings.forecast.oracle_seed
        lag = settings.execution.lag_sessions
        return _oracle_mu(
            state.oracle_future, tickers, asof, horizon, settings.forecast.oracle_ic, seed, lag
        ), source
    return mu, source


def skill_step(
    asof: dt.date,
    prices: pd.DataFrame,
    fc: Any,
    mu: np.ndarray | None,
    cov: np.ndarray,
    returns: pd.DataFrame,
    settings: Settings,
    state: SkillState,
    model_metrics: dict[str, Any] | None = None,
) -> SkillOutcome:
    """The mu to optimize, and the record section. Pure given (prices <= asof, forecast, state); never raises."""
    sk = settings.skill
    tickers = settings.universe.tickers
    n = len(tickers)
    delta = settings.allocation.risk_aversion
    horizon = int(getattr(fc, "horizon", 0) or settings.horizon)
    model_id = str(getattr(fc, "model_id", "none"))
    rec: dict[str, Any] = {"combine": sk.combine, "delta": delta, "tau": sk.tau, "gate_t": sk.gate_t}

    # 1. the forecast that is measured and used (a placebo / oracle already replaced it: substitute_forecast)
    views_mu = None if mu is None else np.asarray(mu, dtype=float)
    source = forecast_source(settings, state)
    rec["forecast_source"] = source
    if source != "model":
        model_id = source

    # 2. the tracker: record this forecast, mature older ones with prices <= asof only
    delta_obs: list[ForecastObs] = []
    if views_mu is not None and np.all(np.isfinite(views_mu)):
        obs = ForecastObs(asof, model_id, horizon, tickers, tuple(float(x) for x in views_mu))
        if state.tracker.record(obs):
            delta_obs.append(obs)
    closes = prices[list(tickers)].to_numpy(dtype=float)
    # scored on the returns the book can earn: from the execution close t+lag over the horizon
    delta_obs.extend(state.tracker.mature(prices.index, closes, tickers, settings.execution.lag_sessions))
    state.pending.extend(delta_obs)
    # what this decision added to the tracker: the log alone can rebuild it (agent.skill.store.tracker_from_records)
    rec["tracker_delta"] = [o.to_dict() for o in delta_obs]

    # 3. measured skill
    live = state.tracker.live(asof)
    if live.n < sk.min_live:  # too few matured forecasts: the live record carries no weight yet
        live = SkillEstimate(live.ic, math.inf, live.n, live.n_eff, "live (too few)")
    prior = prior_from_metrics(model_metrics, sk.prior_se_multiplier) if sk.use_validation_prior else None
    if source != "model":
        prior = None  # a placebo or oracle is not the model: its only evidence is its own live record
    combined = combine_skill(prior, live)
    gate_stat = combined.t
    if sk.gate_sustain > 1 and views_mu is not None:  # the t-stat at each of the last gate_sustain maturities

        def t_at(d: dt.date) -> float:
            lv = state.tracker.live(d)
            if lv.n < sk.min_live:
                lv = SkillEstimate(lv.ic, math.inf, lv.n, lv.n_eff, "live (too few)")
            return combine_skill(prior, lv).t

        gate_stat = min(combined.t, sustained_t(t_at, state.tracker.obs, asof, sk.gate_sustain))
        rec["gate_sustain"] = sk.gate_sustain
        rec["gate_t_sustained"] = round(gate_stat, 8) if math.isfinite(gate_stat) else None
    used_ic = skill_gate(combined.ic, gate_stat, sk.gate_t) if views_mu is not None else 0.0
    if math.isfinite(live.se) and live.t < sk.warn_below_t:  # drift monitor: a structured warning event
        from agent.logging import get_logger

        rec["warning"] = {"event": "skill_drift", "live_t": round(live.t, 6), "threshold": sk.warn_below_t}
        get_logger("agent.skill").warning(
            "skill_drift", asof=asof.isoformat(), live_ic=live.ic, live_t=live.t, threshold=sk.warn_below_t
        )
    rec["skill"] = {
        "validation": _est(prior),
        "live": _est(live),
        "combined": _est(combined),
        "used_ic": used_ic,
        "gated": bool(views_mu is not None and used_ic == 0.0),
    }

    # 4. reference, implied returns, posterior
    try:
        if sk.reference == "static_mvo":
            if state.static_ref is None:
                from agent.allocate import rules

                window = returns.tail(settings.allocation.mvo_window).to_numpy(dtype=float)
                state.static_ref = np.asarray(
                    rules.static_mvo(window, max_weight=settings.allocation.max_weight).weights, dtype=float
                )
            given: Any = state.static_ref
        else:
            given = dict(sk.reference_weights) if sk.reference == "weights" else None
        w_ref = reference_weights(
            sk.reference, cov, tickers=tickers, given=given, max_weight=settings.allocation.max_weight
        )
    except ValueError as e:
        w_ref = np.full(n, 1.0 / n)
        rec["reference_fallback"] = f"equal_weight: {e}"
    rf = settings.allocation.risk_free_rate / 252.0
    pi = implied_returns(cov, w_ref, delta)
    rec["reference"] = {"kind": sk.reference, "weights": _vec(tickers, w_ref)}
    rec["prior_pi"] = _vec(tickers, pi)
    post = pi.copy()
    if views_mu is not None and used_ic > 0:
        z = forecast_scores(views_mu)
        if sk.combine == "grinold_kahn":
            post = grinold_kahn(pi, cov, z, used_ic, horizon)
            rec["views"] = {"z": _vec(tickers, z)}
        else:
            p, q, omega = skill_views(pi, cov, z, used_ic, horizon, sk.tau)
            post = bl_posterior(pi, cov, p, q, omega, sk.tau)
            rec["views"] = {
                "z": _vec(tickers, z),
                "q": _vec(tickers, q),
                "omega_diag": _vec(tickers, np.diag(omega)),
            }
    elif views_mu is not None:
        rec["views"] = {"z": _vec(tickers, forecast_scores(views_mu)), "note": "skill gated to zero: mu = pi"}
    active = sk.active_risk_aversion or delta
    if active != delta:
        post = pi + (post - pi) * (delta / active)
        rec["active_risk_aversion"] = active
    if not np.all(np.isfinite(post)):
        post, rec["posterior_fallback"] = pi.copy(), "non-finite posterior: mu = pi"
    rec["posterior_mu"] = _vec(tickers, post)
    rec["tilt_annual"] = round(float(math.sqrt(252) * np.std(post - pi)) if n > 1 else 0.0, 10)
    return SkillOutcome(mu=post + rf, reference=w_ref, used_ic=used_ic, record=rec)


def _model_metrics(ctx: Any, asof: dt.date) -> dict[str, Any] | None:
    """The selected model's metadata ``metrics`` (its validation record), or None."""
    import json

    forecaster = getattr(ctx, "forecaster", None)
    if forecaster is None:
        return None
    try:
        meta = forecaster.registry.select(asof).metadata
        out = json.loads(meta.get("metrics", "null"))
    except Exception:  # a model without a readable record simply has no validation prior
        return None
    return out if isinstance(out, dict) else None


def engine_substitute(
    asof: dt.date, fc: Any, mu: np.ndarray | None, settings: Settings, ctx: Any, record: dict[str, Any]
) -> np.ndarray | None:
    """The engine's first call (right after inference): the research switches, for every allocation path.

    A placebo or (replay only) an oracle replaces the model's mu; ``record["forecast"]`` says so and shows it.
    """
    horizon = int(getattr(fc, "horizon", 0) or settings.horizon)
    new, source = substitute_forecast(asof, mu, horizon, settings, ctx.skill)
    if source != "model":
        fc_rec = record.setdefault("forecast", {})
        fc_rec["source"] = source
        fc_rec["used_mu"] = None if new is None else _vec(settings.universe.tickers, new)
    return new


def engine_step(
    asof: dt.date,
    prices: pd.DataFrame,
    fc: Any,
    mu: np.ndarray | None,
    cov: np.ndarray,
    returns: pd.DataFrame,
    settings: Settings,
    ctx: Any,
    record: dict[str, Any],
) -> np.ndarray | None:
    """The engine's skill call (after the covariance, before the optimizer): the mu the optimizer gets.

    With ``skill.enabled``: the reference's implied returns tilted by the forecast as far as measured skill
    earns (``record["skill"]``: reference, prior pi, views, validation/live/combined skill, the IC used, the
    posterior and the mu passed on). Otherwise mu unchanged.
    """
    if not settings.skill.enabled or mu is None:
        return mu
    state: SkillState = ctx.skill
    out = skill_step(asof, prices, fc, mu, cov, returns, settings, state, _model_metrics(ctx, asof))
    out.record["mu_used"] = _vec(settings.universe.tickers, out.mu)
    record["skill"] = out.record
    return out.mu
