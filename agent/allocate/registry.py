"""Allocation methods as a registry: one entry per `allocation.method`, each saying what it needs.

The decision pipeline's allocate stage looks the configured method up here instead of an if/elif chain, and the
pipeline reads `needs` to stop early ("no forecast, holding") before computing anything the method cannot use.
An entry is a factory `settings -> Allocator`, built once per run (an optimizer is compiled once; static MVO
keeps its one fit). Adding a method: write the allocator and `register_allocation(...)` it here, then add its
name to `AllocationSettings.method`.

Every allocator returns an `Allocation`: proposed weights (before overlays) and the `optimizer` section of the
decision record, exactly as the engine recorded it before the registry existed (records stay byte-identical).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from agent.allocate.optimize import Optimizer
    from agent.settings import Settings

__all__ = [
    "ALLOCATION_METHODS",
    "Allocation",
    "AllocationInputs",
    "AllocationMethod",
    "Allocator",
    "EqualWeightAllocator",
    "ModelWeightsAllocator",
    "OptimizerAllocator",
    "ProportionalAllocator",
    "StaticMvoAllocator",
    "build_allocator",
    "method_needs",
    "register_allocation",
]


@dataclass(frozen=True)
class AllocationInputs:
    """What an allocator may read at one decision. `mu` and `model_weights` are None when there is no
    forecast (the pipeline only calls a method whose `needs` are met); `cov` is the DAILY covariance."""

    asof_iso: str
    cov: np.ndarray
    current: np.ndarray
    returns: pd.DataFrame
    mu: np.ndarray | None = None
    model_weights: np.ndarray | None = None
    factor_model: Any = None  # the risk stage's factor model (large universes): the optimizer poses risk in factor form


@dataclass(frozen=True)
class Allocation:
    """Proposed weights and the record of how they were reached (merged into the `optimizer` section)."""

    weights: np.ndarray
    record: dict[str, Any] = field(default_factory=dict)


class Allocator(Protocol):
    """A configured allocation method, long-lived across decisions."""

    def allocate(self, inputs: AllocationInputs) -> Allocation: ...


@dataclass(frozen=True)
class AllocationMethod:
    """A registry entry: `needs` ⊆ {"mu", "model_weights"}; `build` makes the allocator for a run."""

    name: str
    needs: frozenset[str]
    build: Callable[[Settings], Allocator]


ALLOCATION_METHODS: dict[str, AllocationMethod] = {}


def register_allocation(name: str, needs: frozenset[str], build: Callable[[Settings], Allocator]) -> None:
    ALLOCATION_METHODS[name] = AllocationMethod(name, needs, build)


def method_needs(method: str) -> frozenset[str]:
    """Inputs the method cannot do without (empty for an unknown name: the build step reports it)."""
    entry = ALLOCATION_METHODS.get(method)
    return entry.needs if entry else frozenset()


def _cost_scale(settings: Settings) -> float:
    """Skill-aware allocation may penalize turnover above the cost (skill.cost_multiplier; issue 9)."""
    return settings.skill.cost_multiplier if settings.skill.enabled else 1.0


def build_allocator(settings: Settings) -> Allocator:
    from agent.errors import ConfigError

    method = settings.allocation.method
    entry = ALLOCATION_METHODS.get(method)
    if entry is None:
        raise ConfigError(
            f"allocation.method {method!r} has no allocator; known: {', '.join(sorted(ALLOCATION_METHODS))}"
        )
    return entry.build(settings)


# ----------------------------------------------------------------------------------------------- optimizers
class OptimizerAllocator:
    """A convex method (`agent.allocate.optimize.Optimizer`), compiled once with the universe's groups."""

    def __init__(self, settings: Settings) -> None:
        from agent.allocate.optimize import Optimizer

        self.solver = settings.allocation.solver
        self.optimizer: Optimizer = Optimizer.from_settings(
            settings.allocation,
            settings.universe.tickers,
            settings.universe.groups,  # group NAMES -> member tickers; from_settings maps them to indices
            cost_bps=settings.execution.cost_bps * _cost_scale(settings),
            horizon=settings.horizon,
            mode=settings.allocation.compile,
        )

    def allocate(self, inputs: AllocationInputs) -> Allocation:
        n = inputs.cov.shape[0]
        res = self.optimizer.solve(
            inputs.mu if inputs.mu is not None else np.zeros(n),
            inputs.cov,
            inputs.current,
            factor_model=inputs.factor_model,
        )
        record: dict[str, Any] = {
            "method_used": res.method_used,
            "status": res.status,
            "reason_code": res.reason_code,
            "trace": list(res.trace),
            "objective": None if res.objective is None else float(res.objective),
            "solver": self.solver,
        }
        return Allocation(np.asarray(res.weights, dtype=float), record)


