"""The configuration reference (docs/CONFIGURATION.md), generated from the settings model itself.

Why generated: a hand-written reference drifts from the code and mixes code defaults with a profile's values.
Here every row comes from `agent.settings.Settings` (name, type, default, bounds, description, environment
variable), and each profile's own values are listed separately, next to the code default they replace.
tests/unit/test_configref.py fails when docs/CONFIGURATION.md is not what `render()` produces now; regenerate
with `python docs/make_config_reference.py`.

Descriptions come from the field's `description=`, else from the comment on its line in agent/settings.py, else
from the notes below (carried over from the old hand-written README block).
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["field_rows", "profile_rows", "render"]

_NOTES = {
    "profile": "a built-in profile to start from (`agent config profiles`)",
    "description": "one line about the strategy, shown in reports",
    "universe.benchmark": 'shown in reports ("" = none)',
    "universe.groups": "group name -> member tickers (for group caps)",
    "schedule.frequency": "weekly = last session of the ISO week",
    "schedule.time": "after the close, exchange time",
    "data.prices_file": 'for source = "file": wide CSV/Parquet; relative paths also resolve in $AGENT_SHARED_DATA',
    "data.demo_set": "skfolio's bundled prices: sp500 (20 stocks 1990–2022) | factors",
    "data.start": "first date fetched into an empty store",
    "data.on_invalid": "ffill = forward-fill at most max_ffill sessions, recorded",
    "data.max_jump": "|one-day return| above this is reported as implausible",
    "risk.garch_p": "arch's p: ARCH (squared shock) lags",
    "risk.garch_q": "arch's q: GARCH (variance) lags — study 004's GARCH(1,2)",
    "risk.fit_window": "sessions used to estimate GARCH parameters",
    "risk.refit_every": "sessions between re-estimations (warm-started); filtered forward in between",
    "risk.corr_window": "rolling correlation window: Σ = D·R·D",
    "risk.ewma_lambda": "RiskMetrics decay",
    "risk.horizon": "averaging horizon in sessions (unset = the schedule's holding period: 1/5/21/63)",
    "risk.min_observations": "fewer → EWMA fallback for that asset, recorded",
    "risk.eigen_floor": "PSD repair floor",
    "risk.shrinkage": "correlation shrinkage toward the identity (N close to or above corr_window)",
    "allocation.fully_invested": "false allows cash",
    "allocation.risk_aversion": "for mean_variance",
    "allocation.target_volatility": "annualized: target_volatility and proportional",
    "allocation.risk_free_rate": "annualized",
    "allocation.turnover_cap": "sum |w − w_prev| per rebalance (unset = none)",
    "allocation.costs_in_objective": "execution.cost_bps · |w − w_prev| in the objective",
    "allocation.fallbacks": "tried in order when a solve fails",
    "allocation.mvo_window": "static MVO training window (sessions)",
    "forecast.models_dir": "default: exported_models/<profile>",
    "forecast.rebalance_threshold": "sector-rnn: trade only when p(rebalance) ≥ this",
    "overlays.order": "the order the overlays run in",
    "overlays.min_trade": "minimum trade notional (currency)",
    "execution.lag_sessions": "decide at close t, trade at close t+lag",
    "execution.cost_bps": "per side, on traded notional, against the drifted holdings",
    "execution.fixed_cost": "per trade (currency)",
    "execution.initial_capital": "currency",
    "backtest.risk_free": "zero | tbill (3-month T-bill from the shared data) | a number (annual)",
    "backtest.n_trials": "strategies tried, for the deflated Sharpe ratio",
    "paths.data_dir": "price store (or AGENT_DATA_DIR / --data-dir)",
    "paths.state_dir": "ledger.sqlite, decisions.jsonl, targets/, logs/ (or AGENT_STATE_DIR / --state-dir)",
    "paths.models_dir": "default: the repository's exported_models/ (or AGENT_MODELS_DIR)",
    "logging.format": "auto = console on a TTY, JSON otherwise",
    "logging.file": "JSON lines; default <state_dir>/logs/agent.jsonl for run/backtest",
}


def _type_name(tp: Any) -> str:
    """A reader's name for an annotation: 'float ≥ 0', 'weekly | monthly', 'list of str', 'secret str'."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [_type_name(a) for a in args if a is not type(None)]
        opt = " (optional)" if type(None) in args else ""
        return " or ".join(parts) + opt
    if origin in (tuple, list):
        inner = args[0] if args else Any
        return f"list of {_type_name(inner)}"
    if origin is dict:
        return f"table of {_type_name(args[1])}" if len(args) == 2 else "table"
    if isinstance(tp, type):
        if tp.__name__ == "SecretStr":
            return "secret str"
        if issubclass(tp, enum.Enum):
            return " \\| ".join(str(m.value) for m in tp)
        return {
            "Path": "path",
            "date": "date",
            "str": "str",
            "int": "int",
            "float": "float",
            "bool": "bool",
        }.get(tp.__name__, tp.__name__)
    return str(tp).replace("typing.", "")


