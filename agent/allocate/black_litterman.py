"""Combining a model's forecast with the reference's implied returns, in proportion to measured skill.

Why: a forecast with no demonstrated skill must not move the weights, and one with skill should move them in
proportion (issue 9). Two equivalent-in-spirit combiners, chosen by ``skill.combine``:

* ``black_litterman`` (default): the Black–Litterman posterior with absolute views ``P = I`` (the formula of
  skfolio's ``BlackLitterman`` / He–Litterman)::

      mu = pi + tau S P' (P tau S P' + Omega)^-1 (q - P pi)

  The views are ``q_i = pi_i + s_i z_i`` — asset i beats its equilibrium return by its cross-sectional
  forecast z-score times its per-session volatility over the forecast horizon, ``s_i = sigma_i / sqrt(h)`` —
  and the view uncertainty comes from the measured skill: ``Omega_ii = tau S_ii (1 - IC) / IC``. That is
  Idzorek's confidence-to-Omega mapping with the confidence set to the measured information coefficient, so
  that for uncorrelated assets the posterior tilt is exactly Grinold–Kahn's; with correlations the views also
  move correlated names, as BL intends. IC <= 0 means Omega = infinity: the posterior is pi exactly.
* ``grinold_kahn``: ``mu = pi + IC * s * z`` (Grinold & Kahn's "alpha = IC x volatility x score").

Both are pure functions of numbers measured at asof. The gate (``skill_gate``) sets IC to zero when the
measured skill is not distinguishable from zero (t-statistic below a setting), so mu = pi and the optimizer
returns the reference.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "bl_posterior",
    "forecast_scores",
    "grinold_kahn",
    "skill_gate",
    "skill_views",
]


def bl_posterior(
    pi: np.ndarray, cov: np.ndarray, p: np.ndarray, q: np.ndarray, omega: np.ndarray, tau: float
) -> np.ndarray:
    """Black–Litterman posterior mean (solving a linear system, never inverting Omega).

    ``omega`` is the view covariance (k x k); a view with infinite variance is dropped (it carries nothing).
    """
    pi = np.asarray(pi, dtype=float)
    s = np.asarray(cov, dtype=float)
    p = np.atleast_2d(np.asarray(p, dtype=float))
    q = np.asarray(q, dtype=float)
    om = np.atleast_2d(np.asarray(omega, dtype=float))
    keep = np.isfinite(np.diag(om))
    if not keep.any():
        return pi.copy()
    p, q, om = p[keep], q[keep], om[np.ix_(keep, keep)]
    v = tau * s @ p.T
    a = p @ v + om
    return pi + v @ np.linalg.solve(a, q - p @ pi)


def forecast_scores(mu: np.ndarray) -> np.ndarray:
    """Cross-sectional z-scores of a forecast (zeros when it has no spread): only its ranking carries skill."""
    m = np.asarray(mu, dtype=float)
    sd = float(np.std(m))
    if not np.isfinite(sd) or sd <= 1e-15:
        return np.zeros_like(m)
    return (m - m.mean()) / sd


def skill_gate(ic: float, t_stat: float, threshold: float) -> float:
    """The IC the allocation may use: 0 when skill is not distinguishable from zero or negative."""
    if not np.isfinite(ic) or ic <= 0 or (threshold > 0 and not t_stat >= threshold):
        return 0.0
    return float(min(ic, 0.99))


def grinold_kahn(pi: np.ndarray, cov: np.ndarray, z: np.ndarray, ic: float, horizon: int) -> np.ndarray:
    """``pi + IC * sigma / sqrt(h) * z`` per session (alpha = IC x volatility x score over the horizon)."""
    s = np.sqrt(np.clip(np.diag(np.asarray(cov, dtype=float)), 0.0, None)) / np.sqrt(max(int(horizon), 1))
    return np.asarray(pi, dtype=float) + float(ic) * s * np.asarray(z, dtype=float)


def skill_views(
    pi: np.ndarray, cov: np.ndarray, z: np.ndarray, ic: float, horizon: int, tau: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, q, Omega) of the skill-calibrated absolute views described in the module docstring."""
    n = len(pi)
    s2 = np.clip(np.diag(np.asarray(cov, dtype=float)), 0.0, None)
    q = np.asarray(pi, dtype=float) + np.sqrt(s2 / max(int(horizon), 1)) * np.asarray(z, dtype=float)
    om = np.full(n, np.inf) if ic <= 0 else tau * s2 * (1.0 - ic) / ic
    return np.eye(n), q, np.diag(om)
