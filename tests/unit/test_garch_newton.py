"""The exact Hessian and the constrained Newton steps behind the GARCH MLE (agent.risk.garch_newton).

The likelihood itself is checked against `arch` in tests/unit/test_garch_mle.py; here its gradient and
Hessian are checked against central differences, and the step's quadratic program against an enumeration of
its active sets (the QP is convex and tiny, so the enumeration is an independent exact solution).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agent.risk.garch_mle import _backcast, arch_starting_values, garch_negloglik
from agent.risk.garch_newton import GarchLik, _qp
from tests.unit.garch_sim import simulate_garch

SPECS = [(p, q, dist) for dist in ("normal", "t") for (p, q) in ((1, 1), (2, 1), (1, 2), (2, 2))]


_sim = simulate_garch


@pytest.mark.parametrize(("p", "q", "dist"), SPECS)
@pytest.mark.parametrize("mean", ["constant", "zero"])
def test_hessian_equals_differences_of_the_gradient(p, q, dist, mean):
    y = _sim(500, 3, t_df=6.0 if dist == "t" else None)
    th = arch_starting_values(y, p, q, dist, mean)
    th = th + 0.01 * np.abs(th) + 0.001  # off the grid point, no parameter at a bound
    bc = _backcast(y - (y.mean() if mean == "constant" else 0.0))
    lik = GarchLik(y, p, q, dist == "t", mean == "constant", bc)
    f, g, h = lik(th, 2)
    assert g is not None and h is not None
    f_ref, g_ref = garch_negloglik(th, y, p, q, dist, mean, bc)
    assert f == pytest.approx(f_ref, rel=1e-14)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(h, h.T, rtol=1e-12)
    num = np.empty_like(h)
    for i in range(th.shape[0]):
        step = 1e-6 * max(1.0, abs(th[i]))
        up, dn = th.copy(), th.copy()
        up[i] += step
        dn[i] -= step
        num[:, i] = (lik(up, 1)[1] - lik(dn, 1)[1]) / (2 * step)
    np.testing.assert_allclose(h, num, rtol=1e-6, atol=1e-7 * float(np.max(np.abs(h))))


def _qp_by_enumeration(b, g, lo, hi, a, ub):
    """Best feasible KKT point over every assignment of the constraints to active/inactive."""
    n = g.shape[0]
    best, best_val = np.zeros(n), 0.0
    for states in itertools.product((-1, 0, 1), repeat=n):
        for lin in (False, True):
            st = np.array(states)
            fixed = st != 0
            if np.any((st < 0) & ~np.isfinite(lo)) or np.any((st > 0) & ~np.isfinite(hi)):
                continue
            d = np.where(st < 0, lo, np.where(st > 0, hi, 0.0))
            free = ~fixed
            nf = int(free.sum())
            rhs = -g[free] - b[np.ix_(free, fixed)] @ d[fixed]
            if lin:
                k = np.zeros((nf + 1, nf + 1))
                k[:nf, :nf] = b[np.ix_(free, free)]
                k[:nf, nf] = a[free]
                k[nf, :nf] = a[free]
                sol = np.linalg.lstsq(k, np.append(rhs, ub - a[fixed] @ d[fixed]), rcond=None)[0]
                d[free] = sol[:nf]
            elif nf:
                d[free] = np.linalg.solve(b[np.ix_(free, free)], rhs)
            if np.all(d >= lo - 1e-12) and np.all(d <= hi + 1e-12) and a @ d <= ub + 1e-12:
                val = g @ d + 0.5 * d @ b @ d
                if val < best_val:
                    best, best_val = d, val
    return best, best_val


def test_step_qp_equals_enumeration():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 6))
        m = rng.normal(size=(n, n))
        b = m @ m.T + 0.1 * np.eye(n)
        g = rng.normal(size=n) * 5
        lo = -rng.uniform(0, 1, n)
        hi = rng.uniform(0, 1, n)
        lo[rng.random(n) < 0.3] = 0.0
        lo[0] = -np.inf if rng.random() < 0.3 else lo[0]
        a = np.zeros(n)
        a[1:] = 1.0
        ub = 0.0 if rng.random() < 0.3 else float(rng.uniform(0, 1))
        d = _qp(b, g, lo, hi, a, ub)
        assert np.all(d >= lo) and np.all(d <= hi) and a @ d <= ub + 1e-12
        _, ref = _qp_by_enumeration(b, g, lo, hi, a, ub)
        assert g @ d + 0.5 * d @ b @ d <= ref + 1e-10 * (1 + abs(ref))


@pytest.mark.parametrize("dist", ["normal", "t"])
def test_the_public_slsqp_path_finds_the_same_optimum(monkeypatch, dist):
    """An untested scipy release takes `scipy.optimize.minimize` instead of the private C driver: same optimum."""
    import agent.risk.garch_mle as gm

    y = _sim(1000, 11, t_df=6.0 if dist == "t" else None)
    direct = gm.fit_garch_mle(y, 1, 2, dist=dist)
    monkeypatch.setattr(gm, "_direct_slsqp_tested", lambda: False)
    public = gm.fit_garch_mle(y, 1, 2, dist=dist)
    assert direct.converged and public.converged
    np.testing.assert_allclose(public.params, direct.params, atol=1e-4)
    assert abs(public.loglik - direct.loglik) <= 1e-6 * abs(direct.loglik)
