"""Point-in-time skill of the forecasts the agent actually made.

Why: the allocation may use exactly the skill a model has shown, and no more (issue 9). A forecast made at
close ``t`` is traded at close ``t + lag`` (``execution.lag_sessions``), so it is scored on the returns the book
can earn, close ``t + lag`` to close ``t + lag + h`` for a horizon of ``h`` sessions, and is *matured* at session
``t + lag + h``; only then is its realized outcome known.
At a decision ``asof`` the tracker uses forecasts matured on or before ``asof`` — never one whose target window
is still open — so the skill estimate is a function of data available at ``asof`` only.

Per matured forecast the tracker keeps the cross-sectional IC (Pearson correlation of the forecast with the
realized mean daily return over that window; the models' validation IC, the prior, scores the same window:
``skill_*`` in their metadata, training/skill.py ``book_skill``). The live skill is the exponentially weighted
mean of those ICs (half-life in forecasts), with a standard error from the weighted dispersion and the
effective sample size (Kish), reduced when horizons overlap. Validation skill (from the model's metadata) is the
prior; the two are combined by precision weighting, so live evidence takes over as it accumulates.

State is a list of ``ForecastObs`` (the forecast, and once matured its realized IC). The backtest keeps it in
memory; the daemon persists it with ``agent.skill.store.SkillStore`` in the ledger's SQLite file. Both run the
same functions, and a restart that reloads the list changes nothing.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = [
    "ForecastObs",
    "SkillEstimate",
    "SkillTracker",
    "combine_skill",
    "ew_skill",
    "prior_from_metrics",
    "realized_ic",
    "sustained_t",
]


@dataclass(frozen=True)
class ForecastObs:
    """One forecast the agent made; ``matured_on``/``ic`` are set once its horizon has elapsed."""

    asof: dt.date
    model_id: str
    horizon: int
    tickers: tuple[str, ...]
    mu: tuple[float, ...]
    matured_on: dt.date | None = None
    ic: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "asof": self.asof.isoformat(),
            "model_id": self.model_id,
            "horizon": self.horizon,
            "tickers": list(self.tickers),
            "mu": list(self.mu),
            "matured_on": None if self.matured_on is None else self.matured_on.isoformat(),
            "ic": self.ic,
        }


@dataclass(frozen=True)
class SkillEstimate:
    """An information coefficient with its standard error and the evidence it rests on."""

    ic: float
    se: float
    n: int
    n_eff: float
    source: str

    @property
    def t(self) -> float:
        return self.ic / self.se if self.se > 0 and math.isfinite(self.se) else 0.0

    def to_dict(self) -> dict[str, Any]:
        def f(x: float) -> float | None:
            return round(float(x), 8) if math.isfinite(x) else None

        return {
            "ic": f(self.ic),
            "se": f(self.se),
            "t": f(self.t),
            "n": self.n,
            "n_eff": f(self.n_eff),
            "source": self.source,
        }


def realized_ic(mu: np.ndarray, realized: np.ndarray) -> float | None:
    """Cross-sectional Pearson correlation (None when either side has no spread or fewer than 3 names)."""
    a = np.asarray(mu, dtype=float)
    b = np.asarray(realized, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return None
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else None


def ew_skill(
    obs: Sequence[ForecastObs], asof: dt.date, halflife: float, *, spacing: float | None = None
) -> SkillEstimate:
    """Exponentially weighted IC of forecasts matured on or before asof (oldest weighs least)."""
    done = sorted(
        (o for o in obs if o.ic is not None and o.matured_on is not None and o.matured_on <= asof),
        key=lambda o: o.asof,
    )
    n = len(done)
    if n == 0:
        return SkillEstimate(0.0, math.inf, 0, 0.0, "live")
    ic = np.array([o.ic for o in done], dtype=float)
    age = np.arange(n - 1, -1, -1, dtype=float)
    w = 0.5 ** (age / max(float(halflife), 1e-9))
    mean = float(w @ ic / w.sum())
    n_eff = float(w.sum() ** 2 / (w @ w))
    h = float(np.median([o.horizon for o in done]))
    if spacing is None and n > 1:
        gaps = np.diff([o.asof.toordinal() for o in done]) * 5.0 / 7.0  # calendar days → sessions
        spacing = float(np.median(gaps))
    overlap = max(1.0, h / spacing) if spacing else 1.0
    n_eff /= overlap
    if n < 2:
        return SkillEstimate(mean, math.inf, n, n_eff, "live")
    var = float(w @ (ic - mean) ** 2 / w.sum()) * n / (n - 1)
    se = math.sqrt(max(var, 1e-12) / max(n_eff, 1e-9))
    return SkillEstimate(mean, se, n, n_eff, "live")


def sustained_t(t_at: Callable[[dt.date], float], obs: Sequence[ForecastObs], asof: dt.date, k: int) -> float:
    """The smallest t-statistic seen at each of the last ``k`` maturity dates on or before asof (-inf when
    fewer than ``k`` forecasts have matured); ``t_at(d)`` is the skill t-statistic as measured at date ``d``.

    Why (the gate against multiple testing): the gate is tested at every decision, and the exponentially
    weighted t-statistic of a skill-less forecast is a stationary series, close to an AR(1) with lag-1
    correlation 2^(-1/half-life) (0.97 at half-life 26) and unit variance. A fixed level u is crossed again and
    again: at u = 2 a skill-less forecast has the gate open on 2.5% of decisions and opens it about once every
    four years. But its excursions above u are short — they last as long as a run of lucky ICs keeps the
    average up, and the average forgets at the half-life: mean 4.6 forecasts above u = 2, median 2, 90% under
    12 (simulated with this module's estimator on pure noise, docs/skill_gate2.py ``null_gate_rates``).
    Genuine skill raises the mean of the series instead, so it stays above u for as long as it lasts. Asking
    for the evidence at each of the last ``k`` maturities therefore removes most false openings and only
    delays a true one by ``k - 1`` forecasts. ``k`` = half the half-life (13 at 26) cuts the null's open
    fraction at u = 2 from 2.5% to 0.5% and its openings to about one in 40 years — the false-opening rate of
    a plain one-sided 3-sigma gate — while a forecast whose skill holds t >= 2 keeps the gate open.

    Point in time: only maturity dates on or before asof are used, and ``t_at`` is called with those dates
    alone (the caller measures each from forecasts matured on or before it).
    """
    if k <= 1:
        return t_at(asof)
    dates = sorted(
        {o.matured_on for o in obs if o.ic is not None and o.matured_on is not None and o.matured_on <= asof}
    )
    if len(dates) < k:
        return -math.inf
    return min(t_at(d) for d in dates[-k:])


def prior_from_metrics(metrics: dict[str, Any] | None, se_multiplier: float = 1.0) -> SkillEstimate | None:
    """Validation skill from a model's metadata ``metrics`` (``val`` section), or None when it has none.

    ``se_multiplier`` widens the validation error: early stopping picked the epoch on that same split, so its
    IC is optimistic.
    """
    if not metrics:
        return None
    v = metrics.get("val", metrics)
    ic = v.get("skill_ic_cs", v.get("mean_ic"))
    if ic is None or not math.isfinite(float(ic)):
        return None
    se = v.get("skill_ic_cs_se")
    n_eff = v.get("skill_n_eff")
    if se is None or not math.isfinite(float(se)):
        n = float(v.get("n", 0.0))
        n_eff = n / 5.0
        se = 1.0 / math.sqrt(n_eff) if n_eff > 1 else math.inf  # IC noise ≈ 1/sqrt(N) with no dispersion info
    return SkillEstimate(
        float(ic),
        float(se) * float(se_multiplier),
        int(float(v.get("n", 0))),
        float(n_eff or 0.0),
        "validation",
    )


def combine_skill(prior: SkillEstimate | None, live: SkillEstimate) -> SkillEstimate:
    """Precision-weighted mean of the validation prior and the live estimate (either may be missing)."""
    parts = [s for s in (prior, live) if s is not None and s.se > 0 and math.isfinite(s.se)]
    if not parts:
        return SkillEstimate(0.0, math.inf, live.n, 0.0, "none")
    prec = np.array([1.0 / s.se**2 for s in parts])
    ic = float(np.dot(prec, [s.ic for s in parts]) / prec.sum())
    source = "+".join(s.source for s in parts)
    return SkillEstimate(ic, math.sqrt(1.0 / float(prec.sum())), live.n, sum(s.n_eff for s in parts), source)


def _session_days(prices_index: Iterable[Any]) -> np.ndarray:
    """The sessions as sorted datetime64[D] (a naive DatetimeIndex converts in one step; anything else, such as
    a list of dates or a tz-aware index, date by date as before)."""
    arr = np.asarray(prices_index)
    if np.issubdtype(arr.dtype, np.datetime64):
        days = arr.astype("datetime64[D]")
    else:
        days = np.array([d.date() if hasattr(d, "date") else d for d in prices_index], dtype="datetime64[D]")
    if days.size > 1 and not bool(np.all(days[1:] > days[:-1])):
        raise ValueError("the price window's sessions are not strictly increasing")
    return days


@dataclass
class SkillTracker:
    """Forecasts made, their maturity and realized IC; the same object for the backtest and the daemon."""

    halflife: float = 26.0
    obs: list[ForecastObs] = field(default_factory=list)

    def record(self, obs: ForecastObs) -> bool:
        """Add a forecast made at obs.asof (replacing one for the same date and model). True if new."""
        for i, o in enumerate(self.obs):
            if o.asof == obs.asof and o.model_id == obs.model_id:
                if o.mu == obs.mu:
                    return False
                self.obs[i] = obs
                return True
        self.obs.append(obs)
        return True

    def mature(
        self, prices_index: Iterable[Any], closes: np.ndarray, tickers: Sequence[str], lag: int = 0
    ) -> list[ForecastObs]:
        """Set IC on forecasts whose horizon has elapsed within this point-in-time price window.

        ``prices_index`` are the sessions of a snapshot (all <= asof), ``closes`` its rows (same ticker order).
        ``lag`` (``execution.lag_sessions``): a decision at close t trades at close t+lag, so the returns its
        forecast can earn run from close t+lag to close t+lag+h; that window is scored, and the forecast
        matures at session t+lag+h. Returns the newly matured observations (for persistence).
        """
        lag = max(int(lag), 0)
        open_ = [k for k, o in enumerate(self.obs) if o.ic is None]
        if not open_:
            return []
        days = _session_days(prices_index)  # one conversion of the window, not a Python object per session
        col = {t: j for j, t in enumerate(tickers)}
        newly: list[ForecastObs] = []
        for k in open_:
            o = self.obs[k]
            i = int(np.searchsorted(days, np.datetime64(o.asof, "D")))
            end = i + lag + o.horizon
            if i >= len(days) or days[i] != np.datetime64(o.asof, "D") or end >= len(days):
                continue  # made before this window, or its target window is still open at asof
            j = [col[t] for t in o.tickers if t in col]
            if len(j) != len(o.tickers):
                continue
            block = np.asarray(closes[i + lag : end + 1][:, j], dtype=float)
            # the models' target, over the tradable window: mean daily simple return
            realized = np.mean(block[1:] / block[:-1] - 1.0, axis=0)
            ic = realized_ic(np.asarray(o.mu), realized)
            done = replace(o, matured_on=days[end].item(), ic=0.0 if ic is None else ic)
            self.obs[k] = done
            newly.append(done)
        return newly

    def live(self, asof: dt.date) -> SkillEstimate:
        return ew_skill(self.obs, asof, self.halflife)
