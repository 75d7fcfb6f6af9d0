"""The backtest report: PNG plots and one self-contained report.html, plus a plain-text summary for the terminal.

report.html embeds every plot as a base64 data URI and carries its own CSS: no external scripts, styles, fonts or
links, so it opens offline and can be archived as a single file. Nothing time- or path-dependent is written, so
the same inputs give byte-identical files (checked by the tests). Files are written atomically (temp file,
fsync, rename).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported lazily: the CLI may import this module for summary_table at start-up
    import pandas as pd

from agent.atomic import atomic_write_bytes
from agent.metrics import CONTRACT_KEYS

__all__ = ["PLOT_FILES", "format_metric", "summary_table", "write_report"]

# File name -> caption, in the order the report shows them.
PLOT_FILES: dict[str, str] = {
    "equity.png": "Equity curves (NAV, start = 1.0); triangles mark the strategy's rebalances.",
    "drawdown.png": "Drawdown from the running peak (underwater curves).",
    "weights.png": "Strategy target weights after overlays, held until the next decision (cash in grey).",
    "rolling_sharpe.png": "Rolling annualized Sharpe ratio.",
    "frontier.png": (
        "Long-only efficient frontier from the mean and covariance of the test-window daily asset returns, "
        "random long-only portfolios (seeded), and each portfolio at its realized annualized volatility and "
        "arithmetic mean return. Portfolios holding cash can sit left of the asset-only frontier."
    ),
}

_PCT = {
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
}
_PROB = {"psr", "dsr", "r2"}
_LABELS: dict[str, str] = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "volatility": "Volatility (ann.)",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "max_drawdown": "Max drawdown",
    "calmar": "Calmar ratio",
    "turnover": "Turnover (sum)",
    "n_rebalances": "Rebalances",
    "costs": "Costs (% of initial capital)",
    "mean_return_ann": "Mean return (ann., arithmetic)",
    "downside_deviation": "Downside deviation (ann.)",
    "psr": "Probabilistic Sharpe (vs 0)",
    "dsr": "Deflated Sharpe",
    "skew": "Skewness (daily)",
    "kurtosis": "Kurtosis (daily)",
    "best_day": "Best day",
    "worst_day": "Worst day",
    "final_nav": "Final NAV",
    "n_days": "Sessions",
    "start": "Start",
    "end": "End",
}
_TABLE_KEYS = (
    *CONTRACT_KEYS,
    "psr",
    "dsr",
    "skew",
    "kurtosis",
    "start",
    "end",
)
_PERIOD_KEYS = ("total_return", "sharpe", "max_drawdown")

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;
color:#222;padding:0 16px;line-height:1.4}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.2em;margin-top:32px;border-bottom:1px solid #ddd}
h3{font-size:1em;margin-bottom:4px}
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:0.9em}
th,td{border:1px solid #ddd;padding:3px 8px}th{background:#f4f4f4;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums;font-family:Menlo,Consolas,monospace}
td.neg{color:#b00}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:8px 0}
dl.meta dt{font-weight:600}dl.meta dd{margin:0}
figure{margin:16px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:0.85em;color:#555}
pre{background:#f8f8f8;padding:8px;overflow-x:auto;font-size:0.85em}
.note{font-size:0.85em;color:#555}
"""


# -------------------------------------------------------------------------------------------------- formatting
def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def format_metric(key: str, v: Any) -> str:
    """One metric as text: percentages with 2 decimals, ratios with 2, probabilities with 3; '—' when undefined."""
    if _is_missing(v):
        return "—"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int) and key not in _PCT:
        return str(v)
    x = float(v)
    if key in _PCT:
        return f"{x * 100:.2f}%"
    if key in _PROB:
        return f"{x:.3f}"
    if key == "final_nav":
        return f"{x:.4f}"
    return f"{x:.2f}"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _cell(key: str, v: Any) -> str:
    text = format_metric(key, v)
    if isinstance(v, int | float) and not isinstance(v, bool):
        cls = "num neg" if (not _is_missing(v) and float(v) < 0) else "num"
        return f'<td class="{cls}">{_e(text)}</td>'
    return f"<td>{_e(text)}</td>"


def _metrics_html(metrics: Mapping[str, Mapping[str, Any]], keys: Sequence[str] = _TABLE_KEYS) -> str:
    """Metrics as rows, portfolios side by side as columns."""
    names = list(metrics)
    if not names:
        return '<p class="note">No metrics.</p>'
    present = [k for k in keys if any(k in metrics[n] for n in names)]
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = []
    for k in present:
        cells = "".join(_cell(k, metrics[n].get(k)) for n in names)
        rows.append(f"<tr><th>{_e(_LABELS.get(k, k))}</th>{cells}</tr>")
    return f"<table><thead><tr><th>Metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


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


