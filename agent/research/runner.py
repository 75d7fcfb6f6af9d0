"""Run a sweep: enumerate cells, skip those already stored, run the rest on Dask (or serially), store each
result as it arrives, then write the Parquet table and the HTML summary.

Why results are one JSON file per cell, written atomically by the client as each task completes: a crash or a
SIGKILL of the client loses at most the cells in flight, and the rerun resumes from the files on disk.
The prices are loaded and validated once here and shipped to the workers once (`Client.scatter`, broadcast).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.research.grid import Cell, SweepSpec, cell_key, expand_cells

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SweepResult", "frame_digest", "load_sweep_prices", "run_sweep", "sweep_digest"]

SERIAL = "serial"


@dataclass
class SweepResult:
    out_dir: Path
    n_cells: int
    n_run: int
    n_skipped: int
    n_failed: int
    wall_s: float
    workers: int
    table_path: Path | None = None
    html_path: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def frame_digest(frame: pd.DataFrame) -> str:
    """Content hash of the prices (values, dates, columns): part of every cell key."""
    import hashlib

    import pandas as pd

    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in frame.columns]).encode())
    h.update(pd.DatetimeIndex(frame.index).asi8.tobytes())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def sweep_digest(spec: SweepSpec, frame: pd.DataFrame) -> str:
    """What every cell key covers besides the cell: the prices and, for a grid on a config file, the file's
    text (an edited file never reuses stale results). Code changes are not covered: use a new --out."""
    if not spec.config:
        return frame_digest(frame)
    from agent.decision import digest

    try:
        cfg_text = Path(spec.config).read_text()
    except OSError:
        cfg_text = "(unreadable)"
    return digest({"prices": frame_digest(frame), "config": cfg_text})[:16]


def load_sweep_prices(spec: SweepSpec) -> pd.DataFrame:
    """The price frame every cell replays on, loaded the way `agent backtest [--prices]` loads it."""
    from agent.backtest import load_prices_for
    from agent.settings import load_settings

    base = load_settings(spec.config, profile=spec.profile)
    store, _ = load_prices_for(base, spec.prices)
    return store.load()


def _record_path(out_dir: Path, key: str) -> Path:
    return out_dir / "cells" / f"{key}.json"


def _store_record(out_dir: Path, rec: dict[str, Any]) -> None:
    from agent.atomic import atomic_write_text

    atomic_write_text(
        _record_path(out_dir, rec["key"]), json.dumps(rec, sort_keys=True, allow_nan=True) + "\n"
    )


def _done(out_dir: Path, key: str) -> bool:
    p = _record_path(out_dir, key)
    if not p.exists():
        return False
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return False  # a torn or unreadable record is rerun (atomic writes make this unlikely)
    return not rec.get("retry", False)  # a cell lost with its worker is rerun; a cell's own error is final


def _iter_dask(
    todo: list[tuple[str, Cell]],
    frame: pd.DataFrame,
    scheduler: str | None,
    workers: int | None,
    info: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    from distributed import as_completed

    from agent.research.cell import run_cell
    from agent.research.cluster import dask_client, n_workers

    with dask_client(scheduler, workers) as client:
        info["workers"] = n_workers(client)
        shipped = client.scatter(frame, broadcast=True, hash=False)
        futs = {
            client.submit(run_cell, cell, shipped, key, key=f"sweep-cell-{key}", pure=False): key
            for key, cell in todo
        }
        for fut in as_completed(futs, loop=client.loop):
            key = futs[fut]
            try:
                yield fut.result()
            except Exception as e:  # the worker died (KilledWorker) or the task could not run
                cell = dict(todo)[key]
                yield {
                    "key": key,
                    "params": cell.params(),
                    "status": "error",
                    "error": f"{type(e).__name__}: {' '.join(str(e).split())}"[:500],
                    "retry": True,
                }


def _log_invocation(out_dir: Path, n_run: int, n_failed: int, wall_s: float, workers: int) -> None:
    """Append one line per invocation to OUT/invocations.jsonl: what ran, how long, on what (for the docs)."""
    import datetime as dt

    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    line = {
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cells_run": n_run,
        "failed": n_failed,
        "wall_s": round(wall_s, 1),
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "loadavg": [round(x, 1) for x in load],
    }
    with open(out_dir / "invocations.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")


def _iter_serial(todo: list[tuple[str, Cell]], frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    from agent.research.cell import run_cell

    for key, cell in todo:
        yield run_cell(cell, frame, key)


def run_sweep(
    spec: SweepSpec,
    out_dir: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = False,
    frame: pd.DataFrame | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run every cell of `spec` not already stored under `out_dir/cells/`; then (re)write the table + summary.

    `scheduler="serial"` runs the cells in this process, one after the other (the reference for tests).
    """
    from agent.research.table import write_outputs

    t0 = time.perf_counter()
    if frame is None:
        frame = load_sweep_prices(spec)
    data = sweep_digest(spec, frame)
    cells = expand_cells(spec)
    keyed = [(cell_key(c, data), c) for c in cells]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cells").mkdir(exist_ok=True)
    todo = [(k, c) for k, c in keyed if not _done(out_dir, k)]
    info: dict[str, Any] = {"workers": 1}
    n_failed = 0
    if todo:
        it = (
            _iter_serial(todo, frame)
            if scheduler == SERIAL
            else _iter_dask(todo, frame, scheduler, workers, info)
        )
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="sweep", unit="cell")
        for rec in it:
            _store_record(out_dir, rec)
            n_failed += rec.get("status") != "ok"
            if on_record is not None:
                on_record(rec)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    if todo:
        _log_invocation(out_dir, len(todo), n_failed, wall, int(info["workers"]))
    records = [json.loads(_record_path(out_dir, k).read_text()) for k, _ in keyed]
    table_path, html_path, summary = write_outputs(spec, records, out_dir)
    return SweepResult(
        out_dir=out_dir,
        n_cells=len(keyed),
        n_run=len(todo),
        n_skipped=len(keyed) - len(todo),
        n_failed=n_failed,
        wall_s=wall,
        workers=int(info["workers"]),
        table_path=table_path,
        html_path=html_path,
        summary=summary,
    )
