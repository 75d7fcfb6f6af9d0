"""GARCH(p, q) log-likelihood with its exact gradient and Hessian, and bound-constrained Newton steps on it.

Why: SLSQP converges slowly at the end (about half of its ~15 iterations of a GARCH(1,2) fit at T = 1000 are
spent below a 1e-4 change in the likelihood), and Newton steps on the exact Hessian converge quadratically
from there in ~2 steps. agent/risk/garch_mle.py uses SLSQP to 1e-4 (it decides which local optimum, as
`arch`'s SLSQP does) and these steps to converge.

Derivatives: σ²_t is the IIR filter 1/(1 - Σ_j β_j L^j) applied to x_t = ω + Σ_i α_i ε²_{t-i}, and its first
derivatives D_a = ∂σ²/∂θ_a are the same filter applied to c_a (1 for ω, ε²_{t-i} for α_i, σ²_{t-j} for β_j,
-2 Σ_i α_i ε_{t-i} for μ; zero pre-sample state, the backcast is a constant). Second derivatives obey the same
recursion with inputs c_ab = ∂σ²_{t-j}/∂θ_a when θ_b = β_j (both such terms for a pair of β's), -2 ε_{t-i} for
(μ, α_i), 2 Σ_i α_i for (μ, μ), 0 otherwise. Sums Σ_t w_t D_a,t are taken with the adjoint: Σ_t c_a,t λ_t with
λ the anti-causal filter of w, so the gradient costs one extra filter pass and the Hessian one more pass
over the k first-derivative channels (the second-derivative channels are never formed).

Steps: the constraints are `arch`'s, parameter bounds (box) and Σα + Σβ ≤ 1. Each step solves the quadratic
model over them exactly (a primal active-set QP, k ≤ ~8 parameters), then backtracks on the likelihood
(Armijo). Where the Hessian is not positive definite it is replaced by its restriction to the variables not
held at a bound (if that is positive definite), else by its mirrored and floored eigenvalues. Iterates stay
feasible; the result is a deterministic function of the returns and the starting point.

Conventions (parameter order, percent units, backcast, bounds) are those of agent/risk/garch_mle.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["GarchLik", "NewtonResult", "newton_fit"]

_LOG_2PI = math.log(2.0 * math.pi)


class GarchLik:
    """Negative log-likelihood of percent returns `y`, its gradient and Hessian (module docstring).

    Parameter order as `arch`: ``[mu], omega, alpha_1..alpha_q, beta_1..beta_p, [nu]``.
    """

    def __init__(self, y: np.ndarray, p: int, q: int, student_t: bool, const_mean: bool, backcast: float):
        from scipy.special import digamma, gammaln, polygamma

        self._lfilter = _scipy()[0]
        self._digamma, self._gammaln, self._polygamma = digamma, gammaln, polygamma
        self.y = np.ascontiguousarray(y, dtype=float)
        self.n_t = int(self.y.shape[0])
        self.p, self.q, self.student_t, self.const_mean = p, q, student_t, const_mean
        self.bc = float(backcast)
        k0 = 1 if const_mean else 0
        self.iw, self.ia, self.ib = k0, k0 + 1, k0 + 1 + q
        self.kv = k0 + 1 + q + p  # parameters σ² depends on
        self.n_par = self.kv + (1 if student_t else 0)
        self._lag = np.empty((q, self.n_t))
        self._chan = np.empty((self.kv, self.n_t))
        self.n_eval = 0
        self._cache: dict[str, Any] | None = None

    def __call__(self, theta: np.ndarray, level: int) -> tuple[float, np.ndarray | None, np.ndarray | None]:
        """(f, g, H) of the negative log-likelihood; g (level ≥ 1) and H (level 2) else None; f = inf where
        σ² is not positive. The intermediate results of the last point are kept, so asking for a higher level
        at the same point (an accepted line-search point) costs only the extra work."""
        c = self._cache
        key = np.asarray(theta, dtype=float).tobytes()
        if c is None or c["key"] != key:
            self.n_eval += 1
            c = self._value(np.array(theta, dtype=float))
            c["key"] = key
            self._cache = c
        if c["f"] == math.inf or level == 0:
            return c["f"], None, None
        if "g" not in c:
            self._gradient(c)
        if level == 1:
            return c["f"], c["g"], None
        if "h" not in c:
            self._hessian(c)
        return c["f"], c["g"], c["h"]

    def _value(self, theta: np.ndarray) -> dict[str, Any]:
        n_t, p, q, bc = self.n_t, self.p, self.q, self.bc
        mu = float(theta[0]) if self.const_mean else 0.0
        omega = float(theta[self.iw])
        alphas = theta[self.ia : self.ia + q]
        betas = theta[self.ib : self.ib + p]
        eps = self.y - mu
        e2 = eps * eps
        lag = self._lag
        for i in range(q):
            lag[i, : i + 1] = bc
            lag[i, i + 1 :] = e2[: n_t - 1 - i]
        x = alphas @ lag
        x += omega
        den = np.concatenate((_ONE, -betas))
        # lfilter's state for pre-sample σ² all equal to the backcast: zi_k = bc Σ_{j>k} β_j
        zi = betas * bc if p == 1 else np.cumsum(betas[::-1])[::-1] * bc
        s = self._lfilter(_ONE, den, x, -1, zi)[0]
        if not s.min() > 0.0:  # an infinite σ² makes the likelihood below non-finite
            return {"theta": theta, "f": math.inf}
        inv = 1.0 / s
        sum_log_s = float(np.log(s).sum())
        if self.student_t:
            nu = float(theta[-1])
            k = nu - 2.0
            z = e2 * inv / k
            l1z = np.log1p(z)
            c1 = (nu + 1.0) / 2.0
            gl = self._gammaln
            ll = n_t * float(gl((nu + 1) / 2) - gl(nu / 2) - 0.5 * math.log(math.pi * k))
            ll -= 0.5 * sum_log_s + c1 * float(l1z.sum())
        else:
            ll = -0.5 * (n_t * _LOG_2PI + sum_log_s + float(np.dot(e2, inv)))
        if not math.isfinite(ll):
            return {"theta": theta, "f": math.inf}
        st = {"theta": theta, "f": -ll, "mu": mu, "alphas": alphas, "eps": eps, "e2": e2, "den": den, "s": s,
              "inv": inv}  # fmt: skip
        if self.student_t:
            st.update(nu=nu, k=k, z=z, l1z=l1z, c1=c1)
        return st

    def _gradient(self, st: dict[str, Any]) -> None:
        n_t, p, q, bc = self.n_t, self.p, self.q, self.bc
        alphas, eps, e2, den, s, inv = (st[k] for k in ("alphas", "eps", "e2", "den", "s", "inv"))
        lag = self._lag
        if self.student_t:
            nu, k, z, l1z, c1 = (st[k] for k in ("nu", "k", "z", "l1z", "c1"))
        # per-observation partial derivatives of ℓ_t(σ², ε, ν)
        if self.student_t:
            iu = 1.0 / (1.0 + z)
            r = z * iu
            l_s = (c1 * r - 0.5) * inv
            l_e = -(nu + 1.0) * eps * inv * iu / k
        else:
            ze = e2 * inv
            l_s = 0.5 * (ze - 1.0) * inv
            l_e = -eps * inv
        # adjoint of the variance filter: Σ_t l_s,t ∂σ²_t/∂θ_a = Σ_t c_a,t λ_t with λ the anti-causal filter of
        # l_s and c_a the filter input of ∂σ²/∂θ_a (1 for ω, ε²_{t-i} for α_i, σ²_{t-j} for β_j, ...)
        lam = self._lfilter(_ONE, den, l_s[::-1], -1)[::-1]
        g = np.empty(self.n_par)
        g[self.iw] = float(lam.sum())
        g[self.ia : self.ia + q] = lag @ lam
        for j in range(p):
            g[self.ib + j] = bc * float(lam[: j + 1].sum()) + float(np.dot(s[: n_t - 1 - j], lam[j + 1 :]))
        if self.const_mean:
            gm = 0.0
            for i in range(q):
                gm += alphas[i] * float(np.dot(eps[: n_t - 1 - i], lam[i + 1 :]))
            g[0] = -2.0 * gm - float(l_e.sum())
        if self.student_t:
            dg = self._digamma
            cp = 0.5 * float(dg((nu + 1) / 2) - dg(nu / 2)) - 0.5 / k
            g[-1] = n_t * cp - 0.5 * float(l1z.sum()) + c1 * float(r.sum()) / k
        st["g"] = -g
        st.update(l_s=l_s, l_e=l_e, lam=lam)
        if self.student_t:
            st.update(iu=iu, r=r)
        else:
            st["ze"] = ze

    def _hessian(self, st: dict[str, Any]) -> None:
        n_t, p, q, bc = self.n_t, self.p, self.q, self.bc
        alphas, eps, den, s, inv = (st[k] for k in ("alphas", "eps", "den", "s", "inv"))
        lam, lag = st["lam"], self._lag
        if self.student_t:
            nu, k, c1, iu, r = (st[k] for k in ("nu", "k", "c1", "iu", "r"))
        else:
            ze = st["ze"]
        # first derivatives of σ² (forward filter, zero pre-sample state)
        chan = self._chan
        if self.const_mean:
            acc = chan[0]
            acc[:] = 0.0
            for i in range(q):
                acc[i + 1 :] += alphas[i] * eps[: n_t - 1 - i]
            acc *= -2.0
        chan[self.iw] = 1.0
        chan[self.ia : self.ia + q] = lag
        for j in range(p):
            row = chan[self.ib + j]
            row[: j + 1] = bc
            row[j + 1 :] = s[: n_t - 1 - j]
        d1 = self._lfilter(_ONE, den, chan, -1)
        # Σ_t l_s,t ∂²σ²_t/∂θ_a∂θ_b through the same adjoint: the inputs of the second derivatives (module
        # docstring) are lagged first derivatives for pairs with a β, -2ε_{t-i} for (μ, α_i), 2Σα for (μ, μ)
        kv = self.kv
        m = np.zeros((kv, kv))
        for j in range(p):
            m[:, self.ib + j] = d1[:, : n_t - 1 - j] @ lam[j + 1 :]
        hv = m + m.T
        if self.const_mean:
            cum = np.cumsum(lam[::-1])[::-1]  # Σ_{t≥s} λ_t
            hv[0, 0] += 2.0 * sum(float(alphas[i]) * float(cum[i + 1]) for i in range(q) if i + 1 < n_t)
            for i in range(q):
                v = -2.0 * float(np.dot(eps[: n_t - 1 - i], lam[i + 1 :]))
                hv[0, self.ia + i] += v
                hv[self.ia + i, 0] += v
        if self.student_t:
            l_ss = (0.5 - c1 * (2.0 * r - r * r)) * inv * inv
            l_se = (nu + 1.0) * eps * inv * inv * iu * iu / k
            l_ee_sum = -c1 * float((2.0 * inv * iu / k * (1.0 - 2.0 * r)).sum())
            l_sn = (0.5 * r - c1 * r * iu / k) * inv
            l_en = -eps * inv * iu / k + (nu + 1.0) * eps * inv * iu * iu / (k * k)
            pg = self._polygamma
            cpp = 0.25 * float(pg(1, (nu + 1) / 2) - pg(1, nu / 2)) + 0.5 / (k * k)
            l_nn_sum = n_t * cpp + float(r.sum()) / k - c1 * float((2.0 * r - r * r).sum()) / (k * k)
        else:
            l_ss = (0.5 - ze) * inv * inv
            l_se = eps * inv * inv
            l_ee_sum = -float(inv.sum())
        hv += (d1 * l_ss) @ d1.T
        if self.const_mean:
            cross = d1 @ l_se
            hv[0, :] -= cross
            hv[:, 0] -= cross
            hv[0, 0] += l_ee_sum
        if not self.student_t:
            st["h"] = -hv
            return
        h = np.empty((self.n_par, self.n_par))
        h[:kv, :kv] = hv
        col = d1 @ l_sn
        if self.const_mean:
            col[0] -= float(l_en.sum())
        h[:kv, -1] = col
        h[-1, :kv] = col
        h[-1, -1] = l_nn_sum
        st["h"] = -h


_ONE = np.ones(1)


_SCIPY: tuple[Any, Any, Any] | None = None


def _scipy() -> tuple[Any, Any, Any]:
    """scipy's lfilter, digamma, gammaln, imported once (lazily: scipy is a heavy import)."""
    global _SCIPY
    if _SCIPY is None:
        from scipy.special import digamma, gammaln

        lfilter: Any
        try:  # the C routine behind scipy.signal.lfilter: its Python wrapper costs ~13 µs a call (measured)
            from scipy.signal._sigtools import _linear_filter

            def _direct(b: Any, a: Any, x: Any, axis: int = -1, zi: Any = None) -> Any:
                a = np.asarray(a, dtype=float)
                b = np.asarray(b, dtype=float)
                if zi is None:
                    return _linear_filter(b, a, x, axis)
                return _linear_filter(b, a, x, axis, zi)

            lfilter = _direct
        except ImportError:  # pragma: no cover - a future scipy without the private name
            from scipy.signal import lfilter as _public

            lfilter = _public

        _SCIPY = (lfilter, digamma, gammaln)
    return _SCIPY


