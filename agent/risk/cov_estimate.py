"""`CovEstimate`: the Σ one decision used and how it was obtained (method, fallbacks, repair, GARCH params).

Why separate: it is the plain, frozen result type that the engine and the decision log read; the estimator
that produces it lives in agent/risk/covariance.py.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CovEstimate"]


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class CovEstimate:
    """Σ for one decision: daily covariance averaged over `horizon` sessions, and how it was obtained.

    `method` is what was actually used: 'garch', 'garch+ewma' (some assets fell back), 'ewma' or 'sample'.
    `fallbacks`: [{"ticker", "from", "to", "reason"}]. `params`: ticker -> GARCH parameters (plain dict) for
    the assets whose variance came from GARCH. `min_eig`: smallest eigenvalue before any repair.
    """

    cov: np.ndarray
    vols: np.ndarray
    corr: np.ndarray
    method: str
    fallbacks: list[dict[str, str]]
    repaired: bool
    params: dict[str, dict[str, Any]]
    horizon: int
    tickers: tuple[str, ...] = ()
    asof: dt.date | None = None
    min_eig: float = math.nan
    refit: bool = False  # GARCH parameters were re-estimated in this call
    timings: dict[str, float] = field(default_factory=dict)
    factor: Any = None  # agent.risk.factor.FactorModel when Σ came from the factor model (cov = its dense form)

    def to_record(self, max_names: int = 100) -> dict[str, Any]:
        """Plain data for the decision log; the full matrix per ticker pair for universes up to `max_names`."""
        rec: dict[str, Any] = {
            "method": self.method,
            "horizon": self.horizon,
            "asof": self.asof.isoformat() if self.asof else None,
            "fallbacks": [dict(f) for f in self.fallbacks],
            "repaired": self.repaired,
            "min_eig": self.min_eig,
            "refit": self.refit,
            "vols": {t: float(v) for t, v in zip(self.tickers, self.vols, strict=True)},
            "params": self.params,
        }
        if self.factor is not None:
            rec["factor_model"] = {
                "k": self.factor.k,
                "shrinkage": self.factor.shrinkage,
                "method": self.factor.method,
            }
        if len(self.tickers) <= max_names:
            rec["cov"] = {
                a: {b: float(self.cov[i, j]) for j, b in enumerate(self.tickers)}
                for i, a in enumerate(self.tickers)
            }
        return rec
