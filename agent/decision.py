"""The typed records that flow between stages: portfolio state in, a Decision out.

Weights are always aligned to the universe's ticker order, long-only, and sum to at most 1; the remainder is
cash. Everything here is plain data so that the ledger and the decision log can serialize it exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "TRADING_DAYS",
    "Decision",
    "ExecRisk",
    "OverlayRecord",
    "PortfolioState",
    "StopState",
    "canonical_json",
    "cash_weight",
    "digest",
    "round_weights",
]

TRADING_DAYS = 252  # sessions per year: the one annualization constant (vols, Sharpe, rates)


def cash_weight(weights: Any) -> float:
    """Cash left by long-only weights that sum to at most 1: `max(0, 1 - sum)` (never negative)."""
    return float(max(0.0, 1.0 - float(np.sum(weights))))


StopStatus = Literal["armed", "stopped", "cooling_down", "reentered"]


@dataclass(frozen=True)
class StopState:
    """Drawdown-stop state machine: armed → stopped → cooling_down → reentered (→ armed on the next decision).

    `stopped_on` is the decision date that triggered the stop; `sessions_left` counts the cash sessions still to
    serve; `peak_nav` is the peak the drawdown is measured from (reset on re-entry when configured).
    """

    status: StopStatus = "armed"
    stopped_on: dt.date | None = None
    sessions_left: int = 0
    peak_nav: float = 0.0
    transitions: tuple[
        str, ...
    ] = ()  # "2024-03-01:armed->stopped (drawdown 11.2% > 10.0%)", most recent last

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "stopped_on": self.stopped_on.isoformat() if self.stopped_on else None,
            "sessions_left": self.sessions_left,
            "peak_nav": self.peak_nav,
            "transitions": list(self.transitions[-20:]),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StopState:
        return cls(
            status=d.get("status", "armed"),
            stopped_on=dt.date.fromisoformat(d["stopped_on"]) if d.get("stopped_on") else None,
            sessions_left=int(d.get("sessions_left", 0)),
            peak_nav=float(d.get("peak_nav", 0.0)),
            transitions=tuple(d.get("transitions", ())),
        )


@dataclass(frozen=True)
class PortfolioState:
    """The book as of a decision: what overlays and the optimizer need to know about where we are."""

    asof: dt.date | None
    tickers: tuple[str, ...]
    weights: np.ndarray  # current (drifted) weights per ticker, marked at asof
    nav: float  # current NAV in currency
    peak_nav: float  # running peak of NAV (for drawdown)
    stop: StopState = StopState()
    last_rebalance: dt.date | None = None
    sessions_since_rebalance: int = 0
    last_decision: dt.date | None = None  # asof of the previous decision (cool-downs count sessions since it)
    # the book's daily peak NAV since the drawdown stop's last re-entry reset (None: no reset, or no book): the
    # stop measures from it after a reset, as it measures from `peak_nav` before one
    peak_since_reset: float | None = None

    @property
    def cash_weight(self) -> float:
        return cash_weight(self.weights)

    @property
    def drawdown(self) -> float:
        """Current drawdown from peak as a non-positive fraction."""
        return 0.0 if self.peak_nav <= 0 else min(0.0, self.nav / self.peak_nav - 1.0)

    @classmethod
    def initial(cls, tickers: tuple[str, ...], capital: float) -> PortfolioState:
        return cls(
            asof=None,
            tickers=tickers,
            weights=np.zeros(len(tickers)),
            nav=capital,
            peak_nav=capital,
            stop=StopState(peak_nav=capital),
        )


@dataclass(frozen=True)
class OverlayRecord:
    """What one overlay did: `action` is 'none' when it left the weights alone."""

    name: str
    action: str
    reason: str
    weights_after: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class ExecRisk:
    """What the execution step needs to hold the decision's VaR limit on the book it actually executes.

    The daily Σ the decision's overlays measured VaR with, as a dense matrix (`cov`) or, when it came from the
    factor model, in factor form (`loadings` N×k, `factor_var` k, `specific_var` N: Σ = B diag(f) Bᵀ + diag(d),
    so a 500-name universe stores O(N·k) numbers, not N²). The ledger keeps it with the run's pending orders (in
    its `state` table) until they fill or are cancelled, so a process that executes orders decided by another
    one checks exactly what a continuous backtest checks. Not part of the decision record.
    """

    var_limit: float  # 1-day VaR as a fraction of NAV
    confidence: float
    cov: np.ndarray | None = None
    loadings: np.ndarray | None = None
    factor_var: np.ndarray | None = None
    specific_var: np.ndarray | None = None

    def to_json(self) -> str:
        """Exact (floats round-trip through their repr), finite, sorted keys."""
        d: dict[str, Any] = {"var_limit": float(self.var_limit), "confidence": float(self.confidence)}
        for name in ("cov", "loadings", "factor_var", "specific_var"):
            a = getattr(self, name)
            if a is not None:
                d[name] = np.asarray(a, dtype=float).tolist()
        return json.dumps(d, sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ExecRisk:
        d = json.loads(text)
        arrays = {
            k: np.asarray(d[k], dtype=float)
            for k in ("cov", "loadings", "factor_var", "specific_var")
            if d.get(k) is not None
        }
        return cls(var_limit=float(d["var_limit"]), confidence=float(d["confidence"]), **arrays)


@dataclass(frozen=True)
class Decision:
    """The output of `decide()`: targets after overlays plus a record of how they were reached.

    `status`: 'rebalance' (trade to targets), 'hold' (keep current holdings: no signal, band, stop cooldown
    already in cash, ...), or 'no_trade' (could not decide safely: the reason says why).
    """

    asof: dt.date
    profile: str
    status: Literal["rebalance", "hold", "no_trade"]
    reason: str
    tickers: tuple[str, ...]
    targets: np.ndarray  # weights per ticker after overlays; cash = 1 - sum
    stop: StopState  # state machine after this decision
    record: dict[
        str, Any
    ]  # stage-by-stage record (inputs digests, forecast, risk, optimizer, overlays, timings)
    # for a 'rebalance' under an enabled VaR limit: what the execution step re-checks (not in the record)
    exec_risk: ExecRisk | None = None

    @property
    def cash(self) -> float:
        return cash_weight(self.targets)

    def targets_dict(self) -> dict[str, float]:
        d = {t: float(w) for t, w in zip(self.tickers, self.targets, strict=True)}
        d["cash"] = self.cash
        return d


def round_weights(w: np.ndarray, decimals: int = 10) -> np.ndarray:
    """Round away solver noise so that identical inputs give byte-identical outputs."""
    out = np.round(np.asarray(w, dtype=float), decimals)
    out[np.abs(out) < 10.0 ** (-decimals)] = 0.0
    return out + 0.0  # no negative zeros


def _plain(o: Any) -> Any:
    """One pass to JSON-native values: numpy scalars/arrays, dates, dataclasses; NaN/inf become None.

    Exact-type checks first: decision records are ~1,000 nodes of str/float/dict and this runs several times
    per decision."""
    t = type(o)
    if t is str or t is int or t is bool or o is None:
        return o
    if t is float:
        return o if math.isfinite(o) else None
    if t is dict:
        return {k if type(k) is str else str(k): _plain(v) for k, v in o.items()}
    if t is list or t is tuple:
        return [_plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return _plain(o.tolist())
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, float | np.floating):
        f = float(o)
        return f if math.isfinite(f) else None
    if isinstance(o, bool | int | str):
        return o
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_plain(v) for v in o]
    if isinstance(o, dt.date | dt.datetime):
        return o.isoformat()
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return _plain(o.to_dict() if hasattr(o, "to_dict") else dataclasses.asdict(o))
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


# json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False), built once: a
# decision commits several of these, and a fresh encoder per call was a measurable part of the ledger stage.
# Records are trees (no cycle check; a cycle would raise RecursionError either way).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, NaN/inf as null: the form that is hashed and written.

    Plain data (the usual case) is encoded directly; numpy values, dates or non-finite floats make json raise,
    and only then is the object normalized first. Both paths give the same bytes for plain data."""
    try:
        return _CANONICAL.encode(obj)
    except (TypeError, ValueError):
        return _CANONICAL.encode(_plain(obj))


def digest(obj: Any) -> str:
    """SHA-256 of an object's canonical JSON, or of raw bytes / a numpy array's bytes."""
    h = hashlib.sha256()
    if isinstance(obj, bytes | bytearray | memoryview):
        h.update(obj)
    elif isinstance(obj, np.ndarray):
        h.update(str(obj.shape).encode())
        h.update(np.ascontiguousarray(obj, dtype=float).tobytes())
    else:
        h.update(canonical_json(obj).encode())
    return h.hexdigest()
