"""Benchmark of the risk stage: GARCH refits vs filter-forward updates, EWMA, and a full Σ step.

Run: `python tests/bench/bench_risk.py [--sizes 5 28 100 500] [--blas-threads 1]`. Prints one table.
Data: real S&P 500 returns from $AGENT_SHARED_DATA/sp500_universe_daily.csv.gz (the first N tickers with a
complete history over the benchmark window), or synthetic GARCH returns with --synthetic.

For large N a refit of every asset is slow (one `arch` fit per asset), so the "refit every step" column is
measured on at most --max-fit assets and extrapolated linearly to N (marked with '*'). The first estimator
call (cold fits of all N assets) is measured in full.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.risk import (  # noqa: E402
    CovarianceEstimator,
    assemble_covariance,
    ewma_covariance,
    filter_batch,
    fit_garch,
    forecast_batch,
    rolling_correlation,
    stack_params,
)
from agent.settings import RiskSettings  # noqa: E402

FIT_WINDOW = 1000
HORIZON = 63
STEPS = 25  # filter-forward steps timed per size


def load_returns(n_max: int, n_rows: int, synthetic: bool) -> pd.DataFrame:
    if not synthetic:
        path = Path(os.environ.get("AGENT_SHARED_DATA") or REPO.parent / "shared" / "data")
        path = path / "sp500_universe_daily.csv.gz"
        if path.exists():
            px = pd.read_csv(path, index_col="date", parse_dates=True).astype("float64")
            ret = px.pct_change(fill_method=None).iloc[-n_rows:]
            # complete histories first (file order), then the most complete of the rest (those fall back)
            nans = ret.isna().sum().to_numpy()
            order = np.argsort(nans, kind="stable")[:n_max]
            return ret.iloc[:, order]
        print(f"# {path} not found: synthetic data", file=sys.stderr)
    rng = np.random.default_rng(0)
    t, n = n_rows, n_max
    z = rng.standard_normal((t + 200, n))
    omega, alpha, beta = rng.uniform(1e-6, 4e-6, n), rng.uniform(0.04, 0.1, n), rng.uniform(0.82, 0.9, n)
    s = omega / (1 - alpha - beta)
    e = np.zeros(n)
    out = np.empty_like(z)
    for i in range(z.shape[0]):
        s = omega + alpha * e**2 + beta * s
        e = np.sqrt(s) * z[i]
        out[i] = e
    idx = pd.bdate_range("2015-01-01", periods=t, name="date")
    return pd.DataFrame(out[200:], index=idx, columns=[f"S{i}" for i in range(n)])


def timeit(fn, repeat: int = 20) -> float:
    """Median wall time in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_size(ret: pd.DataFrame, n: int, max_fit: int, steps: int) -> dict[str, str]:
    df = ret.iloc[:, :n]
    tick = tuple(df.columns)
    x = df.to_numpy()
    cfg = RiskSettings(method="garch", garch_p=2, garch_q=1, fit_window=FIT_WINDOW, refit_every=10_000)
    row: dict[str, str] = {"N": str(n)}

    # 1. first call: cold fits of all N assets + filter + forecast + correlation
    est = CovarianceEstimator(cfg, tick, HORIZON)
    start = len(df) - steps - 1
    t0 = time.perf_counter()
    est.estimate(df.iloc[: start + 1], df.index[start])
    row["cold fit all (s)"] = f"{time.perf_counter() - t0:.2f}"
    cache = est._cache
    assert cache is not None

    # 2. GARCH refit every step (warm-started): measured on up to max_fit assets, extrapolated to N
    k = min(n, max_fit)
    warm = cache.params
    t0 = time.perf_counter()
    for i in range(k):
        r = x[start + 1 - FIT_WINDOW + 1 : start + 2, i]
        fit_garch(r, 2, 1, "normal", warm.get(i))
    per_asset = (time.perf_counter() - t0) / k
    star = "*" if k < n else ""
    row["refit step (s)"] = f"{per_asset * n:.2f}{star}"
    row["fit/asset (ms)"] = f"{per_asset * 1e3:.1f}"

    # 3. fixed-parameter filter: one new row for all N, and a full 1000-row window
    params = [cache.params[i] for i in sorted(cache.params)]
    omega, a, b, mu = stack_params(params)
    cols = np.array(sorted(cache.params))
    e0, s0 = cache.e[:, cols], cache.s[:, cols]
    new = (x[start + 1 : start + 2, cols] - mu) ** 2
    row["filter 1 row (us)"] = f"{timeit(lambda: filter_batch(new, omega, a, b, e0, s0), 200) * 1e6:.0f}"
    win = (x[start + 1 - FIT_WINDOW + 1 : start + 2, cols] - mu) ** 2
    row["filter 1000 rows (ms)"] = f"{timeit(lambda: filter_batch(win, omega, a, b, e0, s0), 10) * 1e3:.2f}"
    row["forecast H=63 (us)"] = (
        f"{timeit(lambda: forecast_batch(omega, a, b, e0, s0, HORIZON), 100) * 1e6:.0f}"
    )

    # 4. cross-sectional pieces
    row["corr 60 (ms)"] = f"{timeit(lambda: rolling_correlation(x[: start + 1], 60), 50) * 1e3:.2f}"
    vols = np.sqrt(np.nanvar(x[start - 250 : start + 1], axis=0))
    corr = rolling_correlation(x[: start + 1], 60)
    row["D R D + psd (ms)"] = f"{timeit(lambda: assemble_covariance(vols, corr, 0.0, 1e-10), 20) * 1e3:.2f}"
    row["EWMA cov (ms)"] = (
        f"{timeit(lambda: ewma_covariance(x[: start + 1], 0.94, window=448), 20) * 1e3:.2f}"
    )

    # 5. full estimator steps between refits (filter forward + H-step forecast + correlation + Σ)
    times = []
    for d in range(start + 1, start + 1 + steps):
        frame = df.iloc[: d + 1]
        t0 = time.perf_counter()
        e = est.estimate(frame, df.index[d])
        times.append(time.perf_counter() - t0)
        assert not e.refit
    row["garch step (ms)"] = f"{statistics.median(times) * 1e3:.2f}"
    ew = CovarianceEstimator(cfg.model_copy(update={"method": "ewma"}), tick, HORIZON)
    frame = df.iloc[: start + 1]
    row["ewma step (ms)"] = f"{timeit(lambda: ew.estimate(frame, df.index[start]), 20) * 1e3:.2f}"
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5, 28, 100, 500])
    ap.add_argument("--max-fit", type=int, default=40, help="assets refitted per size before extrapolating")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--blas-threads", type=int, default=None, help="limit BLAS threads (needs threadpoolctl)")
    args = ap.parse_args()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads)
    ret = load_returns(max(args.sizes), FIT_WINDOW + args.steps + 80, args.synthetic)
    sizes = [n for n in args.sizes if n <= ret.shape[1]]
    rows = [bench_size(ret, n, args.max_fit, args.steps) for n in sizes]
    cols = list(rows[0])
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print(
        f"# GARCH(p=2 variance lags, q=1 shock lag), fit_window={FIT_WINDOW}, horizon={HORIZON}, "
        f"rows={len(ret)}, cpu={os.cpu_count()}, blas_threads={args.blas_threads or 'default'}"
    )
    n_gaps = int(ret.isna().any().sum())
    if n_gaps:
        print(
            f"# {n_gaps} of the {ret.shape[1]} series start inside the window (listed later): EWMA fallbacks"
        )
    print(" | ".join(c.rjust(width[c]) for c in cols))
    print("-|-".join("-" * width[c] for c in cols))
    for r in rows:
        print(" | ".join(r[c].rjust(width[c]) for c in cols))
    print("* measured on --max-fit assets and extrapolated linearly to N")


if __name__ == "__main__":
    main()
