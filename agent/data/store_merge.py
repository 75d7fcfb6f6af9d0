"""How `PriceStore` combines what it has with what it fetched: the merge (new values win, repairs never
overwrite good data, counts of what changed) and the re-adjustment check on the re-fetched overlap.

Why separate: pure functions on two frames, no disk or locking; agent/data/store.py does the I/O around them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["merge", "readjusted"]

_READJUST_RTOL = 1e-6  # overlap values differing more than this mean the vendor re-adjusted history


def readjusted(current: pd.DataFrame, got: pd.DataFrame, tickers: Sequence[str]) -> list[str]:
    """Tickers whose re-fetched overlap disagrees with the stored prices (a dividend or split re-adjustment)."""
    out: list[str] = []
    common = current.index.intersection(got.index)
    if len(common) == 0:
        return out
    for t in tickers:
        if t not in got.columns:
            continue
        o = current.loc[common, t].to_numpy()
        n = got.loc[common, t].to_numpy()
        both = ~np.isnan(o) & ~np.isnan(n)
        if both.any() and not np.allclose(n[both], o[both], rtol=_READJUST_RTOL, atol=0):
            out.append(t)
    return out


def merge(
    old: pd.DataFrame, new: pd.DataFrame, protect: Sequence[tuple[str, str]] = ()
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """New values win where present; old values fill the rest. Counts what changed.

    `protect` lists (ticker, date) cells of `new` that are repairs (forward-filled): a repair never overwrites a
    good stored value, it only fills a cell the store does not have."""
    new = new.astype("float64")
    added = [c for c in new.columns if c not in old.columns]
    if old.shape[1] == 0 or len(old.index) == 0:
        merged = new.copy()
        changed_by: dict[str, int] = {}
        new_rows = len(new.index)
    else:
        index = old.index.union(new.index)
        cols = list(old.columns) + added
        o = old.reindex(index=index, columns=cols).to_numpy(dtype="float64")
        n = new.reindex(index=index, columns=cols).to_numpy(dtype="float64")
        have_n = ~np.isnan(n)
        if protect:
            pos_r = {d: i for i, d in enumerate(pd.DatetimeIndex(index).strftime("%Y-%m-%d"))}
            pos_c = {c: i for i, c in enumerate(cols)}
            rr = [pos_r[d] for t, d in protect if d in pos_r and t in pos_c]
            cc = [pos_c[t] for t, d in protect if d in pos_r and t in pos_c]
            repaired = np.zeros_like(have_n)
            repaired[rr, cc] = True
            have_n &= ~(repaired & ~np.isnan(o))  # the stored value stays
        both = have_n & ~np.isnan(o)
        with np.errstate(invalid="ignore"):
            diff = both & ~np.isclose(n, o, rtol=1e-12, atol=0.0)
        vals = np.where(have_n, n, o)
        merged = pd.DataFrame(vals, index=pd.DatetimeIndex(index, name="date"), columns=cols)
        counts = diff.sum(axis=0)
        changed_by = {c: int(k) for c, k in zip(cols, counts, strict=True) if k}
        new_rows = len(index) - len(old.index)
    merged.index.name = "date"
    stats = {
        "added_tickers": added,
        "updated_tickers": [c for c in new.columns if c not in added],
        "new_rows": int(new_rows),
        "changed_cells": int(sum(changed_by.values())),
        "changed_by_ticker": changed_by,
        "rows": len(merged),
        "first": merged.index[0].strftime("%Y-%m-%d") if len(merged) else None,
        "last": merged.index[-1].strftime("%Y-%m-%d") if len(merged) else None,
    }
    return merged, stats
