"""docs/CONFIGURATION.md is generated from the settings model and must be up to date; its rows are complete."""

from __future__ import annotations

from pathlib import Path

from agent.configref import field_rows, render
from agent.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"


def test_configuration_md_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/CONFIGURATION.md is stale: run `python docs/make_config_reference.py`"
    )


def test_every_setting_has_a_row_with_its_default_and_env_var() -> None:
    rows = {r["name"]: r for r in field_rows()}
    s = Settings()
    for section in ("universe", "schedule", "data", "risk", "allocation", "execution", "backtest", "ops"):
        for name in type(getattr(s, section)).model_fields:
            key = f"{section}.{name}"
            if key in rows:
                assert rows[key]["env"] == f"AGENT_{section.upper()}__{name.upper()}"
            else:  # a nested section: its leaves are listed instead
                assert any(k.startswith(f"{key}.") for k in rows), key
    assert rows["ops.webhook_url"]["type"].startswith("secret")
    assert rows["execution.cost_bps"]["default"] == str(s.execution.cost_bps)
    assert rows["ops.webhook_retries"]["bounds"] == "≥ 0, ≤ 10"
    assert rows["paths.state_dir"]["default"].startswith('"~/')  # not the generating machine's home


def test_profile_values_are_listed_apart_from_code_defaults() -> None:
    text = render()
    code, profiles = text.split("## Profiles", 1)
    assert "### default" in profiles and "### equal-weight" in profiles
    assert "### default" not in code
    # the default profile's refit_every (63) is shown as a profile value beside the code default
    line = next(
        x for x in profiles.split("### default", 1)[1].splitlines() if x.startswith("| `risk.refit_every`")
    )
    assert "`63`" in line
