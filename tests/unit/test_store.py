"""PriceStore: round trip, merge, atomic writes, incremental updates, provenance and point-in-time snapshots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.data import store as store_mod
from agent.data.calendar import next_session, sessions
from agent.data.sources import offline_message
from agent.data.store import PriceStore, atomic_write_bytes
from agent.errors import DataError, OfflineError, ValidationFailedError

IDX = sessions("2023-01-03", "2023-12-29")


def prices(
    tickers: tuple[str, ...] = ("AAA", "BBB"), index: pd.DatetimeIndex = IDX, seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {t: 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index)))) for t in tickers}
    return pd.DataFrame(data, index=index)


class FakeSource:
    """A PriceSource over a fixed 'vendor' frame that records what it was asked for."""

    name = "fake"

    def __init__(self, vendor: pd.DataFrame, error: Exception | None = None) -> None:
        self.vendor = vendor
        self.error = error
        self.calls: list[tuple[list[str], pd.Timestamp, pd.Timestamp]] = []

    def fetch(self, tickers: Any, start: Any, end: Any) -> pd.DataFrame:
        s, e = pd.Timestamp(start), pd.Timestamp(end)
        self.calls.append((list(tickers), s, e))
        if self.error is not None:
            raise self.error
        v = self.vendor[list(tickers)]
        return v.loc[(v.index >= s) & (v.index <= e)].dropna(how="all")


def test_import_round_trip_and_provenance(tmp_path: Path) -> None:
    df = prices()
    st_ = PriceStore(tmp_path)
    rep = st_.import_frame(df, "file:x.csv")
    assert rep.ok and rep.merge["added_tickers"] == ["AAA", "BBB"] and rep.merge["new_rows"] == len(IDX)
    again = PriceStore(tmp_path)
    loaded = again.load()
    pd.testing.assert_frame_equal(loaded, df.rename_axis("date"), check_freq=False)
    assert (loaded.dtypes == "float64").all() and loaded.index.name == "date"
    assert again.tickers == ["AAA", "BBB"]
    assert again.date_range() == (IDX[0], IDX[-1])
    prov = again.provenance()
    aaa = prov["tickers"]["AAA"]
    assert aaa["source"] == "file:x.csv" and aaa["first"] == "2023-01-03" and aaa["last"] == "2023-12-29"
    assert aaa["validation"] == "ok" and aaa["fetched_at"].endswith("Z") and aaa["rows"] == len(IDX)
    assert prov["history"][-1]["report"]["ok"] is True
    import hashlib

    assert prov["prices_sha256"] == hashlib.sha256((tmp_path / "prices.parquet").read_bytes()).hexdigest()
    assert again.load() is again.load()  # cached


def test_merge_new_tickers_and_overlap_new_values_win(tmp_path: Path) -> None:
    s = PriceStore(tmp_path)
    s.import_frame(prices(("AAA", "BBB")).iloc[:200], "a")
    upd = prices(("BBB", "CCC"), seed=1).iloc[190:]
    rep = s.import_frame(upd, "b")
    m = rep.merge
    assert m["added_tickers"] == ["CCC"] and m["updated_tickers"] == ["BBB"]
    assert m["changed_cells"] == 10  # BBB on the 10 overlapping sessions
    assert m["new_rows"] == len(IDX) - 200
    out = PriceStore(tmp_path).load()
    assert list(out.columns) == ["AAA", "BBB", "CCC"]
    assert out.loc[IDX[195], "BBB"] == upd.loc[IDX[195], "BBB"]
    assert np.isnan(out.loc[IDX[240], "AAA"]) and np.isnan(out.loc[IDX[0], "CCC"])
    prov = PriceStore(tmp_path).provenance()["tickers"]
    assert (
        prov["AAA"]["source"] == "a" and prov["BBB"]["source"] == "b" and prov["BBB"]["changed_cells"] == 10
    )


def test_invalid_import_writes_nothing(tmp_path: Path) -> None:
    s = PriceStore(tmp_path)
    s.import_frame(prices(), "a")
    before = (tmp_path / "prices.parquet").read_bytes()
    bad = prices(("ZZZ",)).copy()
    bad.iloc[5, 0] = -1.0
    with pytest.raises(ValidationFailedError, match="ZZZ"):
        s.import_frame(bad, "bad")
    assert (tmp_path / "prices.parquet").read_bytes() == before


def test_atomic_write_failure_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = PriceStore(tmp_path)
    s.import_frame(prices(), "a")
    before = (tmp_path / "prices.parquet").read_bytes()
    prov_before = (tmp_path / "provenance.json").read_bytes()

    def boom(*a: Any, **k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store_mod.os, "fsync", boom)  # fails after the temp file is written, before rename
    with pytest.raises(DataError, match=r"cannot write the price store .*disk full"):
        s.import_frame(prices(("CCC",)), "b")
    monkeypatch.undo()
    assert (tmp_path / "prices.parquet").read_bytes() == before
    assert (tmp_path / "provenance.json").read_bytes() == prov_before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert PriceStore(tmp_path).tickers == ["AAA", "BBB"]


def test_atomic_write_bytes_replaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")
    monkeypatch.setattr(store_mod.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        atomic_write_bytes(p, b"new")
    monkeypatch.undo()
    assert p.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["f.bin"]
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new"


def test_incremental_update_fetches_only_missing_sessions(tmp_path: Path) -> None:
    vendor = prices(("AAA", "BBB", "NEW"))
    s = PriceStore(tmp_path)
    s.import_frame(vendor[["AAA", "BBB"]].iloc[:150], "file")
    last = IDX[149]
    src = FakeSource(vendor)
    res = s.update(src, ["AAA", "BBB", "NEW"], end=IDX[-1], start="2023-01-01", overlap=3)
    (t1, s1, e1), (t2, s2, _) = src.calls
    assert t1 == ["AAA", "BBB"] and s1 == IDX[146] and e1 == IDX[-1]  # 3 sessions of overlap before the last
    assert t2 == ["NEW"] and s2 == pd.Timestamp("2023-01-01")
    assert res.new_tickers == ["NEW"] and res.readjusted == [] and res.changed_cells == 0
    assert res.rows_added == len(IDX) - 150 and res.last == IDX[-1].strftime("%Y-%m-%d")
    out = PriceStore(tmp_path).load()
    pd.testing.assert_frame_equal(out, vendor.rename_axis("date"), check_freq=False)
    assert PriceStore(tmp_path).provenance()["tickers"]["NEW"]["source"] == "fake"
    assert last < out.index[-1]
    # nothing new: no fetch at all
    src2 = FakeSource(vendor)
    res2 = PriceStore(tmp_path).update(src2, ["AAA", "NEW"], end=IDX[-1])
    assert src2.calls == [] and res2.up_to_date == ["AAA", "NEW"] and "up to date" in res2.summary()
    # overlap 0: start at the next session
    s3 = PriceStore(tmp_path / "z")
    s3.import_frame(vendor[["AAA"]].iloc[:100], "file")
    src3 = FakeSource(vendor)
    s3.update(src3, ["AAA"], end=IDX[-1], overlap=0)
    assert src3.calls[0][1] == next_session(IDX[99])
    # the source has nothing newer (a file that ends where the store ends): up to date, nothing written
    s4 = PriceStore(tmp_path / "y")
    s4.import_frame(vendor[["AAA"]], "file")
    before = (tmp_path / "y" / "prices.parquet").read_bytes()
    res4 = s4.update(FakeSource(vendor), ["AAA"], end=IDX[-1] + pd.Timedelta(days=30), overlap=0)
    assert res4.up_to_date == ["AAA"] and res4.fetched == {}
    assert (tmp_path / "y" / "prices.parquet").read_bytes() == before
    with pytest.raises(DataError, match="returned no prices for GHOST"):
        s4.update(FakeSource(vendor.assign(GHOST=np.nan)), ["GHOST"], end=IDX[-1])


def test_vendor_readjustment_triggers_full_refetch(tmp_path: Path) -> None:
    vendor = prices(("AAA", "BBB"))
    s = PriceStore(tmp_path)
    s.import_frame(vendor.iloc[:150], "file")
    readj = vendor.copy()
    readj["AAA"] = readj["AAA"] * 0.99  # a dividend re-scaled all of AAA's history
    src = FakeSource(readj)
    res = s.update(src, ["AAA", "BBB"], end=IDX[-1])
    assert res.readjusted == ["AAA"]
    assert src.calls[1][0] == ["AAA"] and src.calls[1][1] == IDX[0]
    out = PriceStore(tmp_path).load()
    np.testing.assert_allclose(out["AAA"].to_numpy(), readj["AAA"].to_numpy())
    np.testing.assert_allclose(out["BBB"].to_numpy(), vendor["BBB"].to_numpy())


def test_update_offline(tmp_path: Path) -> None:
    src = FakeSource(prices(), error=OfflineError(offline_message(["AAA"])))
    with pytest.raises(OfflineError, match="no cached prices for AAA"):
        PriceStore(tmp_path / "empty").update(src, ["AAA"], end=IDX[-1])
    s = PriceStore(tmp_path / "full")
    s.import_frame(prices().iloc[:100], "file")
    with pytest.raises(OfflineError, match=rf"not updated \(the store has them up to {IDX[99]:%Y-%m-%d}\)"):
        s.update(src, ["AAA", "BBB"], end=IDX[-1])
    assert len(PriceStore(tmp_path / "full").load()) == 100


def test_snapshot_basics(tmp_path: Path) -> None:
    s = PriceStore(tmp_path)
    s.import_frame(prices(("AAA", "BBB", "CCC")), "x")
    snap = s.snapshot("2023-03-31", ["CCC", "AAA"], lookback=5)
    assert (
        list(snap.columns) == ["CCC", "AAA"]
        and len(snap) == 5
        and snap.index[-1] == pd.Timestamp("2023-03-31")
    )
    assert s.snapshot("2023-04-01").index[-1] == pd.Timestamp("2023-03-31")  # a Saturday
    # date semantics: any time on 2023-03-31 includes that day's close
    assert s.snapshot(pd.Timestamp("2023-03-31 09:30")).index[-1] == pd.Timestamp("2023-03-31")
    assert len(s.snapshot("2022-12-31")) == 0
    with pytest.raises(DataError, match="ZZZ, YYY"):
        s.snapshot("2023-03-31", ["AAA", "ZZZ", "YYY"])
    snap2 = s.snapshot("2023-03-31", ["AAA"])
    snap2.iloc[0, 0] = -1.0  # copy-on-write: the store is not affected
    assert s.snapshot("2023-03-31", ["AAA"]).iloc[0, 0] > 0


FULL = prices(("AAA", "BBB", "CCC"), index=sessions("2019-01-02", "2023-12-29"))
FULL.iloc[:40, 2] = np.nan  # CCC starts later


@pytest.fixture(scope="module")
def mem_store() -> PriceStore:
    return PriceStore.from_frame(FULL, "memory")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    asof=st.datetimes(min_value=pd.Timestamp("2018-06-01"), max_value=pd.Timestamp("2024-06-01")),
    lookback=st.one_of(st.none(), st.integers(min_value=0, max_value=400)),
    tickers=st.one_of(
        st.none(), st.lists(st.sampled_from(["AAA", "BBB", "CCC"]), min_size=1, max_size=3, unique=True)
    ),
)
def test_snapshot_never_leaks_a_later_row(
    mem_store: PriceStore, asof: Any, lookback: Any, tickers: Any
) -> None:
    snap = mem_store.snapshot(asof, tickers, lookback)
    day = pd.Timestamp(asof).normalize()
    assert (snap.index <= day).all()
    ref = FULL.loc[FULL.index <= day]
    if tickers is not None:
        ref = ref[tickers]
    if lookback is not None:
        ref = ref.iloc[len(ref) - min(lookback, len(ref)) :]
    np.testing.assert_array_equal(snap.to_numpy(), ref.to_numpy())
    assert list(snap.index) == list(ref.index)


def test_from_frame_touches_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = PriceStore.from_frame(prices(), "file:p.csv")
    assert s.in_memory and s.prices_path is None
    assert os.listdir(tmp_path) == []
    assert s.provenance()["tickers"]["AAA"]["source"] == "file:p.csv"
    assert s.last_report is not None and s.last_report["ok"] is True
    s.update(FakeSource(prices(("DDD",))), ["DDD"], end=IDX[-1], start=IDX[0])
    assert "DDD" in s.tickers and os.listdir(tmp_path) == []


def test_reload_after_another_writer(tmp_path: Path) -> None:
    a, b = PriceStore(tmp_path), PriceStore(tmp_path)
    a.import_frame(prices(("AAA",)), "a")
    assert b.tickers == ["AAA"]
    a.import_frame(prices(("BBB",)), "a")
    assert b.tickers == ["AAA", "BBB"]
    assert json.loads((tmp_path / "provenance.json").read_text())["rows"] == len(IDX)


def test_unreadable_store_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "prices.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="unreadable"):
        PriceStore(tmp_path).load()


# ----- the store only ever gets better ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1.0, 0.0, np.nan, np.inf])
def test_a_repair_never_overwrites_a_good_stored_price(tmp_path: Path, bad: float) -> None:
    good = prices()
    s = PriceStore(tmp_path)
    s.import_frame(good, "good")
    before = s.load().copy()
    again = good.copy()
    again.loc[IDX[100], "AAA"] = bad  # in the middle: repaired by a forward fill
    again.loc[IDX[-1], "BBB"] = bad  # the last row: a trailing hole
    rep = s.import_frame(again, "again", policy="ffill")
    out = PriceStore(tmp_path).load()
    pd.testing.assert_frame_equal(out, before, check_freq=False)  # every stored price as it was
    assert rep.merge["changed_cells"] == 0
    if not np.isnan(bad):
        assert ("AAA", IDX[100].strftime("%Y-%m-%d")) in rep.filled
    # a repair does fill a cell the store does not have
    s2 = PriceStore(tmp_path / "fresh")
    s2.import_frame(again, "again", policy="ffill")
    assert s2.load().loc[IDX[100], "AAA"] == good.loc[IDX[99], "AAA"]


def test_conflicting_duplicate_refused_and_store_unchanged(tmp_path: Path) -> None:
    s = PriceStore(tmp_path)
    s.import_frame(prices(), "a")
    before = (tmp_path / "prices.parquet").read_bytes()
    bad = prices()
    extra = bad.iloc[[-1]].copy()
    extra.iloc[0, 1] *= 1.02
    with pytest.raises(ValidationFailedError, match=f"BBB {IDX[-1]:%Y-%m-%d} conflicting_duplicate"):
        s.import_frame(pd.concat([bad, extra]), "dup", policy="ffill")
    assert (tmp_path / "prices.parquet").read_bytes() == before


def test_spike_on_import_fails_or_is_held_out_and_recorded(tmp_path: Path) -> None:
    good = prices()
    s = PriceStore(tmp_path)
    s.import_frame(good.iloc[:-1], "a")
    spiked = good.copy()
    spiked.loc[IDX[-1], "AAA"] = good.loc[IDX[-2], "AAA"] * 1000.0  # the new last row: 1000x
    before = (tmp_path / "prices.parquet").read_bytes()
    with pytest.raises(ValidationFailedError, match=r"AAA .* unconfirmed_jump"):
        s.import_frame(spiked.iloc[[-1]], "spike", policy="fail")  # one row: checked against the stored price
    assert (tmp_path / "prices.parquet").read_bytes() == before
    rep = s.import_frame(spiked.iloc[[-1]], "spike", policy="ffill")
    out = PriceStore(tmp_path).load()
    assert np.isnan(out.loc[IDX[-1], "AAA"]) and out.loc[IDX[-1], "BBB"] == good.loc[IDX[-1], "BBB"]
    assert rep.held_out == [("AAA", IDX[-1].strftime("%Y-%m-%d"))]
    hist = PriceStore(tmp_path).provenance()["history"][-1]["report"]
    assert hist["held_out"] == [["AAA", IDX[-1].strftime("%Y-%m-%d")]]
    assert "unconfirmed_jump 1" in PriceStore(tmp_path).provenance()["tickers"]["AAA"]["validation"]


def test_spike_on_update_is_held_out(tmp_path: Path) -> None:
    vendor = prices()
    s = PriceStore(tmp_path)
    s.import_frame(vendor.iloc[:200], "file")
    bad_vendor = vendor.copy()
    bad_vendor.loc[IDX[210], "BBB"] *= 1000.0
    with pytest.raises(ValidationFailedError, match=r"BBB .* spike"):
        s.update(FakeSource(bad_vendor), ["AAA", "BBB"], end=IDX[-1], policy="fail")
    res = s.update(FakeSource(bad_vendor), ["AAA", "BBB"], end=IDX[-1], policy="ffill")
    assert res.report is not None and res.report.held_out == [("BBB", IDX[210].strftime("%Y-%m-%d"))]
    out = PriceStore(tmp_path).load()
    assert out["BBB"].max() < 2 * vendor["BBB"].max()


def test_rows_after_today_are_refused(tmp_path: Path) -> None:
    today = pd.Timestamp.now(tz="America/New_York").tz_localize(None).normalize()
    future = sessions(today + pd.Timedelta(days=1), today + pd.Timedelta(days=20))
    past = sessions(today - pd.Timedelta(days=40), today)
    df = prices(index=past.append(future))
    s = PriceStore(tmp_path)
    with pytest.raises(ValidationFailedError, match="future_date"):
        s.import_frame(df, "x", policy="fail")
    assert not (tmp_path / "prices.parquet").exists()
    rep = s.import_frame(df, "x", policy="ffill")
    assert PriceStore(tmp_path).load().index[-1] <= today
    assert len(rep.dropped_rows) == len(future)


def test_header_with_stray_whitespace_is_the_same_ticker(tmp_path: Path) -> None:
    s = PriceStore(tmp_path)
    s.import_frame(prices(), "a")
    rep = s.import_frame(prices().rename(columns={"AAA": "AAA "}), "b")
    assert PriceStore(tmp_path).tickers == ["AAA", "BBB"]
    assert "header_whitespace" in rep.counts
    assert "header_whitespace 1" in PriceStore(tmp_path).provenance()["tickers"]["AAA"]["validation"]


def test_held_out_last_price_is_stored_once_a_later_update_confirms_it(tmp_path: Path) -> None:
    """A genuine crash on the last session looks like a spike until the next session: held out at first (not
    stored), then stored by the next update, whose overlap re-fetches it followed by a price at the new level."""
    vendor = prices()
    vendor.loc[IDX[201] :, "AAA"] *= 0.4  # -60% from IDX[201] on, and it stays there
    s = PriceStore(tmp_path)
    s.import_frame(vendor.iloc[:200], "file")
    res = s.update(FakeSource(vendor), ["AAA", "BBB"], end=IDX[201], policy="ffill")
    assert res.report is not None and res.report.held_out == [("AAA", IDX[201].strftime("%Y-%m-%d"))]
    assert np.isnan(PriceStore(tmp_path).load().loc[IDX[201], "AAA"])
    res2 = PriceStore(tmp_path).update(FakeSource(vendor), ["AAA", "BBB"], end=IDX[205], policy="ffill")
    assert res2.report is not None and res2.report.held_out == []
    assert [(i.kind, i.ticker) for i in res2.report.warnings] == [("jump", "AAA")]
    out = PriceStore(tmp_path).load()
    pd.testing.assert_frame_equal(out, vendor.iloc[:206].rename_axis("date"), check_freq=False)
