"""Report plots as PNG bytes (equity, drawdown, weights, rolling Sharpe), the palette and the shared layout.

The efficient frontier lives in agent.report.frontier, the tear-sheet charts in agent.report.charts.

Why bytes: the report both writes the PNGs and embeds them in report.html; rendering once keeps them identical.
Determinism: figures are built with `matplotlib.figure.Figure` on the Agg canvas (no pyplot global state, no
backend switch), under matplotlib's default style with fixed size, DPI and font, and saved without the PNG
'Software' text chunk (matplotlib writes no timestamp into PNGs), so the same inputs give byte-identical files.
matplotlib is imported lazily.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import pandas as pd

from agent.metrics import drawdown_series, rolling_sharpe

__all__ = [
    "CASH_COLOR",
    "DPI",
    "display_name",
    "distinct_colors",
    "drawdown_plot",
    "equity_plot",
    "line_style",
    "main_column",
    "narrow_layout",
    "portfolio_colors",
    "rolling_sharpe_plot",
    "time_figure",
    "weights_plot",
]

DPI = 100
_SIZE = (10.0, 5.0)
_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",  # bundled with matplotlib: the same glyphs on every machine
    "font.size": 11.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 10.0,
    "legend.frameon": False,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
}
# The strategy is always red (as in the studies' figures); baselines get fixed colours by name.
_NAMED_COLORS = {
    "strategy": "#d62728",
    "equal_weight": "#2ca02c",
    "buy_and_hold": "#8c564b",
    "static_mvo": "#1f77b4",
    "sixty_forty": "#9467bd",
    "benchmark": "#000000",
    "live": "#ff7f0e",
    "backtest": "#1f3b99",
}
# Reserved for cash in every chart (and hatched), so no asset can look like cash: no palette colour is grey.
CASH_COLOR = "#e0e0e0"
CASH_HATCH = "///"
# Qualitative colours without greys: tab10, the light halves of tab20, tab20b, tab20c (greys removed).
_QUALITATIVE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
    "#9edae5",
    "#393b79",
    "#5254a3",
    "#6b6ecf",
    "#9c9ede",
    "#637939",
    "#8ca252",
    "#b5cf6b",
    "#cedb9c",
    "#8c6d31",
    "#bd9e39",
    "#e7ba52",
    "#e7cb94",
    "#843c39",
    "#ad494a",
    "#d6616b",
    "#e7969c",
    "#7b4173",
    "#a55194",
    "#ce6dbd",
    "#de9ed6",
    "#3182bd",
    "#6baed6",
    "#9ecae1",
    "#c6dbef",
    "#e6550d",
    "#fd8d3c",
    "#fdae6b",
    "#fdd0a2",
    "#31a354",
    "#74c476",
    "#a1d99b",
    "#c7e9c0",
    "#756bb1",
    "#9e9ac8",
    "#bcbddc",
    "#dadaeb",
]


def distinct_colors(n: int, exclude: Sequence[str] = ()) -> list[str]:
    """n colours, all different, none grey and none in `exclude` (beyond the 54 listed: evenly spaced hues)."""
    import colorsys

    taken = {c.lower() for c in exclude}
    out = [c for c in _QUALITATIVE if c not in taken][:n]
    k = n - len(out)
    for i in range(k):  # golden-ratio hue steps at two lightness levels: distinct and never grey
        r, g, b = colorsys.hls_to_rgb((i * 0.618033988749895) % 1.0, 0.45 if i % 2 else 0.62, 0.75)
        c = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
        out.append(c if c not in taken and c not in out else f"#{(int(c[1:], 16) ^ (i + 1)):06x}")
    return out


def portfolio_colors(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per portfolio name, the same in every plot, never repeated within one chart."""
    spare = iter(distinct_colors(len(names), exclude=[*_NAMED_COLORS.values()]))
    return {n: _NAMED_COLORS.get(n) or next(spare) for n in names}


def main_column(names: Iterable[Any]) -> str:
    """The portfolio the page is about: 'strategy' in a backtest, else the first column (the live book)."""
    cols = [str(c) for c in names]
    return "strategy" if "strategy" in cols else (cols[0] if cols else "")


def line_style(name: str, main: str) -> dict[str, Any]:
    """Width and dash of a portfolio's line: the main one thick, a backtest beside a live book dashed on top
    (the two should coincide, and a solid line would hide the other)."""
    if name == "backtest":
        return {"lw": 1.3, "ls": (0, (4, 3)), "zorder": 3}
    return {"lw": 1.8 if name == main else 1.1, "ls": "-", "zorder": 2}


