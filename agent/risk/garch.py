"""Per-asset GARCH(p, q) variance: fit with `arch`, filter and forecast with our own numpy recursion.

Why our own recursion: between re-estimations the parameters are fixed, so the variance only needs the
O(new rows) update σ²_t = ω + Σ α_i ε²_{t-i} + Σ β_j σ²_{t-j}; calling `arch` for that costs 1-3 ms per asset
and re-filters the whole window. The recursion here is vectorized across assets (a loop over time with numpy
vector ops across N) and reproduces `arch`'s conditional variance and analytic forecasts (tests check both).

**Order convention (read this).** Throughout this package ``p`` is the number of lagged *variances* (β terms)
and ``q`` the number of lagged *squared shocks* (α terms), as in the textbook formula of study 004 §3.6.3
(Bollerslev 1986)::

    σ²_t = ω + Σ_{i=1..q} α_i ε²_{t-i} + Σ_{j=1..p} β_j σ²_{t-j}

`arch` uses the opposite names (its ``p`` = shock lags, its ``q`` = variance lags), so `fit_garch` calls
``GARCH(p=q, q=p)``. Study 004's fitted model (§5.3, "GARCH(1,2)", written with `arch`'s naming) is
σ²_t = ω + α1 ε²_{t-1} + β1 σ²_{t-1} + β2 σ²_{t-2}: ONE shock lag and TWO variance lags, i.e. ``p=2, q=1``
here. `RiskSettings` names them by role instead (arch_lags = shock lags, garch_lags = variance lags, defaults
1 and 2 = the study's model), and `CovarianceEstimator` swaps them when it calls in. `GarchParams` stores `alphas` and
`betas` explicitly so a record is never ambiguous.

Units: `arch` is fitted on returns in percent (study 004 §4.3.2: better conditioned optimizer); everything
returned here is rescaled back to decimal returns (ω and the backcast in decimal², μ in decimal per session).
Mean: constant (``mean="constant"``, `arch`'s default and study 004's set-up; μ is estimated jointly and
ε_t = r_t - μ) or zero (``mean="zero"``, ε_t = r_t, RiskMetrics-style). Errors: normal or standardized
Student-t (ν > 2; σ² is the variance in both cases, so filtering and forecasting ignore ν).

Initialization: like `arch`, pre-sample ε² and σ² are the "backcast", an exponentially weighted (0.94, first
75 observations) mean of the squared residuals at the start of the sample; `arch`'s loose variance bounds are
not applied (they never bind for parameters that satisfy its constraints).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "GarchParams",
    "GarchState",
    "OrderSelection",
    "arch_backcast",
    "average_variance",
    "filter_batch",
    "filter_state",
    "filter_variance",
    "fit_garch",
    "forecast_batch",
    "forecast_variance",
    "initial_state",
    "select_order",
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
    message: str = ""  # optimizer message when not converged

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


# ----------------------------------------------------------------------------------------------------------
# estimation
# ----------------------------------------------------------------------------------------------------------
def _as_date(d: Any) -> dt.date | None:
    if d is None:
        return None
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    if hasattr(d, "date"):
        return d.date()
    return dt.date.fromisoformat(str(d)[:10])


def fit_garch(
    returns: np.ndarray,
    p: int = 1,
    q: int = 1,
    dist: Dist = "normal",
    starting_values: GarchParams | np.ndarray | None = None,
    *,
    mean: Mean = "constant",
    fitted_on: Any = None,
    maxiter: int = 500,
) -> GarchParams:
    """Maximum-likelihood GARCH fit of one return series (decimal units in, decimal units out).

    `p` = variance (β) lags, `q` = shock (α) lags (module docstring). Non-finite returns are dropped.
    `starting_values` (a previous `GarchParams` of the same spec, or an `arch`-ordered vector in percent units)
    warm-starts the optimizer: re-estimations on a rolling window then take a few iterations instead of a grid
    search. Never raises for a bad fit: `converged` is False and `message` says why; it raises ValueError only
    for unusable input (fewer than 10 finite returns) and lets `arch` exceptions propagate.
    """
    from arch.univariate import GARCH, ConstantMean, Normal, StudentsT, ZeroMean

    r = np.asarray(returns, dtype=float).ravel()
    r = r[np.isfinite(r)]
    if r.shape[0] < 10:
        raise ValueError(f"need at least 10 finite returns to fit GARCH, got {r.shape[0]}")
    if p < 1 or q < 1:
        raise ValueError(f"GARCH orders must be >= 1 (p={p}, q={q})")
    y = r * _SCALE
    model = (ConstantMean if mean == "constant" else ZeroMean)(y, rescale=False)
    model.volatility = GARCH(p=q, o=0, q=p)  # arch: p = shock lags, q = variance lags
    model.distribution = StudentsT() if dist == "t" else Normal()
    sv: np.ndarray | None = None
    if isinstance(starting_values, GarchParams):
        if (starting_values.p, starting_values.q, starting_values.dist, starting_values.mean) == (
            p,
            q,
            dist,
            mean,
        ):
            sv = starting_values.arch_vector()
    elif starting_values is not None:
        sv = np.asarray(starting_values, dtype=float)
    n_par = (1 if mean == "constant" else 0) + 1 + p + q + (1 if dist == "t" else 0)
    if sv is not None and (sv.shape != (n_par,) or not np.all(np.isfinite(sv))):
        sv = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(
            disp="off", show_warning=False, starting_values=sv, options={"maxiter": maxiter}, update_freq=0
        )
    v = np.asarray(res.params, dtype=float)
    k = 0
    mu = 0.0
    if mean == "constant":
        mu = float(v[0]) / _SCALE
        k = 1
    omega = float(v[k]) / _SCALE**2
    alphas = tuple(float(x) for x in v[k + 1 : k + 1 + q])
    betas = tuple(float(x) for x in v[k + 1 + q : k + 1 + q + p])
    nu = float(v[-1]) if dist == "t" else None
    n = int(r.shape[0])
    loglik = float(res.loglikelihood) + n * math.log(_SCALE)  # Jacobian of y = 100 r
    flag = int(res.convergence_flag)
    ok = flag == 0 and bool(np.all(np.isfinite(v))) and math.isfinite(loglik)
    msg = "" if flag == 0 else f"optimizer flag {flag}: {getattr(res.optimization_result, 'message', '')}"
    if ok and omega <= 0:
        ok, msg = False, f"omega {omega:g} <= 0"
    if ok and sum(alphas) + sum(betas) >= 1.0:
        ok, msg = False, f"persistence {sum(alphas) + sum(betas):.6f} >= 1 (not covariance stationary)"
    return GarchParams(
        omega=omega,
        alphas=alphas,
        betas=betas,
        mu=mu,
        nu=nu,
        loglik=loglik,
        converged=ok,
        n_obs=n,
        fitted_on=_as_date(fitted_on),
        backcast=_backcast_for(r, mean),
        dist=dist,
        mean=mean,
        message=msg,
    )


def select_order(
    returns: np.ndarray,
    max_p: int = 5,
    max_q: int = 5,
    metric: Metric = "mse",
    *,
    holdout: float = 0.2,
    dist: Dist = "normal",
    mean: Mean = "constant",
) -> OrderSelection:
    """Pick (p, q) in 1..max_p × 1..max_q by the 1-step variance forecast error on a time-ordered hold-out.

    Study 004 §5.3 ranked GARCH orders by MSE/RMSE/MAE of predicted vs realized volatility. Leak-free version:
    parameters are fitted on the first (1 - holdout) of the sample only; over the hold-out the variance is
    filtered with those fixed parameters, so each σ²_t uses returns before t only, and is compared with the
    realized squared residual ε²_t. For the training side (it fits max_p·max_q models); ties go to the
    smaller model. Non-converged candidates are skipped.
    """
    r = np.asarray(returns, dtype=float).ravel()
    r = r[np.isfinite(r)]
    n_test = round(r.shape[0] * holdout)
    n_train = r.shape[0] - n_test
    if n_test < 10 or n_train < 50:
        raise ValueError(f"series too short for a hold-out: {n_train} train / {n_test} test returns")
    train = r[:n_train]
    scores: dict[tuple[int, int], dict[str, float]] = {}
    for p in range(1, max_p + 1):
        for q in range(1, max_q + 1):
            prm = fit_garch(train, p, q, dist, mean=mean)
            if not prm.converged:
                continue
            sig = filter_variance(r, prm, backcast=prm.backcast)[n_train:]
            err = sig - (r[n_train:] - prm.mu) ** 2
            mse = float(np.mean(err**2))
            scores[(p, q)] = {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(err)))}
    if not scores:
        raise ValueError("no GARCH order converged")
    best = min(scores, key=lambda pq: (scores[pq][metric], pq[0] + pq[1], pq))
    return OrderSelection(p=best[0], q=best[1], metric=metric, scores=scores, n_train=n_train, n_test=n_test)
