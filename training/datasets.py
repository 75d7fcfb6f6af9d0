"""Training data: profile configs, price files, leak-free sample windows, targets and the time-ordered split.

Leak rule (enforced by construction): prices are truncated at `train_end` *before* anything is computed, so a
sample at t whose target needs rows up to t+H exists only if t+H <= train_end (the daily closes kept for the
validation skill on the book's window, `training.skill.book_skill`, end there too). Validation is the last ~20% of
the samples in time order; training samples whose targets overlap the validation targets are purged. Scalers
are fit on the training part only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from agent.features import FeatureSpec, MinMaxScaler, StandardScaler, feature_matrix, weekly_last

__all__ = [
    "CONFIG_DIR",
    "Dataset",
    "ProfileConfig",
    "data_digest",
    "load_config",
    "load_prices",
    "make_dataset",
    "rebalance_labels",
    "shared_data_dir",
    "window_batch",
]

CONFIG_DIR = Path(__file__).parent / "configs"
Kind = Literal["returns", "rebalance_returns", "weights"]
Target = Literal["fwd_mean_simple", "next_week_logret", "next_returns"]


def shared_data_dir() -> Path:
    """$AGENT_SHARED_DATA, default ../shared/data next to the repository."""
    env = os.environ.get("AGENT_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@dataclass(frozen=True)
class ProfileConfig:
    """One profile's training recipe (training/configs/<profile>.toml)."""

    profile: str
    data_file: str  # a file in $AGENT_SHARED_DATA, or "skfolio:<file>" for skfolio's bundled data
    tickers: tuple[str, ...]
    kind: Kind
    target: Target
    horizon: int  # sessions the target covers (5 for one week)
    features: FeatureSpec
    years: tuple[int, ...] = (2019, 2020, 2021, 2022, 2023, 2024)  # ship one model per train_end year
    train_start: str | None = None  # earliest date used (None: as early as the data allows)
    window: int | None = None  # training window in rows at the feature frequency (None: expanding)
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    rebalance: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    study: str = ""
    deviations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["features"] = self.features.to_dict()
        d["tickers"] = list(self.tickers)
        d["years"] = list(self.years)
        d["deviations"] = list(self.deviations)
        return d

    def replace(self, **kw: Any) -> ProfileConfig:
        return dataclasses.replace(self, **kw)

    def t(self, key: str, default: Any) -> Any:
        return self.train.get(key, default)


def load_config(profile: str | Path) -> ProfileConfig:
    path = Path(profile) if str(profile).endswith(".toml") else CONFIG_DIR / f"{profile}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))
        raise SystemExit(f"unknown training profile {profile!r} (known: {known})")
    with path.open("rb") as f:
        d = tomllib.load(f)
    allowed = {f.name for f in dataclasses.fields(ProfileConfig)}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise SystemExit(f"{path}: unknown keys {', '.join(unknown)}")
    d["features"] = FeatureSpec.from_dict(d.get("features", {}))
    d["tickers"] = tuple(d["tickers"])
    d["years"] = tuple(d.get("years", ProfileConfig.years))
    d["deviations"] = tuple(d.get("deviations", ()))
    return ProfileConfig(**d)


def _data_path(data_file: str) -> Path:
    if data_file.startswith("skfolio:"):
        spec = importlib.util.find_spec("skfolio")  # locate the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("skfolio is not installed: its bundled demo data is needed")
        return (
            Path(next(iter(spec.submodule_search_locations)))
            / "datasets"
            / "data"
            / data_file.split(":", 1)[1]
        )
    return shared_data_dir() / data_file


def load_prices(cfg: ProfileConfig) -> pd.DataFrame:
    """The profile's daily prices: tz-naive DatetimeIndex named date, float64 columns in ticker order."""
    path = _data_path(cfg.data_file)
    if not path.exists():
        raise SystemExit(f"price file not found: {path} (set AGENT_SHARED_DATA)")
    df = pd.read_csv(path)
    first = df.columns[0]
    df[first] = pd.to_datetime(df[first])
    df = df.set_index(first).rename_axis("date").sort_index()
    missing = [t for t in cfg.tickers if t not in df.columns]
    if missing:
        raise SystemExit(f"{path.name} lacks tickers {', '.join(missing)}")
    return df[list(cfg.tickers)].astype("float64")