def display_name(name: str) -> str:
    """'equal_weight' -> 'Equal weight': portfolio names as people read them (keys stay snake_case in JSON)."""
    special = {"static_mvo": "Static MVO", "sixty_forty": "60/40"}
    return (
        special.get(name) or str(name).replace("_", " ").replace("-", " ").strip().capitalize() or str(name)
    )


_NARROW: ContextVar[bool] = ContextVar("agent_plots_narrow", default=False)


@contextmanager
def narrow_layout() -> Iterator[None]:
    """Render the plots inside this block for a phone: narrower figure, fewer legend columns, same font size."""
    token = _NARROW.set(True)
    try:
        yield
    finally:
        _NARROW.reset(token)


@contextmanager
def _figure(size: tuple[float, float] = _SIZE) -> Iterator[Any]:
    import matplotlib as mpl
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if _NARROW.get():
        size = (_NARROW_WIDTH, size[1] * _NARROW_WIDTH / size[0] * 1.6)
    with matplotlib.style.context("default"), mpl.rc_context(_RC):  # type: ignore[arg-type]
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


# Time-series charts share fixed margins in inches, so their plotting areas line up on the page.
_NARROW_WIDTH = 5.0
_LEGEND_COLS = "_agent_legend_cols"
_AX_HEIGHT = 3.6
_MARGIN_IN = {"left": 0.85, "right": 0.25, "top": 0.45, "bottom": 0.45, "legend_row": 0.28}


@contextmanager
def time_figure(n_legend: int, *, ncol: int | None = None, height: float = _AX_HEIGHT) -> Iterator[Any]:
    """(fig, ax) with fixed margins and room for a legend of n_legend entries below the axes."""
    import matplotlib as mpl
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    narrow = _NARROW.get()
    width = _NARROW_WIDTH if narrow else _SIZE[0]
    cols = max(1, ncol or (2 if narrow else 5))
    rows = -(-n_legend // cols) if n_legend else 0
    m = _MARGIN_IN
    total_h = height + m["top"] + m["bottom"] + rows * m["legend_row"] + (0.15 if rows else 0.0)
    with matplotlib.style.context("default"), mpl.rc_context(_RC):  # type: ignore[arg-type]
        fig = Figure(figsize=(width, total_h), dpi=DPI)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(
            left=m["left"] / width,
            right=1.0 - m["right"] / width,
            top=1.0 - m["top"] / total_h,
            bottom=(m["bottom"] + rows * m["legend_row"] + (0.15 if rows else 0.0)) / total_h,
        )
        ax = fig.add_subplot()
        setattr(ax, _LEGEND_COLS, cols)  # read by _legend_below
        yield fig, ax


def _png(fig: Any) -> bytes:
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():  # a narrow chart's tick budget: matplotlib's own fallback interval is fine
        warnings.filterwarnings("ignore", message="AutoDateLocator was unable", category=UserWarning)
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _legend_below(ax: Any) -> None:
    """Legend under the axes, in the room time_figure reserved: never hides a curve, whatever the data."""
    handles, labels = ax.get_legend_handles_labels()
    if not labels:
        return
    ncol = getattr(ax, _LEGEND_COLS, max(1, min(len(labels), 6)))
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=ncol, borderaxespad=0.0)


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _xlim(ax: Any, span: tuple[Any, Any] | None) -> None:
    """The page's common date range, and few enough date ticks that their labels never overlap."""
    import matplotlib.dates as mdates

    if span is not None:
        ax.set_xlim(pd.Timestamp(span[0]), pd.Timestamp(span[1]))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=5 if _NARROW.get() else 10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _span(navs: pd.DataFrame) -> tuple[Any, Any] | None:
    return (navs.index[0], navs.index[-1]) if len(navs) else None


def equity_plot(
    navs: pd.DataFrame,
    execution_dates: Sequence[Any] = (),
    *,
    title: str = "Equity curves",
    span: tuple[Any, Any] | None = None,
) -> bytes:
    """NAV of every portfolio (starting at 1.0); the strategy's executions as ticks along the bottom axis.

    Why ticks on the axis and not markers on the curve: hundreds of rebalances would hide the line they mark.
    """
    colors = portfolio_colors([str(c) for c in navs.columns])
    with time_figure(len(navs.columns) + 1) as (fig, ax):
        if navs.empty:
            _empty(ax, "no NAV data")
            return _png(fig)
        for col in navs.columns:
            s = navs[col].dropna()
            ax.plot(
                s.index,
                s.to_numpy(),
                color=colors[str(col)],
                label=display_name(str(col)),
                **line_style(str(col), main_column(navs.columns)),
            )
        when = pd.DatetimeIndex(pd.to_datetime(list(execution_dates))).sort_values().unique()
        when = when[(when >= navs.index[0]) & (when <= navs.index[-1])]
        if len(when):
            ax.plot(
                when,
                np.full(len(when), 0.0),
                transform=ax.get_xaxis_transform(),
                marker="|",
                ms=9,
                mew=0.8,
                ls="none",
                color="#444444",
                clip_on=False,
                label=f"{display_name(main_column(navs.columns)).lower()} executions ({len(when)})",
            )
        ax.set_title(title)
        ax.set_ylabel("NAV (start = 1.0)")
        _xlim(ax, span or _span(navs))
        _legend_below(ax)
        return _png(fig)


