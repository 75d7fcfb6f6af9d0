"""Cross-sectional covariance math for agent/risk/covariance.py: pure functions on T×N return arrays.

Why separate: these are the stateless estimators (EWMA, sample, rolling correlation, D·R·D assembly, PSD
repair, the calendar refit grid); the stateful GARCH estimator in agent/risk/covariance.py composes them.
Missing values (NaN) are zero-filled after demeaning and each asset is normalized by its own count of finite
observations, which keeps every Σ here positive semi-definite. numpy only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "assemble_covariance",
    "cov_to_corr",
    "ewma_covariance",
    "ewma_variance",
    "make_psd",
    "refit_epoch",
    "rolling_correlation",
    "sample_covariance",
]

# Refit grid origin: a Monday. Refits happen in the first session of every block of `refit_every` weekdays
# counted from here, so the schedule depends on the calendar only, not on when a run or backtest started.
_EPOCH0 = np.datetime64("1970-01-05", "D")
_EWMA_TAIL = 1e-12  # EWMA weights below this fraction of the newest weight are dropped (speed)
_CHOLESKY_FIRST = 200  # above this N, make_psd tries a Cholesky check before an eigendecomposition


_BLAS: Any = None  # threadpoolctl controller, created on first use (False when unavailable)


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run BLAS/LAPACK single-threaded for the small matrices here.

    Why: on a busy machine a multi-threaded eigh of a 30×30 matrix waits for a descheduled helper thread
    (measured 0.06 ms single-threaded vs 15 ms with two threads under load), and single-threaded results do
    not depend on the core count (byte-identical Σ across machines). No-op without threadpoolctl.
    """
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
        except Exception:  # optional dependency
            _BLAS = False
    if _BLAS is False:
        yield
        return
    with _BLAS.limit(limits=1, user_api="blas"):
        yield


# ----------------------------------------------------------------------------------------------------------
# cross-sectional estimators (pure functions on T×N arrays, rows oldest first)
# ----------------------------------------------------------------------------------------------------------
def _as_2d(returns: Any, window: int | None = None) -> np.ndarray:
    """T×N float array of the last `window` rows with ±inf as NaN (sliced first: cheap on long frames)."""
    x = np.asarray(returns, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"returns must be T×N, got shape {x.shape}")
    if window is not None:
        x = x[-window:]
    fin = np.isfinite(x)
    return x if fin.all() else np.where(fin, x, np.nan)


def _normalized_gram(x: np.ndarray, w: np.ndarray, ddof: float = 0.0) -> np.ndarray:
    """Σ_ij = Σ_t w_t x_ti x_tj / sqrt((W_i - ddof)(W_j - ddof)) with NaN as missing (zero-filled)."""
    fin = np.isfinite(x)
    z = np.where(fin, x, 0.0)
    g = (z * w[:, None]).T @ z
    g = 0.5 * (g + g.T)  # BLAS does not promise an exactly symmetric product
    wi = (fin * w[:, None]).sum(axis=0) - ddof
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(wi > 0, 1.0 / np.sqrt(np.where(wi > 0, wi, 1.0)), np.nan)
    return g * d[:, None] * d[None, :]


def _demean(x: np.ndarray) -> np.ndarray:
    """Subtract each column's mean over its finite values; constant columns become exactly zero."""
    fin = np.isfinite(x)
    n = fin.sum(axis=0)
    mean = np.where(fin, x, 0.0).sum(axis=0) / np.maximum(n, 1)
    out = x - mean
    with np.errstate(invalid="ignore"):
        const = (n > 0) & (
            np.nanmax(np.where(fin, x, -np.inf), axis=0) == np.nanmin(np.where(fin, x, np.inf), axis=0)
        )
    out[:, const] = np.where(fin[:, const], 0.0, np.nan)
    return out


def _column_var(x: np.ndarray) -> np.ndarray:
    """Per-column sample variance over finite values (NaN with fewer than two)."""
    z = _demean(x)
    n = np.isfinite(z).sum(axis=0)
    ss = np.where(np.isfinite(z), z, 0.0) ** 2
    return np.where(n > 1, ss.sum(axis=0) / np.maximum(n - 1, 1), np.nan)


def _ewma_tail(lam: float) -> int:
    return math.ceil(math.log(_EWMA_TAIL) / math.log(lam)) + 1


def ewma_covariance(returns: Any, lam: float = 0.94, window: int | None = None) -> np.ndarray:
    """RiskMetrics EWMA covariance (zero mean): Σ = Σ_k λ^k r_{T-k} r_{T-k}ᵀ / Σ_k λ^k over the last rows.

    Same as the recursion S_t = λ S_{t-1} + (1 - λ) r_t r_tᵀ from S_0 = 0, divided by (1 - λ^T) so that a short
    sample is not biased toward zero. `window` keeps only the last rows (the estimator drops rows whose weight
    is below 1e-12 of the newest). Vectorized: one T×N by N×T product.
    """
    x = _as_2d(returns, window)
    w = lam ** np.arange(x.shape[0] - 1, -1, -1, dtype=float)
    return _normalized_gram(x, w)


