"""The report page: PNG plots and one self-contained report.html, plus a plain-text summary for the terminal.

report.html embeds every plot as a base64 data URI and carries its own CSS: no external scripts, styles, fonts or
links, so it opens offline and can be archived as a single file. Each chart is embedded twice, a wide version
and a narrow one chosen by a `<picture>` media query on a phone, because a 1000-px chart shrunk to a phone's
width leaves its text a few pixels tall. Nothing time- or path-dependent is written, so the same inputs give
byte-identical files (checked by the tests). Files are written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.atomic import atomic_write_bytes
from agent.report.fmt import (
    CSS,
    TABLE_KEYS,
    e,
    format_metric,
    kv_html,
    metrics_html,
    period_tables_html,
    records_html,
)

if TYPE_CHECKING:  # pandas is imported lazily: the CLI may import this module for summary_table at start-up
    import pandas as pd

__all__ = ["PLOT_FILES", "summary_table", "write_report"]

# File name -> caption, in the order the report shows them.
PLOT_FILES: dict[str, str] = {
    "equity.png": (
        "Equity curves (NAV, start = 1.0). Ticks along the bottom axis mark the sessions on which the strategy's "
        "orders executed (the close after each decision)."
    ),
    "drawdown.png": "Drawdown from the running peak (underwater curves).",
    "yearly_returns.png": "Calendar-year returns; a partial first or last year is starred.",
    "rolling_sharpe.png": "Rolling annualized Sharpe ratio; blank until a full window of sessions is available.",
    "rolling_volatility.png": "Rolling annualized volatility (std of daily returns, ddof = 1, × √252).",
    "rolling_beta.png": "Rolling beta: cov(portfolio, benchmark) / var(benchmark) of daily returns.",
    "weights.png": (
        "Strategy target weights after overlays, held until the next decision. Cash is always the hatched light "
        "grey band on top; no asset uses grey and no colour repeats."
    ),
    "frontier.png": (
        "Long-only efficient frontier from the mean and covariance of the test-window daily asset returns, "
        "random long-only portfolios (seeded), and each portfolio at its realized annualized volatility and "
        "arithmetic mean return. Portfolios holding cash can sit left of the asset-only frontier."
    ),
}
_SECTION_OF = {
    "equity.png": "curves",
    "drawdown.png": "curves",
    "yearly_returns.png": "calendar",
    "rolling_sharpe.png": "rolling",
    "rolling_volatility.png": "rolling",
    "rolling_beta.png": "rolling",
    "weights.png": "weights",
    "frontier.png": "frontier",
}
_ALPHA_KEYS = (
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


def _conventions(n_trials: int) -> str:
    dsr = (
        "the deflated Sharpe assumes 1 trial here, so it equals the PSR"
        if n_trials <= 1
        else f"the deflated Sharpe deflates for {n_trials} trials"
    )
    return (
        "Daily simple returns, 252 sessions a year. CAGR over sessions; volatility = std(ddof=1)·√252; Sharpe = "
        "mean excess / std excess · √252; Sortino uses the downside deviation of excess returns below 0 over all "
        "sessions; max drawdown is the deepest fall from a running peak (negative); Calmar = CAGR / |max drawdown|. "
        f"PSR/DSR (Bailey & López de Prado) from daily excess returns; {dsr}. Skewness and kurtosis use the "
        "biased moment estimators; kurtosis is NOT excess (a normal distribution has 3). '—' marks an undefined "
        "value (e.g. zero volatility). Turnover is the sum over executions of traded notional / NAV; costs are a "
        "fraction of the initial capital. Money is in the ledger's currency (shown as $)."
    )


_GLANCE_NOTE = (
    "Trailing returns end on the last date: MTD from the previous month's last NAV, YTD from the previous year's, "
    "3M/6M/1Y from the last NAV on or before the same date 3/6/12 months earlier; 3Y and 5Y are annualized "
    "(CAGR over sessions); '—' when the history is shorter. Months compound their daily returns. Hit rate: days "
    "up among days with a non-zero return (quantstats' win rate). VaR 95%: the 5th percentile of daily returns "
    "(historical, one day); CVaR: the mean of the returns at or below it. These agree with quantstats / "
    "empyrical (checked in the tests)."
)
_DD_NOTE = (
    "Peak = last high before the fall; Recovered = first session back at or above that peak; length counts "
    "sessions from peak to recovery (or to the last date while still underwater). quantstats dates the same "
    "episodes one session later (first session underwater) and ends them one session earlier (last session "
    "underwater); depths are identical."
)


def _default_points(navs: pd.DataFrame) -> dict[str, tuple[float, float]]:
    from agent.metrics import risk_return_point

    return {str(c): risk_return_point(navs[c].dropna()) for c in navs.columns}


def _execution_dates(trades: pd.DataFrame | None, fallback: Sequence[Any]) -> tuple[list[Any], str]:
    """Sessions with a non-dust fill (what actually traded); the decision dates only if there is no fill data."""
    from agent.report.sections import split_dust

    if trades is not None and len(trades) and "exec_date" in trades.columns:
        real, _ = split_dust(trades)
        return sorted(set(real["exec_date"])), "executions"
    return list(fallback), "decisions"


def _benchmark_of(names: Sequence[str]) -> str | None:
    for cand in ("benchmark", "equal_weight", "buy_and_hold"):
        if cand in names:
            return cand
    return None


def _figure_html(name: str, wide: bytes, narrow: bytes, caption: str) -> str:
    w = base64.b64encode(wide).decode("ascii")
    n = base64.b64encode(narrow).decode("ascii")
    return (
        f'<figure><picture><source media="(max-width: 600px)" srcset="data:image/png;base64,{n}">'
        f'<img alt="{e(name)}" src="data:image/png;base64,{w}"></picture>'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )


def write_report(
    out_dir: Path,
    *,
    navs: pd.DataFrame,
    weights: pd.DataFrame,
    trades: pd.DataFrame | None,
    metrics: Mapping[str, Mapping[str, Any]],
    per_year: Mapping[str, Mapping[str, Any]],
    rebalance_dates: Sequence[Any] = (),
    asset_returns: pd.DataFrame,
    portfolio_points: Mapping[str, tuple[float, float]] | None,
    meta: Mapping[str, Any],
    decisions_summary: Any = None,
    skill_rows: Sequence[Mapping[str, Any]] | None = None,
    windows: Mapping[str, Mapping[str, Any]] | None = None,
    kfold: Mapping[str, Mapping[str, Any]] | None = None,
    alphas: Mapping[str, Mapping[str, Any]] | None = None,
    rolling_window: int = 126,
    n_random: int = 10_000,
    seed: int = 0,
    n_trials: int = 1,
    capital: float | None = None,
    extra_sections: Sequence[tuple[str, str]] = (),
    title: str | None = None,
) -> Path:
    """Write the PNG plots and report.html into out_dir; return the path of report.html.

    - navs: date × portfolio (strategy first, then baselines), starting at 1.0.
    - weights: decision date × (tickers + cash), the strategy's targets after overlays.
    - trades: the ledger's fills (exec_date, ticker, shares, price, notional, cost); the equity chart marks
      their sessions (not the decision dates); `rebalance_dates` is used only when there are no fills.
    - metrics: {portfolio: portfolio_metrics}; per_year: {portfolio: {year: metrics}} (or year-major).
    - asset_returns: daily simple returns of the universe over the test window (for the frontier).
    - portfolio_points: {portfolio: (ann. vol, ann. mean return)}; None computes them from navs.
    - meta: shown in the header in its own order (profile, window, costs, data source, ...); `deviations` and
      `notes` (str or list of str) go to the notes section.
    - windows: {window name: {portfolio: metrics}}; kfold: {portfolio: kfold_metrics result};
      alphas: {name: alpha() result}, used only when navs has a single column; otherwise the strategy is
      compared with every other column of navs.
    - n_trials: the number of strategy variants tried (the deflated Sharpe's N), stated on the page.
    - capital: the initial capital, to state costs as a share of it; extra_sections: (title, html) shown after
      the performance table (the live report's comparison with the backtest).
    """
    from agent import metrics as M
    from agent import plots
    from agent.report import charts, frontier
    from agent.report import sections as S

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [str(c) for c in navs.columns]
    span = (navs.index[0], navs.index[-1]) if len(navs) else None
    end = navs.index[-1] if len(navs) else None
    points = dict(portfolio_points) if portfolio_points is not None else _default_points(navs)
    marks, mark_kind = _execution_dates(trades, rebalance_dates)
    bench = _benchmark_of(names)
    renderers: dict[str, Callable[[], bytes]] = {
        "equity.png": lambda: plots.equity_plot(navs, marks, span=span),
        "drawdown.png": lambda: plots.drawdown_plot(navs, span=span),
        "yearly_returns.png": lambda: charts.yearly_returns_plot(navs),
        "rolling_sharpe.png": lambda: plots.rolling_sharpe_plot(navs, rolling_window, span=span),
        "rolling_volatility.png": lambda: charts.rolling_vol_plot(navs, rolling_window),
        "rolling_beta.png": lambda: charts.rolling_beta_plot(navs, bench or "", rolling_window),
        "weights.png": lambda: plots.weights_plot(weights, end=end, span=span),
        "frontier.png": lambda: frontier.frontier_plot(asset_returns, points, n_random=n_random, seed=seed),
    }
    figures: dict[str, str] = {}
    for fname, render in renderers.items():
        wide = render()
        atomic_write_bytes(out_dir / fname, wide)
        with plots.narrow_layout():
            narrow = render()
        caption = PLOT_FILES[fname]
        if fname == "equity.png" and mark_kind == "decisions":
            caption = caption.replace("sessions on which the strategy's orders executed", "decision dates")
        figures[fname] = _figure_html(fname, wide, narrow, caption)

    def figs(section: str) -> str:
        return "".join(h for f, h in figures.items() if _SECTION_OF[f] == section)

    strat = "strategy" if "strategy" in names else (names[0] if names else None)
    cost_share = (metrics.get(strat) or {}).get("costs") if strat is not None else None
    glance = {n: M.tearsheet_stats(navs[n].dropna()) for n in names}
    if strat is not None and len(names) > 1:  # always every baseline (a caller's subset is replaced)
        alphas = {
            f"{plots.display_name(strat)} vs {plots.display_name(n)}": M.alpha(navs[strat], navs[n])
            for n in names
            if n != strat
        }
    header = {k: v for k, v in meta.items() if k not in ("deviations", "notes")}
    title = title or f"Backtest report: {meta.get('profile', 'strategy')}"
    dsr_label = (
        "Deflated Sharpe (1 trial: = PSR)" if n_trials <= 1 else f"Deflated Sharpe ({n_trials} trials)"
    )
    parts = [
        f"<h1>{e(title)}</h1>",
        kv_html(header),
        "<h2>Performance</h2>",
        metrics_html(metrics, TABLE_KEYS, {"dsr": dsr_label}),
        f'<p class="note">{e(_conventions(n_trials))}</p>',
    ]
    for sec_title, sec_html in extra_sections:
        parts.append(f"<h2>{e(sec_title)}</h2>{sec_html}")
    parts += [
        "<h2>Returns and risk at a glance</h2>",
        S.glance_html(glance),
        f'<p class="note">{e(_GLANCE_NOTE)}</p>',
        "<h2>Equity and drawdowns</h2>",
        figs("curves"),
    ]
    if strat is not None:
        parts += [
            f"<h3>Worst drawdowns: {e(plots.display_name(strat))}</h3>",
            S.drawdowns_html(M.drawdown_table(navs[strat].dropna(), 10)),
            f'<p class="note">{e(_DD_NOTE)}</p>',
            f"<h2>Monthly returns: {e(plots.display_name(strat))} (%)</h2>",
            S.heatmap_html(M.monthly_returns_grid(navs[strat].dropna())),
        ]
    parts += [
        "<h2>By calendar year</h2>",
        figs("calendar"),
        period_tables_html(per_year, names, "year"),
        "<h2>Rolling statistics</h2>",
        figs("rolling"),
        "<h2>Allocation</h2>",
        figs("weights"),
    ]
    if alphas:
        parts += [
            "<h2>Strategy against each baseline</h2>",
            _alphas_html(alphas),
            '<p class="note">Alpha and beta: OLS of daily excess returns on the other portfolio\'s (alpha '
            "annualized ×252, risk-free 0); excess CAGR is the difference of the CAGRs; information ratio = "
            "active return / tracking error.</p>",
        ]
    if windows:
        parts.append("<h2>Named windows</h2>")
        for wname, by_name in windows.items():
            parts.append(f"<h3>{e(wname)}</h3>{metrics_html(by_name, TABLE_KEYS[:7])}")
    if kfold:
        parts.append("<h2>Time-ordered k-fold (mean over folds)</h2>")
        parts.append(metrics_html({n: r.get("mean", {}) for n, r in kfold.items()}, TABLE_KEYS[:7]))
    parts += [
        "<h2>Efficient frontier</h2>",
        figs("frontier"),
        "<h2>Trades</h2>",
        S.trades_html(trades, capital, cost_share),
    ]
    if skill_rows:
        parts.append(
            "<h2>Skill-aware allocation</h2><p class=\"note\">From each decision's record: the model's validation "
            "skill (its walk-forward validation IC), its live skill (IC of the agent's own forecasts whose horizon "
            "had ended by the decision date), the IC the Black–Litterman step used (zero when the gate held the "
            "reference), and how far the posterior μ moved from the reference's implied returns π.</p>"
            + records_html(skill_rows)
        )
    parts.append(S.decisions_html(decisions_summary))
    parts.append(S.notes_html(meta))
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(s for s in parts if s)
        + "\n</body></html>\n"
    )
    path = out_dir / "report.html"
    atomic_write_bytes(path, doc.encode("utf-8"))
    return path


def _alphas_html(alphas: Mapping[str, Mapping[str, Any]]) -> str:
    """Comparisons as columns (already human-named), the alpha metrics as rows."""
    from agent.report.fmt import LABELS, cell, scroll

    names = list(alphas)
    head = "".join(f"<th>{e(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><th>{e(LABELS.get(k, k))}</th>{''.join(cell(k, alphas[n].get(k)) for n in names)}</tr>"
        for k in _ALPHA_KEYS
    )
    return scroll(f"<table><thead><tr><th>Metric</th>{head}</tr></thead><tbody>{rows}</tbody></table>")


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
