"""The blackboard one decision's stages share (`DecisionFrame`) and the outcome each stage returns.

A stage reads the artifacts it `requires` from the frame and returns an `Outcome`; the runner merges the
outcome's `to_record()` into the decision record and lets it `apply()` its artifacts to the frame. Artifact
names are the frame's field names (plus free-form `extras` for stages added later), so "requires/provides" can
be checked mechanically: an artifact is present when its field is not None.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.decision import cash_weight

if TYPE_CHECKING:
    import pandas as pd

    from agent.decision import OverlayRecord, PortfolioState, StopState
    from agent.engine.context import EngineContext
    from agent.forecast import ForecastResult
    from agent.risk.covariance import CovEstimate
    from agent.settings import Settings

__all__ = ["DecisionFrame", "Outcome", "merge_record", "vec", "weights_dict"]


def vec(tickers: tuple[str, ...], x: np.ndarray | None) -> dict[str, float] | None:
    """A per-ticker vector as a {ticker: float} mapping for the record."""
    if x is None:
        return None
    return {t: float(v) for t, v in zip(tickers, np.asarray(x, dtype=float), strict=True)}


def weights_dict(tickers: tuple[str, ...], w: np.ndarray) -> dict[str, float]:
    """Weights per ticker plus the cash remainder, as every record section writes them."""
    d = vec(tickers, w) or {}
    d["cash"] = cash_weight(w)
    return d


@dataclass
class DecisionFrame:
    """Everything one decision has computed so far. Fields that are None are artifacts not yet provided."""

    asof: dt.date
    state: PortfolioState
    settings: Settings
    ctx: EngineContext
    tickers: tuple[str, ...]
    current: np.ndarray
    record: dict[str, Any]
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    fallbacks_open: bool = False  # the record carries `fallbacks` once a stage that provides them has run
    prices: pd.DataFrame | None = None
    returns: pd.DataFrame | None = None
    forecast: ForecastResult | None = None
    mu: np.ndarray | None = None
    model_weights: np.ndarray | None = None
    cov_estimate: CovEstimate | None = None
    cov: np.ndarray | None = None
    proposed: np.ndarray | None = None
    signal_hold: bool | None = None
    final: np.ndarray | None = None
    overlay_records: list[OverlayRecord] | None = None
    stop: StopState | None = None
    status: str | None = None
    reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        """Whether artifact `name` has been provided (a frame field or an entry in `extras`)."""
        if name in self.extras:
            return self.extras[name] is not None
        return getattr(self, name, None) is not None

    def need(self, name: str) -> Any:
        """An artifact a stage requires; the runner has checked it is there, this narrows the type."""
        value = self.extras[name] if name in self.extras else getattr(self, name, None)
        if value is None:
            raise LookupError(f"artifact {name!r} has not been provided")
        return value


def merge_record(record: dict[str, Any], part: Mapping[str, Any]) -> None:
    """Merge a stage's record into the decision's: nested sections merge (the forecast stage adds
    `inputs.model` next to the snapshot's `inputs.prices`), anything else is replaced."""
    for key, value in part.items():
        old = record.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            merge_record(old, value)
        else:
            record[key] = value


@dataclass
class Outcome:
    """What a stage returns. Subclasses hold the stage's typed results and say how they reach the frame.

    `halt`: a reason to stop here with a `no_trade` decision. `fallbacks`: `{"stage", "from", "to", "reason"}`
    entries for the decision record (degraded but decided)."""

    halt: str | None = None
    fallbacks: list[dict[str, Any]] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        return {}

    def apply(self, frame: DecisionFrame) -> None:
        """Write the provided artifacts to the frame (default: none)."""
        del frame
