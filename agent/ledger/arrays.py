"""Pure array helpers of the book (no SQLite, no state): the forward-fill seed and the forward fill."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ffill", "last_valid"]


def last_valid(arr: np.ndarray, colidx: np.ndarray, lo: int, n: int) -> np.ndarray:
    """Per ticker, the last non-NaN close in rows before `lo` (the ffill seed for a fresh ledger)."""
    import numpy as np

    seed = np.full(n, np.nan)
    if lo <= 0:
        return seed
    for j, k in enumerate(colidx.tolist()):
        if k < 0:
            continue
        col = arr[:lo, k]
        ok = np.nonzero(~np.isnan(col))[0]
        if ok.size:
            seed[j] = col[ok[-1]]
    return seed


def ffill(raw: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs down each column, starting from `seed` (the previous close)."""
    import numpy as np

    stacked = np.vstack([seed[None, :], raw])
    rows = np.where(np.isnan(stacked), 0, np.arange(stacked.shape[0])[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    return stacked[rows, np.arange(stacked.shape[1])][1:]
