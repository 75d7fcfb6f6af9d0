"""Benchmark of the decision pipeline: per-stage time and the loop's own overhead, per allocation method.

Run: `python tests/bench/bench_pipeline.py [--decisions 60] [--risk ewma]`. Prints one table.
Data: the seeded synthetic GBM store of tests/synthetic.py (9 sector tickers), no model (historical means), so
the numbers isolate the engine. "loop" is wall time of decide() minus the sum of the stages' timings_ms:
the runner's bookkeeping (requirement checks, record merging, the Decision itself).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.allocate.registry import ALLOCATION_METHODS  # noqa: E402
from agent.data.store import PriceStore  # noqa: E402
from agent.decision import PortfolioState  # noqa: E402
from agent.engine import EngineContext, decide  # noqa: E402
from agent.settings import Settings  # noqa: E402
from tests.synthetic import SECTORS, gbm_prices  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=60)
    ap.add_argument("--risk", default="ewma", choices=["ewma", "sample", "garch"])
    args = ap.parse_args()
    frame = gbm_prices()
    dates = [d.date() for d in frame.index[-args.decisions :]]
    print(f"{'method':<18} {'median ms':>10} {'loop ms':>8}  slowest stage")
    for method in sorted(m for m in ALLOCATION_METHODS if m != "model_weights"):
        s = Settings(
            profile="bench",
            universe={"tickers": SECTORS, "benchmark": ""},
            risk={"method": args.risk},
            allocation={"method": method, "expected_returns": "historical", "mvo_window": 252},
            forecast={"model": "none"},
        )
        ctx = EngineContext.create(s, PriceStore.from_frame(frame, validate=False))
        state = PortfolioState.initial(SECTORS, 1e6)
        totals, loops, stages = [], [], {}
        for d in dates:
            t0 = time.perf_counter()
            dec = decide(d, state, s, ctx)
            ms = (time.perf_counter() - t0) * 1e3
            timed = dec.record.get("timings_ms", {})
            totals.append(ms)
            loops.append(ms - sum(timed.values()))
            for k, v in timed.items():
                stages.setdefault(k, []).append(v)
        slow = max(stages, key=lambda k: statistics.median(stages[k]))
        print(
            f"{method:<18} {statistics.median(totals):>10.2f} {statistics.median(loops):>8.3f}  "
            f"{slow} {statistics.median(stages[slow]):.2f} ms"
        )


if __name__ == "__main__":
    main()
