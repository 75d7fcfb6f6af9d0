"""The settings sections (one pydantic model per TOML table), split out of agent/settings.py to keep it small.

Why separate: agent/settings.py holds the layering/loading (defaults < profile < TOML < env < CLI); these are the
plain typed tables it validates into. Each forbids unknown keys so a typo is never silently ignored.
agent/configref.py reads the trailing comments on these class bodies to describe each field.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agent.settings_compat import RENAMES, drop_removed, rename_deprecated

__all__ = [
    "AllocationSettings",
    "BacktestSettings",
    "DataSettings",
    "DrawdownStopSettings",
    "ExecutionSettings",
    "ForecastSettings",
    "Frequency",
    "LoggingSettings",
    "OpsEvent",
    "OpsSettings",
    "OverlayName",
    "OverlaySettings",
    "PathSettings",
    "ResearchSettings",
    "RiskSettings",
    "ScheduleSettings",
    "SkillSettings",
    "UniverseSettings",
    "VarLimitSettings",
    "VolTargetSettings",
]

Frequency = Literal["daily", "weekly", "monthly", "quarterly", "every_n_sessions"]
OverlayName = Literal[
    "max_weight",
    "group_caps",
    "drawdown_stop",
    "var_limit",
    "vol_target",
    "turnover_cap",
    "no_trade_band",
    "entry_exit",
    "min_trade",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UniverseSettings(_Section):
    tickers: tuple[str, ...] = ("XLK", "XLF", "XLY", "XLE", "XLV", "XLP", "XLI", "XLB", "XLU")
    benchmark: str | None = "SPY"
    bond: str | None = None  # the bond leg of the 60/40 baseline, when the universe has one
    groups: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # group name -> members (for group caps)

    @field_validator("benchmark", "bond")
    @classmethod
    def _empty_is_none(cls, v: str | None) -> str | None:
        return v or None  # TOML has no null: "" means none

    @field_validator("tickers")
    @classmethod
    def _tickers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("must list at least one ticker")
        dupes = sorted({t for t in v if v.count(t) > 1})
        if dupes:
            raise ValueError(f"duplicate tickers: {', '.join(dupes)}")
        for t in v:
            if not re.fullmatch(r"[A-Za-z0-9^=._-]{1,20}", t):
                raise ValueError(f"not a ticker symbol: {t!r}")
        return v


class ScheduleSettings(_Section):
    frequency: Frequency = "weekly"
    every_n: int = Field(63, ge=1, le=1000)  # for every_n_sessions
    time: str = "16:30"  # local exchange time after the close
    timezone: str = "America/New_York"
    calendar: str = "XNYS"
    catch_up: Literal["latest", "skip"] = (
        "latest"  # a missed slot on restart: run the latest once, or skip it
    )
    misfire_grace_seconds: int = Field(6 * 3600, ge=1)

    @field_validator("time")
    @classmethod
    def _time(cls, v: str) -> str:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", v)
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise ValueError(f"expected HH:MM, got {v!r}")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v

    @property
    def holding_sessions(self) -> int:
        """Sessions between rebalances: the horizon over which forecasts and variances are averaged."""
        return {"daily": 1, "weekly": 5, "monthly": 21, "quarterly": 63}.get(self.frequency, self.every_n)


class DataSettings(_Section):
    source: Literal["yfinance", "file", "demo"] = "yfinance"
    prices_file: Path | None = None
    demo_set: Literal["sp500", "factors"] = "sp500"
    start: dt.date = dt.date(2005, 1, 1)  # first date fetched when the store is empty
    auto_adjust: bool = True  # explicit: yfinance's default has changed between releases
    retries: int = Field(3, ge=0, le=10)
    backoff_seconds: float = Field(2.0, ge=0)
    on_invalid: Literal["fail", "ffill"] = "ffill"
    max_ffill: int = Field(3, ge=0, le=20)  # at most this many consecutive sessions forward-filled
    max_jump: float = Field(0.5, gt=0)  # |one-day simple return| above this is flagged as implausible
    stale_sessions: int = Field(5, ge=1)  # this many identical closes in a row is a stale series
    proxy: SecretStr | None = None  # may carry credentials: redacted in `config show`

    @model_validator(mode="after")
    def _file_needs_path(self) -> DataSettings:
        if self.source == "file" and self.prices_file is None:
            raise ValueError("source = 'file' needs prices_file")
        return self


class RiskSettings(_Section):
    method: Literal["garch", "ewma", "sample"] = "garch"
    # Named for their role: arch_lags = lagged squared shocks (the α terms, arch's p), garch_lags = lagged
    # conditional variances (the β terms, arch's q). Study 004's GARCH(1,2) is
    # σ²_t = ω + α1·ε²_{t-1} + β1·σ²_{t-1} + β2·σ²_{t-2}: one shock lag, two variance lags.
    # The old names garch_p / garch_q are accepted, mapped here and reported as deprecated.
    arch_lags: int = Field(1, ge=1, le=5)  # lagged squared shocks (α terms, arch's p); old name garch_p (deprecated)
    garch_lags: int = Field(2, ge=1, le=5)  # lagged variances (β terms, arch's q); old name garch_q (deprecated)
    distribution: Literal["normal", "t"] = "normal"
    fit_window: int = Field(1000, ge=100)  # sessions of returns used to estimate GARCH parameters
    refit_every: int = Field(21, ge=1)  # sessions between GARCH re-estimations (filtered forward in between)
    corr_window: int = Field(60, ge=10)
    ewma_lambda: float = Field(0.94, gt=0, lt=1)
    sample_window: int = Field(252, ge=20)
    horizon: int | None = Field(None, ge=1)  # averaging horizon; default = the schedule's holding period
    min_observations: int = Field(250, ge=30)
    eigen_floor: float = Field(1e-10, ge=0)
    shrinkage: float = Field(0.0, ge=0, le=1)  # toward the diagonal, for correlation windows shorter than N
    # Σ for large universes (agent/risk/factor.py): "factor" = correlation shrunk toward I (Ledoit-Wolf or OAS,
    # closed-form intensity) + PCA factor model, full rank by construction and solved in factor form; "auto"
    # uses it from `factor_min_n` assets on, so the small profiles keep the full Σ (their decisions unchanged).
    model: Literal["full", "factor", "auto"] = "auto"
    factor_min_n: int = Field(100, ge=2)
    factors: int = Field(10, ge=1)  # principal components; a round default, not tuned (issue 12)
    factor_shrinkage: Literal["lw", "oas"] = "oas"

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        return rename_deprecated(data, "risk", RENAMES["risk"], old_wins=True)


class AllocationSettings(_Section):
    method: Literal[
        "max_sharpe",
        "min_variance",
        "mean_variance",
        "target_volatility",
        "equal_weight",
        "proportional",
        "model_weights",
        "static_mvo",
    ] = "max_sharpe"
    min_weight: float = Field(0.0, ge=0, le=1)
    # an optimizer BOUND (the solver re-allocates around it); overlays.max_weight is a hard cap applied after
    # allocation whose excess goes to cash
    max_weight: float = Field(1.0, gt=0, le=1)
    fully_invested: bool = True
    group_caps: dict[str, float] = Field(default_factory=dict)
    risk_aversion: float = Field(5.0, gt=0)
    target_volatility: float = Field(0.10, gt=0)  # annualized
    risk_free_rate: float = 0.0  # annualized
    # an optimizer CONSTRAINT sum|w - w_prev| <= cap inside the solve; overlays.turnover_cap instead scales the
    # final trades down after allocation
    turnover_cap: float | None = Field(None, gt=0)
    costs_in_objective: bool = True
    solver: str = "CLARABEL"
    # auto: compile once with cvxpy Parameters (DPP) below ~80 assets, rebuild above (measured faster there);
    # "rebuild" every solve is the naive reference configuration of the benchmarks.
    compile: Literal["auto", "dpp", "rebuild"] = "auto"
    fallbacks: tuple[Literal["min_variance", "equal_weight", "previous", "cash"], ...] = (
        "min_variance",
        "previous",
        "cash",
    )
    expected_returns: Literal["model", "historical"] = "model"
    mvo_window: int = Field(252 * 5, ge=60)  # static MVO: sessions of the training window

    @model_validator(mode="after")
    def _bounds(self) -> AllocationSettings:
        if self.min_weight > self.max_weight:
            raise ValueError(f"min_weight {self.min_weight} exceeds max_weight {self.max_weight}")
        return self


class ForecastSettings(_Section):
    model: Literal["onnx", "none"] = "onnx"
    models_dir: Path | None = None  # default: exported_models/<profile>
    rebalance_threshold: float = Field(0.5, ge=0, le=1)  # sector-rnn: trade only when p(rebalance) ≥ this
    # research (issue 9): seeded noise with the forecasts' cross-sectional scale replaces the model output
    placebo: int | None = Field(None, ge=0)
    # research, look-ahead: a synthetic forecast with this IC built from realized future returns. Refused
    # everywhere except a replay that hands the engine the future explicitly (docs/make_skill.py, tests).
    oracle_ic: float | None = Field(None, ge=-1, le=1)
    oracle_seed: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        return drop_removed(data, "forecast")


LeakMode = Literal["models", "quarter_mu", "quarter_vol"]


class ResearchSettings(_Section):
    """Look-ahead research modes (issue 13's leakage audit): the studies' leaky procedures, replay only.

    Refused (one line, exit 2) by `agent run`, the daemon, `audit replay` and anything that is not a replay;
    a replay that uses one labels every decision record, metrics_detail.json and the report as look-ahead.
    """

    leak: tuple[LeakMode, ...] = Field(
        (),
        description="look-ahead modes, replay only: models = models trained with look-ahead (random k-fold, "
        "scalers on all data, same-week label; `python -m training leaky`) from forecast.models_dir, each week "
        "from the fold that held it out; quarter_mu = mu is the mean of the one-step forecasts over the coming "
        "holding period, each from realized prices (study 004); quarter_vol = GARCH vols averaged the same way",
    )


class SkillSettings(_Section):
    """Skill-aware allocation (issue 9): forecasts tilt a reference portfolio as far as measured skill earns.

    The optimizer is mean-variance with ``allocation.risk_aversion`` as delta, fed mu = Black–Litterman (or
    Grinold–Kahn) posterior around the reference's implied returns pi = delta * Sigma @ w_ref.
    """

    enabled: bool = False  # off: the study-faithful path (the forecast goes straight into the optimizer)
    reference: Literal["equal_weight", "inverse_vol", "risk_parity", "static_mvo", "weights"] = "equal_weight"
    reference_weights: dict[str, float] = Field(default_factory=dict)  # for reference = "weights"
    combine: Literal["black_litterman", "grinold_kahn"] = "black_litterman"
    tau: float = Field(0.05, gt=0, le=1)  # BL prior uncertainty scale
    gate_t: float = Field(2.0, ge=0)  # skill t-stat below this: mu = pi (0 disables the gate)
    # sustained evidence against multiple testing (agent.skill.tracker.sustained_t): the gate opens only when the
    # t-stat was >= gate_t at each of the last gate_sustain maturities of forecasts; 1 = the t-stat at asof alone
    gate_sustain: int = Field(1, ge=1)  # open only if t >= gate_t at each of the last N maturities (1: at asof)
    halflife: float = Field(26.0, gt=0)  # live skill: half-life in matured forecasts
    min_live: int = Field(20, ge=2)  # matured forecasts before live skill counts (a t-stat on fewer is noise)
    prior_se_multiplier: float = Field(2.0, ge=1)  # widen the validation IC's error (early stopping used it)
    use_validation_prior: bool = True
    # the cost in the objective is this x the configured bps. The tilt's alpha enters scaled by
    # risk_aversion / active_risk_aversion, so at 1 the cost counts active/delta times against the alpha the
    # posterior states; delta/active puts it at face value (rule C chose 2 x delta/active, docs/SKILL.md)
    cost_multiplier: float = Field(1.0, ge=0)  # turnover penalty = this x the cost in the objective
    # aversion to active risk (the tilt away from the reference): the posterior's excess over pi is scaled by
    # risk_aversion / active_risk_aversion, so the tilt is Sigma^-1 alpha / active_risk_aversion
    active_risk_aversion: float | None = Field(None, gt=0)
    warn_below_t: float = Field(-2.0)  # drift monitor: a warning when live t-stat falls below this


class DrawdownStopSettings(_Section):
    enabled: bool = False
    threshold: float = Field(0.10, gt=0, lt=1)  # drawdown from peak NAV that stops trading
    cooldown_sessions: int = Field(5, ge=1)
    peak_reset: Literal["reentry", "never"] = "reentry"  # on re-entry the peak resets to the NAV then


class VarLimitSettings(_Section):
    enabled: bool = False
    limit: float = Field(0.02, gt=0)  # 1-day VaR as a fraction of NAV
    confidence: float = Field(0.99, gt=0.5, lt=1)
    cut: float = Field(0.20, gt=0, le=1)  # exposure reduction per step
    max_steps: int = Field(20, ge=1)
    # release band: after a cut, full exposure returns only once the target's VaR is <= (1 - release) x limit;
    # in between, exposure is held at the current exposure (0: back as soon as the VaR is under the limit)
    release: float = Field(0.0, ge=0, lt=1)


class VolTargetSettings(_Section):
    enabled: bool = False
    target: float = Field(0.10, gt=0)  # annualized
    max_leverage: float = Field(1.0, gt=0, le=1)  # never above fully invested


class OverlaySettings(_Section):
    # entry/exit runs on the allocation's weights, before the exposure overlays: study 003 enters and exits on
    # the *optimized* weight, and a VaR cut or a vol-target scaling must shrink positions, not delete them (run
    # after them, two 20% VaR cuts took a 1/14 book to 4.6% a position and the exit rule sold all of it)
    order: tuple[OverlayName, ...] = (
        "max_weight",
        "group_caps",
        "entry_exit",
        "drawdown_stop",
        "var_limit",
        "vol_target",
        "turnover_cap",
        "no_trade_band",
        "min_trade",
    )
    max_weight: float | None = Field(None, gt=0, le=1)
    group_caps: dict[str, float] = Field(default_factory=dict)
    drawdown_stop: DrawdownStopSettings = DrawdownStopSettings()
    var_limit: VarLimitSettings = VarLimitSettings()
    vol_target: VolTargetSettings = VolTargetSettings()
    turnover_cap: float | None = Field(None, gt=0, le=2)
    no_trade_band: float = Field(0.0, ge=0, lt=1)  # skip trades smaller than this in weight
    entry_threshold: float = Field(0.0, ge=0, lt=1)  # enter a position only above this weight
    exit_threshold: float = Field(0.0, ge=0, lt=1)  # exit a position below this weight
    min_trade: float = Field(0.0, ge=0)  # minimum trade notional, in currency
    throttle_first_deployment: bool = False  # let the turnover cap throttle the first move out of all-cash


class ExecutionSettings(_Section):
    price: Literal["close"] = "close"
    lag_sessions: int = Field(1, ge=0, le=5)  # decide at close t, trade at close t+lag
    cost_bps: float = Field(10.0, ge=0, le=1000)
    fixed_cost: float = Field(0.0, ge=0)  # per trade, in currency
    min_notional: float = Field(100.0, ge=0)  # no fill below this notional, in currency (kept as held instead)
    initial_capital: float = Field(1_000_000.0, gt=0)


class BacktestSettings(_Section):
    baselines: tuple[Literal["equal_weight", "buy_and_hold", "static_mvo", "sixty_forty"], ...] = (
        "equal_weight",
        "buy_and_hold",
        "static_mvo",
        "sixty_forty",
    )
    risk_free: Literal["zero", "tbill"] | float = "zero"
    rolling_window: int = Field(126, ge=20)
    named_windows: dict[str, tuple[dt.date, dt.date]] = Field(default_factory=dict)
    n_trials: int = Field(1, ge=1)  # strategies tried, for the deflated Sharpe ratio
    kfolds: int = Field(5, ge=2)


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


class PathSettings(_Section):
    data_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "rebalance-agent" / "data"
    )
    state_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "rebalance-agent"
    )
    models_dir: Path | None = None  # root of exported models; default: the repository's exported_models/


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"  # auto: console on a TTY, JSON otherwise
    file: Path | None = None  # JSON lines; default: <state_dir>/logs/agent.jsonl for run/backtest


OpsEvent = Literal["run_failure", "stop_transition", "stale_data", "model_change"]


class OpsSettings(_Section):
    """Operations hooks (agent.ops): a Prometheus textfile and an optional webhook. Never change a decision."""

    metrics_file: Path | None = Field(
        None,
        description="Prometheus text file rewritten atomically after each run, for node-exporter's textfile "
        "collector (must end in .prom); unset = no metrics file",
    )
    webhook_url: SecretStr | None = Field(
        None, description="POST a JSON event here (may carry a token: redacted in `config show`); unset = off"
    )
    webhook_timeout_seconds: float = Field(5.0, gt=0, le=60, description="timeout of one webhook attempt")
    webhook_retries: int = Field(2, ge=0, le=10, description="extra attempts after a failed webhook POST")
    events: tuple[OpsEvent, ...] = Field(
        ("run_failure", "stop_transition", "stale_data", "model_change"),
        description="which events are sent to the webhook",
    )

    @field_validator("metrics_file")
    @classmethod
    def _prom_suffix(cls, v: Path | None) -> Path | None:
        if v is not None and v.suffix != ".prom":
            raise ValueError("ops.metrics_file must end in .prom (node-exporter's textfile collector reads *.prom)")
        return v
