"""The backtest and live-book report: PNG plots, one self-contained report.html, a terminal summary.

Split into small modules: `fmt` (number formatting, tables, CSS), `sections` (tear sheet, trades, notes),
`charts` (tear-sheet charts), `page` (assembling the page). Import from `agent.report`.
This package must stay cheap to import (the CLI imports `summary_table` at start-up): pandas and matplotlib
are imported inside the functions that need them.
"""

from __future__ import annotations

from agent.report.fmt import format_metric
from agent.report.page import PLOT_FILES, summary_table, write_report

__all__ = ["PLOT_FILES", "format_metric", "summary_table", "write_report"]
