"""What one process keeps across decisions (`EngineContext`) and how much history a decision reads.

Built once per run (daemon start or backtest), so the expensive setup (cvxpy compilation, ONNX sessions, the
GARCH parameter cache) is paid once. Holding state here never changes a decision: every cached item is keyed by
what it was computed from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agent.errors import ModelError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from agent.allocate.optimize import Optimizer
    from agent.allocate.registry import Allocator
    from agent.data.store import PriceStore
    from agent.forecast import ForecastResult, ModelInfo, ModelRegistry
    from agent.risk.covariance import CovEstimate
    from agent.settings import Settings

__all__ = [
    "CovEstimator",
    "EngineContext",
    "Forecaster",
    "check_models",
    "minimum_history",
    "required_history",
]


class Forecaster(Protocol):
    """The forecast seam (`agent.forecast.OnnxForecaster`): a model chosen by date, checked, then run."""

    @property
    def registry(self) -> ModelRegistry: ...

    def check(self, info: ModelInfo) -> None: ...

    def forecast(
        self, prices: pd.DataFrame, asof: dt.date, *, info: ModelInfo | None = None
    ) -> ForecastResult: ...


class CovEstimator(Protocol):
    """The risk seam (`agent.risk.covariance.CovarianceEstimator`): Σ at asof from returns up to asof."""

    def estimate(
        self, returns: pd.DataFrame, asof: Any, *, fixed_params: dict[str, dict[str, Any]] | None = None
    ) -> CovEstimate: ...


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
    """Long-lived objects one process keeps across decisions: allocator (compiled optimizer or a static fit),
    GARCH state, ONNX sessions. `groups` maps a group name to member indices (for the overlays)."""

    settings: Settings
    store: PriceStore
    forecaster: Forecaster | None = None
    cov_estimator: CovEstimator | None = None
    allocator: Allocator | None = None
    groups: dict[str, list[int]] = field(default_factory=dict)
    lookback: int = 0
    min_history: int = 0
    config_digest: str = ""
    replay_garch_params: dict[str, dict[str, Any]] | None = None  # audit replay: recorded GARCH parameters
    skill: Any = None  # agent.skill.stage.SkillState: skill tracker and research switches (issue 9)
    leak_future: pd.DataFrame | None = None  # research.leak inside a replay only: the whole price frame

    @property
    def optimizer(self) -> Optimizer | None:
        """The compiled `Optimizer` when the allocation method is an optimizer (benchmarks, introspection)."""
        from agent.allocate.registry import OptimizerAllocator

        return self.allocator.optimizer if isinstance(self.allocator, OptimizerAllocator) else None

    @property
    def static_weights_(self) -> np.ndarray | None:
        """static_mvo: the weights fit at the first decision (None before it or for other methods)."""
        from agent.allocate.registry import StaticMvoAllocator

        return self.allocator.weights if isinstance(self.allocator, StaticMvoAllocator) else None

    @classmethod
    def create(cls, settings: Settings, store: PriceStore) -> EngineContext:
        from agent.allocate.registry import build_allocator
        from agent.research.leak import leak_future
        from agent.risk.covariance import CovarianceEstimator

        future = leak_future(settings)  # ConfigError: a look-ahead mode outside a replay
        tickers = settings.universe.tickers
        groups = {g: [tickers.index(t) for t in members] for g, members in settings.universe.groups.items()}
        forecaster: Forecaster | None = None
        model_lookback = 0
        if settings.forecast.model == "onnx":
            from agent.forecast import OnnxForecaster

            onnx = OnnxForecaster(
                settings.profile_models_dir, tickers, allow_leaky="models" in settings.research.leak
            )
            models = onnx.registry.models
            if not models:
                why = "; ".join(f"{p.name}: {r}" for p, r in onnx.registry.rejected[:2])
                raise ModelError(
                    f"no usable model in {settings.profile_models_dir}" + (f" ({why})" if why else ""),
                    hint="point AGENT_MODELS_DIR (or paths.models_dir) at the exported_models folder, rebuild "
                    "with `python -m training build --profile NAME`, or set forecast.model = 'none'",
                )
            # daily price rows one input window depends on (weekly features need ~5 sessions per row)
            model_lookback = max(
                m.spec.rows_needed * (6 if m.spec.frequency == "weekly" else 1) + 10 for m in models
            )
            forecaster = onnx
        skill = None
        f = settings.forecast
        if settings.skill.enabled or f.placebo is not None or f.oracle_ic is not None:
            from agent.skill.stage import SkillState

            skill = SkillState.create(settings)  # ConfigError: an oracle outside a research replay
        return cls(
            settings=settings,
            store=store,
            forecaster=forecaster,
            cov_estimator=CovarianceEstimator(settings.risk, tickers, settings.horizon),
            allocator=build_allocator(settings),
            groups=groups,
            lookback=required_history(settings, model_lookback),
            min_history=minimum_history(settings, model_lookback),
            config_digest=settings.strategy_digest(),
            skill=skill,
            leak_future=future,
        )


def check_models(ctx: EngineContext, first_asof: dt.date) -> None:
    """Preflight for a replay or a daemon start: a usable model exists for the first decision and fits the
    universe. Raises ModelError (one line) instead of letting every decision fall back to holding."""
    if ctx.forecaster is None:
        return
    info = ctx.forecaster.registry.select(first_asof)
    ctx.forecaster.check(info)
