"""One GARCH fit, T = 1000: `arch` (SLSQP, finite-difference gradients) vs the analytic-gradient MLE.

Run: ``python tests/bench/bench_garch.py [--json out.json]``. Real returns of the 30 Dow names (the 1000
returns to 2019-12-31, $AGENT_SHARED_DATA), GARCH(1,2) in `arch`'s naming (one shock lag, two variance lags)
and GARCH(1,1), normal errors, constant mean. Each fit is timed alternately with both estimators (so machine
load hits both alike); prints the median per fit, the ratio, and the largest parameter and log-likelihood gap.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("AGENT_SHARED_DATA") or REPO.parent / "shared" / "data")


def run(reps: int = 3) -> dict:
    import pandas as pd

    from agent.risk.garch import fit_garch

    px = pd.read_csv(DATA / "djia_daily.csv", index_col="date", parse_dates=True).astype("float64")
    ret = px.loc[:"2019-12-31"].pct_change().iloc[1:]
    series = [ret[c].dropna().to_numpy()[-1000:] for c in ret.columns]
    fit_garch(series[0], 2, 1, estimator="arch")  # imports and first-call costs out of the timing
    fit_garch(series[0], 2, 1)
    out: dict = {"n_series": len(series), "T": 1000}
    for label, (p, q) in {"garch12": (2, 1), "garch11": (1, 1)}.items():
        t_arch, t_mle, dpar, dll = [], [], 0.0, float("inf")
        for r in series:
            for _ in range(reps):
                t0 = time.perf_counter()
                a = fit_garch(r, p, q, estimator="arch")
                t1 = time.perf_counter()
                m = fit_garch(r, p, q)
                t2 = time.perf_counter()
                t_arch.append(t1 - t0)
                t_mle.append(t2 - t1)
            dpar = max(dpar, float(np.max(np.abs(a.arch_vector() - m.arch_vector()))))
            dll = min(dll, (m.loglik - a.loglik) / abs(a.loglik))
        out[label] = {
            "arch_ms": statistics.median(t_arch) * 1e3,
            "mle_ms": statistics.median(t_mle) * 1e3,
            "ratio": statistics.median(t_arch) / statistics.median(t_mle),
            "max_param_gap_vs_arch_default_tol": dpar,
            "min_rel_loglik_gain_vs_arch": dll,
        }
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    res = run()
    print(json.dumps(res, indent=2))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
