"""The sweep's outputs: one Parquet table (cell parameters, every metric, timings, status), a JSON summary with
the deflated Sharpe of the best cell and the Monte Carlo percentiles, and a self-contained HTML page.

Why the deflated Sharpe here: picking the best of N cells inflates its Sharpe; Bailey & López de Prado's DSR
asks whether it beats the best Sharpe N unskilled trials would show given the spread of the cells' Sharpes.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.research.cell import SERIES_PREFIX
from agent.research.grid import SweepSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MC_METRICS",
    "best_cell_dsr",
    "build_table",
    "montecarlo_summary",
    "render_html",
    "write_outputs",
]

MC_METRICS = ("cagr", "sharpe", "max_drawdown")
PERCENTILES = (5, 25, 50, 75, 95)
NET_SHARPE = f"{SERIES_PREFIX}strategy.sharpe"


def _param_value(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return v
    return json.dumps(v, sort_keys=True)


def build_table(spec: SweepSpec, records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell in grid order. Swept settings are columns named by their dotted key."""
    import pandas as pd

    rows = []
    for rec in records:
        p = rec["params"]
        row: dict[str, Any] = {
            "key": rec["key"],
            "profile": p.get("profile") or "",
            "window": p["window"],
            "universe": p.get("universe") or "",
            "path": -1 if p.get("path") is None else int(p["path"]),
        }
        ov = p.get("overrides", {})
        for k in spec.grid:
            row[k] = _param_value(ov.get(k))
        row["status"] = rec.get("status", "error")
        row["error"] = rec.get("error", "")
        row["start"] = rec.get("start", "")
        row["end"] = rec.get("end", "")
        row["n_decisions"] = int(rec.get("n_decisions", 0))
        row.update(rec.get("metrics", {}))
        row["replay_s"] = float(rec.get("replay_s", math.nan))
        row["cell_s"] = float(rec.get("cell_s", math.nan))
        row["worker"] = rec.get("worker", "")
        rows.append(row)
    df = pd.DataFrame(rows)
    for k in spec.grid:
        vals = [v for v in df[k] if v is not None]
        if vals and all(isinstance(v, int | float) for v in vals):
            df[k] = df[k].astype(float)
        else:
            df[k] = df[k].astype(str)
    return df


def _sr(r: np.ndarray) -> float:
    r = r[np.isfinite(r)]
    if len(r) < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    return float(np.mean(r) / sd) if sd > 0 else math.nan


def best_cell_dsr(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best real-price cell by net Sharpe and its DSR with n_trials = the number of finished cells and
    sr_variance = the variance of their per-period Sharpe ratios (None when no cell finished)."""
    from agent.metrics import deflated_sharpe_ratio, probabilistic_sharpe_ratio

    ok = [
        r
        for r in records
        if r.get("status") == "ok" and r["params"].get("path") is None and r.get("returns") is not None
    ]
    if not ok:
        return None
    net = [r["metrics"].get(NET_SHARPE, math.nan) for r in ok]
    finite = [i for i, v in enumerate(net) if math.isfinite(v)]
    if not finite:
        return None
    best = max(finite, key=lambda i: net[i])
    srs = np.array([_sr(np.asarray(r["returns"], dtype=float)) for r in ok])
    srs = srs[np.isfinite(srs)]
    var = float(np.var(srs, ddof=1)) if len(srs) > 1 else math.nan
    ret = np.asarray(ok[best]["returns"], dtype=float)
    n = len(ok)
    dsr = (
        deflated_sharpe_ratio(ret, n_trials=n, sr_variance=var) if n > 1 and math.isfinite(var) else math.nan
    )
    return {
        "key": ok[best]["key"],
        "params": ok[best]["params"],
        "net_sharpe": net[best],
        "n_trials": n,
        "sr_variance_daily": var,
        "psr": probabilistic_sharpe_ratio(ret),
        "dsr": dsr,
    }


def montecarlo_summary(df: pd.DataFrame) -> dict[str, Any] | None:
    """Percentiles over bootstrap paths of the strategy's and 1/N's CAGR, Sharpe, max drawdown and their paired
    difference (strategy − 1/N on the same path), plus the share of paths where the strategy's Sharpe wins."""
    mc = df[(df["path"] >= 0) & (df["status"] == "ok")]
    if mc.empty:
        return None
    out: dict[str, Any] = {
        "paths": len(mc),
        "failed": int(((df["path"] >= 0) & (df["status"] != "ok")).sum()),
    }
    rows = {}
    for m in MC_METRICS:
        s = mc.get(f"{SERIES_PREFIX}strategy.{m}")
        b = mc.get(f"{SERIES_PREFIX}equal_weight.{m}")
        if s is None or b is None:
            continue
        sv, bv = s.to_numpy(dtype=float), b.to_numpy(dtype=float)
        for name, v in ((f"strategy {m}", sv), (f"1/N {m}", bv), (f"strategy − 1/N {m}", sv - bv)):
            v = v[np.isfinite(v)]
            rows[name] = {f"p{q}": float(np.percentile(v, q)) for q in PERCENTILES} if len(v) else {}
    out["percentiles"] = rows
    s = mc.get(f"{SERIES_PREFIX}strategy.sharpe")
    b = mc.get(f"{SERIES_PREFIX}equal_weight.sharpe")
    if s is not None and b is not None:
        out["share_sharpe_above_1n"] = float((s.to_numpy(float) > b.to_numpy(float)).mean())
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.4g}"
    return html.escape(str(v))