def _period_tables_html(per: Mapping[str, Mapping[str, Any]], names: Sequence[str], what: str) -> str:
    """One table per metric (return, Sharpe, max drawdown): periods as rows, portfolios as columns."""
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
    for key in _PERIOD_KEYS:
        head = "".join(f"<th>{_e(n)}</th>" for n in cols)
        rows = []
        for p in periods:
            cells = "".join(_cell(key, (by_name[n].get(p) or {}).get(key)) for n in cols)
            rows.append(f"<tr><th>{_e(p)}</th>{cells}</tr>")
        parts.append(
            f"<h3>{_e(_LABELS.get(key, key))} by {_e(what)}</h3>"
            f"<table><thead><tr><th>{_e(what)}</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return "".join(parts)


def _kv_html(d: Mapping[str, Any]) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(_plain(v))}</dd>" for k, v in d.items())
    return f'<dl class="meta">{items}</dl>'


def _plain(v: Any) -> str:
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else f"{v:.6g}"
    if isinstance(v, list | tuple):
        return ", ".join(_plain(x) for x in v)
    if isinstance(v, Mapping):
        return "; ".join(f"{k}={_plain(x)}" for k, x in v.items())
    return str(v)


def _records_html(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_cell(c, r.get(c)) for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _frame_html(df: pd.DataFrame, max_rows: int) -> str:
    import pandas as pd

    shown = df.tail(max_rows)
    cols = [str(c) for c in shown.columns]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = []
    for row in shown.itertuples(index=False, name=None):
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append(f'<td class="num">{_e("—" if not math.isfinite(v) else f"{v:.6g}")}</td>')
            elif isinstance(v, pd.Timestamp):
                cells.append(f"<td>{_e(v.date().isoformat() if v == v.normalize() else v.isoformat())}</td>")
            else:
                cells.append(f"<td>{_e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _trades_html(trades: pd.DataFrame | None, max_rows: int = 50) -> str:
    import pandas as pd

    if trades is None or len(trades) == 0:
        return '<p class="note">No trades.</p>'
    parts = [f"<p>{len(trades)} trade rows.</p>"]
    totals = {
        c: float(trades[c].sum())
        for c in trades.columns
        if "cost" in str(c).lower() and pd.api.types.is_numeric_dtype(trades[c])
    }
    if totals:
        parts.append(_kv_html({f"total {k}": v for k, v in totals.items()}))
    label = f"last {max_rows} trades" if len(trades) > max_rows else "all trades"
    parts.append(
        f"<details><summary>{_e(label)}</summary>{_frame_html(trades.reset_index(drop=True), max_rows)}"
        "</details>"
    )
    return "".join(parts)


def _decisions_html(summary: Any) -> str:
    import pandas as pd

    if summary is None:
        return ""
    if isinstance(summary, str):
        body = f"<pre>{_e(summary)}</pre>"
    elif isinstance(summary, pd.DataFrame):
        body = _frame_html(summary, len(summary))
    elif isinstance(summary, Mapping):
        body = _kv_html(summary)
    elif isinstance(summary, Sequence) and all(isinstance(r, Mapping) for r in summary):
        body = _records_html(summary)
    else:
        body = f"<pre>{_e(summary)}</pre>"
    return f"<h2>Decisions</h2>{body}"


def _notes_html(meta: Mapping[str, Any]) -> str:
    parts = []
    for key, title in (("deviations", "Deviations from the study"), ("notes", "Notes")):
        v = meta.get(key)
        if not v:
            continue
        items = [v] if isinstance(v, str) else list(v)
        lis = "".join(f"<li>{_e(x)}</li>" for x in items)
        parts.append(f"<h3>{_e(title)}</h3><ul>{lis}</ul>")
    if not parts:
        return ""
    return "<h2>Notes and deviations</h2>" + "".join(parts)


_CONVENTIONS = (
    "Daily simple returns, 252 sessions a year. CAGR over sessions; volatility = std(ddof=1)·√252; Sharpe = "
    "mean excess / std excess · √252; Sortino uses the downside deviation of excess returns below 0 over all "
    "sessions; max drawdown is the deepest fall from a running peak (negative); Calmar = CAGR / |max drawdown|. "
    "PSR/DSR (Bailey & López de Prado) from daily excess returns. '—' marks an undefined value (e.g. zero "
    "volatility). Turnover and costs come from the ledger; costs are a fraction of initial capital."
)


# ------------------------------------------------------------------------------------------------------ writing
def _default_points(navs: pd.DataFrame) -> dict[str, tuple[float, float]]:
    from agent.metrics import risk_return_point

    return {str(c): risk_return_point(navs[c].dropna()) for c in navs.columns}


def write_report(
    out_dir: Path,
    *,
    navs: pd.DataFrame,
    weights: pd.DataFrame,
    trades: pd.DataFrame | None,
    metrics: Mapping[str, Mapping[str, Any]],
    per_year: Mapping[str, Mapping[str, Any]],
    rebalance_dates: Sequence[Any],
    asset_returns: pd.DataFrame,
    portfolio_points: Mapping[str, tuple[float, float]] | None,
    meta: Mapping[str, Any],
    decisions_summary: Any = None,
    windows: Mapping[str, Mapping[str, Any]] | None = None,
    kfold: Mapping[str, Mapping[str, Any]] | None = None,
    alphas: Mapping[str, Mapping[str, Any]] | None = None,
    rolling_window: int = 126,
    n_random: int = 10_000,
    seed: int = 0,
) -> Path:
    """Write the PNG plots and report.html into out_dir; return the path of report.html.

    - navs: date × portfolio (strategy first, then baselines), starting at 1.0.
    - weights: decision date × (tickers + cash), the strategy's targets after overlays.
    - metrics: {portfolio: portfolio_metrics}; per_year: {portfolio: {year: metrics}} (or year-major).
    - asset_returns: daily simple returns of the universe over the test window (for the frontier).
    - portfolio_points: {portfolio: (ann. vol, ann. mean return)}; None computes them from navs.
    - meta: shown in the header in its own order (profile, window, costs, data source, ...); `deviations` and
      `notes` (str or list of str) go to the notes section.
    - windows: {window name: {portfolio: metrics}}; kfold: {portfolio: kfold_metrics result};
      alphas: {baseline: alpha() result} of the strategy against each baseline.
    """
    from agent import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [str(c) for c in navs.columns]
    end = navs.index[-1] if len(navs) else None
    points = dict(portfolio_points) if portfolio_points is not None else _default_points(navs)
    renderers: dict[str, Callable[[], bytes]] = {
        "equity.png": lambda: plots.equity_plot(navs, rebalance_dates),
        "drawdown.png": lambda: plots.drawdown_plot(navs),
        "weights.png": lambda: plots.weights_plot(weights, end=end),
        "rolling_sharpe.png": lambda: plots.rolling_sharpe_plot(navs, rolling_window),
        "frontier.png": lambda: plots.frontier_plot(asset_returns, points, n_random=n_random, seed=seed),
    }
    images: dict[str, bytes] = {}
    for fname, render in renderers.items():
        images[fname] = render()
        atomic_write_bytes(out_dir / fname, images[fname])

    header = {k: v for k, v in meta.items() if k not in ("deviations", "notes")}
    title = f"Backtest report: {meta.get('profile', 'strategy')}"
    sections = [
        f"<h1>{_e(title)}</h1>",
        _kv_html(header),
        "<h2>Performance</h2>",
        _metrics_html(metrics),
        f'<p class="note">{_e(_CONVENTIONS)}</p>',
        "<h2>By calendar year</h2>",
        _period_tables_html(per_year, names, "year"),
    ]
    if windows:
        sections.append("<h2>Named windows</h2>")
        for wname, by_name in windows.items():
            sections.append(f"<h3>{_e(wname)}</h3>{_metrics_html(by_name, _TABLE_KEYS[:7])}")
    if kfold:
        sections.append("<h2>Time-ordered k-fold (mean over folds)</h2>")
        sections.append(_metrics_html({n: r.get("mean", {}) for n, r in kfold.items()}, _TABLE_KEYS[:7]))
    if alphas:
        sections.append("<h2>Strategy against each baseline</h2>")
        keys = (
            "excess_total_return",
            "excess_cagr",
            "active_return",
            "tracking_error",
            "information_ratio",
            "alpha",
            "beta",
            "alpha_t",
            "r2",
        )
        sections.append(_metrics_html(alphas, keys))
        sections.append(
            '<p class="note">alpha and beta: OLS of daily excess returns on the baseline\'s '
            "(alpha annualized ×252); excess CAGR is the difference of the CAGRs.</p>"
        )
    sections.append("<h2>Plots</h2>")
    for fname, caption in PLOT_FILES.items():
        b64 = base64.b64encode(images[fname]).decode("ascii")
        sections.append(
            f'<figure><img alt="{_e(fname)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    sections.append("<h2>Trades</h2>")
    sections.append(_trades_html(trades))
    sections.append(_decisions_html(decisions_summary))
    sections.append(_notes_html(meta))
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(s for s in sections if s)
        + "\n</body></html>\n"
    )
    path = out_dir / "report.html"
    atomic_write_bytes(path, doc.encode("utf-8"))
    return path


# --------------------------------------------------------------------------------------------------- terminal
_SUMMARY_COLS: tuple[tuple[str, str, int], ...] = (
    ("total_return", "Total", 9),
    ("cagr", "CAGR", 8),
    ("volatility", "Vol", 8),
    ("sharpe", "Sharpe", 7),
    ("sortino", "Sortino", 8),
    ("max_drawdown", "MaxDD", 9),
    ("calmar", "Calmar", 7),
    ("turnover", "Turnover", 9),
    ("n_rebalances", "Rebal", 6),
    ("costs", "Costs", 7),
)


def summary_table(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """Fixed-width plain-text table, one row per portfolio, for the terminal after a backtest."""
    width = max([9, *(len(str(n)) for n in metrics)])
    head = "portfolio".ljust(width) + "".join(label.rjust(w + 1) for _, label, w in _SUMMARY_COLS)
    lines = [head, "-" * len(head)]
    for name, m in metrics.items():
        cells = "".join(format_metric(k, m.get(k)).rjust(w + 1) for k, _, w in _SUMMARY_COLS)
        lines.append(str(name).ljust(width) + cells)
    return "\n".join(lines) + "\n"
