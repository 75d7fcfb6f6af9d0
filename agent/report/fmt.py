"""Formatting of numbers and HTML tables for the report: labels, units, '—' for undefined values.

Why one module: every table in the page (backtest or live) formats the same key the same way, so a percentage
never shows up as a raw fraction in one table and a percentage in another.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from agent.metrics import CONTRACT_KEYS

__all__ = [
    "CSS",
    "LABELS",
    "TABLE_KEYS",
    "cell",
    "e",
    "format_metric",
    "format_money",
    "is_missing",
    "kv_html",
    "metrics_html",
    "period_tables_html",
    "plain",
    "records_html",
    "scroll",
]

PCT = {
    "total_return",
    "cagr",
    "volatility",
    "max_drawdown",
    "costs",
    "mean_return_ann",
    "downside_deviation",
    "best_day",
    "worst_day",
    "excess_total_return",
    "excess_cagr",
    "active_return",
    "tracking_error",
    "alpha",
    "strategy_return",
    "baseline_return",
    "depth",
    "var_95",
    "cvar_95",
    "hit_rate_daily",
    "hit_rate_monthly",
    "best_month",
    "worst_month",
    "difference",
}
PCT |= {f"trailing_{k}" for k in ("MTD", "3M", "6M", "YTD", "1Y", "3Y (ann.)", "5Y (ann.)")}
PROB = {"psr", "dsr", "r2"}
MONEY = {"notional", "cost", "price", "nav_before", "traded", "nav", "cash", "invested"}
LABELS: dict[str, str] = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "volatility": "Volatility (ann.)",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "max_drawdown": "Max drawdown",
    "calmar": "Calmar ratio",
    "turnover": "Turnover (sum of one-way, × NAV)",
    "n_rebalances": "Rebalances",
    "costs": "Costs (% of initial capital)",
    "mean_return_ann": "Mean return (ann., arithmetic)",
    "downside_deviation": "Downside deviation (ann.)",
    "psr": "Probabilistic Sharpe (vs 0)",
    "dsr": "Deflated Sharpe",
    "skew": "Skewness (daily)",
    "kurtosis": "Kurtosis (daily, non-excess: normal = 3)",
    "best_day": "Best day",
    "worst_day": "Worst day",
    "final_nav": "Final NAV (start = 1)",
    "n_days": "Sessions",
    "start": "Start",
    "end": "End",
    "excess_total_return": "Excess total return",
    "excess_cagr": "Excess CAGR",
    "active_return": "Active return (ann.)",
    "tracking_error": "Tracking error (ann.)",
    "information_ratio": "Information ratio",
    "alpha": "Alpha (ann., OLS)",
    "beta": "Beta (OLS)",
    "alpha_t": "Alpha t-statistic",
    "r2": "R²",
    "var_95": "VaR 95% (1 day, historical)",
    "cvar_95": "CVaR 95% (1 day, expected shortfall)",
    "hit_rate_daily": "Hit rate (days up / days moved)",
    "hit_rate_monthly": "Hit rate (months up)",
    "best_month": "Best month",
    "worst_month": "Worst month",
    "best_month_label": "Best month (when)",
    "worst_month_label": "Worst month (when)",
    **{f"trailing_{k}": f"Trailing {k}" for k in ("MTD", "3M", "6M", "YTD", "1Y", "3Y (ann.)", "5Y (ann.)")},
}
TABLE_KEYS = (*CONTRACT_KEYS, "psr", "dsr", "skew", "kurtosis", "start", "end")

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;
color:#222;padding:0 16px;line-height:1.4}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.2em;margin-top:32px;border-bottom:1px solid #ddd}
h3{font-size:1em;margin-bottom:4px}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:0.9em}
th,td{border:1px solid #ddd;padding:3px 8px;white-space:nowrap}th{background:#f4f4f4;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums;font-family:Menlo,Consolas,monospace}
td.neg{color:#b00}
.scroll th:first-child{position:sticky;left:0;z-index:1}.scroll td:first-child{background:#fff}
table.heat td{text-align:right;font-variant-numeric:tabular-nums;min-width:3.2em}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:8px 0}
dl.meta dt{font-weight:600}dl.meta dd{margin:0;overflow-wrap:anywhere}
figure{margin:16px 0}figure img{width:100%;max-width:1000px;height:auto;border:1px solid #eee}
figcaption{font-size:0.85em;color:#555}
pre{background:#f8f8f8;padding:8px;overflow-x:auto;font-size:0.85em}
.note{font-size:0.85em;color:#555}
@media (max-width:600px){body{margin:8px auto;padding:0 8px}dl.meta{grid-template-columns:1fr}
dl.meta dd{margin-bottom:4px}table{font-size:0.8em}}
"""


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def format_money(v: Any, currency: str = "$") -> str:
    """Money with its unit and thousands separators: '$27,249.90', '−' for negatives."""
    if is_missing(v):
        return "—"
    x = float(v)
    return f"{'-' if x < 0 else ''}{currency}{abs(x):,.2f}"


