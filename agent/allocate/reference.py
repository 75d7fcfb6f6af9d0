"""Reference portfolios and their implied (equilibrium) returns.

Why: a forecast should move the weights away from a sensible portfolio only as far as its measured skill earns
(issue 9). The reference is that portfolio; reverse optimization ``pi = delta * Sigma @ w_ref`` gives the
expected (excess) returns under which the mean-variance optimizer ``max mu'w - delta/2 w'Sigma w`` returns the
reference itself (first-order condition ``mu = delta * Sigma w``), so with no views, or no skill, the agent holds
the reference. ``delta`` must be the optimizer's own risk aversion for that identity to hold.

Kinds: ``equal_weight`` (1/N), ``inverse_vol`` (w ∝ 1/sigma), ``risk_parity`` (equal risk contributions, solved
by a damped fixed point), ``static_mvo`` (max-Sharpe fit once on pre-window data, given as ``weights``), and
``weights`` (given in the settings). Pure numpy, no look-ahead: the caller passes a covariance estimated at asof.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["REFERENCE_KINDS", "implied_returns", "inverse_vol", "reference_weights", "risk_parity"]

REFERENCE_KINDS = ("equal_weight", "inverse_vol", "risk_parity", "static_mvo", "weights")


def implied_returns(cov: np.ndarray, w_ref: np.ndarray, delta: float) -> np.ndarray:
    """Reverse optimization: the per-session excess returns ``delta * cov @ w_ref`` that make w_ref optimal."""
    return float(delta) * np.asarray(cov, dtype=float) @ np.asarray(w_ref, dtype=float)


def inverse_vol(cov: np.ndarray) -> np.ndarray:
    """Weights proportional to 1 / volatility, summing to one."""
    vol = np.sqrt(np.clip(np.diag(np.asarray(cov, dtype=float)), 1e-300, None))
    w = 1.0 / vol
    return w / w.sum()


def risk_parity(cov: np.ndarray, *, iters: int = 500, tol: float = 1e-12) -> np.ndarray:
    """Equal-risk-contribution weights (w_i (Sigma w)_i equal for all i), long-only, summing to one.

    A damped fixed point ``w <- sqrt(w / (Sigma w))`` (normalized) from inverse-vol weights; converges for a
    positive-definite Sigma (Chaudhry / Spinu style iteration). Falls back to inverse-vol if it does not.
    """
    c = np.asarray(cov, dtype=float)
    w = inverse_vol(c)
    for _ in range(iters):
        m = c @ w
        if np.any(m <= 0):
            return inverse_vol(c)
        new = np.sqrt(w / m)
        new /= new.sum()
        new = 0.5 * (w + new)
        if float(np.max(np.abs(new - w))) < tol:
            return new
        w = new
    return w


def reference_weights(
    kind: str,
    cov: np.ndarray,
    *,
    tickers: Sequence[str] = (),
    given: Mapping[str, float] | np.ndarray | None = None,
    max_weight: float = 1.0,
) -> np.ndarray:
    """The reference portfolio of ``kind`` for a covariance at asof (``given`` for weights / static_mvo)."""
    n = int(np.asarray(cov).shape[0])
    if kind == "equal_weight":
        w = np.full(n, 1.0 / n)
    elif kind == "inverse_vol":
        w = inverse_vol(cov)
    elif kind == "risk_parity":
        w = risk_parity(cov)
    elif kind in ("weights", "static_mvo"):
        if given is None:
            raise ValueError(f"reference {kind!r} needs weights")
        if isinstance(given, Mapping):
            unknown = sorted(set(given) - set(tickers))
            if unknown:
                raise ValueError(f"reference weights name tickers not in the universe: {', '.join(unknown)}")
            w = np.array([float(given.get(t, 0.0)) for t in tickers])
        else:
            w = np.asarray(given, dtype=float).copy()
        if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("reference weights must be non-negative, one per ticker, with a positive sum")
        w = w / w.sum() if w.sum() > 1 else w
    else:
        raise ValueError(f"unknown reference {kind!r}; expected one of {REFERENCE_KINDS}")
    return _cap(w, max_weight)


def _cap(w: np.ndarray, max_weight: float) -> np.ndarray:
    """Cap at max_weight, redistributing the excess pro rata to the uncapped names (water-filling)."""
    w = np.asarray(w, dtype=float).copy()
    total = float(w.sum())
    if max_weight >= 1 or w.size * max_weight < total - 1e-12:
        return w
    for _ in range(w.size):
        over = w > max_weight + 1e-15
        if not over.any():
            break
        excess = float((w[over] - max_weight).sum())
        w[over] = max_weight
        free = w < max_weight - 1e-15
        if not free.any():
            break
        w[free] += excess * w[free] / w[free].sum()
    return w