def data_digest(prices: pd.DataFrame) -> str:
    """SHA-256 of a price slice: tickers, dates and float64 values (the exact training data)."""
    h = hashlib.sha256()
    h.update(",".join(map(str, prices.columns)).encode())
    h.update(np.asarray(prices.index.values.astype("datetime64[D]").astype(np.int64)).tobytes())
    h.update(np.ascontiguousarray(prices.to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()


def rebalance_labels(
    weekly_logret: np.ndarray, vol_weeks: int = 4, k: float = 1.0, min_periods: int = 26
) -> np.ndarray:
    """Study 000's signal from past data only: 1 when the cross-asset mean rolling vol exceeds past mean + k*std.

    The threshold at week s uses avg-vol values of weeks < s only (expanding window); NaN until min_periods.
    """
    lr = pd.DataFrame(weekly_logret)
    avg = lr.rolling(vol_weeks).std().mean(axis=1, skipna=False)
    past = avg.shift(1)
    thr = past.expanding(min_periods=min_periods).mean() + k * past.expanding(min_periods=min_periods).std()
    lab = (avg > thr).astype(float)
    lab[thr.isna() | avg.isna()] = np.nan
    return lab.to_numpy()


@dataclass
class Dataset:
    """Scaled inputs for every row, sample end positions, targets and the split."""

    cfg: ProfileConfig
    dates: pd.DatetimeIndex  # rows at the feature frequency, all <= train_end
    Z: np.ndarray  # (T, n_inputs) float32, scaled
    train_idx: np.ndarray  # sample end positions (into dates)
    val_idx: np.ndarray
    y: dict[str, np.ndarray]  # per row (T, ...): "ret" scaled returns target, "reb", "reb_same", "next"
    y_raw: np.ndarray  # (T, N) returns target in raw units
    baseline: np.ndarray  # (T, N) rolling-mean forecast of the returns target (raw units)
    input_scaler: MinMaxScaler | StandardScaler
    target_scaler: MinMaxScaler | StandardScaler | None
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    valid_from: pd.Timestamp
    digest: str
    n_daily_rows: int
    closes: np.ndarray  # (S, N) daily closes up to train_end: the book's returns for the validation skill
    row_session: np.ndarray  # (T,) position of each row's date in `closes` (rows are sessions, weekly too)

    @property
    def lookback(self) -> int:
        return self.cfg.features.lookback

    @property
    def n_inputs(self) -> int:
        return int(self.Z.shape[1])

    @property
    def n_outputs(self) -> int:
        return len(self.cfg.tickers)


def window_batch(Z: np.ndarray, ends: np.ndarray, lookback: int) -> np.ndarray:
    """(B, lookback, n_inputs) windows ending at `ends` (inclusive)."""
    return Z[np.asarray(ends)[:, None] + np.arange(-lookback + 1, 1)[None, :]]


def _make_scaler(
    name: str, rows: np.ndarray, feature_range: tuple[float, float]
) -> MinMaxScaler | StandardScaler:
    if name == "minmax":
        return MinMaxScaler.fit(rows, feature_range)
    if name == "standard":
        return StandardScaler.fit(rows)
    raise SystemExit(f"unknown scaler {name!r}")


def make_dataset(prices: pd.DataFrame, cfg: ProfileConfig, train_end: str | pd.Timestamp) -> Dataset:
    """Samples for one model whose training data ends at the last session <= train_end."""
    spec = cfg.features
    p = prices.loc[: pd.Timestamp(train_end)]
    if cfg.train_start:
        p = p.loc[pd.Timestamp(cfg.train_start) :]
    if p.empty:
        raise SystemExit(f"{cfg.profile}: no prices up to {train_end}")
    if spec.frequency == "weekly" and p.index[-1].weekday() <= 2:
        # a week cut on Mon-Wed is not a week: drop it so no partial week becomes a target
        p = p.loc[: p.index[-1] - pd.Timedelta(days=p.index[-1].weekday() + 1)]
    dates, X = feature_matrix(p, spec, cfg.tickers)
    T, N, L, H = len(dates), len(cfg.tickers), spec.lookback, cfg.horizon
    y_raw = np.full((T, N), np.nan)
    baseline = np.full((T, N), np.nan)
    y: dict[str, np.ndarray] = {}
    if cfg.target in ("fwd_mean_simple", "next_returns"):
        if spec.frequency != "daily":
            raise SystemExit(f"{cfg.profile}: target {cfg.target} needs daily features")
        r = p.to_numpy(dtype=np.float64)
        r = np.vstack([np.full((1, N), np.nan), r[1:] / r[:-1] - 1.0])
        c = np.vstack([np.zeros((1, N)), np.cumsum(np.nan_to_num(r), axis=0)])  # c[k] = sum r[0..k-1]
        if T > H:
            y_raw[: T - H] = (c[1 + H : T + 1] - c[1 : T + 1 - H]) / H  # mean of r[t+1..t+H]
            bad = np.isnan(r)
            nb = np.vstack([np.zeros((1, N)), np.cumsum(bad, axis=0)])
            y_raw[: T - H][(nb[1 + H : T + 1] - nb[1 : T + 1 - H]) > 0] = np.nan
        W = int(cfg.train.get("baseline_window", 60))
        if T > W:
            baseline[W:] = (c[W + 1 : T + 1] - c[1 : T + 1 - W]) / W  # mean of r[t-W+1..t]
            nb = np.vstack([np.zeros((1, N)), np.cumsum(np.isnan(r), axis=0)])
            baseline[W:][(nb[W + 1 : T + 1] - nb[1 : T + 1 - W]) > 0] = np.nan
        if cfg.target == "next_returns":
            y["next"] = y_raw.copy()
    elif cfg.target == "next_week_logret":
        if spec.frequency != "weekly":
            raise SystemExit(f"{cfg.profile}: target {cfg.target} needs weekly features")
        w = weekly_last(p).to_numpy(dtype=np.float64)
        lr = np.vstack([np.full((1, N), np.nan), np.log(w[1:] / w[:-1])])
        y_raw[:-1] = lr[1:]
        W = int(cfg.train.get("baseline_window", 13))
        bl = pd.DataFrame(lr).rolling(W).mean().to_numpy()
        baseline[:] = bl
        rb = cfg.rebalance
        lab = rebalance_labels(
            lr, int(rb.get("vol_weeks", 4)), float(rb.get("k", 1.0)), int(rb.get("min_periods", 26))
        )
        nxt = np.full(T, np.nan)
        nxt[:-1] = lab[1:]
        y["reb"] = nxt  # the honest task: next week's label from data <= t
        y["reb_same"] = lab  # the study's task: this week's label (computable from the inputs)
    else:  # pragma: no cover
        raise SystemExit(f"unknown target {cfg.target}")

    # candidate sample ends: full finite input window and finite targets
    finite_row = np.isfinite(X).all(axis=1)
    ok_win = np.convolve(finite_row.astype(int), np.ones(L, dtype=int), mode="full")[:T] == L
    ok = ok_win & np.isfinite(y_raw).all(axis=1)
    for k in ("reb", "reb_same"):
        if k in y:
            ok &= np.isfinite(y[k])
    ends = np.flatnonzero(ok)
    if cfg.window:
        ends = ends[ends >= T - cfg.window]
    min_samples = int(cfg.train.get("min_samples", 60))
    if len(ends) < min_samples:
        raise SystemExit(f"{cfg.profile}: only {len(ends)} samples up to {train_end} (need {min_samples})")
    n_val = max(8, round(float(cfg.train.get("valid_frac", 0.2)) * len(ends)))
    val_idx = ends[-n_val:]
    purge = H if spec.frequency == "daily" else 1
    train_idx = ends[:-n_val][ends[:-n_val] + purge <= val_idx[0]]

    rows = X[train_idx[0] - L + 1 : train_idx[-1] + 1]
    rng = tuple(cfg.train.get("input_range", (0.0, 1.0)))
    in_scaler = _make_scaler(str(cfg.train.get("input_scaler", "minmax")), rows, rng)  # type: ignore[arg-type]
    Z = np.nan_to_num(in_scaler.transform(X)).astype(np.float32)
    tgt_name = cfg.train.get("target_scaler", "standard")
    t_scaler = None
    if cfg.kind != "weights" and tgt_name != "none":
        t_scaler = _make_scaler(
            str(tgt_name), y_raw[train_idx], tuple(cfg.train.get("target_range", (0.0, 1.0)))
        )  # type: ignore[arg-type]
        y["ret"] = np.nan_to_num(t_scaler.transform(y_raw)).astype(np.float32)
    elif cfg.kind != "weights":
        y["ret"] = np.nan_to_num(y_raw).astype(np.float32)
    first_used = dates[max(0, train_idx[0] - L + 1 - spec.warmup)]
    train_end_ts = pd.Timestamp(p.index[-1])
    return Dataset(
        cfg=cfg,
        dates=dates,
        Z=Z,
        train_idx=train_idx,
        val_idx=val_idx,
        y=y,
        y_raw=y_raw,
        baseline=baseline,
        input_scaler=in_scaler,
        target_scaler=t_scaler,
        train_start=pd.Timestamp(dates[train_idx[0] - L + 1]),
        train_end=train_end_ts,
        valid_from=pd.Timestamp(dates[val_idx[0]]),
        digest=data_digest(p.loc[first_used:]),
        n_daily_rows=len(p.loc[first_used:]),
        closes=p.to_numpy(dtype=np.float64),
        row_session=p.index.get_indexer(dates).astype(np.int64),
    )