def _bounds(field: Any) -> str:
    out = []
    for m in field.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                out.append(f"{sym} {v}")
    return ", ".join(out)


_HOME = "/__home__"


@contextmanager
def _neutral_home() -> Iterator[None]:
    """Defaults computed from $HOME / XDG variables are shown as '~/...', whoever generates the page."""
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")}
    try:
        for k in saved:
            os.environ.pop(k, None)
        os.environ["HOME"] = _HOME
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _value(v: Any) -> str:
    """A default or profile value as TOML-ish text."""
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, Path):
        return f'"{v}"'
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, enum.Enum):
        return _value(v.value)
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}" if v else "{}"
    if hasattr(v, "get_secret_value"):
        return "(secret)"
    return str(v)


def _comments(cls: type) -> dict[str, str]:
    """Trailing comments of `name: type = ...  # comment` lines in a class body."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    current = None
    for line in src.splitlines():
        m = re.match(r"^    (\w+)\s*:\s*[^#]*?(?:#\s*(.+))?$", line)
        if m and not line.lstrip().startswith(("def ", "@", "model_config")):
            current = m.group(1)
            if m.group(2):
                out.setdefault(current, m.group(2).strip())
            continue
        c = re.match(r"^\s{8,}.*#\s*(.+)$", line)  # a comment on a continuation line of the same field
        if c and current and current not in out:
            out[current] = c.group(1).strip()
    return out


def _default(field: Any) -> Any:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        with _neutral_home():
            v = field.default_factory()
        return Path(str(v).replace(_HOME, "~", 1)) if isinstance(v, Path) else v
    return None if field.default is PydanticUndefined else field.default


def field_rows(model: type | None = None, prefix: str = "") -> list[dict[str, str]]:
    """One row per leaf setting: name, type, default, bounds, environment variable, description."""
    from pydantic import BaseModel

    from agent.settings import Settings

    model = model or Settings
    comments = _comments(model)
    rows: list[dict[str, str]] = []
    for name, f in model.model_fields.items():  # type: ignore[attr-defined]
        dotted = f"{prefix}{name}"
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += field_rows(ann, f"{dotted}.")
            continue
        env = "AGENT_" + "__".join(p.upper() for p in dotted.split("."))
        desc = f.description or comments.get(name) or _NOTES.get(dotted, "")
        rows.append(
            {
                "name": dotted,
                "type": _type_name(ann),
                "default": _value(_default(f)),
                "bounds": _bounds(f),
                "env": env,
                "description": desc,
            }
        )
    return rows


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and not key.endswith(("groups", "group_caps", "named_windows")):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def profile_rows(defaults: Mapping[str, str]) -> dict[str, list[tuple[str, str, str]]]:
    """{profile: [(setting, profile value, code default)]} for the keys each profile file sets."""
    from agent.settings import PROFILES_DIR

    out: dict[str, list[tuple[str, str, str]]] = {}
    for path in sorted(PROFILES_DIR.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        flat = _flatten(data)
        out[path.stem] = [(k, _value(v), defaults.get(k, "—")) for k, v in flat.items()]
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if "\\|" not in text else text


def render() -> str:
    """The whole docs/CONFIGURATION.md."""
    rows = field_rows()
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python docs/make_config_reference.py` from agent/settings.py and agent/profiles/*.toml.",
        "     Do not edit by hand: tests/unit/test_configref.py fails when this file is out of date. -->",
        "",
        "Settings are layered: **code defaults < profile (`agent/profiles/<name>.toml`) < your TOML (`--config FILE`",
        "or `AGENT_CONFIG`) < environment (`AGENT_<SECTION>__<KEY>`) < command-line flags**. Every section rejects",
        "unknown keys (a typo is an error, exit 2); `agent config show` prints the effective settings with secrets",
        "redacted. `AGENT_DATA_DIR`, `AGENT_STATE_DIR`, `AGENT_MODELS_DIR`, `AGENT_PROFILE` and `AGENT_LOG_LEVEL`",
        "are shortcuts.",
        "",
        "## Settings and their code defaults",
        "",
        "The defaults below are the code's; a profile usually overrides many of them (next section).",
        "",
    ]
    section = None
    for r in rows:
        sec = r["name"].split(".")[0] if "." in r["name"] else ""
        if sec != section:
            section = sec
            lines += ["", f"### [{sec}]" if sec else "### top level", ""]
            lines += [
                "| setting | type | default | bounds | environment | description |",
                "|---|---|---|---|---|---|",
            ]
        lines.append(
            f"| `{r['name']}` | {_md(r['type'])} | `{_md(r['default'])}` | {r['bounds']} | `{r['env']}` | "
            f"{_md(r['description'])} |"
        )
    defaults = {r["name"]: r["default"] for r in rows}
    lines += [
        "",
        "## Profiles",
        "",
        "What each built-in profile sets, next to the code default it replaces.",
        "",
    ]
    for name, prow in profile_rows(defaults).items():
        lines += [f"### {name}", "", "| setting | profile value | code default |", "|---|---|---|"]
        lines += [f"| `{k}` | `{_md(v)}` | `{_md(d)}` |" for k, v, d in prow]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
