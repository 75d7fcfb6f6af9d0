"""The decision step as a pipeline: `decide()` is one loop over registered stages.

Each stage (snapshot, forecast, risk, allocate, signal, overlays, targets, and any registered later) declares
what it `requires` and `provides`, and returns an `Outcome` that owns its part of the record. The loop, written
once here, does what every call site used to have to get right:

* times each stage (`timings_ms`, keyed by the stage's `timing` name);
* guards it: any exception becomes the stage's recorded fallback (`Stage.recover`) or, when the stage has none,
  a `no_trade` decision whose reason names the stage and the error; `decide()` never raises for market, model or
  numerical trouble (DESIGN.md invariant 6), so one bad date cannot abort a backtest;
* stops early, before computing anything wasted, when a later stage's requirement can no longer be met (a
  max-Sharpe allocation without a forecast: "no forecast, holding").

Stages register themselves with `@register_stage` in a module of `agent.engine.stages`; every module there is
imported on first use, so adding a stage is one new file (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import pkgutil
import time
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from agent import __version__
from agent.decision import Decision, ExecRisk, PortfolioState
from agent.engine.frame import DecisionFrame, Outcome, merge_record, weights_dict
from agent.errors import describe

if TYPE_CHECKING:
    from agent.engine.context import EngineContext
    from agent.settings import Settings

__all__ = [
    "Stage",
    "decide",
    "decision_without_timings",
    "pipeline_stages",
    "register_stage",
    "registered_stages",
]


class Stage:
    """One step of a decision. Subclasses set the class attributes and implement `run`.

    `order` places the stage (snapshot 10, forecast 20, risk 30, allocate 40, signal 50, overlays 60,
    targets 70; pick a number in between for a new one). `requires`/`provides` name frame artifacts; a stage may
    widen them per configuration by overriding `requirements()`."""

    name: ClassVar[str] = ""
    timing: ClassVar[str] = ""  # key in the record's timings_ms (defaults to `name`)
    order: ClassVar[float] = 0.0
    requires: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        """Whether this stage takes part under `settings` (default: always)."""
        del settings
        return True

    def requirements(self) -> frozenset[str]:
        """Artifacts this stage cannot run without, under its settings."""
        return self.requires

    def unmet(self, frame: DecisionFrame, missing: frozenset[str]) -> str:
        """The no_trade reason when a requirement can no longer be met."""
        del frame
        return f"{self.name}: missing {', '.join(sorted(missing))}"

    def run(self, frame: DecisionFrame) -> Outcome:
        raise NotImplementedError

    def recover(self, frame: DecisionFrame, error: BaseException) -> Outcome | None:
        """A fallback outcome after `run` raised, or None to stop with a no_trade decision. The runner records
        the fallback `{"stage", "from", "to", "reason"}` that the outcome carries."""
        del frame, error
        return None


_S = TypeVar("_S", bound=type[Stage])
_REGISTRY: dict[str, type[Stage]] = {}


def register_stage(cls: _S) -> _S:
    """Class decorator: make a stage part of every pipeline (subject to its `enabled`)."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no stage name")
    _REGISTRY[cls.name] = cls
    return cls


@functools.cache
def _discover() -> None:
    import agent.engine.stages as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{mod.name}")


def registered_stages() -> list[type[Stage]]:
    """Every registered stage class, in pipeline order."""
    _discover()
    return sorted(_REGISTRY.values(), key=lambda c: (c.order, c.name))


def pipeline_stages(settings: Settings) -> list[Stage]:
    """The stages one decision runs under `settings`, checked: every requirement has a provider before it."""
    stages = [cls(settings) for cls in registered_stages() if cls.enabled(settings)]
    available: set[str] = set(_FRAME_INPUTS)
    for st in stages:
        missing = st.requirements() - available
        if missing:
            raise RuntimeError(
                f"stage {st.name!r} requires {sorted(missing)}, which no earlier stage provides"
            )
        available |= st.provides
    return stages


_FRAME_INPUTS = frozenset({"asof", "state", "settings", "ctx", "tickers", "current", "record"})


def _unmet_later(stages: list[Stage], i: int, frame: DecisionFrame) -> tuple[Stage, frozenset[str]] | None:
    """The first stage after `i` whose requirement is neither on the frame nor provided by a stage between."""
    coming: set[str] = set()
    for st in stages[i + 1 :]:
        missing = frozenset(k for k in st.requirements() if k not in coming and not frame.has(k))
        if missing:
            return st, missing
        coming |= st.provides
    return None


def _finish_no_trade(frame: DecisionFrame, reason: str) -> Decision:
    state = frame.state
    if frame.fallbacks_open:
        frame.record["fallbacks"] = frame.fallbacks
    frame.record.update(
        {"status": "no_trade", "reason": reason, "targets": weights_dict(state.tickers, state.weights)}
    )
    return Decision(
        asof=frame.asof,
        profile=frame.settings.profile,
        status="no_trade",
        reason=reason,
        tickers=state.tickers,
        targets=np.asarray(state.weights, dtype=float).copy(),
        stop=state.stop,
        record=frame.record,
    )


