"""Typed, frozen settings: defaults < profile < TOML file < environment (AGENT_*, nested with __) < CLI flags.

A profile (agent/profiles/<name>.toml) is a complete strategy; a user's TOML names one with `profile = "..."`
and overrides any section. Every section forbids unknown keys: a typo must never be silently ignored.
"""

from __future__ import annotations

import contextvars
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agent.errors import ConfigError, UsageError
from agent.settings_compat import ADDED, DEPRECATED, DIGEST_NAMES, REMOVED, migrate_layer
from agent.settings_sections import (
    AllocationSettings,
    BacktestSettings,
    DataSettings,
    DrawdownStopSettings,
    ExecutionSettings,
    ForecastSettings,
    LoggingSettings,
    OpsSettings,
    OverlaySettings,
    PathSettings,
    ResearchSettings,
    RiskSettings,
    ScheduleSettings,
    SkillSettings,
    UniverseSettings,
    VarLimitSettings,
    VolTargetSettings,
)

__all__ = [
    "AllocationSettings",
    "BacktestSettings",
    "DataSettings",
    "DrawdownStopSettings",
    "ExecutionSettings",
    "ForecastSettings",
    "LoggingSettings",
    "OpsSettings",
    "OverlaySettings",
    "PathSettings",
    "ResearchSettings",
    "RiskSettings",
    "ScheduleSettings",
    "Settings",
    "SkillSettings",
    "UniverseSettings",
    "VarLimitSettings",
    "VolTargetSettings",
    "available_profiles",
    "load_settings",
    "profile_path",
    "repo_root",
]

PROFILES_DIR = Path(__file__).parent / "profiles"
# Environment variables in the AGENT_ namespace that are not settings fields.
_NON_SETTING_ENV = {
    "AGENT_CONFIG",
    "AGENT_SHARED_DATA",
    "AGENT_REQUIRE_SHARED_DATA",
    "AGENT_DATA_DIR",
    "AGENT_STATE_DIR",
    "AGENT_MODELS_DIR",
    "AGENT_PROFILE",
    "AGENT_LOG_LEVEL",
    "AGENT_NO_PROGRESS",
}

# The file layer (profile + user TOML, already merged) for the settings source below.
_FILE_LAYER: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "_FILE_LAYER", default=None
)


class _FileLayerSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_LAYER.get() or {})


