"""What a backtest computes and writes after the replay: the strategy NAV next to every baseline, the
risk-free series for the metrics, turnover and costs from the ledger, and the CSV/JSON writers.

Why separate: agent/backtest.py walks the schedule through the live decision path; this module turns the
finished ledger into the outputs. pandas and the simulator are imported lazily inside the functions, as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.decision import TRADING_DAYS
from agent.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from agent.settings import Settings

__all__ = ["jsonable", "navs_with_baselines", "risk_free", "strategy_turnover_costs", "write_csv"]


def write_csv(df: pd.DataFrame, path: Path, index: bool = True) -> None:
    from agent.atomic import atomic_write_text

    atomic_write_text(path, df.to_csv(index=index, float_format="%.12g", lineterminator="\n"))


def jsonable(o: Any) -> Any:
    from agent.decision import canonical_json

    return json.loads(canonical_json(o))


def risk_free(settings: Settings, index: pd.DatetimeIndex) -> tuple[Any, dict[str, Any]]:
    """The per-session risk-free rate for the metrics, and what was used (for metrics_detail.json): a missing
    T-bill file is logged and recorded as a fall-back to zero, never silent."""
    import pandas as pd

    rf = settings.backtest.risk_free
    if isinstance(rf, float | int) and not isinstance(rf, bool):
        return float(rf) / TRADING_DAYS, {"configured": float(rf), "used": "constant"}
    if rf == "tbill":
        from agent.data.sources import resolve_prices_file

        try:
            path = resolve_prices_file("tbill_3m_daily.csv")
        except DataError as e:
            from agent.logging import get_logger

            get_logger("agent.backtest").warning("risk_free_unavailable", reason=e.one_line(), used="zero")
            return 0.0, {"configured": "tbill", "used": "zero", "reason": e.one_line()}
        tb = pd.read_csv(path, index_col="date", parse_dates=True)["dtb3_pct"]
        daily = tb.reindex(index.union(pd.DatetimeIndex(tb.index))).ffill().reindex(index) / 100.0 / TRADING_DAYS
        return daily.fillna(0.0), {"configured": "tbill", "used": "tbill", "file": str(path)}
    return 0.0, {"configured": "zero", "used": "zero"}


def strategy_turnover_costs(ledger: Any, capital: float) -> tuple[float, float]:
    """Sum of one-way turnover per execution (traded / NAV before it) and costs as a fraction of capital."""
    ex = ledger.executions_frame()
    if len(ex) == 0:
        return 0.0, 0.0
    return float(ex["turnover"].sum()), float(ex["cost"].sum()) / capital


def navs_with_baselines(
    settings: Settings, frame: pd.DataFrame, ledger: Any, sessions: pd.DatetimeIndex, dates: list[Any]
) -> pd.DataFrame:
    """Strategy NAV from the ledger plus every baseline on the same sessions, all starting at 1.0."""
    import pandas as pd

    from agent.allocate import rules
    from agent.costs import CostModel
    from agent.execution import ExecutionRules
    from agent.simulate import simulate_targets

    tickers = list(settings.universe.tickers)
    capital = settings.execution.initial_capital
    navf = ledger.nav_frame()
    navf.index = pd.DatetimeIndex(pd.to_datetime(navf.index))
    strat = navf["nav"].reindex(sessions).ffill().fillna(capital) / capital
    out = {"strategy": strat.to_numpy()}
    px = frame.loc[sessions, tickers].to_numpy(dtype=float)
    dec_idx = [int(sessions.get_loc(d)) for d in dates]  # type: ignore[arg-type]  # unique index: an int
    cm = CostModel(settings.execution.cost_bps, settings.execution.fixed_cost)
    lag = settings.execution.lag_sessions
    n = len(tickers)
    extras: dict[str, dict[str, float]] = {}

    # the ledger's minimum notional: baselines are simulated with the configured capital, so no scaling
    sim_rules = ExecutionRules(min_notional=settings.execution.min_notional)

    def add(name: str, idx: list[int], targets: np.ndarray) -> None:
        # the configured capital, as the strategy's ledger: a fixed cost per trade is currency, so a baseline
        # simulated on 1.0 would pay it out of a unit NAV (and go bust); NAVs are then scaled to start at 1.0
        r = simulate_targets(px, idx, targets, lag=lag, cost_model=cm, capital=capital, rules=sim_rules)
        out[name] = r.nav / capital
        extras[name] = {
            "turnover": r.turnover,
            "costs": r.costs / capital,  # a fraction of capital, like the strategy's
            "n_rebalances": float(r.n_rebalances),
        }

    for b in settings.backtest.baselines:
        if b == "equal_weight":
            add(b, dec_idx, np.tile(rules.equal_weight(n).weights, (len(dec_idx), 1)))
        elif b == "buy_and_hold":
            add(b, dec_idx[:1], np.asarray(rules.equal_weight(n).weights)[None, :])
        elif b == "static_mvo":
            pre = frame.loc[: sessions[0], tickers].dropna(how="any").pct_change().iloc[1:]
            pre = pre.iloc[:-1].tail(settings.allocation.mvo_window)  # strictly before the window
            rr = rules.static_mvo(
                pre.to_numpy(dtype=float),
                risk_free=settings.allocation.risk_free_rate,
                min_weight=0.0,
                max_weight=1.0,
            )
            add(b, dec_idx[:1], np.asarray(rr.weights, dtype=float)[None, :])
        elif b == "sixty_forty":
            bond, stock = settings.universe.bond, settings.universe.benchmark
            if bond and stock and stock in tickers and bond in tickers:
                w = np.zeros(n)
                w[tickers.index(stock)], w[tickers.index(bond)] = 0.6, 0.4
                add(b, dec_idx, np.tile(w, (len(dec_idx), 1)))
    bench = settings.universe.benchmark
    if bench and bench in frame.columns:
        bpx = frame.loc[sessions, bench].ffill()
        if bpx.notna().iloc[0]:
            out["benchmark"] = (bpx / bpx.iloc[0]).to_numpy()
            extras["benchmark"] = {"turnover": 0.0, "costs": 0.0, "n_rebalances": 0.0}
    for name, nav in out.items():
        ruined = np.flatnonzero(~(np.asarray(nav, dtype=float) > 0))
        if ruined.size:  # long-only on positive prices: only costs can take a book to zero
            from agent.errors import ConfigError

            e = settings.execution
            raise ConfigError(
                f"the {name} portfolio's NAV reaches zero on {sessions[int(ruined[0])]:%Y-%m-%d}: costs "
                f"({e.cost_bps:g} bps + {e.fixed_cost:g} per trade) exceed what a capital of "
                f"{e.initial_capital:g} can pay",
                hint="lower execution.fixed_cost or raise execution.initial_capital",
            )
    navs = pd.DataFrame(out, index=sessions)
    navs.index.name = "date"
    navs.attrs["extras"] = extras
    return navs
