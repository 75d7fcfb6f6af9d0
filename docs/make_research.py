"""Regenerate docs/RESEARCH.md from actual sweeps: the Monte Carlo stress table of the default profile.

    python docs/make_research.py                      # run (or resume) the sweep, then write the page
    python docs/make_research.py --workers 2
    python docs/make_research.py --no-run             # summarize the cells stored so far (a partial run)

The sweep is `agent sweep examples/montecarlo-default.toml` with its outputs under
runs/research/montecarlo-default/ (resumable: finished cells are skipped). Every number on the page is read from
the stored cells; the page says how many of the grid's paths were finished and how long they took.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
GRID = REPO / "examples" / "montecarlo-default.toml"
RUNS = REPO / "runs" / "research" / "montecarlo-default"
OUT = REPO / "docs" / "RESEARCH.md"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _num(v: float) -> str:
    return f"{v:.2f}"


def _machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{platform.machine()} Linux, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) when the page was written: the cores "
        "were shared with other busy processes, so times are upper bounds"
    )


def stored_records(out_dir: Path) -> tuple[list[dict], int, object]:
    """The grid's stored cell records (in grid order) and the number of cells in the grid."""
    from agent.research.grid import cell_key, expand_cells, load_grid
    from agent.research.runner import load_sweep_prices, sweep_digest

    spec = load_grid(GRID)
    data = sweep_digest(spec, load_sweep_prices(spec))
    cells = expand_cells(spec)
    recs = []
    for c in cells:
        p = out_dir / "cells" / f"{cell_key(c, data)}.json"
        if p.exists():
            recs.append(json.loads(p.read_text()))
    return recs, len(cells), spec


def montecarlo_section(
    recs: list[dict], n_grid: int, spec: object, wall_s: float | None, out_dir: Path
) -> str:
    from agent.research.table import build_table, montecarlo_summary

    df = build_table(spec, recs)  # type: ignore[arg-type]
    mc = montecarlo_summary(df)
    mcspec = spec.montecarlo  # type: ignore[attr-defined]
    lines = [
        "## Monte Carlo stress: default profile",
        "",
        f"{spec.description}.",  # type: ignore[attr-defined]
        "",
        "Each path is a synthetic price history of the 9 sector ETFs and SPY built by a stationary block "
        f"bootstrap (Politis–Romano; mean block {mcspec.mean_block:g} sessions, seed {mcspec.seed}) of the daily "
        "returns of the whole file (every session from the first with all tickers to the last), started at the "
        "real first prices. The replay window's dates are the real ones, so the profile's models (chosen by "
        "date, trained on real data) and its GARCH refits see only the synthetic history up to each decision. "
        "Note the bootstrap draws from the whole sample, including the window's own years: it stresses the "
        "strategy under resampled histories, it is not an out-of-sample forecast.",
        "",
    ]
    if mc is None:
        return "\n".join([*lines, "No path finished yet.", ""])
    ok = int((df["status"] == "ok").sum())
    lines += [
        f"Paths finished: **{ok} of {n_grid}**"
        + (f" ({mc['failed']} failed)" if mc["failed"] else "")
        + (
            ""
            if ok == n_grid
            else " — the run did not fit in the time available; resume it with the command below (finished "
            "paths are skipped) and regenerate this page"
        )
        + ".",
        "",
        "| quantity | p5 | p25 | p50 | p75 | p95 |",
        "|---|---|---|---|---|---|",
    ]
    for name, q in mc["percentiles"].items():
        fmt = _num if "sharpe" in name else _pct
        lines.append(f"| {name} | " + " | ".join(fmt(q[f"p{p}"]) for p in (5, 25, 50, 75, 95)) + " |")
    lines += [
        "",
        f"The strategy's Sharpe ratio beats 1/N's on the same path on **{_pct(mc['share_sharpe_above_1n'])}** "
        "of the paths. Differences are paired (strategy − 1/N on the same path); costs 5 bps per side for both.",
        "",
    ]
    inv_path = out_dir / "invocations.jsonl"
    invs = [json.loads(x) for x in inv_path.read_text().splitlines()] if inv_path.exists() else []
    if invs:
        lines += [
            "Sweep invocations (from the sweep's invocations.jsonl): "
            + "; ".join(
                f"{i['cells_run']} cells in {i['wall_s'] / 60:.1f} min on {i['workers']} worker(s), load "
                f"average {i['loadavg'][0]} at the end ({i['finished_utc']})"
                for i in invs
            )
            + ".",
            "",
        ]
    cell_s = df.loc[df["status"] == "ok", "cell_s"]
    lines += [
        f"Per path: median {cell_s.median():.1f} s of worker time (replay including start-up), "
        f"{cell_s.sum() / 60:.1f} worker-minutes in total"
        + (f"; this invocation's wall time {wall_s / 60:.1f} min" if wall_s is not None else "")
        + ".",
        "",
        f"Machine: {_machine()}.",
        "",
        "Reproduce: `agent sweep examples/montecarlo-default.toml --out runs/research/montecarlo-default "
        "--workers 2` then `python docs/make_research.py --no-run` (or just `python docs/make_research.py`).",
        "",
    ]
    return "\n".join(lines)


MC_BEGIN, MC_END = "<!-- montecarlo: generated by docs/make_research.py -->", "<!-- /montecarlo -->"


def results_section(recs: list[dict], n_grid: int, spec: object, out_dir: Path) -> str:
    """The Monte Carlo table as docs/RESULTS.md carries it: the same rendering from the same stored cells."""
    text = montecarlo_section(recs, n_grid, spec, None, out_dir)
    return "\n".join([MC_BEGIN, text.rstrip(), "", "(Also on [RESEARCH.md](RESEARCH.md).)", MC_END])


def splice_results(recs: list[dict], n_grid: int, spec: object, out_dir: Path) -> None:
    sys.path.insert(0, str(REPO / "docs"))
    from make_leakage import RESULTS, splice

    splice(RESULTS, results_section(recs, n_grid, spec, out_dir), MC_BEGIN, MC_END)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=RUNS, help="sweep output directory")
    ap.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: cores)")
    ap.add_argument("--scheduler", default=None, help="an existing Dask scheduler address")
    ap.add_argument("--no-run", action="store_true", help="only summarize the cells already stored")
    args = ap.parse_args(argv)
    os.environ.setdefault("AGENT_NO_PROGRESS", "1")
    wall = None
    if not args.no_run:
        from agent.research.grid import load_grid
        from agent.research.runner import run_sweep

        t0 = time.perf_counter()
        run_sweep(load_grid(GRID), args.out_dir, scheduler=args.scheduler, workers=args.workers)
        wall = time.perf_counter() - t0
    recs, n_grid, spec = stored_records(args.out_dir)
    page = [
        "# Research studies",
        "",
        f"<!-- generated by docs/make_research.py on {dt.date.today().isoformat()}; do not edit by hand -->",
        "",
        "Sweeps run with `agent sweep` (see the README); every cell is a full replay through the decision path.",
        "",
        montecarlo_section(recs, n_grid, spec, wall, args.out_dir),
    ]
    OUT.write_text("\n".join(page).rstrip() + "\n")
    splice_results(recs, n_grid, spec, args.out_dir)
    print(f"wrote {OUT} and its section of docs/RESULTS.md ({len(recs)} of {n_grid} cells)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
