"""The GARCH model itself: parameters, filter state, and the numpy variance recursion (batch and per asset).

Why separate: the fixed-parameter filter/forecast is the hot path of every decision and needs numpy only;
estimation (agent/risk/garch_fit.py, which may import `arch`) builds on it. Conventions (p = variance lags,
q = shock lags; decimal units; the `arch` backcast) are explained in agent/risk/garch.py.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "Dist",
    "GarchParams",
    "GarchState",
    "Mean",
    "Metric",
    "OrderSelection",
    "arch_backcast",
    "average_variance",
    "filter_batch",
    "filter_state",
    "filter_variance",
    "forecast_batch",
    "forecast_variance",
    "initial_state",
    "stack_params",
]

Dist = Literal["normal", "t"]
Mean = Literal["constant", "zero"]
Metric = Literal["mse", "rmse", "mae"]

_SCALE = 100.0  # returns are fitted in percent
_BACKCAST_TAU = 75
_BACKCAST_DECAY = 0.94


@dataclass(frozen=True)
class GarchParams:
    """Fitted GARCH parameters in decimal-return units (see the module docstring for the order convention).

    `alphas[i]` multiplies ε²_{t-1-i} (q of them), `betas[j]` multiplies σ²_{t-1-j} (p of them). `loglik` is
    the log-likelihood of the decimal returns. `backcast` is the pre-sample variance `arch` used in the fit, so
    that `filter_variance(fit_returns, params)` reproduces `arch`'s fitted conditional variance exactly.
    """

    omega: float
    alphas: tuple[float, ...]
    betas: tuple[float, ...]
    mu: float = 0.0
    nu: float | None = None  # Student-t degrees of freedom; None for normal errors
    loglik: float = math.nan
    converged: bool = True
    n_obs: int = 0
    fitted_on: dt.date | None = None  # date of the last return used in the fit
    backcast: float | None = None
    dist: Dist = "normal"
    mean: Mean = "constant"
    message: str = ""  # optimizer message when not converged (or why the MLE fell back to `arch`)
    estimator: str = "arch"  # "mle" (agent.risk.garch_mle, analytic gradient) or "arch" (reference/fallback)

    @property
    def p(self) -> int:
        """Number of lagged variances (β)."""
        return len(self.betas)

    @property
    def q(self) -> int:
        """Number of lagged squared shocks (α)."""
        return len(self.alphas)

    @property
    def persistence(self) -> float:
        return float(sum(self.alphas) + sum(self.betas))

    @property
    def unconditional_variance(self) -> float:
        """ω / (1 - Σα - Σβ); inf when the process is not covariance stationary."""
        gap = 1.0 - self.persistence
        return self.omega / gap if gap > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the decision log."""
        return {
            "p": self.p,
            "q": self.q,
            "omega": self.omega,
            "alphas": list(self.alphas),
            "betas": list(self.betas),
            "mu": self.mu,
            "nu": self.nu,
            "loglik": self.loglik,
            "converged": self.converged,
            "n_obs": self.n_obs,
            "fitted_on": self.fitted_on.isoformat() if self.fitted_on else None,
            "dist": self.dist,
            "mean": self.mean,
            "persistence": self.persistence,
            "backcast": self.backcast,
            "estimator": self.estimator,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GarchParams:
        """Inverse of `to_dict` (JSON floats round-trip exactly): audit replay reuses recorded parameters."""
        fitted = d.get("fitted_on")
        return cls(
            omega=float(d["omega"]),
            alphas=tuple(float(a) for a in d["alphas"]),
            betas=tuple(float(b) for b in d["betas"]),
            mu=float(d.get("mu", 0.0)),
            nu=None if d.get("nu") is None else float(d["nu"]),
            loglik=math.nan if d.get("loglik") is None else float(d["loglik"]),
            converged=bool(d.get("converged", True)),
            n_obs=int(d.get("n_obs", 0)),
            fitted_on=dt.date.fromisoformat(fitted) if fitted else None,
            backcast=None if d.get("backcast") is None else float(d["backcast"]),
            dist=d.get("dist", "normal"),
            mean=d.get("mean", "constant"),
            estimator=str(d.get("estimator", "arch")),
        )

    def arch_vector(self) -> np.ndarray:
        """Parameters in `arch`'s order and percent units: [mu], omega, alphas, betas, [nu]."""
        v: list[float] = []
        if self.mean == "constant":
            v.append(self.mu * _SCALE)
        v.append(self.omega * _SCALE**2)
        v.extend(self.alphas)
        v.extend(self.betas)
        if self.dist == "t":
            v.append(self.nu if self.nu is not None else 8.0)
        return np.asarray(v, dtype=float)


@dataclass(frozen=True)
class GarchState:
    """The filter state after the last observed return: the last m squared residuals and variances.

    Arrays are oldest first, length m = max(p, q, 1); the next variance σ²_{T+1} is a function of these only.
    """

    eps2: np.ndarray = field(repr=False)
    sigma2: np.ndarray = field(repr=False)
    n_obs: int = 0

    @property
    def last_variance(self) -> float:
        return float(self.sigma2[-1])


@dataclass(frozen=True)
class OrderSelection:
    """Result of `select_order`: the best (p, q) and every candidate's hold-out scores."""

    p: int
    q: int
    metric: Metric
    scores: dict[tuple[int, int], dict[str, float]]
    n_train: int
    n_test: int


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------
def arch_backcast(resids: np.ndarray) -> float:
    """`arch`'s backcast: 0.94-weighted mean of the first min(75, T) squared residuals (oldest weighted most)."""
    r = np.asarray(resids, dtype=float)
    tau = min(_BACKCAST_TAU, r.shape[0])
    if tau == 0:
        return math.nan
    w = _BACKCAST_DECAY ** np.arange(tau)
    w = w / w.sum()
    return float(np.sum(r[:tau] ** 2 * w))


def _backcast_for(returns: np.ndarray, mean: Mean) -> float:
    """`arch` computes the backcast from the residuals at the mean model's *starting values*: r - mean(r)."""
    r = np.asarray(returns, dtype=float)
    return arch_backcast(r - r.mean() if mean == "constant" else r)


def _lags(params: GarchParams) -> int:
    return max(params.p, params.q, 1)


def initial_state(params: GarchParams, backcast: float) -> GarchState:
    """The pre-sample state: every lagged ε² and σ² equal to the backcast (as `arch` does)."""
    m = _lags(params)
    b = np.full(m, float(backcast))
    return GarchState(eps2=b, sigma2=b.copy(), n_obs=0)


def stack_params(params: Sequence[GarchParams], lags: int | None = None) -> tuple[np.ndarray, ...]:
    """Stack per-asset parameters for the batch functions: omega (N,), A (N×M), B (N×M), mu (N,).

    Orders may differ across assets: missing lags get zero coefficients.
    """
    m = lags or max((_lags(p) for p in params), default=1)
    n = len(params)
    omega = np.zeros(n)
    a = np.zeros((n, m))
    b = np.zeros((n, m))
    mu = np.zeros(n)
    for k, prm in enumerate(params):
        omega[k] = prm.omega
        a[k, : prm.q] = prm.alphas
        b[k, : prm.p] = prm.betas
        mu[k] = prm.mu
    return omega, a, b, mu


def _pad_history(h: np.ndarray, m: int) -> np.ndarray:
    """Left-pad a per-asset history (oldest first) to length m; padded lags carry zero coefficients."""
    h = np.asarray(h, dtype=float)
    if h.shape[0] >= m:
        return h[-m:]
    return np.concatenate([np.full(m - h.shape[0], h[0]), h])


# ----------------------------------------------------------------------------------------------------------
# batch recursion (N assets at once)
# ----------------------------------------------------------------------------------------------------------
def filter_batch(
    eps2: np.ndarray,
    omega: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    e0: np.ndarray,
    s0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the GARCH recursion over k new rows for N assets with fixed parameters.

    eps2: k×N squared residuals (finite); omega (N,), a/b (N×M) from `stack_params`; e0/s0: M×N histories of
    ε² and σ² (oldest first). Returns (σ² for the k rows, new e-history, new s-history). Why split: the ARCH
    part does not depend on σ², so it is computed for all rows at once; only the β part loops over time.
    """
    eps2 = np.asarray(eps2, dtype=float)
    k = eps2.shape[0]
    m = e0.shape[0]
    if k == 0:
        return np.empty((0, e0.shape[1])), e0.copy(), s0.copy()
    e = np.concatenate([e0, eps2], axis=0)  # (m+k)×N
    x = np.broadcast_to(omega, (k, omega.shape[0])).copy()
    for i in range(m):  # lag i+1 of ε² for row t sits at e[m + t - 1 - i]
        ai = a[:, i]
        if np.any(ai):
            x += ai * e[m - 1 - i : m - 1 - i + k]
    s = np.empty_like(e)
    s[:m] = s0
    active = [j for j in range(m) if np.any(b[:, j])]
    if len(active) == 1 and active[0] == 0:  # GARCH(1, q): the common case, one multiply-add per step
        b0 = b[:, 0]
        prev = s[m - 1]
        for t in range(k):
            prev = x[t] + b0 * prev
            s[m + t] = prev
    else:
        cols = [(j, b[:, j]) for j in active]
        for t in range(k):
            acc = x[t].copy()
            for j, bj in cols:
                acc += bj * s[m + t - 1 - j]
            s[m + t] = acc
    return s[m:], e[-m:].copy(), s[-m:].copy()


def forecast_batch(
    omega: np.ndarray, a: np.ndarray, b: np.ndarray, e: np.ndarray, s: np.ndarray, horizon: int
) -> np.ndarray:
    """Closed-form h = 1..H variance forecasts (H×N) from M×N histories, E[ε²_{T+h}] = σ²_{T+h} for h ≥ 1."""
    m = e.shape[0]
    n = omega.shape[0]
    ee = np.empty((m + horizon, n))
    ss = np.empty((m + horizon, n))
    ee[:m] = e
    ss[:m] = s
    for h in range(horizon):
        f = omega.copy()
        for i in range(m):
            f += a[:, i] * ee[m + h - 1 - i] + b[:, i] * ss[m + h - 1 - i]
        ee[m + h] = f
        ss[m + h] = f
    return ss[m:]


# ----------------------------------------------------------------------------------------------------------
# single-asset API
# ----------------------------------------------------------------------------------------------------------
def filter_state(
    returns: np.ndarray,
    params: GarchParams,
    state: GarchState | None = None,
    backcast: float | None = None,
) -> tuple[np.ndarray, GarchState]:
    """Conditional variances σ²_t of `returns` under fixed `params`, and the state after the last return.

    Starts from `state` when given (filter forward), else from `backcast` if given, else from `arch`'s rule
    applied to these returns (for the fit sample that is `params.backcast`, so the path equals `arch`'s fitted
    conditional variance and `model.fix(params)`'s). Non-finite
    returns are skipped (their σ² is NaN and the state carries over), so gaps do not break the recursion.
    """
    r = np.asarray(returns, dtype=float).ravel()
    finite = np.isfinite(r)
    rf = r[finite]
    m = _lags(params)
    if state is None:
        if backcast is None:
            backcast = _backcast_for(rf, params.mean)
        state = initial_state(params, backcast)
    omega, a, b, _ = stack_params([params], m)
    e0 = _pad_history(state.eps2, m)[:, None]
    s0 = _pad_history(state.sigma2, m)[:, None]
    sig, e1, s1 = filter_batch(((rf - params.mu) ** 2)[:, None], omega, a, b, e0, s0)
    out = np.full(r.shape[0], np.nan)
    out[finite] = sig[:, 0]
    return out, GarchState(eps2=e1[:, 0], sigma2=s1[:, 0], n_obs=state.n_obs + int(rf.shape[0]))


def filter_variance(
    returns: np.ndarray,
    params: GarchParams,
    state: GarchState | None = None,
    backcast: float | None = None,
) -> np.ndarray:
    """Conditional variance path σ²_t (same length as `returns`) with fixed parameters; see `filter_state`."""
    return filter_state(returns, params, state, backcast)[0]


def forecast_variance(params: GarchParams, state: GarchState, horizon: int) -> np.ndarray:
    """Variance forecasts for h = 1..horizon after the state's last return (decimal², per session)."""
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    m = _lags(params)
    omega, a, b, _ = stack_params([params], m)
    e = _pad_history(state.eps2, m)[:, None]
    s = _pad_history(state.sigma2, m)[:, None]
    return forecast_batch(omega, a, b, e, s, horizon)[:, 0]


def average_variance(params: GarchParams, state: GarchState, horizon: int) -> float:
    """Mean of the h = 1..H forecasts: the per-session variance over a holding period of H sessions.

    Why variances and not volatilities (study 004 §5.5 averages σ): the variance of a sum of H uncorrelated
    daily returns is the sum of their variances, so Σ for the holding period scales with the mean variance.
    """
    return float(np.mean(forecast_variance(params, state, horizon)))
