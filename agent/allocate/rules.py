"""Allocation rules that need no optimizer (baselines and the studies' direct mappings).

Every rule returns a ``RuleResult``: long-only weights aligned to the input order (cash = 1 - sum), a reason
code ("ok" or why it degraded) and a small record of what it computed. Inputs are per session (daily ``mu``
and ``cov``); annual quantities are converted with 252 sessions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.decision import TRADING_DAYS, cash_weight, round_weights

__all__ = [
    "RuleResult",
    "equal_weight",
    "model_weights",
    "proportional_to_forecast",
    "sixty_forty",
    "static_mvo",
]

PERIODS = TRADING_DAYS


@dataclass(frozen=True)
class RuleResult:
    """Weights from a rule plus why they are what they are."""

    weights: np.ndarray
    rule: str
    reason: str = "ok"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def cash(self) -> float:
        return cash_weight(self.weights)

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": [float(x) for x in self.weights],
            "rule": self.rule,
            "reason": self.reason,
            "details": dict(self.details),
        }


def equal_weight(n: int) -> RuleResult:
    """1/N: the baseline every study compares against."""
    if n < 1:
        raise ValueError("n must be >= 1")
    return RuleResult(round_weights(np.full(n, 1.0 / n)), "equal_weight")


def _cap_and_redistribute(w: np.ndarray, cap: float) -> np.ndarray:
    """Cap weights at ``cap`` and hand the excess to the uncapped names pro rata (water-filling)."""
    w = w.copy()
    for _ in range(len(w) + 1):
        over = w > cap + 1e-15
        if not over.any():
            break
        excess = float((w[over] - cap).sum())
        w[over] = cap
        free = (w < cap - 1e-15) & (w > 0)
        if not free.any():
            break  # everything positive is capped: the excess goes to cash
        w[free] += excess * w[free] / w[free].sum()
    return np.minimum(w, cap)


def proportional_to_forecast(
    mu: np.ndarray, cov: np.ndarray, vol_limit_annual: float, max_weight: float = 1.0
) -> RuleResult:
    """Study 002: weights proportional to positive forecasts, scaled down so portfolio vol <= the limit.

    Non-positive forecasts get zero. Weights first sum to 1 over the positive names (capped at ``max_weight``
    with the excess redistributed), then the whole book is scaled by ``min(1, limit / vol)``; the rest is cash.
    All forecasts <= 0 -> all cash, reason ``no_positive_forecast``.
    """
    mu_a = np.asarray(mu, dtype=float).ravel()
    n = mu_a.size
    if not np.all(np.isfinite(mu_a)):
        return RuleResult(np.zeros(n), "proportional", "bad_input_nan_mu")
    cov_a = np.asarray(cov, dtype=float)
    if cov_a.shape != (n, n) or not np.all(np.isfinite(cov_a)):
        return RuleResult(np.zeros(n), "proportional", "bad_input_nan_cov")
    pos = np.where(mu_a > 0, mu_a, 0.0)
    if pos.sum() <= 0:
        return RuleResult(np.zeros(n), "proportional", "no_positive_forecast")
    w = _cap_and_redistribute(pos / pos.sum(), float(max_weight))
    var = float(w @ (0.5 * (cov_a + cov_a.T)) @ w)
    vol = math.sqrt(max(var, 0.0) * PERIODS)
    scale = 1.0 if vol <= vol_limit_annual else vol_limit_annual / vol
    w = round_weights(w * scale)
    details = {"vol_before": vol, "scale": scale, "vol_after": vol * scale, "vol_limit": vol_limit_annual}
    return RuleResult(w, "proportional", "ok" if scale == 1.0 else "vol_limited", details)


def model_weights(w: np.ndarray, *, tol: float = 1e-6, fallback: np.ndarray | None = None) -> RuleResult:
    """Validate a model's softmax output: finite, non-negative, summing to 1 within ``tol``; renormalized.

    Anything else is rejected (never "repaired" into a portfolio the model did not produce): the result is
    ``fallback`` (default 1/N) with the reason.
    """
    a = np.asarray(w, dtype=float).ravel()
    n = a.size

    def reject(reason: str) -> RuleResult:
        fb = np.full(n, 1.0 / n) if fallback is None else np.asarray(fallback, dtype=float).ravel()
        return RuleResult(round_weights(fb), "model_weights", reason, {"rejected": [float(x) for x in a]})

    if n == 0:
        raise ValueError("empty weight vector")
    if not np.all(np.isfinite(a)):
        return reject("model_weights_not_finite")
    if a.min() < -tol:
        return reject("model_weights_negative")
    total = float(np.clip(a, 0, None).sum())
    if abs(total - 1.0) > tol:
        return reject("model_weights_bad_sum")
    return RuleResult(round_weights(np.clip(a, 0, None) / total), "model_weights", "ok", {"sum": total})


def static_mvo(
    returns_train: Any,
    risk_free: float = 0.0,
    *,
    min_weight: float = 0.0,
    max_weight: float = 1.0,
    fully_invested: bool = True,
    solver: str = "CLARABEL",
) -> RuleResult:
    """Max-Sharpe on the historical mean and sample covariance of a training window, fit once.

    ``returns_train`` is T x N daily simple returns (array or DataFrame) from data available at fit time only;
    rows with any NaN are dropped. ``risk_free`` is annual. The caller holds the weights fixed afterwards
    (studies 001 and 004, and the backtest's static_mvo baseline).
    """
    from agent.allocate.optimize import Optimizer

    r = np.asarray(returns_train, dtype=float)
    if r.ndim != 2 or r.shape[1] < 1:
        raise ValueError("returns_train must be T x N")
    n = r.shape[1]
    r = r[np.all(np.isfinite(r), axis=1)]
    if r.shape[0] < 2:
        return RuleResult(
            np.full(n, 1.0 / n), "static_mvo", "insufficient_history", {"rows": int(r.shape[0])}
        )
    mu = r.mean(axis=0)
    cov = np.cov(r, rowvar=False, ddof=1).reshape(n, n)
    opt = Optimizer(
        "max_sharpe",
        n,
        min_weight=min_weight,
        max_weight=max_weight,
        fully_invested=fully_invested,
        risk_free_rate=risk_free,
        solver=solver,
        fallbacks=("min_variance", "equal_weight", "cash"),
    )
    res = opt.solve(mu, cov, None)
    details = {"rows": int(r.shape[0]), "optimizer": res.to_dict()}
    return RuleResult(res.weights, "static_mvo", res.reason_code, details)


def sixty_forty(tickers: Sequence[str], stock: str, bond: str) -> RuleResult:
    """60% in ``stock``, 40% in ``bond`` (study 003's benchmark); both must be in ``tickers``."""
    from agent.errors import ConfigError

    tickers = list(tickers)
    for name, t in (("stock", stock), ("bond", bond)):
        if t not in tickers:
            raise ConfigError(f"60/40 baseline: {name} leg {t!r} is not in the universe")
    if stock == bond:
        raise ConfigError("60/40 baseline: stock and bond legs must differ")
    w = np.zeros(len(tickers))
    w[tickers.index(stock)] = 0.6
    w[tickers.index(bond)] = 0.4
    return RuleResult(w, "sixty_forty", "ok", {"stock": stock, "bond": bond})
