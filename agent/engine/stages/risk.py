"""Stage 3, risk: the DAILY covariance averaged over the holding period (GARCH, EWMA or sample).

The estimator falls back per asset on its own (recorded in `risk.fallbacks`); anything it raises stops the
decision with no_trade through the pipeline's guard, since no later stage can size risk without Σ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.decision import digest
from agent.engine.frame import DecisionFrame, Outcome, vec
from agent.engine.pipeline import Stage, register_stage

if TYPE_CHECKING:
    from agent.risk.covariance import CovEstimate

__all__ = ["FULL_COV_MAX_N", "RiskOutcome", "RiskStage"]

FULL_COV_MAX_N = 100  # DESIGN.md invariant 8: the full Σ goes into the record up to 100 names


@dataclass
class RiskOutcome(Outcome):
    estimate: CovEstimate | None = None
    cov: np.ndarray | None = None
    tickers: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        est, cov, tickers = self.estimate, self.cov, self.tickers
        if est is None or cov is None:
            return {}
        rec: dict[str, Any] = {
            "method": est.method,
            "horizon": est.horizon,
            "repaired": bool(est.repaired),
            "fallbacks": list(est.fallbacks),
            "vols": vec(tickers, np.asarray(est.vols, dtype=float)),
            "params": est.params,
        }
        if len(tickers) <= FULL_COV_MAX_N:
            rec["cov"] = {t: vec(tickers, cov[i]) for i, t in enumerate(tickers)}
        else:
            rec["cov_digest"] = digest(cov)
        return {"risk": rec}

    def apply(self, frame: DecisionFrame) -> None:
        frame.cov_estimate, frame.cov = self.estimate, self.cov


@register_stage
class RiskStage(Stage):
    name = "risk"
    timing = "covariance"
    order = 30
    requires = frozenset({"returns"})
    provides = frozenset({"cov", "cov_estimate"})

    def run(self, frame: DecisionFrame) -> Outcome:
        estimator = frame.ctx.cov_estimator
        if estimator is None:
            raise RuntimeError("the engine context has no covariance estimator")
        est = estimator.estimate(
            frame.need("returns"), frame.asof, fixed_params=frame.ctx.replay_garch_params
        )
        cov = np.asarray(est.cov, dtype=float)
        n = len(frame.tickers)
        if cov.shape != (n, n):
            raise ValueError(f"covariance has shape {cov.shape}, expected ({n}, {n})")
        return RiskOutcome(estimate=est, cov=cov, tickers=frame.tickers)
