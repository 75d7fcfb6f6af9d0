"""The live paper book's report: its own page and metrics, beside a backtest of the same dates.

The live book and a backtest run the same decision step (`runner.run_slot`) on the same schedule, so on the
same prices, models and configuration their decisions and NAVs should match. Where they do not, the decision
records say why: a slot the live book missed, a different configuration digest, model or price data.
Everything here reads the state directory read-only (agent.ops.book); the backtest writes only under `out`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.report.fmt import e, format_metric, kv_html, records_html

if TYPE_CHECKING:
    import pandas as pd

    from agent.ops.book import Book

__all__ = [
    "Comparison",
    "compare_books",
    "comparison_html",
    "decision_targets",
    "first_decision",
    "live_inputs",
    "nav_series",
]

# Weight differences below this are solver noise (targets are rounded to 1e-10 before they are recorded).
_WEIGHT_TOL = 1e-6


@dataclass
class Comparison:
    """How the live book and the backtest of its dates differ (NAV and decision by decision)."""

    common_sessions: int
    final_live: float
    final_backtest: float
    max_abs_nav_diff: float  # max |live/live0 − backtest/backtest0| over common sessions
    slots_compared: int
    slots_matching: int
    missed_by_live: list[str] = field(default_factory=list)  # scheduled slots with no live decision
    extra_in_live: list[str] = field(default_factory=list)  # live decisions the backtest schedule lacks
    mismatches: list[dict[str, Any]] = field(default_factory=list)  # per slot: max weight diff and reasons


def nav_series(book: Book) -> pd.Series:
    """The book's NAV relative to its initial capital (1.0 = the start)."""
    cap = book.initial_capital or (float(book.nav["nav"].iloc[0]) if len(book.nav) else 1.0)
    return (book.nav["nav"] / cap).rename("nav")


def decision_targets(book: Book) -> pd.DataFrame:
    """Decision date × (tickers + cash): the targets each committed run recorded."""
    import pandas as pd

    rows = {}
    for r in book.runs:
        t = (r.get("decision") or {}).get("targets")
        if isinstance(t, Mapping) and r.get("asof"):
            rows[pd.Timestamp(str(r["asof"])[:10])] = {str(k): float(v) for k, v in t.items()}
    df = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    df.index.name = "date"
    return df.fillna(0.0)


def _reasons(live: Mapping[str, Any], bt: Mapping[str, Any]) -> list[str]:
    """What differs between two decision records of the same slot (the likely cause of different targets)."""
    out = []
    if live.get("config_digest") != bt.get("config_digest"):
        out.append("configuration differs (config_digest)")
    lm = (live.get("inputs") or {}).get("model") or {}
    bm = (bt.get("inputs") or {}).get("model") or {}
    if lm.get("sha256") != bm.get("sha256"):
        out.append(f"model differs ({lm.get('id')} vs {bm.get('id')})")
    lp = (live.get("inputs") or {}).get("prices") or {}
    bp = (bt.get("inputs") or {}).get("prices") or {}
    if lp.get("last") != bp.get("last"):
        out.append(f"last price date differs ({lp.get('last')} vs {bp.get('last')})")
    elif lp.get("digest") != bp.get("digest"):
        out.append("price data differs (revised or different source)")
    if (live.get("state_before") or {}).get("weights") != (bt.get("state_before") or {}).get("weights"):
        out.append("holdings before the decision differ (an earlier difference carried forward)")
    if live.get("status") != bt.get("status"):
        out.append(f"status {live.get('status')} vs {bt.get('status')}")
    return out or ["no recorded input differs (numerical noise)"]