def _heatmap(df: pd.DataFrame, x: str, y: str) -> str:
    ok = df[(df["status"] == "ok") & (df["path"] < 0)] if "path" in df else df[df["status"] == "ok"]
    if ok.empty or NET_SHARPE not in ok:
        return "<p>no finished cell to draw</p>"
    piv = ok.pivot_table(index=y, columns=x, values=NET_SHARPE, aggfunc="mean")
    vals = piv.to_numpy(dtype=float)
    lo, hi = np.nanmin(vals), np.nanmax(vals)
    parts = [f"<table class='heat'><tr><th>{html.escape(y)} \\ {html.escape(x)}</th>"]
    parts += [f"<th>{_fmt(c)}</th>" for c in piv.columns]
    parts.append("</tr>")
    for i, idx in enumerate(piv.index):
        parts.append(f"<tr><th>{_fmt(idx)}</th>")
        for j in range(len(piv.columns)):
            v = vals[i, j]
            t = 0.5 if not (math.isfinite(v) and hi > lo) else (v - lo) / (hi - lo)
            # red (low) -> white -> green (high)
            r, g = (255, int(255 * 2 * t)) if t < 0.5 else (int(255 * 2 * (1 - t)), 255)
            b = int(255 * (1 - abs(2 * t - 1)))
            parts.append(f"<td style='background:rgb({r},{g},{b})'>{_fmt(v)}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    note = " (mean over the other swept parameters)" if len(ok) > vals.size else ""
    return f"<h2>Net Sharpe: {html.escape(y)} × {html.escape(x)}{note}</h2>" + "".join(parts)


def render_html(spec: SweepSpec, df: pd.DataFrame, summary: dict[str, Any]) -> str:
    shown = [c for c in df.columns if c not in ("key", "worker", "error")]
    metric_cols = [
        f"{SERIES_PREFIX}strategy.{m}" for m in ("cagr", "sharpe", "max_drawdown", "turnover", "dsr")
    ] + [f"{SERIES_PREFIX}equal_weight.sharpe"]
    cols = [c for c in shown if not c.startswith(SERIES_PREFIX)] + [c for c in metric_cols if c in df.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(row[c])}</td>" for c in cols) + "</tr>" for _, row in df.iterrows()
    )
    parts = [
        "<!doctype html><meta charset='utf-8'><title>agent sweep</title>",
        "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style>",
        f"<h1>Sweep {html.escape(spec.source)}</h1>",
        f"<p>{html.escape(spec.description)}</p>" if spec.description else "",
        f"<p>{summary['n_cells']} cells, {summary['n_ok']} finished, {summary['n_failed']} failed. "
        "All metrics are from the full replay through the decision path (costs included).</p>",
    ]
    best = summary.get("best")
    if best:
        parts.append(
            f"<h2>Best cell</h2><p>net Sharpe {_fmt(best['net_sharpe'])}, PSR {_fmt(best['psr'])}, "
            f"<b>deflated Sharpe {_fmt(best['dsr'])}</b> (n_trials = {best['n_trials']}, variance of the cells' "
            f"daily Sharpe ratios {_fmt(best['sr_variance_daily'])}); cell "
            f"<code>{html.escape(json.dumps(best['params'], sort_keys=True))}</code></p>"
        )
    mc = summary.get("montecarlo")
    if mc:
        qs = "".join(f"<th>p{q}</th>" for q in PERCENTILES)
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th>"
            + "".join(f"<td>{_fmt(v.get(f'p{q}'))}</td>" for q in PERCENTILES)
            + "</tr>"
            for k, v in mc["percentiles"].items()
        )
        parts.append(
            f"<h2>Monte Carlo ({mc['paths']} paths)</h2><table><tr><th></th>{qs}</tr>{rows}</table>"
            f"<p>strategy Sharpe above 1/N on {100 * mc.get('share_sharpe_above_1n', math.nan):.1f}% of paths</p>"
        )
    if spec.heatmap:
        parts.append(_heatmap(df, spec.heatmap[0], spec.heatmap[1]))
    parts.append(f"<h2>All cells</h2><table><tr>{head}</tr>{body}</table>")
    failed = df[df["status"] != "ok"]
    if len(failed):
        parts.append("<h2>Failed cells</h2><ul>")
        parts += [
            f"<li><code>{html.escape(r['key'])}</code>: {html.escape(r['error'])}</li>"
            for _, r in failed.iterrows()
        ]
        parts.append("</ul>")
    return "\n".join(parts) + "\n"


def write_outputs(
    spec: SweepSpec, records: list[dict[str, Any]], out_dir: Path
) -> tuple[Path, Path, dict[str, Any]]:
    """sweep.parquet, summary.json, summary.html under out_dir (atomically)."""
    from agent.atomic import atomic_write_bytes, atomic_write_text

    df = build_table(spec, records)
    summary: dict[str, Any] = {
        "n_cells": len(df),
        "n_ok": int((df["status"] == "ok").sum()),
        "n_failed": int((df["status"] != "ok").sum()),
        "best": best_cell_dsr(records),
        "montecarlo": montecarlo_summary(df),
    }
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    table = out_dir / "sweep.parquet"
    atomic_write_bytes(table, buf.getvalue())
    atomic_write_text(
        out_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
    )
    page = out_dir / "summary.html"
    atomic_write_text(page, render_html(spec, df, summary))
    return table, page, summary
