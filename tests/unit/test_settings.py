"""Settings precedence, validation and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError, UsageError
from agent.settings import available_profiles, load_settings


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "agent.toml"
    p.write_text(text)
    return p


def test_defaults_come_from_the_default_profile(isolated_env: Path) -> None:
    s = load_settings()
    assert s.profile == "default"
    assert s.universe.tickers == ("XLK", "XLF", "XLY", "XLE", "XLV", "XLP", "XLI", "XLB", "XLU")
    assert s.universe.benchmark == "SPY"
    assert s.schedule.frequency == "weekly"
    assert (s.risk.method, s.risk.arch_lags, s.risk.garch_lags) == ("garch", 1, 2)
    assert s.horizon == 5  # weekly holding period


def test_precedence_profile_file_env_cli(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _write(
        isolated_env,
        'profile = "demo"\n[risk]\ncorr_window = 90\newma_lambda = 0.9\n[execution]\ncost_bps = 7\n',
    )
    s = load_settings(cfg)
    assert s.profile == "demo" and s.universe.benchmark == "SP500"  # profile layer
    assert s.risk.corr_window == 90 and s.execution.cost_bps == 7  # file beats profile
    monkeypatch.setenv("AGENT_RISK__CORR_WINDOW", "120")
    s = load_settings(cfg)
    assert (
        s.risk.corr_window == 120 and s.risk.ewma_lambda == 0.9
    )  # env beats file, nested merge keeps the rest
    s = load_settings(cfg, overrides={"risk.corr_window": 30})
    assert s.risk.corr_window == 30  # CLI beats env


def test_env_paths_and_config_var(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _write(isolated_env, "[execution]\ncost_bps = 3\n")
    monkeypatch.setenv("AGENT_CONFIG", str(cfg))
    s = load_settings()
    assert s.execution.cost_bps == 3
    assert s.paths.data_dir == isolated_env / "data"
    assert s.paths.state_dir == isolated_env / "state"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[risk]\nmethdo = 'ewma'\n", "risk.methdo: unknown key"),
        ("[risk]\nmethod = 'magic'\n", "risk.method"),
        ("[allocation]\nmin_weight = 0.5\nmax_weight = 0.2\n", "min_weight 0.5 exceeds max_weight 0.2"),
        ("[execution]\ncost_bps = -1\n", "execution.cost_bps"),
        ("[schedule]\ntime = '25:00'\n", "schedule.time"),
        ("[schedule]\ntimezone = 'Mars/Olympus'\n", "unknown time zone"),
        ("[universe]\ntickers = ['A', 'A']\n", "duplicate tickers: A"),
        ("[universe]\ntickers = []\n", "at least one ticker"),
        ("bogus = 1\n", "bogus: unknown key"),
        ("[data]\nsource = 'file'\n", "needs prices_file"),
        ("[overlays]\norder = ['max_weight', 'nope']\n", "overlays.order"),
    ],
)
def test_bad_values_give_one_line_naming_the_field(isolated_env: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        load_settings(_write(isolated_env, text))
    line = ei.value.one_line()
    assert needle in line
    assert "\n" not in line


def test_bad_toml_and_missing_file(isolated_env: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(_write(isolated_env, "[risk\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_settings(isolated_env / "nope.toml")


def test_unknown_profile_lists_the_available_ones(isolated_env: Path) -> None:
    with pytest.raises(UsageError) as ei:
        load_settings(profile="nope")
    assert "demo" in ei.value.one_line() and "default" in ei.value.one_line()


def test_env_typos_are_errors(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_RISKK__METHOD", "ewma")
    with pytest.raises(ConfigError, match="AGENT_RISKK__METHOD"):
        load_settings()
    monkeypatch.delenv("AGENT_RISKK__METHOD")
    monkeypatch.setenv("AGENT_RISK__METHOOD", "ewma")
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings()


def test_secrets_are_redacted(isolated_env: Path) -> None:
    s = load_settings(_write(isolated_env, "[data]\nproxy = 'http://user:hunter2@proxy:8080'\n"))
    assert s.data.proxy is not None and "hunter2" in s.data.proxy.get_secret_value()
    assert "hunter2" not in str(s.redacted())


def test_settings_are_frozen(isolated_env: Path) -> None:
    s = load_settings()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        s.risk.method = "ewma"  # type: ignore[misc]


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_validates(isolated_env: Path, name: str) -> None:
    s = load_settings(profile=name)
    assert s.profile == name and s.universe.tickers
    assert s.description


def test_group_caps_need_defined_groups(isolated_env: Path) -> None:
    with pytest.raises(ConfigError, match="undefined groups: tech"):
        load_settings(_write(isolated_env, "[allocation]\ngroup_caps = { tech = 0.3 }\n"))
    s = load_settings(
        _write(
            isolated_env,
            "[universe]\ngroups = { tech = ['XLK'] }\n[allocation]\ngroup_caps = { tech = 0.3 }\n",
        )
    )
    assert s.allocation.group_caps == {"tech": 0.3}