def compare_books(live: Book, backtest: Book) -> Comparison:
    """NAV and per-slot decision differences of two books over their common dates."""
    a, b = nav_series(live), nav_series(backtest)
    common = a.index.intersection(b.index)
    diff = float("nan")
    fa = fb = float("nan")
    if len(common):
        ra = a.loc[common] / float(a.loc[common].iloc[0])
        rb = b.loc[common] / float(b.loc[common].iloc[0])
        diff = float((ra - rb).abs().max())
        fa, fb = float(ra.iloc[-1]), float(rb.iloc[-1])
    lr = {str(r["slot"]): r for r in live.runs}
    br = {str(r["slot"]): r for r in backtest.runs}
    first_live = min(lr) if lr else ""
    missed = sorted(s for s in br if s not in lr and s >= first_live)
    extra = sorted(s for s in lr if s not in br)
    mism = []
    matching = 0
    both = sorted(set(lr) & set(br))
    for s in both:
        ld, bd = lr[s].get("decision") or {}, br[s].get("decision") or {}
        lt, bt = ld.get("targets") or {}, bd.get("targets") or {}
        keys = set(lt) | set(bt)
        wd = max((abs(float(lt.get(k, 0.0)) - float(bt.get(k, 0.0))) for k in keys), default=0.0)
        if wd <= _WEIGHT_TOL and ld.get("status") == bd.get("status"):
            matching += 1
        else:
            mism.append({"slot": s, "max_weight_diff": wd, "why": "; ".join(_reasons(ld, bd))})
    return Comparison(len(common), fa, fb, diff, len(both), matching, missed, extra, mism)


def comparison_html(c: Comparison, *, backtest_dir: Path | None = None) -> str:
    """The page section: headline numbers, then the slots that differ and why."""
    facts: dict[str, Any] = {
        "common sessions": c.common_sessions,
        "final NAV, live (start = 1)": f"{c.final_live:.6f}" if math.isfinite(c.final_live) else "—",
        "final NAV, backtest (start = 1)": f"{c.final_backtest:.6f}"
        if math.isfinite(c.final_backtest)
        else "—",
        "difference (live − backtest)": format_metric("difference", c.final_live - c.final_backtest),
        "largest |NAV difference| on any session": f"{c.max_abs_nav_diff:.2e}",
        "decisions compared": f"{c.slots_compared} ({c.slots_matching} identical)",
        "scheduled slots the live book missed": ", ".join(c.missed_by_live) or "none",
        "live decisions outside the backtest's schedule": ", ".join(c.extra_in_live) or "none",
    }
    if backtest_dir is not None:
        facts["backtest output"] = str(backtest_dir)
    parts = [kv_html(facts)]
    if c.mismatches:
        rows = [
            {"slot": m["slot"], "max weight difference": m["max_weight_diff"], "why": m["why"]}
            for m in c.mismatches[:50]
        ]
        parts.append("<h3>Decisions that differ</h3>" + records_html(rows))
    verdict = (
        "The live book and the backtest agree: same decisions, same NAV (differences are floating-point noise)."
        if not c.mismatches and not c.missed_by_live and c.max_abs_nav_diff < 1e-6
        else "They differ; the table above names, per slot, which recorded inputs differ. A missed slot changes "
        "every later holding, so look at the first difference first."
    )
    parts.append(f'<p class="note">{e(verdict)}</p>')
    return "".join(parts)


def live_inputs(
    live: Book,
    backtest: Book | None,
    benchmark: pd.Series | None,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """(navs, metrics) for the page: the live book first, then the backtest and the benchmark, on live dates."""
    import pandas as pd

    from agent import metrics as M

    navs = {"live": nav_series(live)}
    if backtest is not None:
        navs["backtest"] = nav_series(backtest)
    if benchmark is not None:
        navs["benchmark"] = benchmark
    idx = navs["live"].index
    frame = pd.DataFrame({k: v.reindex(idx).ffill() for k, v in navs.items()}, index=idx)
    frame = frame / frame.iloc[0]
    frame.index.name = "date"
    metrics: dict[str, dict[str, Any]] = {}
    for col, book in (("live", live), ("backtest", backtest)):
        if book is None or col not in frame:
            continue
        ex = book.executions
        lo = idx[0].date().isoformat()
        ex = ex[ex["exec_date"] > lo] if len(ex) else ex
        cap = book.initial_capital or 1.0
        metrics[col] = M.portfolio_metrics(
            frame[col].dropna(),
            turnover=float(ex["turnover"].sum()) if len(ex) else 0.0,
            n_rebalances=len(ex),
            costs=float(ex["cost"].sum()) / cap if len(ex) else 0.0,
        )
    if "benchmark" in frame:
        metrics["benchmark"] = M.portfolio_metrics(frame["benchmark"].dropna())
    return frame, metrics


def first_decision(book: Book) -> dt.date | None:
    return dt.date.fromisoformat(str(book.runs[0]["asof"])[:10]) if book.runs else None
