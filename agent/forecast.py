"""ONNX model registry and inference (onnxruntime only: never torch, never `training`).

Models are self-describing: their ONNX `metadata_props` hold the tickers, feature spec, scalers, train window
and output meaning. Listing reads only that metadata (a tiny protobuf reader, no graph load); a session is
created once per model file and cached. At `asof` the registry picks the newest model with train_end < asof.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ModelError
from agent.features import FeatureSpec, build_window, scaler_from_dict

__all__ = [
    "KINDS",
    "REQUIRED_KEYS",
    "ForecastResult",
    "ModelInfo",
    "ModelRegistry",
    "OnnxForecaster",
    "mean_daily_simple",
    "read_metadata",
]

KINDS = ("returns", "rebalance_returns", "weights")
REQUIRED_KEYS = (
    "schema_version",
    "model_id",
    "profile",
    "kind",
    "outputs",
    "output_units",
    "target",
    "horizon",
    "tickers",
    "feature_spec",
    "input_scaler",
    "target_scaler",
    "train_start",
    "train_end",
    "valid_from",
    "metrics",
    "config",
    "data_file",
    "data_sha256",
    "code_version",
    "git_commit",
)

# ------------------------------------------------------------------------------------------------------
# minimal protobuf reader for ModelProto.metadata_props (field 14): no dependency on the onnx package
# ------------------------------------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """Top-level (field number, wire type, value) of a protobuf message; raises ValueError when malformed."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        num, wt = tag >> 3, tag & 7
        if num == 0:
            raise ValueError("field number 0")
        val: int | bytes
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos : pos + 8], pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated field")
            val, pos = buf[pos : pos + n], pos + n
        elif wt == 5:
            val, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        if pos > len(buf):
            raise ValueError("truncated field")
        out.append((num, wt, val))
    return out


def _parse_model_metadata(data: bytes) -> dict[str, str]:
    fields = _fields(data)
    nums = {n for n, _, _ in fields}
    if 1 not in nums or 7 not in nums:
        raise ValueError("not an ONNX model (no ir_version or graph)")
    meta: dict[str, str] = {}
    for num, wt, val in fields:
        if num == 14 and wt == 2:
            kv = {n: v for n, w, v in _fields(val) if w == 2}
            meta[kv.get(1, b"").decode("utf-8")] = kv.get(2, b"").decode("utf-8")
    return meta


def read_metadata(path: Path | str) -> tuple[dict[str, str], str]:
    """(metadata_props, sha256 of the file). ModelError (one line) when the file is unreadable or corrupt."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from None
    try:
        meta = _parse_model_metadata(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"model file {path.name} is corrupt or truncated ({e})") from None
    return meta, hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ModelInfo:
    """A model file's identity and validated metadata (no session yet)."""

    path: Path
    model_id: str
    profile: str
    kind: str
    train_end: dt.date
    tickers: tuple[str, ...]
    spec: FeatureSpec
    horizon: int
    target: dict[str, Any]
    sha256: str
    metadata: dict[str, str] = field(repr=False)


def _validate(path: Path, meta: dict[str, str], sha: str) -> ModelInfo:
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f"model file {path.name} lacks metadata keys: {', '.join(missing)}")
    try:
        kind = meta["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        tickers = tuple(json.loads(meta["tickers"]))
        if not tickers or not all(isinstance(t, str) for t in tickers):
            raise ValueError("tickers must be a non-empty list of names")
        spec = FeatureSpec.from_dict(json.loads(meta["feature_spec"]))
        target = json.loads(meta["target"])
        scaler_from_dict(json.loads(meta["input_scaler"]))
        scaler_from_dict(json.loads(meta["target_scaler"]))
        train_end = dt.date.fromisoformat(meta["train_end"])
        horizon = int(meta["horizon"])
    except (ValueError, TypeError, KeyError) as e:
        raise ModelError(f"model file {path.name} has invalid metadata: {e}") from None
    return ModelInfo(
        path=path,
        model_id=meta["model_id"],
        profile=meta["profile"],
        kind=kind,
        train_end=train_end,
        tickers=tickers,
        spec=spec,
        horizon=horizon,
        target=target,
        sha256=sha,
        metadata=meta,
    )


_NAME_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})$")
_WARNED: set[tuple[str, tuple[tuple[str, str], ...]]] = set()


def _warn_substitution(info: ModelInfo, skipped: tuple[tuple[str, str], ...]) -> None:
    """A warning event, once per process for each (model used, files skipped): a backtest must not repeat it
    at every decision, a daemon says it at its first run on the substitute."""
    key = (info.model_id, skipped)
    if key in _WARNED:
        return
    _WARNED.add(key)
    from agent.logging import get_logger

    get_logger("agent.forecast").warning(
        "model.substituted",
        used=info.model_id,
        train_end=info.train_end.isoformat(),
        skipped=[f"{name}: {why}" for name, why in skipped],
    )


