"""Placebo and oracle forecasts for research (issue 9).

Why: to prove the allocation uses exactly the skill it is given — none from a placebo, more from a better
oracle — the forecast must be replaceable by one of known skill.

* ``placebo_forecast``: seeded Gaussian noise with the model forecast's cross-sectional mean and spread, seeded
  by (seed, asof) so that any replay of a date draws the same noise. No information, by construction.
* ``oracle_forecast``: **look-ahead, research only.** A forecast whose cross-sectional correlation with the
  realized returns it is given is ``ic`` in expectation: ``z = ic * z_true + sqrt(1 - ic^2) * noise``. The
  engine gives it the returns the book earns from the decision (from the execution close t+lag over the
  horizon) and refuses it unless the caller hands it the future explicitly (a replay), see agent.skill.stage.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

__all__ = ["oracle_forecast", "placebo_forecast"]


def _rng(seed: int, asof: dt.date, salt: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), asof.toordinal(), salt])


def placebo_forecast(mu: np.ndarray | None, n: int, seed: int, asof: dt.date) -> np.ndarray:
    """Noise with the forecast's cross-sectional mean and spread (a 1e-3 daily spread when there is none)."""
    rng = _rng(seed, asof, 1)
    if mu is None:
        center, spread = 0.0, 1e-3
    else:
        m = np.asarray(mu, dtype=float)
        center, spread = float(m.mean()), float(m.std()) or 1e-3
    return center + spread * rng.standard_normal(n)


def oracle_forecast(
    realized: np.ndarray, ic: float, seed: int, asof: dt.date, scale: float = 1e-3
) -> np.ndarray:
    """A forecast with expected cross-sectional IC ``ic`` against ``realized`` (look-ahead: research only)."""
    r = np.asarray(realized, dtype=float)
    rng = _rng(seed, asof, 2)
    sd = float(r.std())
    z_true = (r - r.mean()) / sd if sd > 0 else np.zeros_like(r)
    noise = rng.standard_normal(len(r))
    z = float(ic) * z_true + math.sqrt(max(0.0, 1.0 - float(ic) ** 2)) * noise
    return scale * z
