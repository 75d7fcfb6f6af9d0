"""The decision step: `decide(asof, state, settings, ctx) -> Decision`.

snapshot prices at asof → ONNX forecast (model chosen by date) → covariance → allocation → rebalance signal →
overlays → targets. Each stage's inputs are digested and its outputs recorded with reasons and timings. The
daemon and the backtest call exactly this function; neither adds anything to it. `decide()` never raises for
market or model trouble: it falls back and records why (DESIGN.md invariant 6).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent import __version__
from agent.decision import Decision, PortfolioState, digest, round_weights
from agent.errors import DataError, ModelError

if TYPE_CHECKING:
    from agent.data.store import PriceStore
    from agent.settings import Settings

__all__ = [
    "EngineContext",
    "check_models",
    "decide",
    "decision_without_timings",
    "minimum_history",
    "required_history",
]

_OPTIMIZED = {"max_sharpe", "min_variance", "mean_variance", "target_volatility"}
_FULL_COV_MAX_N = 100  # DESIGN.md invariant 8: the full Σ goes into the record up to 100 names


def required_history(settings: Settings, model_lookback: int = 0) -> int:
    """Sessions of prices a decision reads: the longest window any stage looks back over, plus margin."""
    r = settings.risk
    need = max(r.corr_window, r.sample_window, r.min_observations, model_lookback, 60) + 1
    if r.method == "garch":
        need = max(need, r.fit_window + r.refit_every + 2)  # a refit block's fit window stays complete
    if settings.allocation.expected_returns == "historical" or settings.allocation.method == "static_mvo":
        need = max(need, settings.allocation.mvo_window + 1)
    return need + 5


def minimum_history(settings: Settings, model_lookback: int = 0) -> int:
    """Sessions a first decision cannot do without: the model's input window, and enough returns for the
    covariance to mean something (GARCH needs `min_observations`, else it falls back to EWMA, recorded)."""
    r = settings.risk
    risk_min = r.min_observations if r.method == "garch" else min(r.corr_window, 60)
    return max(model_lookback, risk_min, 30) + 1


@dataclass
class EngineContext:
    """Long-lived objects one process keeps across decisions: compiled optimizer, GARCH state, ONNX sessions.

    Built once per run (daemon start or backtest), so the expensive setup (cvxpy compilation, model sessions)
    is paid once. Holding state here never changes a decision: every cached item is keyed by what it was
    computed from, and is recomputed when asof moves backwards.
    """

    settings: Settings
    store: PriceStore
    forecaster: Any = None
    cov_estimator: Any = None
    optimizer: Any = None
    groups: dict[str, list[int]] = field(default_factory=dict)
    lookback: int = 0
    min_history: int = 0
    config_digest: str = ""
    replay_garch_params: dict[str, dict[str, Any]] | None = None  # audit replay: recorded GARCH parameters
    static_weights_: np.ndarray | None = None
    static_fit_: dict[str, Any] | None = None

    @classmethod
    def create(cls, settings: Settings, store: PriceStore) -> EngineContext:
        from agent.allocate.optimize import Optimizer
        from agent.risk.covariance import CovarianceEstimator

        tickers = settings.universe.tickers
        groups = {g: [tickers.index(t) for t in members] for g, members in settings.universe.groups.items()}
        forecaster = None
        model_lookback = 0
        if settings.forecast.model == "onnx":
            from agent.forecast import OnnxForecaster

            forecaster = OnnxForecaster(settings.profile_models_dir, tickers)
            models = forecaster.registry.models
            if not models:
                why = "; ".join(f"{p.name}: {r}" for p, r in forecaster.registry.rejected[:2])
                raise ModelError(
                    f"no usable model in {settings.profile_models_dir}" + (f" ({why})" if why else ""),
                    hint="point AGENT_MODELS_DIR (or paths.models_dir) at the exported_models folder, rebuild "
                    "with `python -m training build --profile NAME`, or set forecast.model = 'none'",
                )
            # daily price rows one input window depends on (weekly features need ~5 sessions per row)
            model_lookback = max(
                m.spec.rows_needed * (6 if m.spec.frequency == "weekly" else 1) + 10 for m in models
            )
        optimizer = None
        if settings.allocation.method in _OPTIMIZED:
            optimizer = Optimizer.from_settings(
                settings.allocation,
                tickers,
                groups,
                cost_bps=settings.execution.cost_bps,
                horizon=settings.horizon,
                mode=settings.allocation.compile,
            )
        cov = CovarianceEstimator(settings.risk, tickers, settings.horizon)
        return cls(
            settings=settings,
            store=store,
            forecaster=forecaster,
            cov_estimator=cov,
            optimizer=optimizer,
            groups=groups,
            lookback=required_history(settings, model_lookback),
            min_history=minimum_history(settings, model_lookback),
            config_digest=settings.strategy_digest(),
        )


class _Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def stage(self, name: str) -> _Stage:
        return _Stage(self, name)


class _Stage:
    def __init__(self, timer: _Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timer.ms[self.name] = self.timer.ms.get(self.name, 0.0) + (time.perf_counter() - self.t0) * 1e3


def check_models(ctx: EngineContext, first_asof: dt.date) -> None:
    """Preflight for a replay or a daemon start: a usable model exists for the first decision and fits the
    universe. Raises ModelError (one line) instead of letting every decision fall back to holding."""
    if ctx.forecaster is None:
        return
    info = ctx.forecaster.registry.select(first_asof)
    ctx.forecaster.check(info)


def _vec(tickers: tuple[str, ...], x: np.ndarray | None) -> dict[str, float] | None:
    if x is None:
        return None
    return {t: float(v) for t, v in zip(tickers, np.asarray(x, dtype=float), strict=True)}


def _weights_dict(tickers: tuple[str, ...], w: np.ndarray) -> dict[str, float]:
    d = _vec(tickers, w) or {}
    d["cash"] = float(max(0.0, 1.0 - float(np.sum(w))))
    return d


def _no_trade(
    asof: dt.date, state: PortfolioState, settings: Settings, reason: str, record: dict[str, Any]
) -> Decision:
    record.update(
        {"status": "no_trade", "reason": reason, "targets": _weights_dict(state.tickers, state.weights)}
    )
    return Decision(
        asof=asof,
        profile=settings.profile,
        status="no_trade",
        reason=reason,
        tickers=state.tickers,
        targets=np.asarray(state.weights, dtype=float).copy(),
        stop=state.stop,
        record=record,
    )


def decide(asof: dt.date, state: PortfolioState, settings: Settings, ctx: EngineContext) -> Decision:
    """One decision at the close of `asof`, from data available at `asof` only."""
    from agent.allocate import rules
    from agent.overlays import HardLimits, OverlayContext, apply_overlays

    timer = _Timer()
    tickers = settings.universe.tickers
    n = len(tickers)
    current = np.asarray(state.weights, dtype=float)
    record: dict[str, Any] = {
        "asof": asof.isoformat(),
        "profile": settings.profile,
        "agent_version": __version__,
        "config_digest": ctx.config_digest,
        "tickers": list(tickers),
        "state_before": {
            "nav": float(state.nav),
            "peak_nav": float(state.peak_nav),
            "drawdown": float(state.drawdown),
            "weights": _weights_dict(tickers, current),
            "stop": state.stop.to_dict(),
        },
    }
    fallbacks: list[dict[str, Any]] = []

    # 1. Prices: a point-in-time snapshot (never a row after asof).
    with timer.stage("data"):
        try:
            prices = ctx.store.snapshot(asof, tickers=list(tickers), lookback=ctx.lookback)
        except DataError as e:
            record["timings_ms"] = timer.ms
            return _no_trade(asof, state, settings, f"prices unavailable: {e.one_line()}", record)
        last = prices.index[-1] if len(prices) else None
        record["inputs"] = {
            "prices": {
                "digest": digest(prices.to_numpy(dtype=float)),
                "rows": len(prices),
                "first": prices.index[0].date().isoformat() if len(prices) else None,
                "last": last.date().isoformat() if last is not None else None,
            }
        }
        if last is None or last.date() != asof:
            record["timings_ms"] = timer.ms
            return _no_trade(
                asof, state, settings, f"no prices for {asof.isoformat()} (not a session in the data)", record
            )
        missing = [t for t, v in zip(tickers, prices.iloc[-1].to_numpy(), strict=True) if not np.isfinite(v)]
        if missing:
            record["timings_ms"] = timer.ms
            return _no_trade(
                asof, state, settings, f"no price at {asof.isoformat()} for {', '.join(missing)}", record
            )
        returns = prices.pct_change(fill_method=None).iloc[1:]

    # 2. Forecast: the newest model trained strictly before asof.
    fc = None
    mu: np.ndarray | None = None
    with timer.stage("inference"):
        if ctx.forecaster is not None:
            try:
                fc = ctx.forecaster.forecast(prices, asof)
                mu = None if fc.mu is None else np.asarray(fc.mu, dtype=float)
                record["inputs"]["model"] = {
                    "id": fc.model_id,
                    "sha256": fc.model_sha256,
                    "train_end": str(fc.train_end),
                    "inputs_digest": fc.inputs_digest,
                }
                record["forecast"] = {
                    "model_id": fc.model_id,
                    "kind": fc.kind,
                    "horizon": fc.horizon,
                    "mu": _vec(tickers, mu),
                    "rebalance_prob": None if fc.rebalance_prob is None else float(fc.rebalance_prob),
                    "weights": _vec(tickers, fc.weights),
                }
            except (ModelError, DataError) as e:
                fallbacks.append({"stage": "forecast", "from": "onnx", "to": "hold", "reason": e.one_line()})
                record["forecast"] = {"error": e.one_line()}
        if mu is None and settings.allocation.expected_returns == "historical":
            window = returns.tail(settings.allocation.mvo_window).to_numpy(dtype=float)
            mu = np.nanmean(window, axis=0)
            record["forecast"] = {"kind": "historical_mean", "window": len(window), "mu": _vec(tickers, mu)}

    needs_mu = settings.allocation.method in {
        "max_sharpe",
        "mean_variance",
        "target_volatility",
        "proportional",
    }
    needs_weights = settings.allocation.method == "model_weights"
    if (needs_mu and mu is None) or (needs_weights and (fc is None or fc.weights is None)):
        record["fallbacks"] = fallbacks
        record["timings_ms"] = timer.ms
        why = fallbacks[-1]["reason"] if fallbacks else "the model gave no usable output"
        return _no_trade(asof, state, settings, f"no forecast, holding: {why}", record)

    # 3. Covariance (daily, averaged over the holding period).
    with timer.stage("covariance"):
        est = ctx.cov_estimator.estimate(returns, asof, fixed_params=ctx.replay_garch_params)
        cov = np.asarray(est.cov, dtype=float)
        risk_rec: dict[str, Any] = {
            "method": est.method,
            "horizon": est.horizon,
            "repaired": bool(est.repaired),
            "fallbacks": list(est.fallbacks),
            "vols": _vec(tickers, np.asarray(est.vols, dtype=float)),
            "params": est.params,
        }
        if n <= _FULL_COV_MAX_N:
            risk_rec["cov"] = {t: _vec(tickers, cov[i]) for i, t in enumerate(tickers)}
        else:
            risk_rec["cov_digest"] = digest(cov)
        record["risk"] = risk_rec

    # 4. Allocation.
    with timer.stage("optimization"):
        method = settings.allocation.method
        opt_rec: dict[str, Any] = {"method_requested": method}
        if method in _OPTIMIZED:
            res = ctx.optimizer.solve(mu if mu is not None else np.zeros(n), cov, current)
            proposed = np.asarray(res.weights, dtype=float)
            opt_rec.update(
                {
                    "method_used": res.method_used,
                    "status": res.status,
                    "reason_code": res.reason_code,
                    "trace": list(res.trace),
                    "objective": None if res.objective is None else float(res.objective),
                    "solver": settings.allocation.solver,
                }
            )
        elif method in ("equal_weight", "proportional", "model_weights"):
            if method == "equal_weight":
                rr = rules.equal_weight(n)
            elif method == "proportional":
                rr = rules.proportional_to_forecast(
                    mu, cov, settings.allocation.target_volatility, max_weight=settings.allocation.max_weight
                )
            else:
                rr = rules.model_weights(np.asarray(fc.weights, dtype=float))
            proposed = np.asarray(rr.weights, dtype=float)
            opt_rec.update(
                {"method_used": rr.rule, "status": "rule", "reason_code": rr.reason, "details": rr.details}
            )
        else:  # static_mvo: fit once on the window before the first decision, then held
            if ctx.static_weights_ is None:
                window = returns.tail(settings.allocation.mvo_window).to_numpy(dtype=float)
                rr = rules.static_mvo(
                    window,
                    risk_free=settings.allocation.risk_free_rate,
                    min_weight=settings.allocation.min_weight,
                    max_weight=settings.allocation.max_weight,
                )
                ctx.static_weights_ = np.asarray(rr.weights, dtype=float)
                ctx.static_fit_ = {
                    "fit_on": asof.isoformat(),
                    "window": len(window),
                    "reason_code": rr.reason,
                }
            proposed = ctx.static_weights_.copy()
            opt_rec.update(
                {
                    "method_used": "static_mvo",
                    "status": "rule",
                    "reason_code": "ok",
                    **(ctx.static_fit_ or {}),
                }
            )
        proposed = round_weights(np.clip(np.nan_to_num(proposed, nan=0.0), 0.0, 1.0))
        opt_rec["weights"] = _weights_dict(tickers, proposed)
        record["optimizer"] = opt_rec

    # 5. Rebalance-timing signal (study 000): trade only when the model says so (first allocation always trades).
    signal_hold = False
    if fc is not None and fc.rebalance_prob is not None:
        threshold = settings.forecast.rebalance_threshold
        invested = float(np.sum(current)) > 1e-9
        signal_hold = invested and float(fc.rebalance_prob) < threshold
        record["signal"] = {
            "rebalance_prob": float(fc.rebalance_prob),
            "threshold": threshold,
            "action": "hold" if signal_hold else "rebalance",
        }
        if signal_hold:
            proposed = current.copy()

    # 6. Overlays, in the configured order, each recording what it changed and why.
    with timer.stage("overlays"):
        from agent.data.calendar import sessions_between

        prev = state.last_decision
        elapsed = sessions_between(prev, asof) if prev is not None and prev < asof else 0
        octx = OverlayContext(
            asof=asof,
            tickers=tickers,
            current=current,
            cov=cov,
            state=state,
            sessions_elapsed=int(elapsed),
            groups=ctx.groups,
            nav=float(state.nav),
            limits=HardLimits.from_settings(settings),
        )
        final, records, stop = apply_overlays(proposed, octx, settings.overlays)
        final = round_weights(final)
        record["overlays"] = [r.to_dict() for r in records]

    trades = final - current
    traded = bool(np.any(np.abs(trades) > 1e-9))
    if signal_hold and not any(r.action not in ("none", "held") for r in records):
        status, reason = "hold", "model signals no rebalance"
    elif not traded:
        status, reason = "hold", "targets equal current holdings"
    else:
        status, reason = "rebalance", "trade to targets"
        if stop.status in ("stopped",):
            reason = "drawdown stop: liquidate to cash"
    record.update(
        {
            "status": status,
            "reason": reason,
            "fallbacks": fallbacks,
            "targets": _weights_dict(tickers, final),
            "orders": {t: float(d) for t, d in zip(tickers, trades, strict=True) if abs(d) > 1e-9},
            "stop_after": stop.to_dict(),
            "timings_ms": {k: round(v, 3) for k, v in timer.ms.items()},
        }
    )
    return Decision(
        asof=asof,
        profile=settings.profile,
        status=status,
        reason=reason,
        tickers=tickers,
        targets=final,
        stop=stop,
        record=record,
    )


def decision_without_timings(record: dict[str, Any]) -> dict[str, Any]:
    """The deterministic part of a record (timings are wall-clock facts, kept out of byte-identical outputs)."""
    return {k: v for k, v in record.items() if k != "timings_ms"}
