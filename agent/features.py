"""Feature code shared by training and inference, so the two can never drift.

Every feature is a *finite-window* function of past prices (RSI uses Wilder's smoothing seeded over a fixed
warm-up span), and every window is computed independently of where the price frame starts. Hence
`feature_frame(all history)` and `build_window(tail only, asof)` give bit-identical rows: training windows
are exactly what inference sees, and inference only touches the tail it needs (fast, no look-ahead).

Layout: inputs are feature-major, `(feature, ticker)` in `spec.features` x `tickers` order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from agent.errors import DataError

__all__ = [
    "FEATURES",
    "FeatureSpec",
    "MinMaxScaler",
    "StandardScaler",
    "bollinger_width",
    "build_window",
    "feature_frame",
    "feature_matrix",
    "log_returns",
    "ma_crossover",
    "rolling_volatility",
    "rsi",
    "scaler_from_dict",
    "simple_returns",
    "weekly_last",
    "weekly_last_positions",
]

# name -> description (the metadata's vocabulary; unknown names in a model file are rejected)
FEATURES: dict[str, str] = {
    "ret": "simple return over one period",
    "logret": "log return over one period",
    "rsi": "RSI (Wilder), 0..100, smoothing seeded over the last rsi_warmup changes",
    "vol": "rolling standard deviation (ddof=1) of simple returns over vol_window periods (not annualized)",
    "bbw": "Bollinger width: 2*bb_k*std(ddof=0)/mean of prices over bb_window periods",
    "macross": "moving-average crossover: MA(ma_fast)/MA(ma_slow) - 1",
}

Frequency = Literal["daily", "weekly"]


@dataclass(frozen=True)
class FeatureSpec:
    """What a model reads: feature names in order, their windows, the sampling frequency and the lookback."""

    features: tuple[str, ...] = ("ret", "rsi", "vol")
    lookback: int = 60
    frequency: Frequency = "daily"
    rsi_window: int = 14
    rsi_warmup: int = 100  # changes used to seed + smooth the Wilder averages (finite, so train == inference)
    vol_window: int = 20
    bb_window: int = 20
    bb_k: float = 2.0
    ma_fast: int = 10
    ma_slow: int = 50

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("a feature spec needs at least one feature")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown features: {', '.join(unknown)} (known: {', '.join(FEATURES)})")
        if len(set(self.features)) != len(self.features):
            raise ValueError("duplicate feature names")
        if self.frequency not in ("daily", "weekly"):
            raise ValueError(f"frequency must be daily or weekly, got {self.frequency!r}")
        if self.lookback < 1:
            raise ValueError("lookback must be >= 1")
        if self.rsi_warmup < self.rsi_window or self.rsi_window < 2:
            raise ValueError("need 2 <= rsi_window <= rsi_warmup")
        if self.vol_window < 2 or self.bb_window < 2 or not 1 <= self.ma_fast < self.ma_slow:
            raise ValueError("windows must be >= 2 and ma_fast < ma_slow")

    @property
    def warmup(self) -> int:
        """Price rows needed before the first feature row (at this spec's frequency)."""
        return max(_feature_need(self, f) for f in self.features)

    @property
    def rows_needed(self) -> int:
        """Price rows (at this spec's frequency) that one input window depends on."""
        return self.lookback + self.warmup

    def n_inputs(self, n_tickers: int) -> int:
        return len(self.features) * n_tickers

    def input_names(self, tickers: Sequence[str]) -> list[str]:
        return [f"{f}:{t}" for f in self.features for t in tickers]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["features"] = list(self.features)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown feature-spec keys: {', '.join(unknown)}")
        kw = dict(d)
        if "features" in kw:
            kw["features"] = tuple(kw["features"])
        return cls(**kw)


# ----------------------------------------------------------------------------------------------------------
# numpy core: arrays are (n_tickers, T) so every rolling window is contiguous and reduced the same way
# whatever the frame's length (bit-identical results for a full history and for a tail).
# ----------------------------------------------------------------------------------------------------------


def _lagged_ratio(p: np.ndarray) -> np.ndarray:
    out = np.full(p.shape, np.nan)
    out[:, 1:] = p[:, 1:] / p[:, :-1]
    return out


def _rolling(x: np.ndarray, window: int) -> np.ndarray:
    """(N, T) -> (N, T-window+1, window) windows, contiguous last axis."""
    return sliding_window_view(x, window, axis=1)


def _pad(x: np.ndarray, T: int) -> np.ndarray:
    """Left-pad (N, k) results with NaN to length T."""
    out = np.full((x.shape[0], T), np.nan)
    if x.shape[1]:
        out[:, T - x.shape[1] :] = x
    return out


def _wilder_weights(window: int, span: int) -> np.ndarray:
    """FIR weights of Wilder smoothing seeded with the SMA of the first `window` of `span` values."""
    a = (window - 1) / window
    m = span - window
    w = np.empty(span)
    w[:window] = a**m / window
    j = np.arange(window, span)
    w[window:] = a ** (span - 1 - j) / window
    return w


def _rsi_np(p: np.ndarray, window: int, span: int) -> np.ndarray:
    T = p.shape[1]
    d = np.diff(p, axis=1)  # (N, T-1); d[:, k] is the change into row k+1
    if d.shape[1] < span:
        return np.full(p.shape, np.nan)
    w = _wilder_weights(window, span)
    gains = np.where(np.isnan(d), np.nan, np.maximum(d, 0.0))
    losses = np.where(np.isnan(d), np.nan, np.maximum(-d, 0.0))
    ag = np.einsum("ntk,k->nt", _rolling(gains, span), w)  # einsum: same per-window order, no big temporaries
    al = np.einsum("ntk,k->nt", _rolling(losses, span), w)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 100.0 - 100.0 / (1.0 + ag / al)
    r = np.where((al == 0) & (ag > 0), 100.0, r)
    r = np.where((al == 0) & (ag == 0), 50.0, r)
    return _pad(r, T)


def _std_np(x: np.ndarray, window: int, ddof: int) -> np.ndarray:
    """Rolling std from per-window sums (shifted by the window's first value for numerical stability)."""
    T = x.shape[1]
    if window > T:
        return np.full(x.shape, np.nan)
    v = _rolling(x, window)
    d = v - v[:, :, :1]  # shift by each window's first value: no cancellation for price levels
    s1 = np.einsum("ntk->nt", d)
    s2 = np.einsum("ntk,ntk->nt", d, d)
    var = np.maximum(s2 - s1 * s1 / window, 0.0) / (window - ddof)
    return _pad(np.sqrt(var), T)


def _mean_np(x: np.ndarray, window: int) -> np.ndarray:
    T = x.shape[1]
    if window > T:
        return np.full(x.shape, np.nan)
    return _pad(np.einsum("ntk,k->nt", _rolling(x, window), np.ones(window)) / window, T)


def _feature_need(spec: FeatureSpec, f: str) -> int:
    return {
        "ret": 1,
        "logret": 1,
        "rsi": spec.rsi_warmup,
        "vol": spec.vol_window,
        "bbw": spec.bb_window - 1,
        "macross": spec.ma_slow - 1,
    }[f]


def _one(p: np.ndarray, spec: FeatureSpec, f: str) -> np.ndarray:
    if f == "ret":
        return _lagged_ratio(p) - 1.0
    if f == "logret":
        return np.log(_lagged_ratio(p))
    if f == "rsi":
        return _rsi_np(p, spec.rsi_window, spec.rsi_warmup)
    if f == "vol":
        return _std_np(_lagged_ratio(p) - 1.0, spec.vol_window, ddof=1)
    if f == "bbw":
        return 2.0 * spec.bb_k * _std_np(p, spec.bb_window, ddof=0) / _mean_np(p, spec.bb_window)
    if f == "macross":
        return _mean_np(p, spec.ma_fast) / _mean_np(p, spec.ma_slow) - 1.0
    raise ValueError(f)  # pragma: no cover - FeatureSpec validates names


def _compute(p: np.ndarray, spec: FeatureSpec, last: int | None = None) -> np.ndarray:
    """(N, T) prices -> (F, N, T) features (or only the `last` columns), NaN where a window is incomplete.

    Each value depends only on its own window, so trimming the input to what `last` columns need gives the
    same numbers as computing over the full history.
    """
    out = []
    for f in spec.features:
        if last is None:
            out.append(_one(p, spec, f))
        else:
            q = p[:, max(0, p.shape[1] - last - _feature_need(spec, f)) :]
            out.append(_one(q, spec, f)[:, -last:])
    return np.stack(out)


def _days(index: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(index.values.astype("datetime64[D]").astype(np.int64))


def weekly_last_positions(days: np.ndarray) -> np.ndarray:
    """Positions of the last row of each ISO week (Monday..Sunday) in sorted day numbers since 1970-01-01.

    1970-01-01 was a Thursday, so (day + 3) // 7 increments on Mondays: one id per ISO week, including the
    week that spans New Year and short weeks (Good Friday: the Thursday is the week's last session).
    """
    if len(days) == 0:
        return np.zeros(0, dtype=np.int64)
    wk = (days + 3) // 7
    last = np.flatnonzero(wk[1:] != wk[:-1])
    return np.append(last, len(days) - 1)


def weekly_last(prices: pd.DataFrame) -> pd.DataFrame:
    """Resample daily prices to the last session of each ISO week (index = that session's date)."""
    return prices.iloc[weekly_last_positions(_days(pd.DatetimeIndex(prices.index)))]


# ----------------------------------------------------------------------------------------------------------
# pandas conveniences (reference implementations used by tests and by training code)
# ----------------------------------------------------------------------------------------------------------


def _frame_apply(prices: pd.DataFrame, fn: Any) -> pd.DataFrame:
    p = prices.to_numpy(dtype=np.float64).T
    return pd.DataFrame(fn(p).T, index=prices.index, columns=prices.columns)


def simple_returns(prices: pd.DataFrame) -> pd.DataFrame:
    return _frame_apply(prices, lambda p: _lagged_ratio(p) - 1.0)


def log_returns(prices: pd.DataFrame) -> pd.DataFrame:
    return _frame_apply(prices, lambda p: np.log(_lagged_ratio(p)))


def rsi(prices: pd.DataFrame, window: int = 14, warmup: int = 100) -> pd.DataFrame:
    """Wilder RSI: SMA seed over the first `window` of the last `warmup` changes, then Wilder smoothing."""
    return _frame_apply(prices, lambda p: _rsi_np(p, window, warmup))


def rolling_volatility(prices: pd.DataFrame, window: int = 20) -> pd.DataFrame:
    return _frame_apply(prices, lambda p: _std_np(_lagged_ratio(p) - 1.0, window, ddof=1))


def bollinger_width(prices: pd.DataFrame, window: int = 20, k: float = 2.0) -> pd.DataFrame:
    return _frame_apply(prices, lambda p: 2.0 * k * _std_np(p, window, 0) / _mean_np(p, window))


def ma_crossover(prices: pd.DataFrame, fast: int = 10, slow: int = 50) -> pd.DataFrame:
    return _frame_apply(prices, lambda p: _mean_np(p, fast) / _mean_np(p, slow) - 1.0)


def _resample(prices: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    return weekly_last(prices) if spec.frequency == "weekly" else prices


def feature_frame(
    prices: pd.DataFrame, spec: FeatureSpec, tickers: Sequence[str] | None = None
) -> pd.DataFrame:
    """All feature rows for a (daily) price frame: MultiIndex columns (feature, ticker), fixed order."""
    tickers = list(tickers) if tickers is not None else [str(c) for c in prices.columns]
    p = _resample(prices[tickers], spec)
    arr = _compute(p.to_numpy(dtype=np.float64).T, spec)  # (F, N, T)
    F, N, T = arr.shape
    cols = pd.MultiIndex.from_product([list(spec.features), tickers], names=["feature", "ticker"])
    return pd.DataFrame(arr.reshape(F * N, T).T, index=p.index, columns=cols)


def feature_matrix(
    prices: pd.DataFrame, spec: FeatureSpec, tickers: Sequence[str]
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """(dates, (T, n_inputs) array) at the spec's frequency: the training view of `feature_frame`."""
    ff = feature_frame(prices, spec, tickers)
    return pd.DatetimeIndex(ff.index), ff.to_numpy(dtype=np.float64)


def build_window(
    prices: pd.DataFrame,
    spec: FeatureSpec,
    asof: dt.date | pd.Timestamp | str,
    tickers: Sequence[str] | None = None,
) -> np.ndarray:
    """The model input at `asof`: (lookback, n_inputs), unscaled, from rows <= asof and only the tail needed.

    Raises DataError when the history is too short or a needed value is missing.
    """
    tickers = list(tickers) if tickers is not None else [str(c) for c in prices.columns]
    index = pd.DatetimeIndex(prices.index)
    ts = pd.Timestamp(asof)
    end = int(index.searchsorted(ts, side="right"))
    same = len(tickers) == len(prices.columns) and all(
        a == b for a, b in zip(tickers, prices.columns, strict=True)
    )
    cols = np.arange(len(tickers)) if same else prices.columns.get_indexer(pd.Index(tickers))
    if (cols < 0).any():
        missing = [t for t, c in zip(tickers, cols, strict=True) if c < 0]
        raise DataError(f"prices lack tickers the model needs: {', '.join(missing)}")
    need = spec.rows_needed
    if spec.frequency == "daily":
        start = end - need
        if start < 0:
            raise DataError(
                f"not enough history at {ts.date()}: the model needs {need} sessions (lookback {spec.lookback}"
                f" + warm-up {spec.warmup}), have {end}"
            )
        p = np.asarray(prices.iloc[start:end].to_numpy(dtype=np.float64))[:, cols].T
    else:
        start = max(0, end - (need + 1) * 5)  # an ISO week holds at most 5 sessions
        daily = np.asarray(prices.iloc[start:end].to_numpy(dtype=np.float64))[:, cols]
        pos = weekly_last_positions(_days(index[start:end]))
        if start > 0:
            pos = pos[1:]  # the first week of a cut tail may be incomplete
        if len(pos) < need:
            raise DataError(
                f"not enough history at {ts.date()}: the model needs {need} weeks (lookback {spec.lookback}"
                f" + warm-up {spec.warmup}), have {len(pos)}"
            )
        p = daily[pos[-need:]].T
    arr = _compute(p, spec, last=spec.lookback)  # (F, N, L)
    F, N, L = arr.shape
    x = arr.reshape(F * N, L).T
    if not np.isfinite(x).all():
        bad = sorted({tickers[j % N] for j in np.flatnonzero(~np.isfinite(x).all(axis=0))})
        raise DataError(f"missing or invalid prices in the input window at {ts.date()} for: {', '.join(bad)}")
    return x


# ----------------------------------------------------------------------------------------------------------
# scalers (fit on the training window only; parameters travel in the model metadata)
# ----------------------------------------------------------------------------------------------------------


class MinMaxScaler:
    """Per-column min-max scaling to `feature_range` (the studies' choice); constant columns map to the low end."""

    kind = "minmax"

    def __init__(
        self, data_min: np.ndarray, data_max: np.ndarray, feature_range: tuple[float, float] = (0.0, 1.0)
    ):
        self.data_min = np.asarray(data_min, dtype=np.float64)
        self.data_max = np.asarray(data_max, dtype=np.float64)
        self.feature_range = (float(feature_range[0]), float(feature_range[1]))
        span = self.data_max - self.data_min
        self._span = np.where(span > 0, span, 1.0)

    @classmethod
    def fit(cls, x: np.ndarray, feature_range: tuple[float, float] = (0.0, 1.0)) -> MinMaxScaler:
        x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        return cls(np.nanmin(x, axis=0), np.nanmax(x, axis=0), feature_range)

    def transform(self, x: np.ndarray) -> np.ndarray:
        a, b = self.feature_range
        return (np.asarray(x, dtype=np.float64) - self.data_min) / self._span * (b - a) + a

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        a, b = self.feature_range
        return (np.asarray(y, dtype=np.float64) - a) / (b - a) * self._span + self.data_min

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "min": self.data_min.tolist(),
            "max": self.data_max.tolist(),
            "feature_range": list(self.feature_range),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MinMaxScaler:
        return cls(
            np.array(d["min"], dtype=float), np.array(d["max"], dtype=float), tuple(d["feature_range"])
        )


class StandardScaler:
    """Per-column (x - mean) / std; zero-variance columns keep std 1."""

    kind = "standard"

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        self.std = np.where(std > 0, std, 1.0)

    @classmethod
    def fit(cls, x: np.ndarray) -> StandardScaler:
        x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        return cls(np.nanmean(x, axis=0), np.nanstd(x, axis=0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64) * self.std + self.mean

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StandardScaler:
        return cls(np.array(d["mean"], dtype=float), np.array(d["std"], dtype=float))


def scaler_from_dict(d: dict[str, Any] | None) -> MinMaxScaler | StandardScaler | None:
    """Rebuild a scaler from metadata; None stays None (no scaling)."""
    if d is None:
        return None
    kind = d.get("type")
    if kind == "minmax":
        return MinMaxScaler.from_dict(d)
    if kind == "standard":
        return StandardScaler.from_dict(d)
    raise ValueError(f"unknown scaler type {kind!r}")
