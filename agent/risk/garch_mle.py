"""GARCH(p, q) maximum likelihood with an exact analytic gradient, built on linear filters.

Why: `arch` minimizes the negative log-likelihood with SLSQP and finite-difference gradients, i.e. ~2k+1
full variance recursions per iteration (k parameters), in a Python-level loop per asset: ~13 ms per
GARCH(1,2) fit at T = 1000. Here the variance recursion

    σ²_t = ω + Σ_{i=1..q} α_i ε²_{t-i} + Σ_{j=1..p} β_j σ²_{t-j}

is an IIR filter with denominator [1, -β_1, ..., -β_p] applied to x_t = ω + Σ α_i ε²_{t-i}, and every
derivative ∂σ²_t/∂θ obeys the same recursion with a different input (∂/∂ω: 1; ∂/∂α_i: ε²_{t-i};
∂/∂β_j: σ²_{t-j}; ∂/∂μ: -2 Σ α_i ε_{t-i}) and zero pre-sample values (the backcast is a constant). So the
log-likelihood and its exact gradient cost two `scipy.signal.lfilter` passes (C loops) per evaluation.

Conventions are `arch`'s exactly (checked against arch 8.0 source, `arch.univariate`), so that the optimum
is the same: returns in percent; parameter vector ``[mu], omega, alpha_1..alpha_q, beta_1..beta_p, [nu]``
(this package's p = variance lags, q = shock lags; `arch` names them the other way round); pre-sample ε² and
σ² = the backcast (0.94-weighted mean of the first 75 squared residuals at the mean's starting value,
mean(y)); bounds ω ∈ [1e-8·v, 10·v] with v = mean(resid²), α, β ∈ [0, 1], ν ∈ [2.05, 500], μ free; the
constraint Σα + Σβ ≤ 1; standardized Student-t with ν > 2 (σ² is the variance); starting values from
`arch`'s grid (α ∈ {.01, .05, .1, .2} × persistence ∈ {.5, .7, .9, .98}, best Gaussian likelihood) and,
for ν, the kurtosis rule. From there Newton steps on the exact Hessian (agent/risk/garch_newton.py, where
the likelihood, gradient and Hessian are evaluated with an adjoint filter pass) converge in ~5 steps; SLSQP
with the exact gradient (`arch`'s algorithm) decides the optimum where the likelihood may have several
(`fit_garch_mle`). `arch`'s loose variance bounds (a clamp at var/1e8 and 1e6 × an EWMA) are not applied:
they only bind far from any optimum.

Cold start only: the starting values are a function of the fitted returns alone, so a refit gives the same
parameters in any process (a daemon restarted between slots decides like a continuous replay). Every step
is deterministic arithmetic on the returns: no randomness, no state carried between fits.

Pure functions, numpy + scipy (imported lazily). No state.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from agent.risk.garch_newton import GarchLik, _scipy, newton_fit

_Request = tuple[np.ndarray, int]  # (parameter vector, derivative level) asked of the likelihood

__all__ = [
    "MleFit",
    "arch_starting_values",
    "fit_garch_mle",
    "garch_bounds",
    "garch_negloglik",
]

Dist = Literal["normal", "t"]
Mean = Literal["constant", "zero"]

_LOG_2PI = math.log(2.0 * math.pi)
_GRID_ALPHA = (0.01, 0.05, 0.1, 0.2)
_GRID_PERSIST = (0.5, 0.7, 0.9, 0.98)


@dataclass(frozen=True)
class MleFit:
    """Result in `arch`'s units and order (percent returns): see the module docstring."""

    params: np.ndarray
    loglik: float  # of the percent returns, as `arch` reports it
    converged: bool
    message: str
    n_iter: int
    n_eval: int
    backcast: float  # percent² units


def _backcast(resids: np.ndarray) -> float:
    tau = min(75, resids.shape[0])
    w = 0.94 ** np.arange(tau)
    w = w / w.sum()
    return float(np.sum(resids[:tau] ** 2 * w))


