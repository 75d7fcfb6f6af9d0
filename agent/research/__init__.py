"""Research at scale: parameter sweeps, Monte Carlo stress paths and their summaries, run as Dask tasks.

Every cell of a sweep is one full `agent.backtest.run_backtest` through the live decision path; this package
only enumerates cells, ships prices to workers, stores one result per cell and summarizes the table.
Nothing here is imported by `agent.cli` at start-up (Dask, pandas and pyarrow load inside the sweep command).
"""

from __future__ import annotations

__all__: list[str] = []