_SESSIONS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def _session(info: ModelInfo) -> Any:
    """One InferenceSession per model file (keyed by path and content hash), single-threaded, sequential."""
    key = (str(info.path.resolve()), info.sha256)
    with _LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(info.path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(
                f"model file {info.path.name} cannot be loaded by onnxruntime: {first[:200]}"
            ) from None
        inputs = sess.get_inputs()
        n_in = info.spec.n_inputs(len(info.tickers))
        shape = list(inputs[0].shape) if inputs else []
        if len(inputs) != 1 or len(shape) != 3 or shape[1:] != [info.spec.lookback, n_in]:
            raise ModelError(
                f"model file {info.path.name}: graph input {shape} does not match its metadata "
                f"(batch, {info.spec.lookback}, {n_in})"
            )
        _SESSIONS[key] = sess
        return sess


class ModelRegistry:
    """The models in one folder; files that fail validation are listed in `rejected` (path, reason)."""

    def __init__(self, models_dir: Path | str, *, allow_leaky: bool = False):
        from agent.research.leak import model_leak

        self.models_dir = Path(models_dir)
        self.models: list[ModelInfo] = []
        self.rejected: list[tuple[Path, str]] = []
        self.allow_leaky = allow_leaky  # research.leak = ["models"] inside a replay only
        if not self.models_dir.is_dir():
            return
        for p in sorted(self.models_dir.glob("*.onnx")):
            try:
                meta, sha = read_metadata(p)
                leak = model_leak(meta)
                if leak is not None and not allow_leaky:
                    raise ModelError(
                        f"model {p.stem} was trained with look-ahead ({leak.get('procedure', '?')}): only a "
                        'research.leak = ["models"] replay may use it'
                    )
                self.models.append(_validate(p, meta, sha))
            except ModelError as e:
                self.rejected.append((p, e.one_line()))
        self.models.sort(key=lambda m: (m.train_end, m.model_id))

    @staticmethod
    def load(path: Path | str) -> ModelInfo:
        """Validate one file (metadata and graph); ModelError with one line when it is unusable."""
        p = Path(path)
        meta, sha = read_metadata(p)
        info = _validate(p, meta, sha)
        _session(info)
        return info

    def select(self, asof: dt.date | str) -> ModelInfo:
        """The newest model with train_end < asof (it never saw data from asof on)."""
        d = dt.date.fromisoformat(asof) if isinstance(asof, str) else asof
        if isinstance(d, dt.datetime):
            d = d.date()
        if self.allow_leaky:  # look-ahead research: the fold model that held this week out
            from agent.research.leak import fold_model

            fold = fold_model(self.models, d)
            if fold is not None:
                return fold
        ok = [m for m in self.models if m.train_end < d]
        if not ok:
            have = ", ".join(str(m.train_end) for m in self.models) or "none"
            raise ModelError(
                f"no model in {self.models_dir} with train_end before {d} (train_end of available models: {have})"
            )
        return ok[-1]

    def session(self, info: ModelInfo) -> Any:
        return _session(info)

    def skipped_for(self, asof: dt.date, chosen: ModelInfo) -> tuple[tuple[str, str], ...]:
        """Rejected files (corrupt, truncated, bad metadata) that could have been newer than `chosen` at `asof`:
        the decision then runs on an older model, which must be said. A rejected file's train_end is unknown;
        the date in its name (`<profile>-YYYY-MM-DD.onnx`) rules it out when it is not before asof or not newer
        than the chosen model's; a name without a date always counts."""
        out = []
        for path, reason in self.rejected:
            m = _NAME_DATE.search(path.stem)
            if m is not None:
                try:
                    d = dt.date.fromisoformat(m.group(1))
                except ValueError:
                    d = None
                if d is not None and (d >= asof or d <= chosen.train_end):
                    continue
            out.append((path.name, reason))
        return tuple(out)


@dataclass(frozen=True)
class ForecastResult:
    """One forecast. `mu`: mean daily simple return per ticker over `horizon` sessions (None for weight models)."""

    model_id: str
    model_path: str
    model_sha256: str
    train_end: dt.date
    kind: str
    mu: np.ndarray | None
    rebalance_prob: float | None
    weights: np.ndarray | None
    horizon: int
    inputs_digest: str
    elapsed_ms: float
    tickers: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (file, reason) of newer models passed over: a substitution

    def to_dict(self) -> dict[str, Any]:
        def per(a: np.ndarray | None) -> dict[str, float] | None:
            return None if a is None else {t: float(v) for t, v in zip(self.tickers, a, strict=True)}

        return {
            "model_id": self.model_id,
            "model_path": self.model_path,
            "model_sha256": self.model_sha256,
            "train_end": self.train_end.isoformat(),
            "kind": self.kind,
            "mu": per(self.mu),
            "rebalance_prob": self.rebalance_prob,
            "weights": per(self.weights),
            "horizon": self.horizon,
            "inputs_digest": self.inputs_digest,
            # only when a model was passed over, so that records without a substitution keep their old shape
            **({"skipped_models": [list(x) for x in self.skipped]} if self.skipped else {}),
        }


class OnnxForecaster:
    """Forecasts for a universe from the folder's models, chosen by asof and checked against the live inputs."""

    def __init__(
        self,
        models_dir: Path | str,
        tickers: tuple[str, ...] | list[str],
        *,
        feature_spec: FeatureSpec | None = None,
        kind: str | None = None,
        allow_leaky: bool = False,
    ):
        self.registry = ModelRegistry(models_dir, allow_leaky=allow_leaky)
        self.tickers = tuple(tickers)
        self.expected_spec = feature_spec
        self.expected_kind = kind

    def check(self, info: ModelInfo) -> None:
        """ModelError naming the mismatch when a model does not fit the live universe/settings."""
        if set(info.tickers) != set(self.tickers) or len(info.tickers) != len(self.tickers):
            miss = sorted(set(self.tickers) - set(info.tickers))
            extra = sorted(set(info.tickers) - set(self.tickers))
            raise ModelError(
                f"model {info.model_id} is for other tickers (universe lacks in model: {', '.join(miss) or '-'}; "
                f"model has extra: {', '.join(extra) or '-'})"
            )
        if self.expected_kind is not None and info.kind != self.expected_kind:
            raise ModelError(f"model {info.model_id} is of kind {info.kind}, expected {self.expected_kind}")
        if self.expected_spec is not None and info.spec != self.expected_spec:
            exp, got = self.expected_spec.to_dict(), info.spec.to_dict()
            diff = ", ".join(f"{k}: model {got[k]} vs expected {exp[k]}" for k in exp if exp[k] != got[k])
            raise ModelError(f"model {info.model_id} features do not match the settings ({diff})")

    def forecast(self, prices: Any, asof: dt.date | str, *, info: ModelInfo | None = None) -> ForecastResult:
        """Run the model selected at `asof` (or `info`) on prices <= asof (rows after asof are ignored)."""
        t0 = time.perf_counter()
        info = info or self.registry.select(asof)
        self.check(info)
        d = dt.date.fromisoformat(asof) if isinstance(asof, str) else asof
        skipped = self.registry.skipped_for(d if not isinstance(d, dt.datetime) else d.date(), info)
        if skipped:
            _warn_substitution(info, skipped)
        sess = self.registry.session(info)
        meta = info.metadata
        x = build_window(prices, info.spec, asof, tickers=info.tickers)
        xs = scaler_from_dict(json.loads(meta["input_scaler"]))
        assert xs is not None
        xin = np.ascontiguousarray(xs.transform(x), dtype=np.float32)[None]
        digest = hashlib.sha256(xin.tobytes()).hexdigest()
        outs = sess.run(None, {sess.get_inputs()[0].name: xin})
        names = [o.name for o in sess.get_outputs()]
        res = dict(zip(names, outs, strict=True))
        order = [info.tickers.index(t) for t in self.tickers]
        mu = prob = w = None
        if info.kind == "weights":
            w = np.asarray(res["weights"][0], dtype=np.float64)[order]
        else:
            y = np.asarray(res["returns"][0], dtype=np.float64)
            ts = scaler_from_dict(json.loads(meta["target_scaler"]))
            if ts is not None:
                y = ts.inverse_transform(y)
            mu = self._to_mean_daily_simple(y, info)[order]
            if info.kind == "rebalance_returns":
                prob = float(np.asarray(res["rebalance_prob"]).reshape(-1)[0])
        if not all(a is None or np.isfinite(a).all() for a in (mu, w)) or (
            prob is not None and not np.isfinite(prob)
        ):
            raise ModelError(f"model {info.model_id} produced non-finite output at {asof}")
        return ForecastResult(
            model_id=info.model_id,
            model_path=str(info.path),
            model_sha256=info.sha256,
            train_end=info.train_end,
            kind=info.kind,
            mu=mu,
            rebalance_prob=prob,
            weights=w,
            horizon=info.horizon,
            inputs_digest=digest,
            elapsed_ms=(time.perf_counter() - t0) * 1000.0,
            tickers=self.tickers,
            skipped=skipped,
        )

    @staticmethod
    def _to_mean_daily_simple(y: np.ndarray, info: ModelInfo) -> np.ndarray:
        """Convert the model's target units to the mean daily simple return over its horizon."""
        h = int(info.target.get("horizon_sessions", info.horizon))
        try:
            return mean_daily_simple(y, info.target.get("type"), h)
        except ValueError as e:
            raise ModelError(f"model {info.model_id} has {e}") from None


def mean_daily_simple(y: np.ndarray, target_type: Any, horizon: int) -> np.ndarray:
    """A forecast in its target's units as the mean daily simple return over ``horizon`` sessions (the unit the
    skill tracker scores; training's validation skill converts with this same function)."""
    if target_type == "fwd_mean_simple":
        return y
    if target_type == "next_week_logret":  # compounding-equivalent per-session simple return
        return np.expm1(y / max(int(horizon), 1))
    raise ValueError(f"an unknown target type {target_type!r}")
