"""Corporate actions: keep the book whole when the vendor re-adjusts a ticker's history.

Why. Prices are adjusted closes (yfinance ``auto_adjust``). After a split or a dividend the vendor rescales the
whole history before the event, so the store's close for a date the ledger already marked changes: by 1/4
after a 4:1 split, by (1 − d/P) after a dividend d. The ledger holds SHARES marked at the old scale; valuing
them at the new scale would book a 75% loss for the split and silently drop the dividend.

What. At the start of :meth:`LedgerBook.advance` (inside the run's transaction) the close the ledger used at
its last marked session is compared with the close the new price history gives for that same session. For each
held ticker whose ratio ``factor = new / old`` differs from 1 (beyond float noise), the position is rebased:
``shares *= 1 / factor`` (the position's value at the last mark is unchanged), the forward-fill seed moves to
the new scale, and a ``corporate_action`` event records ticker, date, factor, prices and shares before/after.
The NAV path therefore stays continuous, and a dividend shows up as total return exactly as the adjusted-price
backtest counts it. Fill rows keep the prices actually paid (history is never rewritten); the event's factor
restates them to the new scale where needed (there is no separate cost-basis column to rebase).

A close the ledger forward-filled at its last mark (the vendor had no price then) is not a basis for a factor:
a late real close is a correction, not a re-adjustment, so such a ticker only gets its seed refreshed.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from agent.ledger.arrays import last_valid
from agent.ledger.schema import DECIMALS, STATE_LAST_PRICES
from agent.ledger.tx import LedgerWrites

if TYPE_CHECKING:
    import numpy as np

__all__ = ["READJUST_RTOL", "LedgerActions", "event_dicts", "readjust_factors"]

# closes are stored as float64 and the ledger's seed round-trips exactly through JSON; anything beyond this
# relative difference is a re-adjustment, not float noise
READJUST_RTOL = 1e-10


def readjust_factors(old: np.ndarray, new: np.ndarray, rtol: float = READJUST_RTOL) -> np.ndarray:
    """Per ticker, ``new / old`` where both closes are finite and positive and differ by more than `rtol`
    (relative); NaN elsewhere (no re-adjustment, or nothing to compare)."""
    import numpy as np

    o = np.asarray(old, dtype=float)
    n = np.asarray(new, dtype=float)
    ok = np.isfinite(o) & np.isfinite(n) & (o > 0) & (n > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(ok, n / np.where(ok, o, 1.0), np.nan)
    return np.where(ok & (np.abs(f - 1.0) > rtol), f, np.nan)


def event_dicts(rows: list[tuple[Any, ...]]) -> tuple[dict[str, Any], ...]:
    """Event rows ``(date, kind, ticker, run_id, detail_json)`` as dicts (for AdvanceResult and the log)."""
    return tuple(
        {"date": d, "kind": k, "ticker": t, "run_id": r, "detail": json.loads(x)} for d, k, t, r, x in rows
    )


class LedgerActions(LedgerWrites):
    """Mixin: rebase positions for re-adjusted history (see the module docstring)."""

    def _rebase_readjusted(
        self,
        arr: np.ndarray,
        colidx: np.ndarray,
        upto_row: int,
        last_marked: str,
        seed: list[float | None],
    ) -> tuple[list[float | None] | None, list[tuple[Any, ...]]]:
        """Compare the seed (closes used at `last_marked`) with the price rows at or before `last_marked` (rows
        below `upto_row` of `arr`, a column per price column; `colidx` maps tickers to columns, -1 = absent).
        Returns (the new seed or None when nothing changed, the event rows written)."""
        import numpy as np

        n = len(self.tickers)
        if upto_row <= 0 or len(seed) != n:
            return None, []
        present = colidx >= 0
        if present.all() and arr[upto_row - 1, colidx].tolist() == seed:
            return None, []  # the usual case, without building arrays: history as the book last marked it
        old = np.array([np.nan if v is None else v for v in seed], dtype=float)
        new = np.full(n, np.nan)
        new[present] = arr[upto_row - 1, colidx[present]]  # the common case: the last marked row itself
        if np.isnan(new[present]).any():  # a gap on that row: the last close before it, as the book used
            new = np.where(np.isnan(new), last_valid(arr, colidx, upto_row, n), new)
        if np.array_equal(old, new, equal_nan=True):  # the usual case: history as the book last marked it
            return None, []
        factors = readjust_factors(old, new)
        changed = np.isfinite(factors)
        if not changed.any():
            return None, []
        c = self._conn
        filled = {
            str(t)
            for (t,) in c.execute(
                "SELECT ticker FROM events WHERE kind = 'ffill' AND date = ?", (last_marked,)
            ).fetchall()
        }
        shares = np.zeros(n)
        for t, s in c.execute("SELECT ticker, shares FROM positions"):
            j = self._tpos.get(t)
            if j is not None:
                shares[j] = s
        events: list[tuple[Any, ...]] = []
        updates: list[tuple[float, str]] = []
        for j in np.nonzero(changed)[0].tolist():
            t = self.tickers[j]
            if shares[j] == 0.0 or t in filled:
                continue
            f = float(factors[j])
            after = round(float(shares[j]) / f, DECIMALS) + 0.0
            updates.append((after, t))
            detail = {
                "factor": f,
                "old_price": float(old[j]),
                "new_price": float(new[j]),
                "shares_before": float(shares[j]),
                "shares_after": after,
                "value_before": round(float(shares[j]) * float(old[j]), DECIMALS) + 0.0,
                "value_after": round(after * float(new[j]), DECIMALS) + 0.0,
                "reason": "price history re-adjusted by the source (split or dividend): position rebased",
            }
            events.append((last_marked, "corporate_action", t, None, json.dumps(detail, sort_keys=True)))
        if updates:
            c.executemany("UPDATE positions SET shares = ? WHERE ticker = ?", updates)
            c.executemany(
                "INSERT INTO events (date, kind, ticker, run_id, detail) VALUES (?, ?, ?, ?, ?)", events
            )
        seed_after = [(None if math.isnan(x) else float(x)) for x in np.where(changed, new, old).tolist()]
        c.execute(
            "INSERT OR REPLACE INTO state (key, json) VALUES (?, ?)",
            (STATE_LAST_PRICES, json.dumps(seed_after)),
        )
        return seed_after, events