class NewtonResult:
    """Outcome of `newton_fit` (plain attributes)."""

    __slots__ = ("converged", "f", "message", "n_eval", "n_iter", "theta")

    def __init__(self, theta: np.ndarray, f: float, converged: bool, message: str, n_iter: int, n_eval: int):
        self.theta, self.f, self.converged = theta, f, converged
        self.message, self.n_iter, self.n_eval = message, n_iter, n_eval


def _qp(b: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray, a: np.ndarray, ub: float) -> np.ndarray:
    """argmin g·d + ½ dᵀ b d  s.t.  lo ≤ d ≤ hi, a·d ≤ ub  (b positive definite; lo ≤ 0 ≤ hi, ub ≥ 0).

    Primal active set (Nocedal & Wright, Alg. 16.3) with the bounds as fixed variables; the working set
    starts as the constraints active at d = 0. Returns a feasible d (0 if the working set cycles)."""
    n = g.shape[0]
    try:
        d = np.linalg.solve(b, -g)
    except np.linalg.LinAlgError:
        d = None
    if d is not None and bool(np.all(d >= lo) and np.all(d <= hi)) and float(a @ d) <= ub:
        return d
    if d is not None:  # guess the active set from the unconstrained step; kept if its KKT conditions hold
        guess = _eqp(b, g, lo, hi, a, ub, np.where(d < lo, -1, np.where(d > hi, 1, 0)), float(a @ d) > ub)
        if guess is not None:
            return guess
    state = np.zeros(n, dtype=int)  # -1 at lo, +1 at hi, 0 free
    state[lo >= 0.0] = -1
    state[hi <= 0.0] = 1
    lin = ub <= 0.0
    d = np.zeros(n)
    for _ in range(4 * n + 10):
        free = state == 0
        fx = ~free
        dx = np.where(state < 0, lo, hi)
        dn = np.where(fx, dx, 0.0)
        rhs = -g - b[:, fx] @ dx[fx]
        if lin and not bool(np.any(a[free] != 0.0)):
            lin = False
        nf = int(np.count_nonzero(free))
        lam = 0.0
        if lin:
            kkt = np.zeros((nf + 1, nf + 1))
            kkt[:nf, :nf] = b[np.ix_(free, free)]
            kkt[:nf, nf] = a[free]
            kkt[nf, :nf] = a[free]
            sol = np.linalg.lstsq(kkt, np.append(rhs[free], ub - float(a[fx] @ dx[fx])), rcond=None)[0]
            dn[free] = sol[:nf]
            lam = float(sol[nf])
        elif nf:
            dn[free] = np.linalg.solve(b[np.ix_(free, free)], rhs[free])
        step = dn - d
        if float(np.max(np.abs(step))) <= 1e-15 * (1.0 + float(np.max(np.abs(d)))):
            # multipliers of the working set: bounds from the QP gradient, the linear constraint from the solve
            r = b @ d + g + lam * a
            mult = np.where(state < 0, r, -r)
            mult[free] = np.inf
            i = int(np.argmin(mult))
            worst = float(mult[i])
            tol = -1e-14 * (1.0 + float(np.max(np.abs(g))))
            if lin and lam < tol and lam < worst:
                lin = False
                continue
            if worst >= tol:
                return d
            state[i] = 0
            continue
        # ratio test against the constraints outside the working set
        t_max, block, kind = 1.0, -1, 0
        with np.errstate(divide="ignore", invalid="ignore"):
            t_lo = np.where(free & (step < 0.0), (lo - d) / step, np.inf)
            t_hi = np.where(free & (step > 0.0), (hi - d) / step, np.inf)
        i_lo, i_hi = int(np.argmin(t_lo)), int(np.argmin(t_hi))
        if t_lo[i_lo] < t_max:
            t_max, block, kind = float(t_lo[i_lo]), i_lo, -1
        if t_hi[i_hi] < t_max:
            t_max, block, kind = float(t_hi[i_hi]), i_hi, 1
        if not lin:
            a_s = float(a @ step)
            if a_s > 0.0:
                t_a = (ub - float(a @ d)) / a_s
                if t_a < t_max:
                    t_max, block, kind = t_a, -2, 0
        t_max = max(t_max, 0.0)
        d = d + t_max * step
        if block >= 0:
            state[block] = kind
            d[block] = lo[block] if kind < 0 else hi[block]
        elif block == -2:
            lin = True
    return d


