"""Price sources. The yfinance adapter is fed frames built exactly the way yfinance 1.x builds them (its own
`reindex_dfs` / `empty_df` and the concat + swaplevel of `yfinance.multi`), injected at the `download` boundary:
no network, and `sleep` is injected so nothing waits."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agent.data import sources
from agent.data.sources import (
    DemoSource,
    FileSource,
    YFinanceSource,
    read_price_file,
    resolve_prices_file,
    source_from_settings,
)
from agent.errors import DataError, OfflineError
from agent.settings import DataSettings

DAYS = pd.DatetimeIndex(["2024-03-26", "2024-03-27", "2024-03-28", "2024-04-01", "2024-04-02"])


def _history(close: pd.Series, *, auto_adjust: bool, tz: str | None = "America/New_York") -> pd.DataFrame:
    """One ticker as `Ticker.history()` returns it: OHLCV, index 'Date' at exchange-local midnight."""
    idx = pd.DatetimeIndex(close.index)
    if tz is not None:
        idx = idx.tz_localize(tz)
    df = pd.DataFrame(
        {
            "Open": close.to_numpy() * 0.99,
            "High": close.to_numpy() * 1.01,
            "Low": close.to_numpy() * 0.98,
            "Close": close.to_numpy() if auto_adjust else close.to_numpy() * 1.1,  # raw close differs
            "Volume": np.full(len(close), 1_000_000.0),
        },
        index=idx,
    )
    if not auto_adjust:
        df.insert(4, "Adj Close", close.to_numpy())
    df.index.name = "Date"
    return df


def yf_frame(
    data: dict[str, pd.Series | None],
    *,
    auto_adjust: bool = True,
    ignore_tz: bool = True,
    tz: str | None = None,
) -> pd.DataFrame:
    """What `yfinance.download(list, group_by="column")` returns in 1.x; None = a failed ticker."""
    from yfinance import utils
    from yfinance.multi import reindex_dfs

    dfs: dict[str, pd.DataFrame] = {}
    for t, s in data.items():
        dfs[t] = (
            utils.empty_df()
            if s is None
            else _history(s, auto_adjust=auto_adjust, tz=tz or "America/New_York")
        )
    if ignore_tz:
        for df in dfs.values():
            if df is not None and df.shape[0] > 0:
                df.index = df.index.tz_localize(None)
    dfs = reindex_dfs(dfs, ignore_tz)
    out = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    out.columns = out.columns.swaplevel(0, 1)
    return out.sort_index(level=0, axis=1)


def _series(values: list[float], index: pd.DatetimeIndex = DAYS) -> pd.Series:
    return pd.Series(values, index=index, dtype="float64")


class FakeDownload:
    def __init__(self, *results: Any) -> None:
        self.results = list(results)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> pd.DataFrame:
        self.calls.append(kwargs)
        r = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(r, BaseException):
            raise r
        return r(kwargs) if callable(r) else r


def _src(fake: FakeDownload, sleeps: list[float], **kw: Any) -> YFinanceSource:
    return YFinanceSource(retries=3, backoff_seconds=1.5, download=fake, sleep=sleeps.append, **kw)


# ----- yfinance -------------------------------------------------------------------------------------------------


def test_yfinance_frame_shape_is_real() -> None:
    raw = yf_frame({"XLK": _series([1, 2, 3, 4, 5]), "SPY": _series([5, 4, 3, 2, 1])})
    assert isinstance(raw.columns, pd.MultiIndex) and ("Close", "XLK") in raw.columns
    assert raw.columns.names == ["Price", "Ticker"]


@pytest.mark.parametrize("ignore_tz", [True, False])
def test_batch_download_normalized(ignore_tz: bool) -> None:
    raw = yf_frame(
        {"XLK": _series([1, 2, 3, 4, 5]), "SPY": _series([10, 11, 12, 13, 14])}, ignore_tz=ignore_tz
    )
    if not ignore_tz:
        assert raw.index.tz is not None
    fake, sleeps = FakeDownload(raw), []
    out = _src(fake, sleeps).fetch(["SPY", "XLK"], "2024-03-26", "2024-04-02")
    assert list(out.columns) == ["SPY", "XLK"]
    assert out.index.tz is None and out.index.name == "date"
    assert list(out.index) == list(DAYS)
    assert (out.dtypes == "float64").all()
    assert out.loc["2024-04-02", "XLK"] == 5.0 and out.loc["2024-03-26", "SPY"] == 10.0
    call = fake.calls[0]
    assert call["auto_adjust"] is True and call["actions"] is False and call["progress"] is False
    assert call["group_by"] == "column"
    assert call["start"] == "2024-03-26" and call["end"] == "2024-04-03"  # yfinance's end is exclusive
    assert sleeps == []


def test_utc_index_keeps_the_trading_date() -> None:
    raw = yf_frame({"XLK": _series([1, 2, 3, 4, 5])}, ignore_tz=False)
    raw.index = raw.index.tz_convert("UTC")  # 04:00/05:00 UTC: same calendar date
    out = _src(FakeDownload(raw), []).fetch(["XLK"], "2024-03-26", "2024-04-02")
    assert list(out.index) == list(DAYS)


def test_single_ticker_is_still_multiindex_and_adj_close_when_not_auto_adjusted() -> None:
    raw = yf_frame({"XLK": _series([1, 2, 3, 4, 5])}, auto_adjust=False)
    assert ("Adj Close", "XLK") in raw.columns
    fake = FakeDownload(raw)
    out = _src(fake, [], auto_adjust=False).fetch(["XLK"], "2024-03-26", "2024-04-02")
    assert fake.calls[0]["auto_adjust"] is False
    np.testing.assert_allclose(out["XLK"].to_numpy(), [1, 2, 3, 4, 5])  # not the raw Close (x1.1)


def test_all_nan_rows_are_dropped_and_lowercase_symbols_mapped_back() -> None:
    # BTC-USD trades on Good Friday and the weekend; SPY does not: the union index has NaN rows for SPY.
    btc_days = pd.date_range("2024-03-27", "2024-04-01")
    spy = _series([1, 2, 3], pd.DatetimeIndex(["2024-03-27", "2024-03-28", "2024-04-01"]))
    raw = yf_frame({"SPY": spy, "BTC-USD": _series(list(range(1, 7)), btc_days)})
    holiday = yf_frame({"SPY": spy, "XLK": _series([4, np.nan, 6], spy.index)})
    out = _src(FakeDownload(holiday), []).fetch(["spy", "xlk"], "2024-03-27", "2024-04-01")
    assert list(out.columns) == ["spy", "xlk"] and len(out) == 3
    both = _src(FakeDownload(raw), []).fetch(["SPY", "BTC-USD"], "2024-03-27", "2024-04-01")
    assert both["SPY"].isna().sum() == 3  # weekend/holiday rows stay NaN for SPY: validation reports them
    raw2 = raw.copy()
    raw2.loc[pd.Timestamp("2024-03-30")] = np.nan  # an all-NaN row
    out2 = _src(FakeDownload(raw2), []).fetch(["SPY", "BTC-USD"], "2024-03-27", "2024-04-01")
    assert pd.Timestamp("2024-03-30") not in out2.index


def test_missing_ticker_is_named_after_retries() -> None:
    raw = yf_frame({"XLK": _series([1, 2, 3, 4, 5]), "NOPE": None})
    assert raw[("Close", "NOPE")].isna().all()
    only_nope = yf_frame({"NOPE": None})
    fake, sleeps = FakeDownload(raw, only_nope), []
    with pytest.raises(DataError, match="NOPE") as ei:
        _src(fake, sleeps).fetch(["XLK", "NOPE"], "2024-03-26", "2024-04-02")
    assert "XLK" not in str(ei.value).split("between")[0]
    assert not isinstance(ei.value, OfflineError)
    # the retries ask only for the missing ticker
    assert [c["tickers"] for c in fake.calls] == [["XLK", "NOPE"], ["NOPE"], ["NOPE"], ["NOPE"]]
    assert sleeps == [1.5, 3.0, 6.0]


def test_empty_frame_when_rate_limited_then_success() -> None:
    good = yf_frame({"XLK": _series([1, 2, 3, 4, 5])})
    rate_limited = yf_frame({"XLK": None})  # all tickers failed: zero rows
    assert rate_limited.empty
    fake, sleeps = FakeDownload(rate_limited, good), []
    out = _src(fake, sleeps).fetch(["XLK"], "2024-03-26", "2024-04-02")
    assert len(out) == 5 and sleeps == [1.5] and len(fake.calls) == 2


def test_rate_limit_exception_then_success() -> None:
    from yfinance.exceptions import YFRateLimitError

    good = yf_frame({"XLK": _series([1, 2, 3, 4, 5])})
    fake, sleeps = FakeDownload(YFRateLimitError(), YFRateLimitError(), good), []
    out = _src(fake, sleeps).fetch(["XLK"], "2024-03-26", "2024-04-02")
    assert len(out) == 5 and sleeps == [1.5, 3.0]


def test_persistent_rate_limit_is_a_data_error_not_offline() -> None:
    from yfinance.exceptions import YFRateLimitError

    fake, sleeps = FakeDownload(YFRateLimitError()), []
    with pytest.raises(DataError, match="XLK") as ei:
        _src(fake, sleeps).fetch(["XLK"], "2024-03-26", "2024-04-02")
    assert not isinstance(ei.value, OfflineError)
    assert len(fake.calls) == 4


def test_persistent_connection_errors_are_offline() -> None:
    fake, sleeps = FakeDownload(ConnectionError("Failed to perform, curl: (6) Could not resolve host")), []
    with pytest.raises(OfflineError) as ei:
        _src(fake, sleeps).fetch(["XLK", "SPY"], "2024-03-26", "2024-04-02")
    msg = ei.value.one_line()
    assert "\n" not in msg and "XLK" in msg and "SPY" in msg
    assert "--profile demo" in msg and "--prices" in msg and "agent data import" in msg
    assert sleeps == [1.5, 3.0, 6.0]


def test_real_download_wrapper_turns_logged_dns_errors_into_connection_error(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """yfinance 1.x does not raise: it logs the failure and returns an empty frame. The wrapper must see that,
    and must not let yfinance print to stderr."""
    import yfinance

    def fake_download(**kwargs: Any) -> pd.DataFrame:
        log = logging.getLogger("yfinance")
        log.error("Failed to get ticker 'XLK' reason: Failed to perform, curl: (6) Could not resolve host: x")
        import warnings

        warnings.warn("noise", stacklevel=1)
        return yf_frame({t: None for t in kwargs["tickers"]})

    monkeypatch.setattr(yfinance, "download", fake_download)
    with pytest.raises(ConnectionError):
        sources._yf_download(tickers=["XLK"], start="2024-01-01", end="2024-01-10")
    out = capfd.readouterr()
    assert out.err == "" and out.out == ""
    src = YFinanceSource(retries=1, backoff_seconds=0, sleep=lambda s: None)
    with pytest.raises(OfflineError):
        src.fetch(["XLK"], "2024-01-01", "2024-01-10")


def test_real_download_wrapper_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import yfinance
    from yfinance.exceptions import YFRateLimitError

    def fake_download(**kwargs: Any) -> pd.DataFrame:
        logging.getLogger("yfinance").error("['XLK']: YFRateLimitError('Too Many Requests. Rate limited.')")
        return yf_frame({"XLK": None})

    monkeypatch.setattr(yfinance, "download", fake_download)
    with pytest.raises(YFRateLimitError):
        sources._yf_download(tickers=["XLK"], start="2024-01-01", end="2024-01-10")


# ----- files --------------------------------------------------------------------------------------------------


def _write_csv(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


GOOD = "date,AAA,BBB\n2024-03-26,1.0,10\n2024-03-27,1.5,\n2024-03-28,2.0,11\n"


@pytest.mark.parametrize("name", ["p.csv", "p.csv.gz"])
def test_file_source_csv(tmp_path: Path, name: str) -> None:
    df = read_price_file(_write_csv(tmp_path / name, GOOD))
    assert list(df.columns) == ["AAA", "BBB"] and df.index.name == "date"
    assert (df.dtypes == "float64").all() and np.isnan(df.loc["2024-03-27", "BBB"])


def test_file_source_unnamed_or_capitalized_date_and_parquet(tmp_path: Path) -> None:
    a = read_price_file(_write_csv(tmp_path / "a.csv", GOOD.replace("date,", ",", 1)))
    b = read_price_file(_write_csv(tmp_path / "b.csv", GOOD.replace("date,", "Date,", 1)))
    ref = read_price_file(_write_csv(tmp_path / "r.csv", GOOD))
    pd.testing.assert_frame_equal(a, ref)
    pd.testing.assert_frame_equal(b, ref)
    ref.to_parquet(tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(read_price_file(tmp_path / "p.parquet"), ref)
    ref.reset_index().to_parquet(tmp_path / "q.parquet", index=False)
    pd.testing.assert_frame_equal(read_price_file(tmp_path / "q.parquet"), ref)


def test_file_source_fetch_selects_and_names_missing(tmp_path: Path) -> None:
    src = FileSource(_write_csv(tmp_path / "p.csv", GOOD))
    out = src.fetch(["BBB"], "2024-03-27", None)
    assert list(out.columns) == ["BBB"] and out.index[0] == pd.Timestamp("2024-03-27")
    with pytest.raises(DataError, match="ZZZ"):
        src.fetch(["AAA", "ZZZ"], None, None)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("date,AAA\n2024-03-26,1.0\n2024-03-27,abc\n", r"non-numeric value 'abc' in column 'AAA' on line 3"),
        ("when,AAA\n2024-03-26,1.0\n", "no date column"),
        ("date,AAA\n2024-03-26,1.0\nnot-a-date,2.0\n", "unparseable date 'not-a-date' on line 3"),
        ("date\n2024-03-26\n", "no ticker columns"),
        ("date,XLK,XLF,XLK\n2024-03-26,1,2,3\n", "duplicate columns: XLK"),
        ("date,XLK,XLF,XLK \n2024-03-26,1,2,3\n", "duplicate columns: XLK"),  # stray whitespace: the same
    ],
)
def test_bad_files_are_one_line_data_errors(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern) as ei:
        read_price_file(_write_csv(tmp_path / "bad.csv", text))
    assert "\n" not in ei.value.one_line()


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_price_file(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError):
        read_price_file(tmp_path / "empty.csv")


def test_resolve_prices_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    _write_csv(shared / "s.csv", GOOD)
    work = tmp_path / "work"
    work.mkdir()
    _write_csv(work / "w.csv", GOOD)
    monkeypatch.chdir(work)
    monkeypatch.setenv("AGENT_SHARED_DATA", str(shared))
    assert resolve_prices_file("w.csv") == (work / "w.csv").resolve()
    assert resolve_prices_file("s.csv") == (shared / "s.csv").resolve()
    with pytest.raises(DataError, match="looked in") as ei:
        resolve_prices_file("none.csv")
    assert str(shared) in str(ei.value)


# ----- demo -----------------------------------------------------------------------------------------------------


def test_demo_source_sp500_and_factors() -> None:
    df = DemoSource("sp500").read()
    assert df.shape[1] == 21 and "SP500" in df.columns and "AAPL" in df.columns
    assert df.index[0] == pd.Timestamp("1990-01-02") and df.index[-1] == pd.Timestamp("2022-12-28")
    assert df.loc["1990-01-02", "SP500"] == pytest.approx(359.69)
    f = DemoSource("factors").fetch(["MTUM", "QUAL"], "2020-01-01", "2020-01-31")
    assert list(f.columns) == ["MTUM", "QUAL"] and f.index.min() >= pd.Timestamp("2020-01-01")


def test_demo_without_skfolio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="skfolio"):
        DemoSource("sp500").read()
    with pytest.raises(DataError, match="unknown demo set"):
        DemoSource("nope")


def test_source_from_settings(tmp_path: Path) -> None:
    p = _write_csv(tmp_path / "p.csv", GOOD)
    assert isinstance(source_from_settings(DataSettings()), YFinanceSource)
    assert isinstance(source_from_settings(DataSettings(source="file", prices_file=p)), FileSource)
    d = source_from_settings(DataSettings(source="demo", demo_set="factors"))
    assert isinstance(d, DemoSource) and d.name == "demo:factors"
    y = source_from_settings(DataSettings(retries=1, backoff_seconds=0.5, auto_adjust=False))
    assert isinstance(y, YFinanceSource) and y.retries == 1 and y.field == "Adj Close"
    assert isinstance(y, sources.PriceSource)
