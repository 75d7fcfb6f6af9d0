"""HTML sections of the report that are more than a metrics table: tear sheet, trades, decisions, notes.

Everything here takes already-computed numbers or frames and returns an HTML fragment; the math lives in
`agent.metrics`, so the backtest page and the live page show the same numbers computed the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agent.report.fmt import (
    cell,
    e,
    format_metric,
    format_money,
    kv_html,
    metrics_html,
    records_html,
    scroll,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DUST_NOTIONAL",
    "GLANCE_KEYS",
    "decisions_html",
    "drawdowns_html",
    "glance_html",
    "heatmap_html",
    "notes_html",
    "split_dust",
    "trades_html",
]

# A fill whose notional is below a cent is rounding residue of a rebalance, not a trade anyone placed.
DUST_NOTIONAL = 0.01
GLANCE_KEYS = (
    "trailing_MTD",
    "trailing_3M",
    "trailing_6M",
    "trailing_YTD",
    "trailing_1Y",
    "trailing_3Y (ann.)",
    "trailing_5Y (ann.)",
    "best_month",
    "best_month_label",
    "worst_month",
    "worst_month_label",
    "hit_rate_daily",
    "hit_rate_monthly",
    "var_95",
    "cvar_95",
)
_DD_LABELS = {
    "start": "Peak (start)",
    "trough": "Trough",
    "recovery": "Recovered",
    "depth": "Depth",
    "length": "Length (sessions, peak to recovery or today)",
    "to_trough": "Sessions to trough",
}


def glance_html(stats: Mapping[str, Mapping[str, Any]]) -> str:
    """Trailing returns, best/worst month, hit rates and tail risk, portfolios as columns."""
    return metrics_html(stats, GLANCE_KEYS)


def drawdowns_html(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return '<p class="note">No drawdown: the NAV never fell below a previous high.</p>'
    shown = [
        {k: (r.get(k) if r.get(k) is not None else "not yet") for k in _DD_LABELS if k in r} for r in rows
    ]
    return records_html(shown, _DD_LABELS)


def _heat_color(v: float, scale: float) -> str:
    """Red for losses, green for gains, white at 0; saturation by |v| / scale (capped)."""
    t = min(1.0, abs(v) / scale) if scale > 0 else 0.0
    light = round(255 - 150 * t)
    return f"rgb({light},255,{light})" if v >= 0 else f"rgb(255,{light},{light})"


def heatmap_html(grid: pd.DataFrame) -> str:
    """Years × months table of monthly returns in %, cells coloured by sign and size, plus the year's return."""
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    if grid.empty:
        return '<p class="note">Less than a month of data.</p>'
    vals = grid[list(range(1, 13))].to_numpy(dtype=float)
    finite = vals[~(vals != vals)]
    scale = float(max(abs(finite).max(), 1e-12)) if finite.size else 1.0
    head = "".join(f"<th>{m}</th>" for m in months) + "<th>Year</th>"
    body = []
    for year, row in grid.iterrows():
        cells = []
        for m in range(1, 13):
            v = float(row[m])
            if not math.isfinite(v):
                cells.append("<td></td>")
            else:
                cells.append(f'<td style="background:{_heat_color(v, scale)}">{v * 100:.1f}</td>')
        y = float(row["year"])
        cells.append(cell("total_return", y) if math.isfinite(y) else "<td></td>")
        body.append(f"<tr><th>{e(year)}</th>{''.join(cells)}</tr>")
    return scroll(
        f'<table class="heat"><thead><tr><th>%</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def split_dust(trades: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(real fills, dust fills): dust is |notional| below DUST_NOTIONAL (rounding residue, not a trade)."""
    if "notional" not in trades.columns:
        return trades, trades.iloc[0:0]
    dust = trades["notional"].abs() < DUST_NOTIONAL
    return trades[~dust], trades[dust]


def _frame_html(df: pd.DataFrame, max_rows: int) -> str:
    import pandas as pd

    shown = df.tail(max_rows)
    cols = [str(c) for c in shown.columns]
    unit = {"price": " ($)", "notional": " ($, + buy)", "cost": " ($)", "shares": " (+ buy)"}
    head = "".join(f"<th>{e(c + unit.get(c, ''))}</th>" for c in cols)
    body = []
    for row in shown.itertuples(index=False, name=None):
        cells = []
        for c, v in zip(cols, row, strict=True):
            if c in ("price", "notional", "cost", "nav_before", "traded") and isinstance(v, float):
                cells.append(f'<td class="num{" neg" if v < 0 else ""}">{e(format_money(v))}</td>')
            elif isinstance(v, float):
                cells.append(f'<td class="num">{e("—" if not math.isfinite(v) else f"{v:,.4f}")}</td>')
            elif isinstance(v, pd.Timestamp):
                cells.append(f"<td>{e(v.date().isoformat() if v == v.normalize() else v.isoformat())}</td>")
            else:
                cells.append(f"<td>{e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return scroll(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def trades_html(
    trades: pd.DataFrame | None,
    capital: float | None = None,
    cost_share: float | None = None,
    max_rows: int = 50,
) -> str:
    """Totals with units, then the last fills (dust fills counted but not listed).

    The costs' share of the initial capital comes from `capital` when given, else from `cost_share` (the
    strategy's `costs` metric, already that share).
    """
    if trades is None or len(trades) == 0:
        return '<p class="note">No trades.</p>'
    real, dust = split_dust(trades)
    facts: dict[str, Any] = {"fills": f"{len(real):,}"}
    if len(dust):
        facts["dust fills not listed"] = (
            f"{len(dust):,} (|notional| < {format_money(DUST_NOTIONAL)}; "
            f"{format_money(float(dust['notional'].abs().sum()))} in total)"
        )
    if "notional" in real.columns:
        facts["traded notional (sum of |notional|)"] = format_money(float(real["notional"].abs().sum()))
    if "cost" in trades.columns:
        total = float(trades["cost"].sum())
        frac = total / capital if capital else cost_share
        share = f" = {format_metric('costs', frac)} of initial capital" if frac is not None else ""
        facts["total transaction costs"] = f"{format_money(total)}{share}"
    label = f"last {max_rows} fills" if len(real) > max_rows else "all fills"
    return (
        kv_html(facts)
        + f"<details><summary>{e(label)}</summary>{_frame_html(real.reset_index(drop=True), max_rows)}</details>"
    )


def decisions_html(summary: Any) -> str:
    import pandas as pd

    if summary is None:
        return ""
    if isinstance(summary, str):
        body = f"<pre>{e(summary)}</pre>"
    elif isinstance(summary, pd.DataFrame):
        body = _frame_html(summary, len(summary))
    elif isinstance(summary, Mapping):
        body = kv_html(summary)
    elif isinstance(summary, Sequence) and all(isinstance(r, Mapping) for r in summary):
        body = records_html(summary)
    else:
        body = f"<pre>{e(summary)}</pre>"
    return f"<h2>Decisions</h2>{body}"


def notes_html(meta: Mapping[str, Any]) -> str:
    parts = []
    for key, title in (("deviations", "Deviations from the study"), ("notes", "Notes")):
        v = meta.get(key)
        if not v:
            continue
        items = [v] if isinstance(v, str) else list(v)
        lis = "".join(f"<li>{e(x)}</li>" for x in items)
        parts.append(f"<h3>{e(title)}</h3><ul>{lis}</ul>")
    if not parts:
        return ""
    return "<h2>Notes and deviations</h2>" + "".join(parts)