class Settings(BaseSettings):
    """Everything a run needs. Frozen: a decision can never change its own configuration."""

    model_config = SettingsConfigDict(
        env_prefix="AGENT_", env_nested_delimiter="__", extra="forbid", frozen=True, case_sensitive=False
    )

    profile: str = "default"
    description: str = ""
    universe: UniverseSettings = UniverseSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    data: DataSettings = DataSettings()
    risk: RiskSettings = RiskSettings()
    allocation: AllocationSettings = AllocationSettings()
    forecast: ForecastSettings = ForecastSettings()
    skill: SkillSettings = SkillSettings()
    research: ResearchSettings = ResearchSettings()
    overlays: OverlaySettings = OverlaySettings()
    execution: ExecutionSettings = ExecutionSettings()
    backtest: BacktestSettings = BacktestSettings()
    paths: PathSettings = PathSettings()
    logging: LoggingSettings = LoggingSettings()
    ops: OpsSettings = OpsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs are the CLI flags: highest precedence; then env; then profile+file; then defaults.
        return (init_settings, env_settings, _FileLayerSource(settings_cls))

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        tickers = set(self.universe.tickers)
        for group, members in self.universe.groups.items():
            unknown = sorted(set(members) - tickers)
            if unknown:
                raise ValueError(
                    f"universe.groups.{group} names tickers not in the universe: {', '.join(unknown)}"
                )
        for caps, where in (
            (self.allocation.group_caps, "allocation"),
            (self.overlays.group_caps, "overlays"),
        ):
            missing = sorted(set(caps) - set(self.universe.groups))
            if missing:
                raise ValueError(f"{where}.group_caps names undefined groups: {', '.join(missing)}")
        if self.universe.bond and self.universe.bond not in tickers:
            raise ValueError(f"universe.bond {self.universe.bond!r} is not in universe.tickers")
        return self

    @model_validator(mode="after")
    def _satisfiable(self) -> Settings:
        """Settings that cannot work are configuration errors at load time, not runs that quietly do something
        else (a fully invested book of 9 assets capped at 5% each is infeasible by construction)."""
        n = len(self.universe.tickers)
        a, o = self.allocation, self.overlays
        if a.fully_invested:
            for cap, where in (
                (a.max_weight, "allocation.max_weight"),
                (o.max_weight, "overlays.max_weight"),
            ):
                if cap is not None and cap * n < 1 - 1e-9:
                    raise ValueError(
                        f"{where} {cap:g} x {n} assets = {cap * n:.4g} < 1: a fully invested book is infeasible "
                        f"(raise {where} to at least {1 / n:.4g} or set allocation.fully_invested = false)"
                    )
        if a.fully_invested:
            for caps, where in ((a.group_caps, "allocation"), (o.group_caps, "overlays")):
                if not caps:
                    continue
                # an upper bound on what a book can hold: each capped group at most its cap, every other ticker
                # at most max_weight; below 1 no fully invested book exists
                capped = {t for g in caps for t in self.universe.groups.get(g, ())}
                cap_w = min(a.max_weight, o.max_weight or 1.0)
                most = sum(caps.values()) + cap_w * sum(1 for t in self.universe.tickers if t not in capped)
                if most < 1 - 1e-9:
                    raise ValueError(
                        f"{where}.group_caps leave at most {most:.4g} of the book investable (< 1): a fully "
                        "invested book is infeasible"
                    )
        if a.min_weight * n > 1 + 1e-9:
            raise ValueError(
                f"allocation.min_weight {a.min_weight:g} x {n} assets = {a.min_weight * n:.4g} > 1: infeasible"
            )
        windows = {
            "risk.corr_window": self.risk.corr_window,
            "risk.fit_window": self.risk.fit_window,
            "risk.sample_window": self.risk.sample_window,
            "risk.min_observations": self.risk.min_observations,
            "allocation.mvo_window": a.mvo_window,
            "backtest.rolling_window": self.backtest.rolling_window,
        }
        for key, w in windows.items():
            if w > MAX_WINDOW_SESSIONS:
                raise ValueError(
                    f"{key} = {w} sessions is longer than any price history (at most {MAX_WINDOW_SESSIONS}, "
                    "about 40 years of sessions)"
                )
        e = self.execution
        if e.fixed_cost * n >= e.initial_capital:
            raise ValueError(
                f"execution.fixed_cost {e.fixed_cost:g} x {n} assets >= execution.initial_capital "
                f"{e.initial_capital:g}: the first deployment alone would cost the whole capital"
            )
        return self

    # ----- derived values -----
    @property
    def horizon(self) -> int:
        return self.risk.horizon or self.schedule.holding_sessions

    @property
    def models_root(self) -> Path:
        return self.paths.models_dir or Path(
            os.environ.get("AGENT_MODELS_DIR") or repo_root() / "exported_models"
        )

    @property
    def profile_models_dir(self) -> Path:
        return self.forecast.models_dir or self.models_root / self.profile

    def strategy_digest(self) -> str:
        """SHA-256 of what decides: every section but paths and logging (where files go and how verbose the
        logs are never change a decision), so the daemon and a backtest of one strategy share the digest."""
        from agent.decision import digest

        plain = {k: v for k, v in self.redacted().items() if k not in ("paths", "logging", "ops")}
        if not plain.get("research", {}).get("leak"):  # no research mode: every existing digest is unchanged
            plain.pop("research", None)
        for section, names in DIGEST_NAMES.items():
            plain[section] = {names.get(k, k): v for k, v in plain[section].items()}
        for section, kept in REMOVED.items():  # removed no-op keys hash as the value they always had
            plain[section] = {**plain[section], **kept}
        for section, added in ADDED.items():  # keys added later hash only away from their old-behaviour value
            plain[section] = {k: v for k, v in plain[section].items() if k not in added or v != added[k]}
        return digest(plain)

    @property
    def deprecations(self) -> tuple[str, ...]:
        """Deprecated keys the configuration used (each already mapped to its new name)."""
        return self._deprecations

    _deprecations: tuple[str, ...] = PrivateAttr(default=())

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by '**********'."""
        return self.model_dump(mode="json")  # SecretStr dumps as '**********' in json mode


MAX_WINDOW_SESSIONS = 10_000  # ~40 years of NYSE sessions: longer than any price file the agent reads


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def profile_path(name: str) -> Path:
    return PROFILES_DIR / f"{name}.toml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} is a directory, not a TOML file: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid UTF-8 (byte {e.start}): TOML must be UTF-8") from None
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _check_env_namespace() -> None:
    """Top-level AGENT_* typos (AGENT_PROFLE=...) would otherwise be ignored silently."""
    fields = {name.upper() for name in Settings.model_fields}
    for key in os.environ:
        if not key.upper().startswith("AGENT_") or key.upper() in _NON_SETTING_ENV:
            continue
        head = key[len("AGENT_") :].split("__", 1)[0].upper()
        if head not in fields:
            raise ConfigError(f"unknown environment variable {key}: AGENT_<section>__<key> expected")


def _format_validation_error(e: ValidationError, source: str) -> str:
    first = e.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not isinstance(p, int)) or "settings"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; see `agent config show` for the valid keys)"
    elif "input" in first and first["type"] not in ("missing",):
        inp = first["input"]
        if not isinstance(inp, dict | list):
            msg = f"{msg} (got {inp!r})"
    more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"invalid setting {loc}: {msg}{more} [{source}]"


def load_settings(
    config: Path | str | None = None,
    *,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the effective settings. Raises ConfigError/UsageError with one line, never a traceback."""
    _check_env_namespace()
    config = config or os.environ.get("AGENT_CONFIG") or None
    user: dict[str, Any] = _read_toml(Path(config), "config file") if config else {}
    name = profile or os.environ.get("AGENT_PROFILE") or user.get("profile") or "default"
    if not isinstance(name, str):
        raise ConfigError(f"invalid setting profile: expected a name, got {name!r}")
    ppath = profile_path(name)
    if not ppath.exists():
        raise UsageError(f"unknown profile {name!r}", hint=f"available: {', '.join(available_profiles())}")
    notes: list[str] = []
    dtoken = DEPRECATED.set(notes)
    try:  # old key names are mapped per layer, so a user file's garch_p overrides a profile's arch_lags
        layer = _deep_merge(migrate_layer(_read_toml(ppath, "profile")), migrate_layer(user))
    except ValueError as e:
        raise ConfigError(f"invalid setting {e}") from None
    finally:
        DEPRECATED.reset(dtoken)
    layer["profile"] = name
    cli: dict[str, Any] = {}
    if os.environ.get("AGENT_DATA_DIR"):
        layer = _deep_merge(layer, {"paths": {"data_dir": os.environ["AGENT_DATA_DIR"]}})
    if os.environ.get("AGENT_STATE_DIR"):
        layer = _deep_merge(layer, {"paths": {"state_dir": os.environ["AGENT_STATE_DIR"]}})
    if os.environ.get("AGENT_LOG_LEVEL"):
        layer = _deep_merge(layer, {"logging": {"level": os.environ["AGENT_LOG_LEVEL"].upper()}})
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = cli
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    token = _FILE_LAYER.set(layer)
    dtoken = DEPRECATED.set(notes)
    try:
        settings = Settings(**cli)
    except ValidationError as e:
        source = f"config {config}" if config else f"profile {name}"
        raise ConfigError(_format_validation_error(e, source)) from None
    finally:
        _FILE_LAYER.reset(token)
        DEPRECATED.reset(dtoken)
    settings._deprecations = tuple(notes)
    return settings
