"""The efficient frontier chart of the report: the long-only frontier of the test window's asset returns, random
long-only portfolios, and each portfolio at its realized risk and return.

Split from agent.plots (one job per module). scipy is imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agent.metrics import PERIODS_PER_YEAR
from agent.plots import _empty, _figure, _png, display_name, portfolio_colors

__all__ = ["Frontier", "efficient_frontier", "frontier_plot", "random_portfolios"]


# ------------------------------------------------------------------------------------------ efficient frontier
@dataclass(frozen=True)
class Frontier:
    """The long-only, fully invested minimum-variance frontier (annualized), sorted by return.

    `efficient` marks the points at or above the global-minimum-variance return (the efficient frontier proper).
    """

    vols: np.ndarray
    rets: np.ndarray
    weights: np.ndarray  # points × assets
    efficient: np.ndarray  # bool per point


def _clean_returns(asset_returns: pd.DataFrame) -> pd.DataFrame:
    """Drop assets with no data at all, then any session with a gap: moments need a common sample."""
    return asset_returns.astype("float64").dropna(axis=1, how="all").dropna(how="any")


def _moments_ann(asset_returns: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    r = _clean_returns(asset_returns)
    if len(r) < 2:
        raise ValueError("need at least 2 rows of asset returns")
    mu = r.mean().to_numpy() * PERIODS_PER_YEAR
    cov = np.cov(r.to_numpy(), rowvar=False, ddof=1).reshape(r.shape[1], r.shape[1]) * PERIODS_PER_YEAR
    return mu, (cov + cov.T) / 2.0


def _min_var(cov: np.ndarray, mu: np.ndarray, target: float | None, w0: np.ndarray) -> np.ndarray:
    """min w'Σw s.t. Σw = 1, 0 ≤ w ≤ 1 (and μ'w = target): SLSQP, small and dependency-light."""
    from scipy.optimize import minimize

    scale = float(np.trace(cov)) / len(mu) or 1.0
    c = cov / scale
    cons: list[dict[str, Any]] = [
        {"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones_like(w)}
    ]
    if target is not None:
        cons.append({"type": "eq", "fun": lambda w: mu @ w - target, "jac": lambda w: mu})
    res = minimize(
        lambda w: float(w @ c @ w),
        w0,
        jac=lambda w: 2.0 * (c @ w),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * len(mu),
        constraints=cons,
        options={"ftol": 1e-12, "maxiter": 500},
    )
    w = np.clip(res.x, 0.0, None)
    return w / w.sum()


def efficient_frontier(asset_returns: pd.DataFrame, n_points: int = 40) -> Frontier:
    """Minimum-variance portfolios for a grid of target returns from the lowest to the highest asset mean.

    Mean and covariance are the sample moments of the given (test-window) daily returns, annualized with 252.
    """
    mu, cov = _moments_ann(asset_returns)
    n = len(mu)
    if n == 1:
        one = np.ones((1, 1))
        return Frontier(np.sqrt(np.diag(cov)), mu.copy(), one, np.array([True]))
    gmv = _min_var(cov, mu, None, np.full(n, 1.0 / n))
    mu_gmv = float(mu @ gmv)
    # Most points on the efficient branch (the part that matters), a few on the inefficient one.
    n_low = max(2, n_points // 4)
    targets = np.concatenate(
        [
            np.linspace(float(mu.min()), mu_gmv, n_low),
            np.linspace(mu_gmv, float(mu.max()), n_points - n_low + 1),
        ]
    )
    targets = np.unique(np.round(targets, 14))
    ws = []
    w0 = np.full(n, 1.0 / n)
    for t in targets:
        w = _min_var(cov, mu, float(t), w0)
        ws.append(w)
        w0 = w
    W = np.round(np.array(ws), 12)
    rets = W @ mu
    vols = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", W, cov, W), 0.0))
    order = np.argsort(rets, kind="stable")
    rets, vols, W = rets[order], vols[order], W[order]
    return Frontier(vols, rets, W, rets >= mu_gmv - 1e-9)


def random_portfolios(
    asset_returns: pd.DataFrame, n: int = 10_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(vols, rets) of n random long-only, fully invested portfolios, uniform on the simplex (seeded)."""
    mu, cov = _moments_ann(asset_returns)
    W = np.random.default_rng(seed).dirichlet(np.ones(len(mu)), size=n)
    rets = W @ mu
    vols = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", W, cov, W), 0.0))
    return vols, rets


def frontier_plot(
    asset_returns: pd.DataFrame,
    portfolio_points: Mapping[str, tuple[float, float]],
    *,
    n_random: int = 10_000,
    seed: int = 0,
) -> bytes:
    """Random portfolios coloured by return/vol, the long-only frontier, the assets, and each realized portfolio."""
    colors = portfolio_colors(list(portfolio_points))
    with _figure((10.0, 6.0)) as fig:
        ax = fig.add_subplot()
        try:
            mu, cov = _moments_ann(asset_returns)
        except ValueError:
            _empty(ax, "not enough asset returns for a frontier")
            return _png(fig)
        vols, rets = random_portfolios(asset_returns, n_random, seed)
        ratio = np.divide(rets, vols, out=np.zeros_like(rets), where=vols > 0)
        sc = ax.scatter(
            vols * 100, rets * 100, c=ratio, cmap="viridis", s=3, alpha=0.5, lw=0, rasterized=True
        )
        fig.colorbar(sc, ax=ax, label="return / volatility")
        fr = efficient_frontier(asset_returns)
        eff = fr.efficient
        ax.plot(fr.vols[eff] * 100, fr.rets[eff] * 100, color="black", lw=1.8, label="efficient frontier")
        n_low = int((~eff).sum())  # sorted by return: the inefficient branch comes first; join it to the GMV
        if n_low:
            ax.plot(
                fr.vols[: n_low + 1] * 100,
                fr.rets[: n_low + 1] * 100,
                color="black",
                lw=1.0,
                ls="--",
                label="min-variance frontier (inefficient part)",
            )
        asset_vol = np.sqrt(np.maximum(np.diag(cov), 0.0))
        ax.scatter(asset_vol * 100, mu * 100, marker="o", s=14, color="black", zorder=3)
        for name, x, y in zip(_clean_returns(asset_returns).columns, asset_vol, mu, strict=True):
            ax.annotate(str(name), (x * 100, y * 100), xytext=(3, 2), textcoords="offset points", fontsize=7)
        for name, (pv, pr) in portfolio_points.items():
            if not (np.isfinite(pv) and np.isfinite(pr)):
                continue
            ax.scatter(
                [pv * 100],
                [pr * 100],
                marker="*",
                s=160,
                color=colors[name],
                edgecolor="black",
                lw=0.6,
                zorder=4,
                label=f"{display_name(name)} (realized)",
            )
        ax.set_xlabel("annualized volatility (%)")
        ax.set_ylabel("annualized mean return (%)")
        ax.set_title(f"Efficient frontier of the test window ({n_random:,} random long-only portfolios)")
        ax.legend(loc="upper left", fontsize=7)
        return _png(fig)
