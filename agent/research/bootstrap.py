"""Stationary block bootstrap (Politis & Romano 1994) of daily returns -> synthetic price histories.

Why this bootstrap: blocks of random (geometric) length keep volatility clustering and short-range
autocorrelation, and resampling whole rows keeps the cross-section's correlation; the resampled series is
stationary, unlike fixed-length blocks. Pure numpy functions; deterministic given the seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["stationary_bootstrap_indices", "synthetic_prices"]


def stationary_bootstrap_indices(
    n_source: int, n_out: int, mean_block: float, rng: np.random.Generator
) -> np.ndarray:
    """Row indices into a source of `n_source` rows: blocks start uniformly at random, continue circularly, and
    end after each step with probability 1/mean_block (so block lengths are geometric with that mean)."""
    if n_source < 1 or n_out < 0:
        raise ValueError("need n_source >= 1 and n_out >= 0")
    if mean_block < 1:
        raise ValueError("mean_block must be >= 1")
    if n_out == 0:
        return np.zeros(0, dtype=np.int64)
    new = rng.random(n_out) < 1.0 / mean_block
    new[0] = True
    starts = rng.integers(0, n_source, size=n_out)
    block = np.cumsum(new) - 1
    first_pos = np.flatnonzero(new)
    offset = np.arange(n_out) - first_pos[block]
    return ((starts[first_pos][block] + offset) % n_source).astype(np.int64)


def synthetic_prices(prices: pd.DataFrame, seed: int, path: int, mean_block: float) -> pd.DataFrame:
    """One bootstrap path of `prices` (rows where every column has a price): same dates, same first row, the
    daily simple returns resampled jointly across columns in stationary blocks. Path p of seed s is always the
    same series, whichever worker draws it."""
    import pandas as pd

    full = prices.dropna(how="any")
    if len(full) < 3:
        raise ValueError("need at least 3 complete rows to bootstrap")
    px = full.to_numpy(dtype=float)
    rets = px[1:] / px[:-1] - 1.0
    rng = np.random.default_rng([int(seed), int(path)])
    idx = stationary_bootstrap_indices(len(rets), len(rets), mean_block, rng)
    growth = np.vstack([np.ones((1, px.shape[1])), np.cumprod(1.0 + rets[idx], axis=0)])
    out = pd.DataFrame(px[0] * growth, index=full.index, columns=full.columns)
    out.index.name = prices.index.name
    return out