def _eqp(
    b: np.ndarray,
    g: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    a: np.ndarray,
    ub: float,
    state: np.ndarray,
    lin: bool,
) -> np.ndarray | None:
    """The QP's solution with the bounds in `state` (-1 lo, +1 hi) and, if `lin`, a·d = ub held as equalities,
    if that point is feasible and its multipliers are non-negative (then it is the QP's optimum); else None."""
    free = state == 0
    fx = ~free
    d = np.where(state < 0, lo, np.where(state > 0, hi, 0.0))
    rhs = -g - b[:, fx] @ d[fx]
    af = a[free]
    nf = int(np.count_nonzero(free))
    lam = 0.0
    try:
        if lin:
            if not bool(np.any(af != 0.0)):
                return None
            kkt = np.empty((nf + 1, nf + 1))
            kkt[:nf, :nf] = b[np.ix_(free, free)]
            kkt[:nf, nf] = af
            kkt[nf, :nf] = af
            kkt[nf, nf] = 0.0
            sol = np.linalg.solve(kkt, np.append(rhs[free], ub - float(a[fx] @ d[fx])))
            d[free] = sol[:nf]
            lam = float(sol[nf])
        elif nf:
            d[free] = np.linalg.solve(b[np.ix_(free, free)], rhs[free])
    except np.linalg.LinAlgError:
        return None
    tol = 1e-12 * (1.0 + float(np.max(np.abs(d))))
    if bool(np.any(d < lo - tol) or np.any(d > hi + tol)) or float(a @ d) > ub + tol or lam < 0.0:
        return None
    r = b @ d + g + lam * a
    if bool(np.any(r[state < 0] < 0.0) or np.any(r[state > 0] > 0.0)):
        return None
    return np.clip(d, lo, hi)


