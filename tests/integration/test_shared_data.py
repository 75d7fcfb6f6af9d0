"""The real price files in $AGENT_SHARED_DATA and the bundled demo set: load, validate, calendar-check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.data.calendar import sessions, sessions_mask
from agent.data.sources import DemoSource, FileSource, read_price_file
from agent.data.store import PriceStore
from agent.data.validate import validate_prices
from agent.errors import ValidationFailedError

pytestmark = pytest.mark.shared_data

# file -> (rows, columns, first date, last date), from ../shared/data/README.md
NYSE_FILES = {
    "sector_etfs_daily.csv": (5185, 12, "2004-11-18", "2025-06-30"),
    "sector_etfs_extended_daily.csv": (6670, 16, "1998-12-22", "2025-06-30"),
    "djia_daily.csv": (5033, 30, "2005-01-03", "2024-12-31"),
    "crypto_mix_daily.csv": (1510, 5, "2019-01-02", "2024-12-31"),
    "sp500_universe_daily.csv.gz": (5017, 500, "2005-01-03", "2024-12-06"),
}


@pytest.mark.parametrize("name", list(NYSE_FILES))
def test_nyse_files_load_validate_and_sit_on_sessions(shared_data: Path, name: str) -> None:
    rows, cols, first, last = NYSE_FILES[name]
    df = read_price_file(shared_data / name)
    assert df.shape == (rows, cols)
    assert df.index[0] == pd.Timestamp(first) and df.index[-1] == pd.Timestamp(last)
    assert (df.dtypes == "float64").all() and df.index.name == "date" and df.index.tz is None
    assert sessions_mask(df.index).all(), "every price date of an NYSE file is a session"
    # and no session is missing between the first and the last date
    assert df.index.equals(sessions(first, last))
    clean, rep = validate_prices(df, policy="fail")  # raises on any blocking problem
    assert rep.ok and rep.filled == [] and rep.dropped_rows == []
    assert not [i for i in rep.issues if i.severity == "error"]
    pd.testing.assert_frame_equal(clean, df, check_freq=False)


def test_known_genuine_moves_are_warnings_not_errors(sector_prices: pd.DataFrame) -> None:
    _, rep = validate_prices(sector_prices, max_jump=0.15)
    jumps = {(i.ticker, i.date) for i in rep.warnings if i.kind == "jump"}
    assert ("XLE", "2020-03-09") in jumps and ("XLF", "2008-12-01") in jumps
    assert rep.ok


def test_djia_leading_blanks_are_not_gaps(djia_prices: pd.DataFrame) -> None:
    _, rep = validate_prices(djia_prices)
    assert rep.ok and djia_prices["V"].first_valid_index() == pd.Timestamp("2008-03-19")


def test_crypto_calendar_days_file(shared_data: Path) -> None:
    df = read_price_file(shared_data / "crypto_7d_daily.csv")
    assert df.shape == (2610, 2) and list(df.columns) == ["BTC-USD", "ETH-USD"]
    mask = sessions_mask(df.index)
    assert not mask.all() and mask.sum() < len(df) * 0.75  # weekends and holidays are expected here
    with pytest.raises(ValidationFailedError, match="non_session"):
        validate_prices(df)
    _, rep = validate_prices(df, calendar_check=False)
    assert rep.ok
    # ffill policy keeps only NYSE sessions
    clean, rep2 = validate_prices(df, policy="ffill")
    assert sessions_mask(clean.index).all() and len(rep2.dropped_rows) == int((~mask).sum())


def test_tbill_file_reads(shared_data: Path) -> None:
    df = read_price_file(shared_data / "tbill_3m_daily.csv")
    assert list(df.columns) == ["dtb3_pct"] and df.loc["2000-01-03", "dtb3_pct"] == pytest.approx(5.27)
    assert (df["dtb3_pct"] <= 0).sum() == 21  # genuine zero/negative rates: a rate file, not prices


def test_demo_set_is_real_sessions_and_valid() -> None:
    df = DemoSource("sp500").read()
    assert sessions_mask(df.index).all()
    _, rep = validate_prices(df)
    assert rep.ok
    f = DemoSource("factors").read()
    assert sessions_mask(f.index).all() and validate_prices(f)[1].ok


def test_sector_store_snapshot_matches_file(shared_data: Path, tmp_path: Path) -> None:
    src = FileSource(shared_data / "sector_etfs_daily.csv")
    df = src.read()
    store = PriceStore(tmp_path)
    store.import_frame(df, src.name)
    store = PriceStore(tmp_path)
    tick = ["XLK", "XLF", "XLY", "XLE", "XLV"]
    for asof in ("2008-10-13", "2020-03-14", "2025-06-30"):
        snap = store.snapshot(asof, tick, lookback=252)
        ref = df.loc[:asof, tick].tail(252)
        np.testing.assert_array_equal(snap.to_numpy(), ref.to_numpy())
        assert snap.index[-1] <= pd.Timestamp(asof)
    # an incremental update from the same file: nothing new, nothing changed
    res = store.update(src, ["XLK", "SPY"], end="2025-06-30")
    assert res.up_to_date == ["XLK", "SPY"] and res.fetched == {}
