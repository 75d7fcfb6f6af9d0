"""Target files for downstream consumers: `targets/<date>.json`, `targets/<date>.csv`, `targets/latest.json`.

Why files: an execution system (or a human) polls a directory more easily than it queries SQLite. Each file is
written atomically (temp file in the same directory, fsync, rename, fsync the directory) so a reader never sees a
torn file and a crash leaves the old file or the new one. The content is derived from the ledger's committed run
(its decision JSON and record hash), so a rerun after a crash rewrites byte-identical files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from agent.atomic import atomic_write_text, remove_stale_temps

__all__ = ["read_latest", "targets_payload", "write_targets"]


def targets_payload(run: dict[str, Any]) -> dict[str, Any]:
    """The targets document for one committed ledger run (`Ledger.run_for_slot(...)`, with decision_json)."""
    record = (
        json.loads(run["decision_json"])
        if isinstance(run.get("decision_json"), str)
        else run.get("record", {})
    )
    before = record.get("state_before") or {}
    return {
        "profile": run["profile"],
        "slot": run["slot"],
        "asof": run["asof"],
        "status": run["status"],
        "reason": run["reason"],
        "exec_date": run.get("exec_date"),  # the close the orders execute at (None: nothing to trade)
        "run_id": run["run_id"],
        "record_hash": run["record_hash"],
        "committed_at": run.get("committed_at"),
        "nav": before.get("nav"),
        "targets": record.get("targets") or {},
        "current": before.get("weights") or {},
        "orders": record.get("orders") or {},
    }


def _csv(payload: dict[str, Any]) -> str:
    buf = io.StringIO()
    buf.write("ticker,target_weight,current_weight,order\n")
    targets: dict[str, float] = payload["targets"]
    current: dict[str, float] = payload["current"]
    orders: dict[str, float] = payload["orders"]
    for t, w in targets.items():
        if t == "cash":
            continue
        buf.write(f"{t},{w:.10g},{float(current.get(t, 0.0)):.10g},{float(orders.get(t, 0.0)):.10g}\n")
    cash = float(targets.get("cash", 0.0))
    buf.write(
        f"cash,{cash:.10g},{float(current.get('cash', 0.0)):.10g},{cash - float(current.get('cash', 0.0)):.10g}\n"
    )
    return buf.getvalue()


def read_latest(targets_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(targets_dir) / "latest.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def write_targets(
    targets_dir: Path, run: dict[str, Any], *, only_missing: bool = False, between: Any = None
) -> list[Path]:
    """Write `<asof>.json`, `<asof>.csv` and (if this slot is not older than it) `latest.json`.

    `only_missing`: leave existing dated files alone (a rerun of a committed slot completes what a crash left
    undone without rewriting anything else). `latest.json` never moves backwards: a manual run of an older slot
    does not replace the newest targets. `between()` is called after the dated files, before latest.json (a
    crash-test hook).
    """
    targets_dir = Path(targets_dir)
    remove_stale_temps(targets_dir)  # a writer killed mid-write (we hold the state-dir lock)
    payload = targets_payload(run)
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    day = payload["asof"]
    written: list[Path] = []
    for path, body in ((targets_dir / f"{day}.json", text), (targets_dir / f"{day}.csv", _csv(payload))):
        if only_missing and path.exists():
            continue
        atomic_write_text(path, body)
        written.append(path)
    if between is not None:
        between()
    latest = read_latest(targets_dir)
    if latest is None or str(latest.get("slot", "")) <= str(payload["slot"]):
        path = targets_dir / "latest.json"
        if not (only_missing and latest is not None and latest.get("slot") == payload["slot"]):
            atomic_write_text(path, text)
            written.append(path)
    return written
