"""The local price store: one wide Parquet file plus a provenance record, written atomically.

Why: decisions must be reproducible and cheap. Prices are fetched once (incrementally afterwards), validated,
and kept under the data directory as `prices.parquet` (wide, float64, index `date`) and `provenance.json`
(per ticker: source, fetched_at (UTC), first/last date, validation summary; plus the recent import/update
reports). Readers get point-in-time views through `snapshot(asof)`, which can never return a row after `asof`
and costs O(log n): it is called at every decision of a multi-year replay.

`PriceStore.from_frame(df, source)` is an in-memory store (no files at all), e.g. for `agent backtest --prices
FILE`, so a backtest never touches the user's store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from agent.atomic import atomic_write_bytes
from agent.data.calendar import last_closed_session, next_session, sessions, to_date
from agent.data.sources import PriceSource, offline_message, to_price_frame
from agent.data.store_merge import merge as _merge
from agent.data.store_merge import readjusted as _readjusted
from agent.data.validate import ValidationReport, validate_prices
from agent.errors import DataError, OfflineError

__all__ = ["DEFAULT_START", "PriceStore", "UpdateResult", "atomic_write_bytes"]

DEFAULT_START = dt.date(2005, 1, 1)
_HISTORY = 20  # import/update records kept in provenance.json


def _today() -> pd.Timestamp:
    """Today's date where the exchange is (a price dated later than this cannot exist yet)."""
    return pd.Timestamp.now(tz="America/New_York").tz_localize(None).normalize()


def _utcnow() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame(index=pd.DatetimeIndex([], name="date", dtype="datetime64[ns]"), dtype="float64")


@dataclass
class UpdateResult:
    """What an incremental update did, per ticker."""

    tickers: list[str]
    fetched: dict[str, tuple[str, str]] = field(default_factory=dict)  # ticker -> (start, end) requested
    new_tickers: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    readjusted: list[str] = field(default_factory=list)  # history re-fetched: the vendor re-adjusted it
    rows_added: int = 0
    changed_cells: int = 0
    report: ValidationReport | None = None
    last: str | None = None  # last date in the store after the update

    def summary(self) -> str:
        if not self.fetched:
            return f"up to date: {', '.join(self.up_to_date)} (last {self.last})"
        lines = [
            f"fetched {len(self.fetched)} tickers: {self.rows_added} new rows, {self.changed_cells} changed cells, "
            f"store now ends {self.last}"
        ]
        if self.new_tickers:
            lines.append(f"  new: {', '.join(self.new_tickers)}")
        if self.readjusted:
            lines.append(f"  history re-fetched (vendor re-adjustment): {', '.join(self.readjusted)}")
        if self.up_to_date:
            lines.append(f"  already up to date: {', '.join(self.up_to_date)}")
        if self.report is not None:
            lines.append(self.report.summary())
        return "\n".join(lines)


