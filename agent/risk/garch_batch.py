"""GARCH MLE of many return series at once, bit-for-bit equal to fitting each alone (`fit_garch_mle`).

Why: a universe's assets are refitted together at one anchor, and a likelihood evaluation of one series at
T = 1000 is mostly numpy per-call overhead. Here each asset's loose SLSQP stage (scipy's reverse-communication
driver, exactly as agent/risk/garch_mle.py drives it) runs as a generator that yields every likelihood
request; the driver advances all assets of a block in lock-step, evaluates the new points of one round
together and hands each result back. The Newton stage and every fallback (SLSQP to the tight tolerance,
`minimize`, the caller's `arch`) then run per asset, unchanged (`garch_mle._after_basin`).

Bit-identity, by construction: a batched value evaluation performs, per asset, the same floating-point
operations on the same values as `GarchLik._value`. Elementwise operations (residuals, lags, 1/σ², log,
log1p, the Student-t terms), contiguous row sums (numpy's pairwise summation gives a row of a C-contiguous
array what it gives that row alone) and stacked matmuls (numpy calls the same BLAS routine per stacked item
as for one) run on (assets × T) arrays; the variance filter (`lfilter`: every asset has its own β, so no 2-D
filter) and every scalar (gammaln, math.log) run per asset. The state is installed as each asset's own
`GarchLik` cache (and its lag buffer is a row of the block's), so the gradient, the Hessian and the
evaluation count continue exactly as in a single fit. tests/unit/test_garch_batch.py checks parameters,
log-likelihood, iteration and evaluation counts with np.array_equal / ==.

Not batched, measured: the gradient. A stacked version was slower than the per-asset one from the batched
state (the block's arrays no longer stay in cache between the value and the gradient pass), and its dot
products with the reversed adjoint cannot be stacked bit-identically (numpy's stacked matmul sums them in
another order than np.dot's BLAS call). What bounds the gain: per fit ~45 `lfilter` passes (~9 µs each at
T = 1000), the SLSQP and Newton iterations and the starting grid stay per asset.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from agent.risk.garch_mle import (
    Dist,
    Mean,
    MleFit,
    _after_basin,
    _direct_slsqp_tested,
    _layout,
    _prepare,
    _Request,
    _slsqp_steps,
    fit_garch_mle,
)
from agent.risk.garch_newton import _LOG_2PI, _ONE, GarchLik

__all__ = ["fit_garch_mle_batch"]

_BLOCK = 32  # assets per lock-step block (measured: 8-64 alike at N = 160; larger blocks leave the cache)


def fit_garch_mle_batch(
    ys: list[np.ndarray],
    p: int,
    q: int,
    dist: Dist = "normal",
    mean: Mean = "constant",
    *,
    maxiter: int = 300,
    ftol: float = 1e-10,
    basin_ftol: float = 1e-4,
    block: int = _BLOCK,
) -> list[MleFit | Exception]:
    """``[fit_garch_mle(y, p, q, dist, mean, maxiter=maxiter, ...) for y in ys]``, bit for bit, cold start.

    An entry is the exception where `fit_garch_mle` would have raised for that series (the others are
    unaffected). The series run in lock-step in blocks of `block` (the batched arrays stay cache-sized)."""
    out: list[MleFit | Exception] = []
    for k in range(0, len(ys), max(1, block)):
        out.extend(_fit_block(ys[k : k + max(1, block)], p, q, dist, mean, maxiter, ftol, basin_ftol))
    return out


def _fit_block(
    ys: list[np.ndarray],
    p: int,
    q: int,
    dist: Dist,
    mean: Mean,
    maxiter: int,
    ftol: float,
    basin_ftol: float,
) -> list[MleFit | Exception]:
    if not _direct_slsqp_tested():  # pragma: no cover - an untested scipy: one at a time
        return [_single(y, p, q, dist, mean, maxiter, ftol, basin_ftol) for y in ys]
    try:
        from scipy.optimize._slsqplib import slsqp
    except ImportError:  # pragma: no cover - another scipy layout
        return [_single(y, p, q, dist, mean, maxiter, ftol, basin_ftol) for y in ys]
    _, ia, _, _, n_par = _layout(p, q, dist, mean)
    out: list[MleFit | Exception | None] = [None] * len(ys)
    liks: list[GarchLik] = []
    setup: list[tuple[np.ndarray, list[tuple[float, float]]]] = []
    gens: dict[int, Generator[_Request, Any, MleFit]] = {}
    for i, y0 in enumerate(ys):
        try:
            lik, sv, bounds, _ = _prepare(y0, p, q, dist, mean)
        except Exception as exc:
            out[i] = exc
            liks.append(None)  # type: ignore[arg-type]
            setup.append((np.zeros(n_par), []))
            continue
        liks.append(lik)
        setup.append((sv, bounds))
        gens[i] = _slsqp_steps(slsqp, lik, sv, bounds, ia, q + p, maxiter, basin_ftol)
    groups = _groups(liks)
    firsts: dict[int, MleFit] = {}
    pending: dict[int, _Request] = {}
    for i, gen in gens.items():
        _advance(i, gen, None, pending, firsts, out)
    while pending:
        results = _evaluate(liks, groups, pending)
        reqs, pending = pending, {}
        for i in reqs:
            _advance(i, gens[i], results[i], pending, firsts, out)
    for i, first in firsts.items():
        sv, bounds = setup[i]
        try:
            out[i] = _after_basin(liks[i], first, sv, bounds, ia, q + p, maxiter, ftol)
        except Exception as exc:
            out[i] = exc
    return [r if r is not None else RuntimeError("no result") for r in out]


def _single(
    y: np.ndarray, p: int, q: int, dist: Dist, mean: Mean, maxiter: int, ftol: float, basin_ftol: float
) -> MleFit | Exception:  # pragma: no cover - used only where the direct SLSQP driver is unavailable
    try:
        return fit_garch_mle(y, p, q, dist, mean, maxiter=maxiter, ftol=ftol, basin_ftol=basin_ftol)
    except Exception as exc:
        return exc


def _advance(
    i: int,
    gen: Generator[_Request, Any, MleFit],
    sent: Any,
    pending: dict[int, _Request],
    firsts: dict[int, MleFit],
    out: list[MleFit | Exception | None],
) -> None:
    """Hand asset `i` its result (an exception is thrown into it) and record its next request or its end."""
    try:
        req = gen.throw(sent) if isinstance(sent, Exception) else gen.send(sent)
    except StopIteration as stop:
        firsts[i] = stop.value
        return
    except Exception as exc:  # raised where fit_garch_mle would have raised
        out[i] = exc
        return
    pending[i] = req


class _Group:
    """Assets of equal length: their returns stacked, and their `GarchLik` lag buffers as rows of one array
    (each asset's `_lag` is a view of its row, so the single-asset code that follows reads what was filled)."""

    def __init__(self, liks: Sequence[GarchLik], members: list[int]):
        l0 = liks[members[0]]
        self.pos = {i: r for r, i in enumerate(members)}
        self.ys = np.stack([liks[i].y for i in members])
        self.bc = np.array([liks[i].bc for i in members])
        self.lag = np.empty((len(members), l0.q, l0.n_t))
        for r, i in enumerate(members):
            self.lag[r] = liks[i]._lag
            liks[i]._lag = self.lag[r]


def _groups(liks: Sequence[GarchLik | None]) -> dict[int, _Group]:
    by_len: dict[int, list[int]] = {}
    for i, lik in enumerate(liks):
        if lik is not None:
            by_len.setdefault(lik.n_t, []).append(i)
    out: dict[int, _Group] = {}
    for members in by_len.values():
        g = _Group(liks, members)  # type: ignore[arg-type]
        for i in members:
            out[i] = g
    return out


def _evaluate(liks: list[GarchLik], groups: dict[int, _Group], reqs: dict[int, _Request]) -> dict[int, Any]:
    """Answer every request as ``liks[i](theta, level)`` would, evaluating the new points together."""
    keys = {i: np.asarray(theta, dtype=float).tobytes() for i, (theta, _) in reqs.items()}
    new_val: dict[int, np.ndarray] = {}
    for i, (theta, _) in reqs.items():
        c = liks[i]._cache
        if c is None or c["key"] != keys[i]:
            new_val[i] = theta
    if new_val:
        try:
            for grp, idx in _split(groups, new_val):
                _values(liks, grp, idx, new_val, keys)
        except Exception:  # pragma: no cover - the single evaluations below raise (or not) per asset
            pass
    res: dict[int, Any] = {}
    for i, (theta, level) in reqs.items():
        c = liks[i]._cache
        if level == 0 and c is not None and c["key"] == keys[i]:
            res[i] = (c["f"], None, None)  # what GarchLik returns for a cached point at level 0
            continue
        try:
            res[i] = liks[i](theta, level)  # the gradient from the installed state (or a full evaluation)
        except Exception as exc:
            res[i] = exc
    return res


def _split(groups: dict[int, _Group], idx: dict[int, Any]) -> list[tuple[_Group, list[int]]]:
    out: dict[int, tuple[_Group, list[int]]] = {}
    for i in idx:
        g = groups[i]
        out.setdefault(id(g), (g, []))[1].append(i)
    return list(out.values())


def _values(
    liks: list[GarchLik], grp: _Group, idx: list[int], thetas: dict[int, np.ndarray], keys: dict[int, bytes]
) -> None:
    """GarchLik._value at `thetas` for the assets `idx` of one group, installed as each one's cache."""
    l0 = liks[idx[0]]
    n_t, p, q, iw, ia, ib = l0.n_t, l0.p, l0.q, l0.iw, l0.ia, l0.ib
    m = len(idx)
    rows = np.array([grp.pos[i] for i in idx])
    th = np.array([thetas[i] for i in idx], dtype=float)
    bc = grp.bc[rows]
    eps = grp.ys[rows] - th[:, :1] if l0.const_mean else grp.ys[rows] - 0.0
    e2 = eps * eps
    for j in range(q):
        grp.lag[rows, j, : j + 1] = bc[:, None]
        grp.lag[rows, j, j + 1 :] = e2[:, : n_t - 1 - j]
    x = np.matmul(th[:, None, ia : ia + q], grp.lag[rows])[:, 0, :]
    x += th[:, iw : iw + 1]
    den = np.empty((m, p + 1))
    den[:, 0] = 1.0
    den[:, 1:] = -th[:, ib : ib + p]
    betas = th[:, ib : ib + p]
    zi = betas * bc[:, None] if p == 1 else np.cumsum(betas[:, ::-1], axis=1)[:, ::-1] * bc[:, None]
    lf = l0._lfilter
    s = np.stack([lf(_ONE, den[r], x[r], -1, zi[r])[0] for r in range(m)])
    ok = s.min(axis=1) > 0.0
    with np.errstate(all="ignore"):
        inv = 1.0 / s
        sum_log = np.log(s).sum(axis=1)
        if l0.student_t:
            nus = th[:, -1]
            ks = nus - 2.0
            z = e2 * inv / ks[:, None]
            l1z = np.log1p(z)
            l1z_sum = l1z.sum(axis=1)
        else:
            e2_inv = np.matmul(e2[:, None, :], inv[:, :, None])[:, 0, 0]
    gl = l0._gammaln
    for r, i in enumerate(idx):
        lik, t = liks[i], th[r]
        key = keys[i]
        lik.n_eval += 1
        if not ok[r]:
            lik._cache = {"theta": t, "f": math.inf, "key": key}
            continue
        sls = float(sum_log[r])
        if l0.student_t:
            nu = float(t[-1])
            k = nu - 2.0
            c1 = (nu + 1.0) / 2.0
            ll = n_t * float(gl((nu + 1) / 2) - gl(nu / 2) - 0.5 * math.log(math.pi * k))
            ll -= 0.5 * sls + c1 * float(l1z_sum[r])
        else:
            ll = -0.5 * (n_t * _LOG_2PI + sls + float(e2_inv[r]))
        if not math.isfinite(ll):
            lik._cache = {"theta": t, "f": math.inf, "key": key}
            continue
        st = {"theta": t, "f": -ll, "mu": float(t[0]) if l0.const_mean else 0.0, "alphas": t[ia : ia + q],
              "eps": eps[r], "e2": e2[r], "den": den[r], "s": s[r], "inv": inv[r], "key": key}  # fmt: skip
        if l0.student_t:
            st.update(nu=nu, k=k, z=z[r], l1z=l1z[r], c1=c1, l1z_sum=float(l1z_sum[r]))
        lik._cache = st