def _lagged(v: np.ndarray, m: int, fill: float) -> np.ndarray:
    """T×m matrix whose column i holds v[t-1-i] (``fill`` before the sample starts)."""
    t = v.shape[0]
    out = np.full((t, m), fill, dtype=float)
    for i in range(m):
        if i + 1 < t:
            out[i + 1 :, i] = v[: t - 1 - i]
    return out


def _layout(p: int, q: int, dist: Dist, mean: Mean) -> tuple[int, int, int, int, int]:
    """Index of omega, first alpha, first beta, nu (or -1), and the parameter count."""
    k0 = 1 if mean == "constant" else 0
    ia = k0 + 1
    ib = ia + q
    inu = ib + p if dist == "t" else -1
    n = ib + p + (1 if dist == "t" else 0)
    return k0, ia, ib, inu, n


def garch_negloglik(
    theta: np.ndarray,
    y: np.ndarray,
    p: int,
    q: int,
    dist: Dist,
    mean: Mean,
    backcast: float,
    *,
    grad: bool = True,
) -> tuple[float, np.ndarray | None]:
    """Negative log-likelihood of percent returns `y` (as `arch` computes it) and its exact gradient.

    `theta` in `arch`'s order (module docstring). Returns (inf, None) where σ² is not positive.
    """
    lfilter, digamma, gammaln = _scipy()
    iw, ia, ib, inu, _ = _layout(p, q, dist, mean)
    mu = float(theta[0]) if mean == "constant" else 0.0
    omega = float(theta[iw])
    alphas = np.asarray(theta[ia : ia + q], dtype=float)
    betas = np.asarray(theta[ib : ib + p], dtype=float)
    eps = y - mu
    e2 = eps * eps
    e_lag = _lagged(e2, q, backcast)
    x = omega + e_lag @ alphas
    den = np.concatenate(([1.0], -betas))
    zi = np.full(p, backcast) @ _zi_matrix(betas)
    sigma2 = lfilter([1.0], den, x, zi=zi)[0]
    if not np.all(sigma2 > 0) or not np.all(np.isfinite(sigma2)):
        return math.inf, None
    if dist == "t":
        nu = float(theta[inu])
        z = e2 / (sigma2 * (nu - 2.0))
        l1z = np.log1p(z)
        ll = (
            y.shape[0] * (gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * math.log(math.pi * (nu - 2)))
            - 0.5 * float(np.sum(np.log(sigma2)))
            - (nu + 1) / 2 * float(np.sum(l1z))
        )
    else:
        ll = -0.5 * (y.shape[0] * _LOG_2PI + float(np.sum(np.log(sigma2))) + float(np.sum(e2 / sigma2)))
    if not math.isfinite(ll):
        return math.inf, None
    if not grad:
        return -ll, None
    # dℓ/dσ²_t and the direct dℓ/dε_t
    if dist == "t":
        r = z / (1.0 + z)
        w = (-0.5 + (nu + 1) / 2 * r) / sigma2
        d_eps = -(nu + 1) * eps / (sigma2 * (nu - 2.0)) / (1.0 + z)
    else:
        w = 0.5 * (e2 / sigma2 - 1.0) / sigma2
        d_eps = -eps / sigma2
    # one row per derivative input (rows contiguous: lfilter runs along the last axis)
    n_t = y.shape[0]
    chans = np.empty((1 + q + p + (1 if mean == "constant" else 0), n_t))
    chans[0] = 1.0
    chans[1 : 1 + q] = e_lag.T
    for j in range(p):
        chans[1 + q + j, : j + 1] = backcast
        chans[1 + q + j, j + 1 :] = sigma2[: n_t - 1 - j]
    if mean == "constant":
        acc = np.zeros(n_t)
        for i in range(q):
            acc[i + 1 :] += alphas[i] * eps[: n_t - 1 - i]
        chans[-1] = -2.0 * acc
    d = lfilter([1.0], den, chans, axis=-1)
    g_vol = d @ w
    g = np.empty(theta.shape[0])
    g[iw : ib + p] = g_vol[: 1 + q + p]
    if mean == "constant":
        # ε_t = y_t - μ: dℓ/dμ = Σ dℓ/dσ² ∂σ²/∂μ - Σ dℓ/dε
        g[0] = g_vol[-1] - float(np.sum(d_eps))
    if dist == "t":
        g[inu] = float(
            y.shape[0] * (0.5 * digamma((nu + 1) / 2) - 0.5 * digamma(nu / 2) - 0.5 / (nu - 2))
            - 0.5 * np.sum(l1z)
            + (nu + 1) / 2 * np.sum(r) / (nu - 2)
        )
    return -ll, -g


