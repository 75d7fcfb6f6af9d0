"""Seeded synthetic prices for in-process tests that must run without ../shared/data.

Geometric Brownian motion on the XNYS session calendar: log-returns are normal with a per-asset drift and
volatility and a one-factor correlation, so covariance estimators, optimizers and models see realistic shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["SECTORS", "gbm_prices"]

SECTORS = ("XLK", "XLF", "XLY", "XLE", "XLV", "XLP", "XLI", "XLB", "XLU")


def gbm_prices(
    tickers: Sequence[str] = SECTORS,
    start: str = "2016-01-04",
    end: str = "2020-06-30",
    *,
    seed: int = 0,
    annual_drift: float = 0.07,
    annual_vol: float = 0.2,
    market_share: float = 0.5,
) -> pd.DataFrame:
    """Wide adjusted closes (index `date`, one float64 column per ticker) from a seeded GBM."""
    from agent.data.calendar import sessions

    idx = sessions(start, end)
    rng = np.random.default_rng(seed)
    n, t = len(tickers), len(idx)
    vols = annual_vol * rng.uniform(0.6, 1.4, n) / np.sqrt(252)
    drifts = annual_drift * rng.uniform(-0.5, 1.5, n) / 252
    market = rng.standard_normal(t)
    own = rng.standard_normal((t, n))
    z = np.sqrt(market_share) * market[:, None] + np.sqrt(1 - market_share) * own
    logret = drifts - 0.5 * vols**2 + vols * z
    logret[0] = 0.0
    prices = 50.0 * rng.uniform(0.5, 2.0, n) * np.exp(np.cumsum(logret, axis=0))
    return pd.DataFrame(prices, index=idx, columns=list(tickers), dtype="float64")
