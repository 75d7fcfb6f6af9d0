"""Probabilistic and deflated Sharpe ratios (Bailey & López de Prado 2012/2014), from per-period returns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from agent.metrics.core import _NAN, _NORMAL, _ZERO_STD, EULER_GAMMA, _moments, _std

__all__ = [
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "sharpe_variance",
]


def _psr_from_stats(sr: float, sr_benchmark: float, n: int, skew: float, kurt: float) -> float:
    if n < 2 or not all(math.isfinite(v) for v in (sr, sr_benchmark, skew, kurt)):
        return _NAN
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    if not (var > 0):
        return _NAN
    return float(_NORMAL.cdf((sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(var)))


def _daily_stats(returns: np.ndarray | pd.Series) -> tuple[float, int, float, float]:
    x = np.asarray(returns, dtype=float)
    x = x[np.isfinite(x)]
    sd = _std(x)
    sr = float(np.mean(x) / sd) if sd > _ZERO_STD else _NAN
    skew, kurt = _moments(x)
    return sr, len(x), skew, kurt


def probabilistic_sharpe_ratio(returns: np.ndarray | pd.Series, sr_benchmark: float = 0.0) -> float:
    """P(true SR > sr_benchmark) given the sample SR, its length, skewness and kurtosis (Bailey & LdP 2012).

    PSR = Φ((SR − SR*) √(n − 1) / √(1 − γ3 SR + (γ4 − 1)/4 SR²)), all per period (not annualized):
    SR = mean / std(ddof=1), γ3 skewness, γ4 kurtosis (normal = 3), n the number of returns. `sr_benchmark` is
    per period too (divide an annual SR by √252). nan when the SR is undefined.
    """
    sr, n, skew, kurt = _daily_stats(returns)
    return _psr_from_stats(sr, sr_benchmark, n, skew, kurt)


def sharpe_variance(returns: np.ndarray | pd.Series) -> float:
    """Asymptotic variance of the per-period SR estimator: (1 − γ3 SR + (γ4 − 1)/4 SR²) / (n − 1).

    Why: the default dispersion of Sharpe ratios across trials for the deflated SR when the trials' own SRs are
    unknown (the dispersion expected if every trial were noise around this SR).
    """
    sr, n, skew, kurt = _daily_stats(returns)
    if n < 2 or not all(math.isfinite(v) for v in (sr, skew, kurt)):
        return _NAN
    return float((1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2) / (n - 1))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """E[max SR] of n_trials unskilled strategies (Bailey & LdP 2014, Euler–Mascheroni approximation).

    SR0 = √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))). One trial (or zero variance) gives 0: nothing to deflate.
    """
    if n_trials < 1:
        raise ValueError("n_trials must be >= 1")
    if n_trials == 1 or not (sr_variance > 0):
        return 0.0
    n = float(n_trials)
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e))
    return float(math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe_ratio(
    returns: np.ndarray | pd.Series, n_trials: int, sr_variance: float | None = None
) -> float:
    """PSR against the SR the best of `n_trials` noise strategies would show: guards against selection bias.

    `sr_variance` is the variance of the (per-period, non-annualized) Sharpe ratios across the trials; None uses
    `sharpe_variance(returns)` (estimation noise only).
    """
    if sr_variance is None:
        sr_variance = sharpe_variance(returns)
    if not math.isfinite(sr_variance):
        return _NAN
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, sr_variance))