def drawdown_plot(navs: pd.DataFrame, *, span: tuple[Any, Any] | None = None) -> bytes:
    """Underwater curves: percentage below the running peak."""
    colors = portfolio_colors([str(c) for c in navs.columns])
    with time_figure(len(navs.columns)) as (fig, ax):
        if navs.empty:
            _empty(ax, "no NAV data")
            return _png(fig)
        for col in navs.columns:
            dd = drawdown_series(navs[col].dropna()) * 100.0
            if str(col) == main_column(navs.columns):
                ax.fill_between(dd.index, dd.to_numpy(), 0.0, color=colors[str(col)], alpha=0.2, lw=0)
            ax.plot(
                dd.index,
                dd.to_numpy(),
                color=colors[str(col)],
                label=display_name(str(col)),
                **line_style(str(col), main_column(navs.columns)),
            )
        ax.set_title("Drawdown (underwater)")
        ax.set_ylabel("% below peak")
        _xlim(ax, span or _span(navs))
        _legend_below(ax)
        return _png(fig)


def weights_plot(weights: pd.DataFrame, end: Any = None, *, span: tuple[Any, Any] | None = None) -> bytes:
    """Target weights (after overlays) as a stacked step area, held until the next decision; cash on top, hatched."""
    cols = [c for c in weights.columns if c != "cash"] + (["cash"] if "cash" in weights.columns else [])
    with time_figure(len(cols), ncol=4 if _NARROW.get() else 10) as (fig, ax):
        w = weights.copy()
        if w.empty:
            _empty(ax, "no decisions")
            return _png(fig)
        w.index = pd.DatetimeIndex(pd.to_datetime(w.index))
        w = w.sort_index().astype("float64").fillna(0.0)[cols]
        if end is not None and pd.Timestamp(end) > w.index[-1]:  # hold the last targets to the end
            last = pd.DataFrame(
                w.iloc[[-1]].to_numpy(), index=pd.DatetimeIndex([pd.Timestamp(end)]), columns=cols
            )
            w = pd.concat([w, last])
        assets = [c for c in cols if c != "cash"]
        colors = distinct_colors(len(assets), exclude=[CASH_COLOR])
        if "cash" in cols:
            colors.append(CASH_COLOR)
        polys = ax.stackplot(
            w.index, w.to_numpy().T.clip(min=0.0), labels=cols, colors=colors, step="post", lw=0
        )
        if "cash" in cols:
            polys[-1].set_hatch(CASH_HATCH)
            polys[-1].set_edgecolor("#9a9a9a")
        ax.set_ylim(0.0, max(1.0, float(w.clip(lower=0.0).sum(axis=1).max())))
        ax.set_title("Target weights (after overlays)")
        ax.set_ylabel("weight (fraction of NAV)")
        _xlim(ax, span)
        _legend_below(ax)
        return _png(fig)


def rolling_sharpe_plot(
    navs: pd.DataFrame,
    window: int = 126,
    *,
    rf_daily: float | pd.Series = 0.0,
    span: tuple[Any, Any] | None = None,
) -> bytes:
    """Trailing-window annualized Sharpe of every portfolio, on the same date axis as the other charts."""
    colors = portfolio_colors([str(c) for c in navs.columns])
    with time_figure(len(navs.columns)) as (fig, ax):
        drawn = False
        for col in navs.columns:
            rs = rolling_sharpe(navs[col].dropna(), window, rf_daily=rf_daily).dropna()
            if rs.empty:
                continue
            drawn = True
            ax.plot(
                rs.index,
                rs.to_numpy(),
                color=colors[str(col)],
                label=display_name(str(col)),
                **line_style(str(col), main_column(navs.columns)),
            )
        if not drawn:
            _empty(ax, f"fewer than {window} sessions: no rolling Sharpe")
            return _png(fig)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_title(f"Rolling Sharpe ratio ({window} sessions, annualized; blank for the first window)")
        _xlim(ax, span or _span(navs))
        _legend_below(ax)
        return _png(fig)
