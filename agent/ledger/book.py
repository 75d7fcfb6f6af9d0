"""The book: executing due orders at their exec close (fills) and marking NAV for every session.

Execution model (DESIGN.md invariant 2). A decision at the close of session t records *pending orders* (its
target weights, cash included) to execute at the close of ``exec_date``. :meth:`LedgerBook.advance` executes
due orders at the close of their exec session and marks NAV for every session up to the new asof. Between
trades the book holds SHARES, so weights drift with prices.

Fill sizing. At the exec close the book is worth V = cash + shares·price. Trading to weights w costs c (the
shared :class:`agent.costs.CostModel`, on traded notional against the DRIFTED holdings, never the last
targets); new notional is w·(V − c), solved by :func:`agent.execution.plan_rebalance` (size_rebalance under the ExecutionRules: kept positions hold their shares exactly). Target shares are
FLOORED to 10 decimals, each fill's cost is :meth:`CostModel.fill_costs` of that fill (so the fills' costs sum
exactly to the cash deducted), and a final guard trims the largest position by a few 1e-10 shares should float
dust still leave cash a hair below zero. Every number is rounded to 10 decimals: same inputs, same rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agent.errors import LedgerError
from agent.ledger.actions import LedgerActions, event_dicts
from agent.ledger.arrays import ffill, last_valid
from agent.ledger.schema import (
    DECIMALS,
    STATE_EXEC_RISK,
    STATE_LAST_MARKED,
    STATE_LAST_PRICES,
    r10,
    to_date,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from agent.costs import CostModel
    from agent.execution import ExecutionRules
    from agent.ledger.memo import BookMemo

__all__ = ["AdvanceResult", "LedgerBook"]


@dataclass(frozen=True)
class AdvanceResult:
    """What one :meth:`Ledger.advance` did (for logs and tests)."""

    marked: int = 0  # sessions whose NAV was written (a lag-0 exec session is re-marked after its fill)
    first_marked: dt.date | None = None
    last_marked: dt.date | None = None
    executed_runs: tuple[int, ...] = ()  # runs whose pending orders filled
    n_fills: int = 0
    costs: float = 0.0
    nav: float | None = None  # NAV at last_marked
    ffilled: tuple[
        tuple[dt.date, str], ...
    ] = ()  # (session, ticker): held, price missing, previous close used
    events: tuple[dict[str, Any], ...] = field(default=(), repr=False)


class LedgerBook(LedgerActions):
    """Mixin: advancing the book (fills, daily NAV, forward-filled closes)."""

    cost_model: CostModel
    execution_rules: ExecutionRules | None
    _col_cache: tuple[Any, Any] | None

    def advance(self, prices: pd.DataFrame, upto: dt.date) -> AdvanceResult:
        """Execute due orders at their exec close and mark NAV for every session in (last_marked, upto].

        `prices`: daily closes (tz-naive DatetimeIndex, a column per ticker; extra columns ignored); rows after
        `upto` are never read. A fresh ledger starts marking at the last session <= upto (or at the first
        pending exec session). A held ticker's missing close is forward-filled from its previous close and
        recorded as an event.
        """
        with self.transaction():
            return self._advance(prices, to_date(upto))

    def _columns(self, prices: pd.DataFrame) -> Any:
        cols = prices.columns
        cached = self._col_cache
        # every slot's price snapshot is a new frame with an equal column index: compare (µs), not rebuild (ms)
        if cached is not None and (cached[0] is cols or cached[0].equals(cols)):
            return cached[1]
        import pandas as pd

        idx = cols.get_indexer(pd.Index(list(self.tickers)))
        self._col_cache = (cols, idx)
        return idx

    def _advance(self, prices: pd.DataFrame, upto: dt.date) -> AdvanceResult:
        import numpy as np

        c = self._conn
        index = prices.index
        vals = index.values
        if vals.dtype.kind == "M":
            # strictly increasing = sorted and unique (NaT compares False: refused too)
            if vals.size > 1 and not bool((vals[1:] > vals[:-1]).all()):
                raise LedgerError("price index must be sorted and unique")
        elif not index.is_monotonic_increasing or not index.is_unique:
            raise LedgerError("price index must be sorted and unique")
        if vals.size == 0:
            return AdvanceResult()
        if vals.dtype.kind != "M":  # dates as strings or objects: normalize once
            import pandas as pd

            try:
                vals = pd.DatetimeIndex(pd.to_datetime(index)).values
            except (TypeError, ValueError) as exc:
                raise LedgerError(f"price index is not a date index ({exc})") from None

        def pos(d: str, side: Literal["left", "right"]) -> int:
            return int(np.searchsorted(vals, np.datetime64(d).astype(vals.dtype), side=side))

        hi = pos(upto.isoformat(), "right")  # rows < hi are <= upto
        m = self._memo_now()
        assert m is not None  # advance runs inside its transaction
        last_marked = m.last_marked
        if last_marked is not None and upto.isoformat() < last_marked:
            return AdvanceResult()
        actions: list[tuple[Any, ...]] = []
        arr = prices.to_numpy(dtype=float, copy=False)
        colidx = self._columns(prices)
        last_prices = m.last_prices
        lm_row = -1 if last_marked is None else pos(last_marked, "right")  # rows < lm_row are <= last_marked
        if last_marked is not None and last_prices is not None:
            # a vendor re-adjustment (split, dividend) rescaled this ticker's history: rebase its shares first
            seed_after, actions = self._rebase_readjusted(arr, colidx, lm_row, last_marked, last_prices)
            if seed_after is not None:
                last_prices = seed_after
                self._memo = None  # positions and the seed were rewritten: read the book from the file again
                m = self._memo_now()
                assert m is not None
        lo = hi - 1 if last_marked is None else lm_row
        # due orders, grouped by run, in exec order
        groups: list[tuple[int, int, str, np.ndarray]] = []  # (row, run_id, exec_date, weights)
        due = any(ex <= upto.isoformat() for _, ex in m.pending)
        rows = (
            c.execute(
                "SELECT run_id, exec_date, ticker, target_weight FROM orders WHERE status = 'pending'"
                " AND exec_date <= ? ORDER BY exec_date, run_id, order_id",
                (upto.isoformat(),),
            ).fetchall()
            if due
            else []
        )
        done: set[int] = set()  # runs whose pending orders this advance fills or cancels
        by_run: dict[int, tuple[str, np.ndarray]] = {}
        for run_id, ex, ticker, w in rows:
            if run_id not in by_run:
                by_run[run_id] = (ex, np.zeros(len(self.tickers)))
            j = self._tpos.get(ticker)
            if j is not None:
                by_run[run_id][1][j] = w
        for run_id, (ex, w) in by_run.items():
            if last_marked is not None and ex < last_marked:
                raise LedgerError(f"pending orders of run {run_id} for {ex} predate the last marked session")
            e = pos(ex, "left")
            if e >= hi:  # no price row yet: stays pending
                continue
            if groups and groups[-1][0] == e:  # two runs due on one session: the newer supersedes
                old = groups.pop()[1]
                c.execute(
                    "UPDATE orders SET status = 'cancelled', cancelled_by = ? WHERE run_id = ? AND status = 'pending'",
                    (run_id, old),
                )
                detail = json.dumps({"superseded_by": run_id, "exec_date": by_run[old][0]}, sort_keys=True)
                c.execute(
                    "INSERT INTO events (date, kind, ticker, run_id, detail) VALUES (?, 'cancelled', NULL, ?, ?)",
                    (by_run[old][0], old, detail),
                )
                c.execute("DELETE FROM state WHERE key = ?", (f"{STATE_EXEC_RISK}{old}",))
                done.add(old)
            groups.append((e, run_id, ex, w))
        if groups:
            lo = min(lo, groups[0][0])
        if lo < 0 or lo >= hi:
            return AdvanceResult(events=event_dicts(actions))

        n = len(self.tickers)
        raw = np.full((hi - lo, n), np.nan)
        present = colidx >= 0
        if present.all():
            raw[:] = arr[lo:hi][:, colidx]
        elif present.any():
            raw[:, present] = arr[lo:hi][:, colidx[present]]
        # seed for the forward fill: the last close known at the previous mark
        if last_prices is not None:
            seed = np.array([np.nan if v is None else v for v in last_prices], dtype=float)
        else:
            seed = last_valid(arr, colidx, lo, n)
        missing = np.isnan(raw)
        px = ffill(raw, seed) if missing.any() else raw
        dates = np.datetime_as_string(vals[lo:hi], unit="D").tolist()

        shares = m.shares.copy()
        cash = m.cash
        if m.last_nav is not None and m.last_nav[0] == last_marked and dates[0] > last_marked:
            peak = m.last_nav[2]  # the row at the last marked session is the last row before dates[0]
        else:
            row = c.execute(
                "SELECT peak_nav FROM nav WHERE date < ? ORDER BY date DESC LIMIT 1", (dates[0],)
            ).fetchone()
            peak = float(row[0]) if row else -math.inf
        px0 = px if np.isfinite(px).all() else np.nan_to_num(px, nan=0.0)

        held_rows = np.empty((hi - lo, n))  # the shares and cash each session is marked with
        cash_rows = [0.0] * (hi - lo)
        events: list[tuple[Any, ...]] = []
        ffilled: list[tuple[dt.date, str]] = []
        executed: list[int] = []
        n_fills = 0
        total_cost = 0.0
        start = 0
        last_exec = -1  # row (in dates) of this advance's last execution
        for e_abs, run_id, ex, w in [*groups, (hi, -1, "", None)]:
            e = e_abs - lo
            if e > start:
                held_rows[start:e] = shares
                cash_rows[start:e] = [cash] * (e - start)
                if missing[start:e].any():
                    self._noteffill(missing[start:e], dates[start:e], px[start:e], shares, events, ffilled)
            if w is None:
                break
            before = shares
            shares, cash, nf, cost = self._execute(run_id, ex, dates[e], px[e], w, shares, cash, events)
            if missing[e].any():  # held before or after the fill: a stale close was used
                held = np.where(before != 0, before, shares)
                self._noteffill(missing[e : e + 1], dates[e : e + 1], px[e : e + 1], held, events, ffilled)
            executed.append(run_id)
            done.add(run_id)
            last_exec = e
            n_fills += nf
            total_cost += cost
            held_rows[e] = shares
            cash_rows[e] = cash
            start = e + 1
        nav_rows = self._mark(px0, dates, held_rows, cash_rows, peak)

        c.executemany(
            "INSERT OR REPLACE INTO nav (date, nav, cash, invested, peak_nav, drawdown) VALUES (?, ?, ?, ?, ?, ?)",
            nav_rows,
        )
        if events:
            c.executemany(
                "INSERT INTO events (date, kind, ticker, run_id, detail) VALUES (?, ?, ?, ?, ?)", events
            )
        new_last = dates[-1] if last_marked is None or dates[-1] > last_marked else last_marked
        last_px = [None if math.isnan(v) else v for v in px[-1].tolist()]
        c.executemany(
            "INSERT OR REPLACE INTO state (key, json) VALUES (?, ?)",
            [(STATE_LAST_MARKED, json.dumps(new_last)), (STATE_LAST_PRICES, json.dumps(last_px))],
        )
        last_nav = nav_rows[-1][1] if nav_rows else None
        self._remember_advance(m, last_marked, new_last, last_px, shares, cash, dates, nav_rows, last_exec, done)
        return AdvanceResult(
            marked=len(nav_rows),
            first_marked=dt.date.fromisoformat(dates[0]),
            last_marked=dt.date.fromisoformat(dates[-1]),
            executed_runs=tuple(executed),
            n_fills=n_fills,
            costs=r10(total_cost),
            nav=last_nav,
            ffilled=tuple(ffilled),
            events=event_dicts(actions) + event_dicts(events),
        )

    @staticmethod
    def _remember_advance(
        m: BookMemo,
        old_last: str | None,
        new_last: str,
        last_px: list[float | None],
        shares: np.ndarray,
        cash: float,
        dates: list[str],
        nav_rows: list[tuple[Any, ...]],
        last_exec: int,
        done: set[int],
    ) -> None:
        """The in-memory book after an advance: exactly the values its statements just wrote."""
        m.last_marked, m.last_prices, m.shares, m.cash = new_last, last_px, shares, cash
        if dates[-1] == new_last:
            m.last_nav = (new_last, nav_rows[-1][1], nav_rows[-1][4])
        fresh = old_last is None or dates[0] > old_last  # every row written is a new session
        if last_exec >= 0:
            m.last_exec = dates[last_exec] if m.last_exec is None else max(m.last_exec, dates[last_exec])
            m.since = len(dates) - 1 - last_exec if fresh and m.last_exec == dates[last_exec] else None
        elif m.since is not None:
            m.since = m.since + len(dates) if fresh else None
        if done:
            m.pending = [p for p in m.pending if p[0] not in done]

    @staticmethod
    def _mark(
        px0: np.ndarray, dates: list[str], shares: np.ndarray, cash: list[float], peak: float
    ) -> list[tuple[Any, ...]]:
        """NAV rows for the sessions of one advance, each marked with its own shares (a row per session) and
        cash: one vectorized pass, no per-row Python math. `peak`: the peak NAV before the first session."""
        import numpy as np

        invested = np.round((px0 * shares).sum(axis=1), DECIMALS) + 0.0
        nav = np.round(np.array(cash) + invested, DECIMALS) + 0.0
        peaks = np.maximum.accumulate(np.concatenate(([peak], nav)))[1:]
        if bool((peaks > 0).all()):
            dd = nav / peaks - 1.0
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                dd = np.where(peaks > 0, nav / peaks - 1.0, 0.0)
        dd = np.round(np.minimum(dd, 0.0), DECIMALS) + 0.0
        rounded = {c: r10(c) for c in set(cash)}  # cash is constant between fills: round each value once
        return list(
            zip(
                dates,
                nav.tolist(),
                [rounded[c] for c in cash],
                invested.tolist(),
                peaks.tolist(),
                dd.tolist(),
                strict=True,
            )
        )

    def _noteffill(
        self,
        missing: np.ndarray,
        dates: list[str],
        px: np.ndarray,
        shares: np.ndarray,
        events: list[tuple[Any, ...]],
        ffilled: list[tuple[dt.date, str]],
    ) -> None:
        import numpy as np

        held = missing & (shares != 0)
        for i, j in zip(*np.nonzero(held), strict=True):
            d, t = dates[int(i)], self.tickers[int(j)]
            p = float(px[i, j])
            detail = {"price": None if math.isnan(p) else p, "reason": "missing close: previous close used"}
            events.append((d, "ffill", t, None, json.dumps(detail, sort_keys=True)))
            ffilled.append((dt.date.fromisoformat(d), t))

    def _execute(
        self,
        run_id: int,
        exec_date: str,
        session: str,
        px: np.ndarray,
        w: np.ndarray,
        shares: np.ndarray,
        cash: float,
        events: list[tuple[Any, ...]],
    ) -> tuple[np.ndarray, float, int, float]:
        """Fill one run's orders at `session`'s closes. Returns (shares, cash, n_fills, cost)."""
        import numpy as np

        from agent.costs import TRADE_EPS
        from agent.execution import plan_rebalance

        c = self._conn
        cm = self.cost_model
        if session != exec_date:
            events.append(
                (
                    session,
                    "exec_shift",
                    None,
                    run_id,
                    json.dumps({"exec_date": exec_date, "filled_on": session}),
                )
            )
        priced = np.isfinite(px) & (px > 0)
        for j in np.nonzero(~priced & (w > 0))[0].tolist():
            detail = {"reason": "no price: target kept in cash", "target_weight": float(w[j])}
            events.append((session, "unpriced", self.tickers[j], run_id, json.dumps(detail, sort_keys=True)))
        w = np.where(priced, w, 0.0)
        p = np.where(priced, px, 0.0)
        holdings = shares * p
        value = cash + float(holdings.sum())
        key = f"{STATE_EXEC_RISK}{run_id}"
        row = c.execute("SELECT json FROM state WHERE key = ?", (key,)).fetchone()
        risk = None
        if row is not None:  # the decision's Σ and VaR limit: re-checked on the executed book
            from agent.decision import ExecRisk

            risk = ExecRisk.from_json(row[0])
            c.execute("DELETE FROM state WHERE key = ?", (key,))
        plan = plan_rebalance(value, holdings, w, cm, self.execution_rules, risk)
        new_notional = plan.notional
        if plan.notes:
            rules: dict[str, Any] = {
                "notes": list(plan.notes),
                "kept": [self.tickers[j] for j in np.flatnonzero(plan.kept)],
            }
            if plan.var is not None:  # the VaR limit lowered weights: by how much, and which
                rules["var"] = {**plan.var, "lowered": [self.tickers[j] for j in plan.var["lowered"]]}
            events.append((session, "exec_rules", None, run_id, json.dumps(rules, sort_keys=True)))
        with np.errstate(divide="ignore", invalid="ignore"):
            target = np.where(priced, np.floor(new_notional / np.where(priced, p, 1.0) * 1e10) / 1e10, shares)
        target = np.maximum(target, 0.0) + 0.0
        target = np.where(plan.kept, shares, target)  # kept as held: exactly the same shares, no dust fill

        def settle(target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
            d_sh = target - shares
            notional = np.round(d_sh * p, DECIMALS) + 0.0
            tiny = np.abs(notional) <= TRADE_EPS
            target = np.where(tiny, shares, target)
            d_sh = np.where(tiny, 0.0, np.round(d_sh, DECIMALS)) + 0.0
            notional = np.where(tiny, 0.0, notional) + 0.0
            costs = np.round(cm.fill_costs(notional), DECIMALS) + 0.0
            new_cash = r10(cash - float(notional.sum()) - float(costs.sum()))
            return target, d_sh, notional, costs, new_cash

        target, d_sh, notional, costs, new_cash = settle(target)
        for _ in range(8):  # float dust only: trim the largest position by a few 1e-10 shares
            if new_cash >= 0.0 or not np.any(target * p > 0):
                break
            j = int(np.argmax(target * p))
            cut = math.ceil((-new_cash * 1.01) / p[j] * 1e10 + 1) / 1e10
            target = target.copy()
            target[j] = max(0.0, target[j] - cut)
            target, d_sh, notional, costs, new_cash = settle(target)
        if new_cash < 0.0:
            raise LedgerError(f"fill for run {run_id} would overdraw cash by {-new_cash}")

        traded = np.nonzero(notional)[0]
        c.executemany(
            "INSERT INTO fills (run_id, exec_date, ticker, shares, price, notional, cost) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    session,
                    self.tickers[j],
                    float(d_sh[j]),
                    r10(p[j]),
                    float(notional[j]),
                    float(costs[j]),
                )
                for j in traded.tolist()
            ],
        )
        new_shares = np.round(target, DECIMALS) + 0.0
        c.executemany(
            "UPDATE positions SET shares = ? WHERE ticker = ?",
            [(float(new_shares[j]), self.tickers[j]) for j in traded.tolist()],
        )
        c.execute("UPDATE cash SET amount = ? WHERE id = 1", (new_cash,))
        c.execute(
            "UPDATE orders SET status = 'filled', filled_on = ? WHERE run_id = ? AND status = 'pending'",
            (session, run_id),
        )
        gross = r10(float(np.abs(notional).sum()))
        cost = r10(float(costs.sum()))
        c.execute(
            "INSERT INTO executions (run_id, exec_date, nav_before, traded, turnover, cost, n_trades)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, session, r10(value), gross, r10(gross / value) if value > 0 else 0.0, cost, len(traded)),
        )
        shares_out = shares.copy()
        shares_out[traded] = new_shares[traded]
        return shares_out, new_cash, len(traded), cost