def _model_hessian(h: np.ndarray, g: np.ndarray, at_lo: np.ndarray, at_hi: np.ndarray) -> np.ndarray:
    """A positive definite model Hessian: h itself if positive definite; else, if h is positive definite on the
    variables that are not held at a bound by the gradient, h there with the held ones decoupled (the exact
    Newton step on that face); else h with its eigenvalues mirrored and floored."""
    try:
        np.linalg.cholesky(h)
        return h
    except np.linalg.LinAlgError:
        pass
    held = (at_lo & (g > 0.0)) | (at_hi & (g < 0.0))
    if held.any() and not held.all():
        free = ~held
        hf = h[np.ix_(free, free)]
        try:
            np.linalg.cholesky(hf)
            out = np.zeros_like(h)
            out[np.ix_(free, free)] = hf
            dg = np.abs(np.diag(h))
            out[held, held] = np.where(dg > 0.0, dg, 1.0)[held]
            return out
        except np.linalg.LinAlgError:
            pass
    w, v = np.linalg.eigh(h)
    w = np.maximum(np.abs(w), 1e-8 * max(float(np.max(np.abs(w))), 1e-300))
    return (v * w) @ v.T


def newton_fit(
    lik: GarchLik,
    theta0: np.ndarray,
    bounds: list[tuple[float, float]],
    *,
    maxiter: int = 100,
    tol: float = 1e-11,
    final: float = 1e-6,
) -> NewtonResult:
    """Minimize `lik` from `theta0` over the box `bounds` and Σα + Σβ ≤ 1 (module docstring).

    Converged when the quadratic model's decrease -g·d over the constraints is ≤ `tol` (the negative
    log-likelihood is then within ~`tol` of the local optimum), or when it is ≤ `final` and the full Newton
    step does not increase the likelihood's negative (quadratic convergence: the step lands within ~`final`²
    of the optimum; on the Dow and sector returns the result is bit-identical to `tol`-only fits)."""
    lo = np.array([b[0] for b in bounds], dtype=float)
    hi = np.array([b[1] for b in bounds], dtype=float)
    a = np.zeros(lik.n_par)
    a[lik.ia : lik.kv] = 1.0
    th = np.clip(np.asarray(theta0, dtype=float), lo, hi)
    tot = float(a @ th)
    if tot > 1.0:  # project onto Σα + Σβ ≤ 1 by shrinking the α's and β's
        th[lik.ia : lik.kv] *= (1.0 - 1e-6) / tot
    f, g, h = lik(th, 2)
    if g is None or h is None:
        return NewtonResult(th, f, False, "likelihood not finite at the starting values", 0, lik.n_eval)
    for it in range(1, maxiter + 1):
        b = _model_hessian(h, g, th <= lo, th >= hi)
        d = _qp(b, g, lo - th, hi - th, a, 1.0 - float(a @ th))
        dec = -float(g @ d)
        if dec <= tol:
            return NewtonResult(th, f, True, "", it - 1, lik.n_eval)
        if dec <= final:  # inside the quadratic region: this step ends within ~dec² of the optimum
            tn = np.clip(th + d, lo, hi)
            fn = lik(tn, 0)[0]
            if fn <= f:
                return NewtonResult(tn, fn, True, "", it, lik.n_eval)
        step = 1.0
        nxt: tuple[Any, ...] | None = None
        while step >= 1e-10:
            tn = np.clip(th + step * d, lo, hi)
            fn = lik(tn, 0)[0]  # the derivatives follow from the same evaluation if the point is kept
            if fn <= f - 1e-4 * step * dec:
                nxt = (tn, fn, None, None)
                break
            step *= 0.5
        if nxt is None:
            # no decrease along the Newton direction: at the optimum to rounding if the model says so
            ok = dec <= 1e-8 * max(1.0, abs(f))
            return NewtonResult(
                th, f, ok, "" if ok else f"line search failed (decrease {dec:.3g})", it, lik.n_eval
            )
        th, f, g, h = nxt
        if g is None or h is None:
            f, g, h = lik(th, 2)
            if g is None or h is None:  # pragma: no cover - f was finite a moment ago
                return NewtonResult(th, f, False, "derivatives not finite", it, lik.n_eval)
    return NewtonResult(th, f, False, f"no convergence in {maxiter} Newton steps", maxiter, lik.n_eval)