def ewma_variance(returns: Any, lam: float = 0.94, window: int | None = None) -> np.ndarray:
    """The diagonal of `ewma_covariance` in O(T·N): per-asset EWMA variances for GARCH fallbacks."""
    x = _as_2d(returns, window)
    w = lam ** np.arange(x.shape[0] - 1, -1, -1, dtype=float)
    fin = np.isfinite(x)
    num = (np.where(fin, x, 0.0) ** 2 * w[:, None]).sum(axis=0)
    den = (fin * w[:, None]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def sample_covariance(returns: Any, window: int | None = None) -> np.ndarray:
    """Sample covariance (demeaned, ddof=1) over the last `window` rows; equals np.cov when there is no NaN."""
    x = _as_2d(returns, window)
    return _normalized_gram(_demean(x), np.ones(x.shape[0]), ddof=1.0)


def cov_to_corr(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vols, corr) from a covariance; assets with zero/NaN variance get identity rows in corr."""
    d = np.diag(cov).copy()
    ok = np.isfinite(d) & (d > 0)
    vols = np.where(ok, np.sqrt(np.where(ok, d, 1.0)), np.nan)
    inv = np.where(ok, 1.0 / np.where(ok, vols, 1.0), 0.0)
    corr = cov * inv[:, None] * inv[None, :]
    corr = np.where(np.isfinite(corr), corr, 0.0)
    corr = np.clip(0.5 * (corr + corr.T), -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return vols, corr


def rolling_correlation(returns: Any, window: int = 60) -> np.ndarray:
    """Pearson correlation over the last `window` rows (study 004 §3.6.1): the window ending at the last row.

    A series that is constant or has fewer than two finite values in the window gets zero correlations.
    """
    x = _as_2d(returns, window)
    _, corr = cov_to_corr(_normalized_gram(_demean(x), np.ones(x.shape[0])))
    return corr


def make_psd(cov: np.ndarray, floor: float = 1e-10) -> tuple[np.ndarray, bool, float]:
    """Symmetrize and floor the eigenvalues at `floor`: returns (cov, repaired, min eigenvalue before).

    For N > 200 a successful Cholesky factorization of cov - floor·I proves no repair is needed and the
    minimum eigenvalue is returned as NaN (not computed).

    A repair keeps the diagonal (the variances) by rescaling after the eigenvalue clip, so vols stay what the
    variance model said; correlations absorb the change. Raises ValueError on non-finite input (callers
    sanitize first: a NaN here is a bug, not a market event).
    """
    c = np.asarray(cov, dtype=float)
    if not np.all(np.isfinite(c)):
        raise ValueError("covariance has non-finite entries")
    c = 0.5 * (c + c.T)
    if c.shape[0] == 0:
        return c, False, math.nan
    if c.shape[0] > _CHOLESKY_FIRST:
        try:  # O(N³/3) proof that every eigenvalue is >= floor; the eigendecomposition costs ~10x more
            np.linalg.cholesky(c - floor * np.eye(c.shape[0]))
            return c, False, math.nan
        except np.linalg.LinAlgError:
            pass
    evals, evecs = np.linalg.eigh(c)
    min_eig = float(evals[0])
    if min_eig >= floor:
        return c, False, min_eig
    fixed = (evecs * np.maximum(evals, floor)) @ evecs.T
    d_old = np.diag(c)
    d_new = np.diag(fixed)
    scale = np.where((d_old > 0) & (d_new > 0), np.sqrt(np.abs(d_old) / np.where(d_new > 0, d_new, 1.0)), 1.0)
    fixed = fixed * scale[:, None] * scale[None, :]
    return 0.5 * (fixed + fixed.T), True, min_eig


def assemble_covariance(
    vols: np.ndarray, corr: np.ndarray, shrinkage: float = 0.0, floor: float = 1e-10
) -> tuple[np.ndarray, bool, float]:
    """Σ = D R D (study 004 eq. 4) with R shrunk toward I by `shrinkage`, then `make_psd`.

    Why shrink: a correlation from a 60-session window is singular once N ≥ 60; (1 - s) R + s I is positive
    definite for any s > 0 and keeps unit diagonal.
    """
    r = np.asarray(corr, dtype=float)
    if shrinkage > 0:
        r = (1.0 - shrinkage) * r + shrinkage * np.eye(r.shape[0])
    v = np.asarray(vols, dtype=float)
    return make_psd(r * v[:, None] * v[None, :], floor)


def refit_epoch(dates: Any, refit_every: int) -> np.ndarray:
    """Refit block of each date: weekdays since 1970-01-05 // refit_every (a pure function of the date)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    return np.floor_divide(np.busday_count(_EPOCH0, d), refit_every)