class PriceStore:
    """Wide adjusted closes on disk (or in memory), with provenance, atomic writes and O(log n) snapshots."""

    PRICES = "prices.parquet"
    PROVENANCE = "provenance.json"

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        self.root: Path | None = Path(root) if root is not None else None
        self._frame: pd.DataFrame | None = None
        self._dates: np.ndarray = np.zeros(0, dtype=np.int64)
        self._colpos: dict[str, int] = {}
        self._subcache: dict[tuple[str, ...], pd.DataFrame] = {}
        self._prov: dict[str, Any] | None = None
        self._stamp: tuple[int, int] | None = None

    # ----- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        source: str = "memory",
        *,
        validate: bool = True,
        policy: str = "fail",
        **validation: Any,
    ) -> PriceStore:
        """An in-memory store (no files), validated like an import. The report is kept in `.last_report`."""
        store = cls(None)
        store._set_frame(_empty_frame())
        store._prov = {}
        store.import_frame(df, source, validate=validate, policy=policy, **validation)
        return store

    @property
    def in_memory(self) -> bool:
        return self.root is None

    @property
    def prices_path(self) -> Path | None:
        return None if self.root is None else self.root / self.PRICES

    @property
    def provenance_path(self) -> Path | None:
        return None if self.root is None else self.root / self.PROVENANCE

    # ----- reading ---------------------------------------------------------------------------------------------
    def _disk_stamp(self) -> tuple[int, int] | None:
        p = self.prices_path
        if p is None:
            return None
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _read_disk(self) -> pd.DataFrame:
        p = self.prices_path
        if p is None or not p.exists():
            return _empty_frame()
        try:
            df = pd.read_parquet(p)
        except Exception as e:  # pyarrow raises its own types
            raise DataError(
                f"the price store {p} is unreadable: {type(e).__name__}: {str(e).splitlines()[0]}"
            ) from None
        df = to_price_frame(df)
        return df.sort_index()

    def _set_frame(self, df: pd.DataFrame) -> None:
        self._frame = df
        self._dates = pd.DatetimeIndex(df.index).as_unit("ns").asi8.copy()
        self._dates.flags.writeable = False
        self._colpos = {c: i for i, c in enumerate(df.columns)}
        self._subcache = {}

    def load(self) -> pd.DataFrame:
        """The whole store (cached in memory; re-read when another process has rewritten the file)."""
        if self.root is None:
            if self._frame is None:
                self._set_frame(_empty_frame())
            assert self._frame is not None
            return self._frame
        stamp = self._disk_stamp()
        if self._frame is None or stamp != self._stamp:
            self._set_frame(self._read_disk())
            self._stamp = stamp
            self._prov = None
        assert self._frame is not None
        return self._frame

    @property
    def tickers(self) -> list[str]:
        return list(self.load().columns)

    def date_range(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        df = self.load()
        if len(df.index) == 0:
            return None
        return df.index[0], df.index[-1]

    def provenance(self) -> dict[str, Any]:
        if self._prov is None:
            p = self.provenance_path
            if p is not None and p.exists():
                try:
                    self._prov = json.loads(p.read_text(encoding="utf-8"))
                except (OSError, ValueError) as e:
                    raise DataError(f"the provenance file {p} is unreadable: {e}") from None
            else:
                self._prov = {}
        return json.loads(json.dumps(self._prov))  # a deep copy: callers cannot edit the record

    @property
    def last_report(self) -> dict[str, Any] | None:
        hist = self.provenance().get("history") or []
        return hist[-1]["report"] if hist else None

    def snapshot(
        self, asof: Any, tickers: Sequence[str] | None = None, lookback: int | None = None
    ) -> pd.DataFrame:
        """Rows with date <= asof (the date of `asof`), optionally only `tickers` and the last `lookback` rows.

        O(log n): one `np.searchsorted` on the cached date array and a positional slice; never a row after asof.
        """
        if self._frame is None:
            self.load()
        frame = self._frame
        assert frame is not None
        if isinstance(asof, pd.Timestamp) and asof.tzinfo is None:
            a = asof.normalize().as_unit("ns").value
        else:
            a = to_date(asof).value
        hi = int(np.searchsorted(self._dates, a, side="right"))
        lo = 0
        if lookback is not None:
            if lookback < 0:
                raise DataError(f"lookback must be >= 0, got {lookback}")
            lo = max(0, hi - int(lookback))
        if tickers is None:
            return frame.iloc[lo:hi]
        key = tuple(tickers)
        sub = self._subcache.get(key)
        if sub is None:
            unknown = [t for t in key if t not in self._colpos]
            if unknown:
                raise DataError(
                    f"no prices in the store for {', '.join(unknown)}",
                    hint="run `agent data fetch` or `agent data import FILE`",
                )
            # a column subset is built once per ticker tuple: a two-axis iloc costs ~10x a row slice
            if len(self._subcache) >= 16:
                self._subcache.clear()
            sub = frame.iloc[:, [self._colpos[t] for t in key]]
            self._subcache[key] = sub
        return sub.iloc[lo:hi]

    # ----- writing ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.root is None:
            yield
            return
        from filelock import FileLock, Timeout

        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"cannot create the price store {self.root}: {e.strerror or e}") from None
        lock = FileLock(str(self.root / ".lock"))
        try:
            lock.acquire(timeout=60)
        except Timeout:
            raise DataError(f"the price store {self.root} is locked by another process") from None
        except OSError as e:
            raise DataError(f"cannot lock the price store {self.root}: {e.strerror or e}") from None
        try:
            yield
        except OSError as e:  # disk full, read-only directory...: one line, the old files are intact
            raise DataError(f"cannot write the price store {self.root}: {e.strerror or e}") from e
        finally:
            lock.release()

    def _current(self) -> pd.DataFrame:
        """Inside the lock: the latest state (another process may have written since we cached)."""
        if self.root is None:
            return self.load()
        self._frame = None
        return self.load()

    def _write(self, df: pd.DataFrame, prov: dict[str, Any]) -> None:
        if self.root is None:
            self._set_frame(df)
            self._prov = prov
            return
        buf = io.BytesIO()
        df.to_parquet(buf, engine="pyarrow", index=True)
        data = buf.getvalue()
        prov["prices_sha256"] = hashlib.sha256(data).hexdigest()
        atomic_write_bytes(self.root / self.PRICES, data)
        atomic_write_bytes(
            self.root / self.PROVENANCE, (json.dumps(prov, indent=2, sort_keys=True) + "\n").encode("utf-8")
        )
        self._set_frame(df)
        self._stamp = self._disk_stamp()
        self._prov = prov

    def _merge_and_write(
        self,
        new: pd.DataFrame,
        source: str,
        action: str,
        report: ValidationReport,
        replace: Sequence[str] = (),
    ) -> dict[str, Any]:
        old = self._current()
        if replace:
            old = old.drop(columns=[c for c in replace if c in old.columns])
        merged, stats = _merge(old, new, protect=report.filled)
        prov = self.provenance()
        now = _utcnow()
        per = prov.setdefault("tickers", {})
        for t in new.columns:
            s = merged[t]
            fv, lv = cast("pd.Timestamp | None", s.first_valid_index()), cast("pd.Timestamp | None", s.last_valid_index())
            per[t] = {
                "source": source,
                "fetched_at": now,
                "first": None if fv is None else fv.strftime("%Y-%m-%d"),
                "last": None if lv is None else lv.strftime("%Y-%m-%d"),
                "rows": int(s.notna().sum()),
                "validation": report.ticker_summary(t),
                "changed_cells": int(stats["changed_by_ticker"].get(t, 0)),
            }
        prov["updated_at"] = now
        prov["rows"] = len(merged)
        prov["first"] = merged.index[0].strftime("%Y-%m-%d") if len(merged) else None
        prov["last"] = merged.index[-1].strftime("%Y-%m-%d") if len(merged) else None
        report.merge = {k: v for k, v in stats.items() if k != "changed_by_ticker"}
        hist = list(prov.get("history") or [])
        hist.append(
            {
                "at": now,
                "action": action,
                "source": source,
                "tickers": list(new.columns),
                "report": report.to_dict(50),
            }
        )
        prov["history"] = hist[-_HISTORY:]
        prov["version"] = 1
        self._write(merged, prov)
        return stats

    def _prior(self, frame: pd.DataFrame, current: pd.DataFrame | None = None) -> dict[str, float]:
        """Per ticker, the last stored price strictly before `frame`'s first date: the reference a jump in the
        first new row is measured against (a one-row update has no other)."""
        cur = self.load() if current is None else current
        if len(frame.index) == 0 or len(cur.index) == 0:
            return {}
        first = frame.index.min()
        before = cur.loc[cur.index < first]
        out: dict[str, float] = {}
        for c in frame.columns:
            key = str(c).strip()
            if key in before.columns:
                s = before[key].dropna()
                if len(s):
                    out[key] = float(s.iloc[-1])
        return out

    def import_frame(
        self,
        df: pd.DataFrame,
        source: str,
        validate: bool = True,
        policy: str = "fail",
        **validation: Any,
    ) -> ValidationReport:
        """Validate `df` and merge it in: new tickers become columns; on overlapping dates the new values win
        (how many cells changed is in `report.merge`). Writes atomically; raises before writing if invalid."""
        frame = to_price_frame(df)
        if validate:
            validation.setdefault("latest", _today())
            validation.setdefault("prior", self._prior(frame))
            clean, report = validate_prices(frame, policy=policy, **validation)  # type: ignore[arg-type]
        else:
            clean = frame[~frame.index.duplicated(keep="last")].sort_index()
            report = ValidationReport(
                policy="none", rows_in=len(frame), rows_out=len(clean), tickers=list(clean.columns)
            )
        with self._locked():
            self._merge_and_write(clean, source, "import", report)
        return report

    def update(
        self,
        source: PriceSource,
        tickers: Sequence[str],
        end: Any = None,
        *,
        start: Any = DEFAULT_START,
        overlap: int = 5,
        policy: str = "fail",
        **validation: Any,
    ) -> UpdateResult:
        """Incremental fetch: tickers already stored get only the sessions after their last date (plus `overlap`
        sessions before it, to detect a vendor's re-adjustment of history, which triggers a full re-fetch of
        that ticker); new tickers are fetched from `start`. `end` defaults to the last *closed* session.
        Nothing is written unless every fetch succeeds."""
        want = list(dict.fromkeys(str(t) for t in tickers))
        if not want:
            raise DataError("no tickers to update")
        end_ts = to_date(end) if end is not None else last_closed_session()
        start_ts = to_date(start)
        current = self.load()
        res = UpdateResult(tickers=want)
        last_by: dict[str, pd.Timestamp] = {}
        for t in want:
            if t in current.columns:
                lv = current[t].last_valid_index()
                if lv is not None:
                    last_by[t] = cast(pd.Timestamp, lv)
        new = [t for t in want if t not in last_by]
        stale = [t for t in last_by if len(sessions(next_session(last_by[t]), end_ts)) > 0]
        res.up_to_date = [t for t in last_by if t not in stale]
        res.new_tickers = new
        parts: list[pd.DataFrame] = []
        readjusted: list[str] = []
        try:
            if stale:
                s0 = min(last_by[t] for t in stale)
                back = sessions(s0 - pd.Timedelta(days=7 * (overlap + 2)), s0)
                fstart = back[max(0, len(back) - 1 - overlap)] if overlap > 0 else next_session(s0)
                got = source.fetch(stale, fstart, end_ts)
                for t in stale:
                    res.fetched[t] = (fstart.strftime("%Y-%m-%d"), end_ts.strftime("%Y-%m-%d"))
                readjusted = _readjusted(current, got, stale)
                if readjusted:
                    first = min(cast(pd.Timestamp, current[t].first_valid_index()) for t in readjusted)
                    full = source.fetch(readjusted, first, end_ts)
                    for t in readjusted:
                        res.fetched[t] = (first.strftime("%Y-%m-%d"), end_ts.strftime("%Y-%m-%d"))
                    got = got.drop(columns=readjusted)
                    parts.append(full)
                parts.append(got)
            if new:
                parts.append(source.fetch(new, start_ts, end_ts))
                for t in new:
                    res.fetched[t] = (start_ts.strftime("%Y-%m-%d"), end_ts.strftime("%Y-%m-%d"))
        except OfflineError:
            if new:
                raise OfflineError(offline_message(new)) from None
            oldest = min(last_by[t] for t in stale).strftime("%Y-%m-%d")
            raise OfflineError(
                f"no network: prices for {', '.join(stale)} not updated (the store has them up to {oldest})",
                hint="the cached prices remain usable",
            ) from None
        res.readjusted = readjusted
        res.last = current.index[-1].strftime("%Y-%m-%d") if len(current) else None
        parts = [p for p in parts if p.shape[1] > 0]
        if not parts:
            return res
        fetched = pd.concat(parts, axis=1, sort=True) if len(parts) > 1 else parts[0]
        fetched = fetched.dropna(how="all")
        empty = [c for c in fetched.columns if not fetched[c].notna().any()]
        missing_new = [c for c in empty if c in new]
        if missing_new:
            raise DataError(
                f"{getattr(source, 'name', 'the source')} returned no prices for {', '.join(missing_new)}"
            )
        if empty:  # stored tickers for which the source has nothing newer: up to date as far as it knows
            res.up_to_date += [c for c in empty if c not in res.up_to_date]
            for c in empty:
                res.fetched.pop(c, None)
            fetched = fetched.drop(columns=empty)
        if fetched.shape[1] == 0:
            return res
        fetched = to_price_frame(fetched)
        validation.setdefault("latest", _today())
        validation.setdefault("prior", self._prior(fetched, current.drop(columns=readjusted)))
        clean, report = validate_prices(fetched, policy=policy, **validation)  # type: ignore[arg-type]
        with self._locked():
            stats = self._merge_and_write(
                clean, getattr(source, "name", type(source).__name__), "update", report, readjusted
            )
        res.report = report
        res.rows_added = int(stats["new_rows"])
        res.changed_cells = int(stats["changed_cells"])
        res.last = stats["last"]
        return res
