"""Shared fixtures. Real prices come from $AGENT_SHARED_DATA (default ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    return Path(os.environ.get("AGENT_SHARED_DATA") or REPO.parent / "shared" / "data").resolve()


def _require() -> bool:
    return os.environ.get("AGENT_REQUIRE_SHARED_DATA", "") not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Directory of the real price files; skips (or fails in CI) when absent."""
    d = shared_data_dir()
    if not (d / "sector_etfs_daily.csv").exists():
        if _require():
            pytest.fail(f"AGENT_REQUIRE_SHARED_DATA is set but the shared data is missing at {d}")
        pytest.skip(f"real prices not found at {d} (set AGENT_SHARED_DATA)")
    return d


@pytest.fixture(scope="session")
def sector_prices(shared_data: Path):
    import pandas as pd

    df = pd.read_csv(shared_data / "sector_etfs_daily.csv", index_col="date", parse_dates=True)
    return df.astype("float64")


@pytest.fixture(scope="session")
def djia_prices(shared_data: Path):
    import pandas as pd

    return pd.read_csv(shared_data / "djia_daily.csv", index_col="date", parse_dates=True).astype("float64")


@pytest.fixture()
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every agent path at a temp dir and clear AGENT_* settings from the environment."""
    for k in list(os.environ):
        if k.startswith("AGENT_") and k not in ("AGENT_SHARED_DATA", "AGENT_REQUIRE_SHARED_DATA"):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AGENT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGENT_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


@pytest.fixture(scope="session")
def gbm_frame():
    """Seeded GBM closes for the nine sector tickers, 2016-01..2020-06 (no shared data needed)."""
    from tests.synthetic import gbm_prices

    return gbm_prices()
