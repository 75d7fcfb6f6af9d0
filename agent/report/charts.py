"""Tear-sheet charts: yearly returns as bars, rolling volatility and rolling beta.

Same conventions as `agent.plots` (fixed margins so the time axes line up, one colour per portfolio that never
repeats in a chart, legends below the axes); the numbers come from `agent.metrics`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agent import metrics as M
from agent.plots import (
    _empty,
    _legend_below,
    _png,
    _xlim,
    display_name,
    line_style,
    main_column,
    portfolio_colors,
    time_figure,
)

__all__ = ["rolling_beta_plot", "rolling_vol_plot", "yearly_returns_plot"]


def yearly_returns_plot(navs: pd.DataFrame) -> bytes:
    """Calendar-year returns of every portfolio as grouped bars (a partial first/last year is labelled)."""
    cols = [str(c) for c in navs.columns]
    colors = portfolio_colors(cols)
    with time_figure(len(cols)) as (fig, ax):
        years = {c: M.yearly_returns(navs[c].dropna()) for c in cols}
        labels = sorted({int(p.year) for y in years.values() for p in y.index})
        if not labels:
            _empty(ax, "less than a year of data")
            return _png(fig)
        x = np.arange(len(labels), dtype=float)
        width = 0.8 / max(1, len(cols))
        for i, c in enumerate(cols):
            y = years[c]
            vals = pd.Series(y.to_numpy(), index=[int(p.year) for p in y.index]).reindex(labels).to_numpy()
            ax.bar(
                x + (i - (len(cols) - 1) / 2) * width,
                vals * 100,
                width,
                color=colors[c],
                label=display_name(c),
            )
        ax.axhline(0.0, color="black", lw=0.6)
        first, last = navs.index[0], navs.index[-1]
        ticks = [
            f"{yr}{'*' if (yr == first.year and first.day_of_year > 7) or (yr == last.year and last.day_of_year < 358) else ''}"
            for yr in labels
        ]
        ax.set_xticks(x, ticks)
        ax.set_ylabel("return (%)")
        ax.set_title("Calendar-year returns (* partial year)")
        _legend_below(ax)
        return _png(fig)


def rolling_vol_plot(navs: pd.DataFrame, window: int = 126) -> bytes:
    """Annualized volatility over a trailing window, every portfolio, on the page's common date axis."""
    colors = portfolio_colors([str(c) for c in navs.columns])
    with time_figure(len(navs.columns)) as (fig, ax):
        drawn = False
        for col in navs.columns:
            rv = M.rolling_volatility(navs[col].dropna(), window).dropna() * 100
            if rv.empty:
                continue
            drawn = True
            style = line_style(str(col), main_column(navs.columns))
            ax.plot(rv.index, rv.to_numpy(), color=colors[str(col)], label=display_name(str(col)), **style)
        if not drawn:
            _empty(ax, f"fewer than {window} sessions: no rolling volatility")
            return _png(fig)
        ax.set_ylabel("volatility (%, annualized)")
        ax.set_title(f"Rolling volatility ({window} sessions; blank for the first window)")
        _xlim(ax, (navs.index[0], navs.index[-1]))
        _legend_below(ax)
        return _png(fig)


def rolling_beta_plot(navs: pd.DataFrame, benchmark: str, window: int = 126) -> bytes:
    """Beta of each other portfolio's daily returns to the benchmark's, over a trailing window."""
    others = [str(c) for c in navs.columns if str(c) != benchmark]
    colors = portfolio_colors([str(c) for c in navs.columns])
    with time_figure(len(others)) as (fig, ax):
        drawn = False
        if benchmark in navs.columns:
            b = navs[benchmark].dropna()
            for col in others:
                rb = M.rolling_beta(navs[col].dropna(), b, window).dropna()
                if rb.empty:
                    continue
                drawn = True
                style = line_style(col, main_column(navs.columns))
                ax.plot(rb.index, rb.to_numpy(), color=colors[col], label=display_name(col), **style)
        if not drawn:
            _empty(ax, f"no rolling beta (needs a benchmark and {window} sessions)")
            return _png(fig)
        ax.axhline(1.0, color="black", lw=0.6)
        ax.set_ylabel(f"beta to {display_name(benchmark)}")
        ax.set_title(f"Rolling beta to {display_name(benchmark)} ({window} sessions)")
        _xlim(ax, (navs.index[0], navs.index[-1]))
        _legend_below(ax)
        return _png(fig)