def _zi_matrix(betas: np.ndarray) -> np.ndarray:
    """Map past outputs (σ²_{-1}, ..., σ²_{-p}) to `lfilter`'s direct-form-II-transposed state (as lfiltic).

    For b = [1] and a = [1, -β]: zi_k = Σ_{j>k} β_j y_{-(j-k)} (k = 0..p-1, 1-based β_j)."""
    p = betas.shape[0]
    m = np.zeros((p, p))
    for k in range(p):
        for j in range(k + 1, p + 1):
            m[j - k - 1, k] = betas[j - 1]
    return m


def garch_bounds(resids: np.ndarray, p: int, q: int, dist: Dist, mean: Mean) -> list[tuple[float, float]]:
    """`arch`'s parameter bounds (ω scaled by the mean squared residual at the starting mean)."""
    v = float(np.mean(resids**2))
    b: list[tuple[float, float]] = []
    if mean == "constant":
        b.append((-math.inf, math.inf))
    b.append((1e-8 * v, 10.0 * v))
    b.extend([(0.0, 1.0)] * (q + p))
    if dist == "t":
        b.append((2.05, 500.0))
    return b


def arch_starting_values(y: np.ndarray, p: int, q: int, dist: Dist, mean: Mean) -> np.ndarray:
    """`arch`'s starting values: the grid point with the best Gaussian likelihood, ν from the kurtosis.

    The 16 grid variances are filtered one by one (each has its own β) and scored in one vectorized pass."""
    lfilter = _scipy()[0]
    mu0 = float(np.mean(y)) if mean == "constant" else 0.0
    resids = y - mu0
    e2 = resids * resids
    n_t = resids.shape[0]
    bc = _backcast(resids)
    target = float(np.mean(e2))
    lag_sum = _lagged(e2, q, bc).sum(axis=1)  # every α_i = a/q on the grid: x_t = ω + (a/q) Σ_i ε²_{t-i}
    cands = [(a, agb) for a in _GRID_ALPHA for agb in _GRID_PERSIST]
    c_a = np.array([a for a, _ in cands])
    c_p = np.array([agb for _, agb in cands])
    x = ((1.0 - c_p) * target)[:, None] + (c_a / q)[:, None] * lag_sum[None, :]
    beta = (c_p - c_a) / p
    den = np.empty((len(cands), p + 1))
    den[:, 0] = 1.0
    den[:, 1:] = -beta[:, None]
    zi = (bc * beta)[:, None] * np.arange(p, 0, -1, dtype=float)[None, :]  # pre-sample σ² = backcast
    s2 = np.empty((len(cands), n_t))
    one = np.ones(1)
    for k in range(len(cands)):
        s2[k] = lfilter(one, den[k], x[k], -1, zi[k])[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = -0.5 * (np.sum(np.log(s2), axis=1) + (s2**-1.0) @ e2)
    ll[~np.isfinite(ll)] = -math.inf
    best_k = int(np.argmax(ll))  # first maximum wins, as np.argmax in arch
    a, agb = cands[best_k]
    out: list[float] = [mu0] if mean == "constant" else []
    out.append((1.0 - agb) * target)
    out.extend([a / q] * q)
    out.extend([(agb - a) / p] * p)
    if dist == "t":
        std = resids / np.sqrt(s2[best_k])
        c = std - std.mean()
        kurt = float(np.mean(c**4) / np.mean(c**2) ** 2)
        out.append(max((4.0 * kurt - 6.0) / (kurt - 3.0) if kurt > 3.75 else 12.0, 4.0))
    return np.asarray(out, dtype=float)


def fit_garch_mle(
    y: np.ndarray,
    p: int,
    q: int,
    dist: Dist = "normal",
    mean: Mean = "constant",
    *,
    starting_values: np.ndarray | None = None,
    maxiter: int = 300,
    ftol: float = 1e-10,
    basin_ftol: float = 1e-4,
) -> MleFit:
    """Maximum-likelihood fit of percent returns `y` (finite), from `arch`'s starting grid.

    SLSQP with the exact gradient (`arch`'s algorithm) runs to the loose tolerance `basin_ftol`, then Newton
    steps on the exact Hessian (agent/risk/garch_newton.py) converge from its point until the quadratic
    model's decrease is ≤ 1e-11. Why both: the likelihood can have several local optima (IBM GARCH(1,2): a
    GARCH optimum with α₂ = 0 and an ARCH(2) one with β = 0, 4.2 higher; XLV GARCH(1,2) fitted to
    2024-02-07: β = (0.03, 0.85) or (0.75, 0.17), 1.4 apart), and which one a fit ends in is decided by the
    path. SLSQP's path is `arch`'s; Newton steps from the grid point end elsewhere in 2 of the 252 test fits
    and in 1 of the 187 refits of the default weekly replay. SLSQP's slow final convergence (half its
    iterations below 1e-4) is what the Newton steps replace. If either stage fails, SLSQP runs to `ftol`.
    Never raises on a bad fit: `converged` is False and `message` says why (the caller falls back to `arch`).
    """
    lik, sv, bounds, ia = _prepare(y, p, q, dist, mean, starting_values)
    first = _slsqp_fit(lik, sv, bounds, ia, q + p, maxiter, basin_ftol)
    return _after_basin(lik, first, sv, bounds, ia, q + p, maxiter, ftol)


def _prepare(
    y: np.ndarray, p: int, q: int, dist: Dist, mean: Mean, starting_values: np.ndarray | None = None
) -> tuple[GarchLik, np.ndarray, list[tuple[float, float]], int]:
    """A fit's likelihood, starting values, bounds and first lag index (shared with agent/risk/garch_batch.py,
    so a batched fit starts from exactly what a single one does)."""
    y = np.ascontiguousarray(y, dtype=float)
    mu0 = float(np.mean(y)) if mean == "constant" else 0.0
    resids0 = y - mu0
    bc = _backcast(resids0)
    bounds = garch_bounds(resids0, p, q, dist, mean)
    _, ia, _, _, n_par = _layout(p, q, dist, mean)
    sv = arch_starting_values(y, p, q, dist, mean) if starting_values is None else starting_values
    if sv.shape != (n_par,) or not np.all(np.isfinite(sv)):
        sv = arch_starting_values(y, p, q, dist, mean)
    return GarchLik(y, p, q, dist == "t", mean == "constant", bc), sv, bounds, ia


def _after_basin(
    lik: GarchLik,
    first: MleFit,
    sv: np.ndarray,
    bounds: list[tuple[float, float]],
    ia: int,
    n_lag: int,
    maxiter: int,
    ftol: float,
) -> MleFit:
    """`fit_garch_mle` after its loose SLSQP stage `first`: Newton steps from its point, else SLSQP to `ftol`
    from the starting values `sv` (shared with agent/risk/garch_batch.py, which runs the first stage batched)."""
    bc = lik.bc
    if first.converged:
        nt = newton_fit(lik, first.params, bounds, maxiter=maxiter)
        if nt.converged and nt.f <= -first.loglik:
            return MleFit(nt.theta, -nt.f, True, "", first.n_iter + nt.n_iter, lik.n_eval, bc)
        why = nt.message or "Newton steps ended below the SLSQP point"
    else:
        why = first.message
    sq = _slsqp_fit(lik, sv, bounds, ia, n_lag, maxiter, ftol)
    msg = "" if sq.converged else f"{why}; {sq.message}"
    return MleFit(sq.params, sq.loglik, sq.converged, msg, first.n_iter + sq.n_iter, lik.n_eval, bc)


# scipy releases whose private C SLSQP driver this was checked against
_DIRECT_SLSQP_SCIPY = ((1, 16), (1, 17))


def _direct_slsqp_tested() -> bool:
    """Whether scipy is a release whose private SLSQP signature and work-buffer size were checked here: the
    driver writes into a buffer sized by scipy's own formula, so an unchecked release takes `minimize`."""
    import scipy

    try:
        major, minor = (int(v) for v in scipy.__version__.split(".")[:2])
    except ValueError:  # pragma: no cover - a development version string
        return False
    return (major, minor) in _DIRECT_SLSQP_SCIPY


def _slsqp_fit(
    lik: Any,
    sv: np.ndarray,
    bounds: list[tuple[float, float]],
    ia: int,
    n_lag: int,
    maxiter: int,
    ftol: float,
) -> MleFit:
    """SLSQP with the exact gradient, driven directly (scipy's reverse-communication SLSQP, as
    `scipy.optimize.minimize` drives it, without its per-call wrappers); `minimize` where that is missing."""
    if not _direct_slsqp_tested():  # pragma: no cover - an untested scipy: the public path
        return _slsqp_minimize(lik, sv, bounds, ia, n_lag, maxiter, ftol)
    try:
        from scipy.optimize._slsqplib import slsqp
    except ImportError:  # pragma: no cover - another scipy layout
        return _slsqp_minimize(lik, sv, bounds, ia, n_lag, maxiter, ftol)
    return _answer(_slsqp_steps(slsqp, lik, sv, bounds, ia, n_lag, maxiter, ftol), lik)


def _answer(steps: Generator[_Request, Any, MleFit], lik: Any) -> MleFit:
    """Run one fit's SLSQP stage alone: every request answered by `lik` (an exception `lik` raises is thrown
    into the stage, where it lands exactly as a direct call would). agent/risk/garch_batch.py answers the
    same requests of many assets together instead."""
    try:
        req = next(steps)
        while True:
            try:
                res = lik(*req)
            except Exception as exc:
                req = steps.throw(exc)
            else:
                req = steps.send(res)
    except StopIteration as stop:
        return stop.value


def _slsqp_steps(
    slsqp: Any,
    lik: GarchLik,
    sv: np.ndarray,
    bounds: list[tuple[float, float]],
    ia: int,
    n_lag: int,
    maxiter: int,
    ftol: float,
) -> Generator[_Request, Any, MleFit]:
    """The SLSQP stage as a generator: each ``lik(theta, level)`` it needs is yielded as a request and the
    driver sends back what `lik` returns there (`_answer` for one fit, agent/risk/garch_batch.py for many in
    lock-step), so that a batched fit runs the very same statements as a single one."""
    n = sv.shape[0]
    lo = np.array([b[0] for b in bounds], dtype=float)
    hi = np.array([b[1] for b in bounds], dtype=float)
    xl = np.where(np.isfinite(lo), lo, np.nan)  # the C code marks a missing bound with nan
    xu = np.where(np.isfinite(hi), hi, np.nan)
    state: dict[str, Any] = {
        "acc": ftol, "alpha": 0.0, "f0": 0.0, "gs": 0.0, "h1": 0.0, "h2": 0.0, "h3": 0.0, "h4": 0.0,
        "t": 0.0, "t0": 0.0, "tol": 10.0 * ftol, "exact": 0, "inconsistent": 0, "reset": 0, "iter": 0,
        "itermax": int(maxiter), "line": 0, "m": 1, "meq": 0, "mode": 0, "n": n,
    }  # fmt: skip
    indices = np.zeros(2 * n + 3, dtype=np.int32)
    buf = np.zeros(n * (n + 1) // 2 + 3 * n + 9 + 8 * n * n + 35 * n + 28)  # scipy's size for m = 1, meq = 0
    mult = np.zeros(2 * n + 3)
    cmat = np.zeros((1, n), order="F")
    cmat[0, ia : ia + n_lag] = -1.0
    cval = np.zeros(1)
    x = np.array(sv, dtype=float)
    try:
        fx = (yield (np.minimum(np.maximum(x, lo), hi), 0))[0]  # SLSQP may step past a bound by an ulp
        cval[0] = 1.0 - float(x[ia : ia + n_lag].sum())
        g0 = (yield (np.minimum(np.maximum(x, lo), hi), 1))[1]
        g = np.zeros(n) if g0 is None else g0.copy()
        while True:
            slsqp(state, fx, g, cmat, cval, x, mult, xl, xu, buf, indices)
            mode = int(state["mode"])
            if mode == 1:
                fx = (yield (np.minimum(np.maximum(x, lo), hi), 0))[0]
                cval[0] = 1.0 - float(x[ia : ia + n_lag].sum())
            elif mode == -1:
                g0 = (yield (np.minimum(np.maximum(x, lo), hi), 1))[1]
                g = np.zeros(n) if g0 is None else g0.copy()
            else:
                break
    except Exception as exc:
        return _slsqp_minimize(lik, sv, bounds, ia, n_lag, maxiter, ftol, why=f"{type(exc).__name__}: {exc}")
    xc = np.clip(x, lo, hi)
    f = (yield (xc, 0))[0]
    ok = mode == 0 and math.isfinite(f) and bool(np.all(np.isfinite(xc)))
    msg = "" if ok else f"SLSQP mode {mode}"
    return MleFit(xc, -f, ok, msg, int(state["iter"]), 0, lik.bc)


def _slsqp_minimize(
    lik: Any,
    sv: np.ndarray,
    bounds: list[tuple[float, float]],
    ia: int,
    n_lag: int,
    maxiter: int,
    ftol: float,
    why: str = "",
) -> MleFit:
    """SLSQP with the exact gradient through `scipy.optimize.minimize`."""
    from scipy.optimize import minimize

    n_par = sv.shape[0]
    a_row = np.zeros(n_par)
    a_row[ia : ia + n_lag] = -1.0
    cons = {"type": "ineq", "fun": lambda th: 1.0 + a_row @ th, "jac": lambda th: a_row}
    cache: dict[str, Any] = {}

    def fun(th: np.ndarray) -> float:
        f, g, _ = lik(th, 1)
        cache["g"] = g
        cache["x"] = th.copy()
        return float(f)

    def jac(th: np.ndarray) -> np.ndarray:
        if "x" not in cache or not np.array_equal(cache["x"], th):
            fun(th)
        g = cache["g"]
        return np.zeros(n_par) if g is None else g

    try:
        res = minimize(
            fun,
            sv,
            jac=jac,
            method="SLSQP",
            bounds=bounds,
            constraints=[cons],
            options={"maxiter": maxiter, "ftol": ftol},
        )
    except Exception as exc:  # scipy raises on pathological inputs: report, the caller falls back
        return MleFit(sv, math.nan, False, f"{why} {type(exc).__name__}: {exc}"[:200], 0, 0, lik.bc)
    x = np.asarray(res.x, dtype=float)
    f = lik(x, 0)[0]
    ok = bool(res.status == 0) and math.isfinite(f) and bool(np.all(np.isfinite(x)))
    msg = "" if ok else f"SLSQP status {res.status}: {res.message}"
    return MleFit(x, -f, ok, msg, int(getattr(res, "nit", 0)), int(getattr(res, "nfev", 0)), lik.bc)
