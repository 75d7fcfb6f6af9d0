"""A simulated GARCH(1,1) series (percent units) shared by the GARCH likelihood tests."""

from __future__ import annotations

import numpy as np


def simulate_garch(n: int, seed: int, t_df: float | None = None) -> np.ndarray:
    """ω 0.05, α 0.08, β 0.9, mean 0.03; standardized Student-t shocks when `t_df` is given."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(t_df, n) * np.sqrt((t_df - 2) / t_df) if t_df else rng.standard_normal(n)
    s, e, out = 1.0, 0.0, np.empty(n)
    for t in range(n):
        s = 0.05 + 0.08 * e * e + 0.9 * s
        e = np.sqrt(s) * z[t]
        out[t] = e + 0.03
    return out