# ---------------------------------------------------------------------------------------------------- rules
def _rule_record(rr: Any) -> dict[str, Any]:
    return {"method_used": rr.rule, "status": "rule", "reason_code": rr.reason, "details": rr.details}


class EqualWeightAllocator:
    def __init__(self, settings: Settings) -> None:
        self.n = len(settings.universe.tickers)

    def allocate(self, inputs: AllocationInputs) -> Allocation:
        from agent.allocate.rules import equal_weight

        rr = equal_weight(self.n)
        return Allocation(np.asarray(rr.weights, dtype=float), _rule_record(rr))


class ProportionalAllocator:
    def __init__(self, settings: Settings) -> None:
        self.vol_limit = settings.allocation.target_volatility
        self.max_weight = settings.allocation.max_weight

    def allocate(self, inputs: AllocationInputs) -> Allocation:
        from agent.allocate.rules import proportional_to_forecast

        if inputs.mu is None:
            raise ValueError("proportional allocation needs a forecast mu")
        rr = proportional_to_forecast(inputs.mu, inputs.cov, self.vol_limit, max_weight=self.max_weight)
        return Allocation(np.asarray(rr.weights, dtype=float), _rule_record(rr))


class ModelWeightsAllocator:
    def __init__(self, settings: Settings) -> None:
        del settings

    def allocate(self, inputs: AllocationInputs) -> Allocation:
        from agent.allocate.rules import model_weights

        if inputs.model_weights is None:
            raise ValueError("model_weights allocation needs the model's weights")
        rr = model_weights(np.asarray(inputs.model_weights, dtype=float))
        return Allocation(np.asarray(rr.weights, dtype=float), _rule_record(rr))


class StaticMvoAllocator:
    """Max-Sharpe fit once on the window before the first decision, then held (studies 001 and 004)."""

    def __init__(self, settings: Settings) -> None:
        a = settings.allocation
        self.window, self.risk_free = a.mvo_window, a.risk_free_rate
        self.min_weight, self.max_weight = a.min_weight, a.max_weight
        self.weights: np.ndarray | None = None
        self.fit: dict[str, Any] = {}

    def restore(self, fit: Mapping[str, Any]) -> None:
        """Adopt the fit an earlier process recorded at the book's first decision (see `fit_weights`)."""
        self.weights = np.asarray(fit["fit_weights"], dtype=float)
        self.fit = {k: fit[k] for k in ("fit_on", "window", "reason_code", "fit_weights") if k in fit}

    def allocate(self, inputs: AllocationInputs) -> Allocation:
        from agent.allocate.rules import static_mvo

        if self.weights is None:
            window = inputs.returns.tail(self.window).to_numpy(dtype=float)
            rr = static_mvo(
                window, risk_free=self.risk_free, min_weight=self.min_weight, max_weight=self.max_weight
            )
            self.weights = np.asarray(rr.weights, dtype=float)
            self.fit = {
                "fit_on": inputs.asof_iso,
                "window": len(window),
                "reason_code": rr.reason,
                # recorded so a new process (run --once per slot, a restarted daemon) reloads this very fit
                # from the book's first decision instead of refitting on its own first date (issue 10)
                "fit_weights": [float(x) for x in self.weights],
            }
        record = {"method_used": "static_mvo", "status": "rule", "reason_code": "ok", **self.fit}
        return Allocation(self.weights.copy(), record)


_MU = frozenset({"mu"})
for _name in ("max_sharpe", "mean_variance", "target_volatility"):
    register_allocation(_name, _MU, OptimizerAllocator)
register_allocation("min_variance", frozenset(), OptimizerAllocator)
register_allocation("equal_weight", frozenset(), EqualWeightAllocator)
register_allocation("proportional", _MU, ProportionalAllocator)
register_allocation("model_weights", frozenset({"model_weights"}), ModelWeightsAllocator)
register_allocation("static_mvo", frozenset(), StaticMvoAllocator)