def _log_stage_error(stage: Stage, frame: DecisionFrame, message: str, recovered: bool) -> None:
    from agent.logging import get_logger

    get_logger("agent.engine").warning(
        "stage_failed",
        stage=stage.name,
        asof=frame.asof.isoformat(),
        error=message,
        action="fallback" if recovered else "no_trade",
    )


def run_stages(stages: list[Stage], frame: DecisionFrame) -> Decision:
    """THE loop: run, time and guard each stage; finish with the targets stage's decision or a no_trade."""
    timings: dict[str, float] = {}
    halt: str | None = None
    for i, stage in enumerate(stages):
        key = stage.timing or stage.name
        t0 = time.perf_counter()
        outcome: Outcome | None = None
        part: dict[str, Any] = {}
        try:
            outcome = stage.run(frame)
            part = outcome.to_record()
        except Exception as e:  # the one place a stage error is turned into a decision
            message = describe(e)
            try:
                outcome = stage.recover(frame, e)
                part = outcome.to_record() if outcome is not None else {}
            except Exception as again:  # a broken fallback must not raise either
                message += f"; fallback failed: {describe(again)}"
                outcome = None
            _log_stage_error(stage, frame, message, outcome is not None)
            if outcome is None:
                halt = f"{stage.name} failed: {message}"
        timings[key] = timings.get(key, 0.0) + (time.perf_counter() - t0) * 1e3
        if outcome is not None:
            merge_record(frame.record, part)
            outcome.apply(frame)
            frame.fallbacks.extend(outcome.fallbacks)
            halt = halt or outcome.halt
        if "fallbacks" in stage.provides:
            frame.fallbacks_open = True
        if halt is None:
            blocked = _unmet_later(stages, i, frame)
            if blocked is not None:
                halt = blocked[0].unmet(frame, blocked[1])
        if halt is not None:
            frame.record["timings_ms"] = {k: round(v, 3) for k, v in timings.items()}
            return _finish_no_trade(frame, halt)
    frame.record["timings_ms"] = {k: round(v, 3) for k, v in timings.items()}
    return _decision(frame)


def _decision(frame: DecisionFrame) -> Decision:
    final, stop = frame.need("final"), frame.need("stop")
    status, reason = frame.need("status"), frame.need("reason")
    return Decision(
        asof=frame.asof,
        profile=frame.settings.profile,
        status=status,
        reason=reason,
        tickers=frame.tickers,
        targets=final,
        stop=stop,
        record=frame.record,
        exec_risk=_exec_risk(frame, status),
    )


def _exec_risk(frame: DecisionFrame, status: str) -> ExecRisk | None:
    """The Σ and VaR limit the execution step re-checks on the executed book (a rebalance under an enabled VaR
    limit with a finite Σ, as `agent.overlays.limits.effective_limits` measures it), in factor form when Σ came
    from the factor model."""
    v = frame.settings.overlays.var_limit
    cov = frame.cov
    if status != "rebalance" or not v.enabled or cov is None or not bool(np.all(np.isfinite(cov))):
        return None
    fm = frame.cov_estimate.factor if frame.cov_estimate is not None else None
    if fm is not None:
        return ExecRisk(
            v.limit,
            v.confidence,
            loadings=fm.loadings,
            factor_var=fm.factor_var,
            specific_var=fm.specific_var,
        )
    return ExecRisk(v.limit, v.confidence, cov=np.asarray(cov, dtype=float))


def _new_frame(asof: dt.date, state: PortfolioState, settings: Settings, ctx: EngineContext) -> DecisionFrame:
    tickers = settings.universe.tickers
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
            "weights": weights_dict(tickers, current),
            "stop": state.stop.to_dict(),
        },
    }
    return DecisionFrame(
        asof=asof, state=state, settings=settings, ctx=ctx, tickers=tickers, current=current, record=record
    )


_PIPELINES: dict[int, tuple[Settings, list[Stage]]] = {}


def _stages_for(settings: Settings) -> list[Stage]:
    cached = _PIPELINES.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    stages = pipeline_stages(settings)
    if len(_PIPELINES) > 32:
        _PIPELINES.clear()
    _PIPELINES[id(settings)] = (settings, stages)
    return stages


def decide(asof: dt.date, state: PortfolioState, settings: Settings, ctx: EngineContext) -> Decision:
    """One decision at the close of `asof`, from data available at `asof` only. Never raises for market,
    model or numerical trouble: it falls back or decides `no_trade`, and records why.

    `settings` must be the configuration `ctx` was built from (one source of truth per run): a different
    strategy here would decide with one configuration's compiled optimizer and another's overlays."""
    if settings is not ctx.settings and ctx.config_digest and settings.strategy_digest() != ctx.config_digest:
        raise ValueError("decide(): settings differ from the ones the EngineContext was built with")
    return run_stages(_stages_for(settings), _new_frame(asof, state, settings, ctx))


def decision_without_timings(record: dict[str, Any]) -> dict[str, Any]:
    """The deterministic part of a record (timings are wall-clock facts, kept out of byte-identical outputs)."""
    return {k: v for k, v in record.items() if k != "timings_ms"}
