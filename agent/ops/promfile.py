"""Prometheus text-format metrics of the paper book, for node-exporter's textfile collector.

The collector reads `*.prom` files from one directory on every scrape, so the file is written whole and
atomically (temp file, fsync, rename): a scrape never sees half a file. Gauges only (a batch job's state at its
last run); every series carries the profile label. Names follow Prometheus conventions (base units: seconds,
ratios as fractions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.atomic import atomic_write_text

__all__ = ["Gauge", "render", "write_metrics_file"]


@dataclass(frozen=True)
class Gauge:
    name: str
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x))


def render(gauges: list[Gauge], common: Mapping[str, str]) -> str:
    """Text exposition format 0.0.4: one HELP/TYPE block per metric name, samples in the given order."""
    by_name: dict[str, list[Gauge]] = {}
    for g in gauges:
        by_name.setdefault(g.name, []).append(g)
    lines: list[str] = []
    for name, gs in by_name.items():
        lines.append(f"# HELP {name} {gs[0].help}")
        lines.append(f"# TYPE {name} gauge")
        for g in gs:
            labels = {**common, **g.labels}
            lab = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            lines.append(f"{name}{{{lab}}} {_num(g.value)}" if lab else f"{name} {_num(g.value)}")
    return "\n".join(lines) + "\n"


def write_metrics_file(path: Path | str, text: str) -> None:
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, text)
