"""Report plots as PNG bytes, and the efficient frontier they need.

Why bytes: the report both writes the PNGs and embeds them in report.html; rendering once keeps them identical.
Determinism: figures are built with `matplotlib.figure.Figure` on the Agg canvas (no pyplot global state, no
backend switch), under matplotlib's default style with fixed size, DPI and font, and saved without the PNG
'Software' text chunk (matplotlib writes no timestamp into PNGs), so the same inputs give byte-identical files.
matplotlib and scipy are imported lazily.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agent.metrics import PERIODS_PER_YEAR, drawdown_series, rolling_sharpe

__all__ = [
    "DPI",
    "Frontier",
    "drawdown_plot",
    "efficient_frontier",
    "equity_plot",
    "frontier_plot",
    "portfolio_colors",
    "random_portfolios",
    "rolling_sharpe_plot",
    "weights_plot",
]

DPI = 100
_SIZE = (10.0, 5.0)
_RC = {
    "font.family": "DejaVu Sans",  # bundled with matplotlib: the same glyphs on every machine
    "font.size": 9.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
}
# The strategy is always red (as in the studies' figures); baselines get fixed colours by name.
_NAMED_COLORS = {
    "strategy": "#d62728",
    "equal_weight": "#2ca02c",
    "buy_and_hold": "#7f7f7f",
    "static_mvo": "#1f77b4",
    "sixty_forty": "#9467bd",
}
_SPARE_COLORS = ("#ff7f0e", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def portfolio_colors(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per portfolio name, the same in every plot."""
    out: dict[str, str] = {}
    spare = iter(_SPARE_COLORS * (1 + len(names) // len(_SPARE_COLORS)))
    for n in names:
        out[n] = _NAMED_COLORS.get(n) or next(spare)
    return out


@contextmanager
def _figure(size: tuple[float, float] = _SIZE) -> Iterator[Any]:
    import matplotlib as mpl
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"), mpl.rc_context(_RC):  # type: ignore[arg-type]
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _legend_below(ax: Any) -> None:
    """Legend under the axes: never hides a curve, whatever the data."""
    n = len(ax.get_legend_handles_labels()[1])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=max(1, min(n, 6)))


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def equity_plot(
    navs: pd.DataFrame, rebalance_dates: Sequence[Any] = (), *, title: str = "Equity curves"
) -> bytes:
    """NAV of every portfolio (starting at 1.0), with the strategy's rebalances marked."""
    colors = portfolio_colors([str(c) for c in navs.columns])
    with _figure() as fig:
        ax = fig.add_subplot()
        if navs.empty:
            _empty(ax, "no NAV data")
            return _png(fig)
        for col in navs.columns:
            s = navs[col].dropna()
            lw = 1.6 if col == "strategy" else 1.0
            ax.plot(s.index, s.to_numpy(), color=colors[str(col)], lw=lw, label=str(col))
        if "strategy" in navs.columns and len(rebalance_dates):
            s = navs["strategy"].dropna()
            when = pd.DatetimeIndex(pd.to_datetime(list(rebalance_dates))).sort_values()
            when = when[(when >= s.index[0]) & (when <= s.index[-1])]
            if len(when):
                y = s.reindex(s.index.union(when)).ffill().reindex(when)
                ax.scatter(
                    when,
                    y.to_numpy(),
                    marker="v",
                    s=16,
                    color="black",
                    zorder=3,
                    label=f"rebalance ({len(when)})",
                )
        ax.set_title(title)
        ax.set_ylabel("NAV (start = 1.0)")
        _legend_below(ax)
        return _png(fig)


def drawdown_plot(navs: pd.DataFrame) -> bytes:
    """Underwater curves: percentage below the running peak."""
    colors = portfolio_colors([str(c) for c in navs.columns])
    with _figure() as fig:
        ax = fig.add_subplot()
        if navs.empty:
            _empty(ax, "no NAV data")
            return _png(fig)
        for col in navs.columns:
            dd = drawdown_series(navs[col].dropna()) * 100.0
            if col == "strategy":
                ax.fill_between(dd.index, dd.to_numpy(), 0.0, color=colors["strategy"], alpha=0.25, lw=0)
            ax.plot(
                dd.index,
                dd.to_numpy(),
                color=colors[str(col)],
                lw=1.4 if col == "strategy" else 0.9,
                label=str(col),
            )
        ax.set_title("Drawdown (underwater)")
        ax.set_ylabel("% below peak")
        _legend_below(ax)
        return _png(fig)


def weights_plot(weights: pd.DataFrame, end: Any = None) -> bytes:
    """Target weights (after overlays) as a stacked step area, held until the next decision; cash on top."""
    with _figure() as fig:
        ax = fig.add_subplot()
        w = weights.copy()
        if w.empty:
            _empty(ax, "no decisions")
            return _png(fig)
        w.index = pd.DatetimeIndex(pd.to_datetime(w.index))
        w = w.sort_index().astype("float64").fillna(0.0)
        cols = [c for c in w.columns if c != "cash"] + (["cash"] if "cash" in w.columns else [])
        w = w[cols]
        if end is not None and pd.Timestamp(end) > w.index[-1]:  # hold the last targets to the end
            last = pd.DataFrame(
                w.iloc[[-1]].to_numpy(), index=pd.DatetimeIndex([pd.Timestamp(end)]), columns=cols
            )
            w = pd.concat([w, last])
        import matplotlib as mpl

        cmap = mpl.colormaps["tab20"]
        colors = [cmap(i % 20) for i in range(len(cols))]
        if "cash" in cols:
            colors[-1] = (0.85, 0.85, 0.85, 1.0)
        ax.stackplot(w.index, w.to_numpy().T.clip(min=0.0), labels=cols, colors=colors, step="post", lw=0)
        ax.set_ylim(0.0, max(1.0, float(w.clip(lower=0.0).sum(axis=1).max())))
        ax.set_title("Target weights (after overlays)")
        ax.set_ylabel("weight")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), ncol=1 if len(cols) <= 16 else 2, fontsize=7)
        return _png(fig)


def rolling_sharpe_plot(navs: pd.DataFrame, window: int = 126, *, rf_daily: float | pd.Series = 0.0) -> bytes:
    """Trailing-window annualized Sharpe of every portfolio."""
    colors = portfolio_colors([str(c) for c in navs.columns])
    with _figure() as fig:
        ax = fig.add_subplot()
        drawn = False
        for col in navs.columns:
            rs = rolling_sharpe(navs[col].dropna(), window, rf_daily=rf_daily).dropna()
            if rs.empty:
                continue
            drawn = True
            ax.plot(
                rs.index,
                rs.to_numpy(),
                color=colors[str(col)],
                lw=1.4 if col == "strategy" else 0.9,
                label=str(col),
            )
        if not drawn:
            _empty(ax, f"fewer than {window} sessions: no rolling Sharpe")
            return _png(fig)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_title(f"Rolling Sharpe ratio ({window} sessions, annualized)")
        _legend_below(ax)
        return _png(fig)


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
        w = np.ones((1, 1))
        return Frontier(np.sqrt(np.diag(cov)), mu.copy(), w, np.array([True]))
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
    w0: np.ndarray = np.full(n, 1.0 / n)
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
                label=f"{name} (realized)",
            )
        ax.set_xlabel("annualized volatility (%)")
        ax.set_ylabel("annualized mean return (%)")
        ax.set_title(f"Efficient frontier of the test window ({n_random:,} random long-only portfolios)")
        ax.legend(loc="upper left", fontsize=7)
        return _png(fig)