def format_metric(key: str, v: Any) -> str:
    """One metric as text: percentages with 2 decimals, ratios with 2, probabilities with 3; '—' when undefined."""
    if is_missing(v):
        return "—"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if key in MONEY:
        return format_money(v)
    if isinstance(v, int) and key not in PCT:
        return str(v)
    x = float(v)
    if key in PCT:
        return f"{x * 100:.2f}%"
    if key in PROB:
        return f"{x:.3f}"
    if key == "final_nav":
        return f"{x:.4f}"
    return f"{x:.2f}"


def e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def scroll(table_html: str) -> str:
    """Wrap a table so it scrolls sideways on a narrow screen instead of being clipped."""
    return f'<div class="scroll">{table_html}</div>'


def cell(key: str, v: Any) -> str:
    text = format_metric(key, v)
    if isinstance(v, int | float) and not isinstance(v, bool):
        cls = "num neg" if (not is_missing(v) and float(v) < 0) else "num"
        return f'<td class="{cls}">{e(text)}</td>'
    return f"<td>{e(text)}</td>"


def metrics_html(
    metrics: Mapping[str, Mapping[str, Any]],
    keys: Sequence[str] = TABLE_KEYS,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Metrics as rows, portfolios side by side as columns (headed by their display names)."""
    from agent.plots import display_name

    names = list(metrics)
    if not names:
        return '<p class="note">No metrics.</p>'
    lab = {**LABELS, **(labels or {})}
    present = [k for k in keys if any(k in metrics[n] for n in names)]
    head = "".join(f"<th>{e(display_name(n))}</th>" for n in names)
    rows = []
    for k in present:
        cells = "".join(cell(k, metrics[n].get(k)) for n in names)
        rows.append(f"<tr><th>{e(lab.get(k, k))}</th>{cells}</tr>")
    return scroll(
        f"<table><thead><tr><th>Metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _name_major(
    per: Mapping[str, Mapping[str, Any]], names: Sequence[str]
) -> Mapping[str, Mapping[str, Any]]:
    """Accept {portfolio: {period: m}} or {period: {portfolio: m}}; return portfolio-major."""
    if not per:
        return {}
    if set(per) <= set(names):
        return dict(per)
    out: dict[str, dict[str, Any]] = {}
    for period, by_name in per.items():
        for n, m in by_name.items():
            out.setdefault(n, {})[period] = m
    return out


def period_tables_html(
    per: Mapping[str, Mapping[str, Any]],
    names: Sequence[str],
    what: str,
    keys: Sequence[str] = ("total_return", "sharpe", "max_drawdown"),
) -> str:
    """One table per metric (return, Sharpe, max drawdown): periods as rows, portfolios as columns."""
    from agent.plots import display_name

    by_name = _name_major(per, names)
    if not by_name:
        return f'<p class="note">No {what} metrics.</p>'
    cols = [n for n in names if n in by_name] + [n for n in by_name if n not in names]
    periods: list[str] = []
    for n in cols:
        for p in by_name[n]:
            if p not in periods:
                periods.append(p)
    parts = []
    for key in keys:
        head = "".join(f"<th>{e(display_name(n))}</th>" for n in cols)
        rows = []
        for p in periods:
            cells = "".join(cell(key, (by_name[n].get(p) or {}).get(key)) for n in cols)
            rows.append(f"<tr><th>{e(p)}</th>{cells}</tr>")
        parts.append(
            f"<h3>{e(LABELS.get(key, key))} by {e(what)}</h3>"
            + scroll(
                f"<table><thead><tr><th>{e(what)}</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
        )
    return "".join(parts)


def plain(v: Any) -> str:
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else f"{v:.6g}"
    if isinstance(v, list | tuple):
        return ", ".join(plain(x) for x in v)
    if isinstance(v, Mapping):
        return "; ".join(f"{k}={plain(x)}" for k, x in v.items())
    return str(v)


def kv_html(d: Mapping[str, Any]) -> str:
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(plain(v))}</dd>" for k, v in d.items())
    return f'<dl class="meta">{items}</dl>'


def records_html(rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str] | None = None) -> str:
    if not rows:
        return ""
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    lab = labels or {}
    head = "".join(f"<th>{e(lab.get(c, c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(cell(c, r.get(c)) for c in cols) + "</tr>" for r in rows)
    return scroll(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
