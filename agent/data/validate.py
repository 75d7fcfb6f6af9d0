"""Price validation: bad rows never reach a model silently.

`validate_prices` checks a wide price frame and returns the cleaned frame plus a `ValidationReport` that the store
keeps with the provenance. What is checked:

* errors (blocking): non-numeric, non-finite or non-positive prices; duplicate or unsorted dates; dates that are
  not NYSE sessions; gaps against the trading calendar inside a series (between its first and last valid price);
  a ticker with no price at all.
* warnings (not blocking by default): stale series (the same close `stale_sessions` times in a row) and
  implausible one-day moves (|simple return| > `max_jump`). Real crises have big moves (XLE -20% on 2020-03-09,
  several S&P 500 names beyond -50% in 2008), so a jump is reported, not rejected; pass
  `fail_on_warnings=True` to make warnings blocking as well.

Leading NaNs (before a ticker's first price: IPO or inception) and trailing NaNs (after its last) are not gaps.

Policies: "fail" raises ValidationFailedError (one line: the first problems with ticker, date and kind) if any
error is found. "ffill" repairs what can be repaired and records every repair: sorts, keeps the last of duplicate
dates, drops non-session rows, turns non-numeric / non-finite / non-positive cells into gaps, adds missing
session rows, and forward-fills gaps of at most `max_ffill` sessions (every filled cell is listed). A gap longer
than `max_ffill` or an empty series cannot be repaired and raises ValidationFailedError under either policy.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from agent.errors import DataError, ValidationFailedError

__all__ = ["ERROR_KINDS", "WARNING_KINDS", "Issue", "ValidationReport", "validate_prices"]

Policy = Literal["fail", "ffill"]
Severity = Literal["error", "warning"]

ERROR_KINDS = (
    "non_numeric",
    "non_finite",
    "non_positive",
    "unsorted",
    "duplicate_date",
    "non_session",
    "gap",
    "no_data",
)
WARNING_KINDS = ("jump", "stale")
_MAX_PER_KIND = 500  # issues kept per kind (counts stay exact): a broken file must not produce a huge report


@dataclass(frozen=True)
class Issue:
    """One problem: `date` is where it starts, `end` where a run (gap, stale stretch) ends."""

    kind: str
    ticker: str | None
    date: str | None
    end: str | None = None
    detail: str = ""
    severity: Severity = "error"
    repaired: bool = False

    def text(self) -> str:
        span = (self.date + (f"..{self.end}" if self.end else "")) if self.date else None
        where = " ".join(x for x in (self.ticker, span) if x)
        return f"{where} {self.kind}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class ValidationReport:
    """What validation found and what it repaired. `ok` means nothing blocking remains."""

    policy: str = "fail"
    rows_in: int = 0
    rows_out: int = 0
    tickers: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    filled: list[tuple[str, str]] = field(default_factory=list)  # (ticker, date) of every forward-filled cell
    dropped_rows: list[str] = field(default_factory=list)  # dates removed (duplicates, non-sessions)
    fail_on_warnings: bool = False
    merge: dict[str, Any] = field(default_factory=dict)  # filled in by PriceStore.import_frame

    def _add(self, issue: Issue) -> None:
        n = self.counts.get(issue.kind, 0)
        self.counts[issue.kind] = n + 1
        if n < _MAX_PER_KIND:
            self.issues.append(issue)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error" and not i.repaired]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def repaired(self) -> list[Issue]:
        return [i for i in self.issues if i.repaired]

    @property
    def blocking(self) -> list[Issue]:
        return self.errors + (self.warnings if self.fail_on_warnings else [])

    @property
    def ok(self) -> bool:
        return not self.blocking

    def one_line(self, limit: int = 3) -> str:
        b = self.blocking
        n = sum(1 for _ in b)
        shown = "; ".join(i.text() for i in b[:limit])
        more = f" (+{n - limit} more)" if n > limit else ""
        return f"price validation failed (policy {self.policy}): {n} problem{'s' if n != 1 else ''}: {shown}{more}"

    def summary(self, limit: int = 5) -> str:
        """A few human lines: status, counts by kind, the first issues."""
        status = "ok" if self.ok else "FAILED"
        lines = [
            f"validation {status}: {len(self.tickers)} tickers, {self.rows_in} rows in, {self.rows_out} rows out "
            f"(policy {self.policy})"
        ]
        if self.counts:
            lines.append("  found: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())))
        if self.filled:
            lines.append(f"  forward-filled {len(self.filled)} cells")
        if self.dropped_rows:
            lines.append(f"  dropped {len(self.dropped_rows)} rows")
        order = {"error": 0, "warning": 1}
        for i in sorted(self.issues, key=lambda i: (i.repaired, order[i.severity]))[:limit]:
            tag = "repaired" if i.repaired else i.severity
            lines.append(f"  {tag}: {i.text()}")
        return "\n".join(lines)

    def ticker_summary(self, ticker: str) -> str:
        """One short line for the provenance of one ticker."""
        c = Counter(i.kind for i in self.issues if i.ticker == ticker)
        n_filled = sum(1 for t, _ in self.filled if t == ticker)
        parts = [f"{k} {v}" for k, v in sorted(c.items())]
        if n_filled:
            parts.append(f"filled {n_filled}")
        return "ok" if not parts else ", ".join(parts)

    def to_dict(self, max_issues: int = 200) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "policy": self.policy,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "tickers": list(self.tickers),
            "counts": dict(sorted(self.counts.items())),
            "issues": [asdict(i) for i in self.issues[:max_issues]],
            "issues_truncated": max(0, len(self.issues) - max_issues),
            "filled": [list(x) for x in self.filled[: max_issues * 5]],
            "n_filled": len(self.filled),
            "dropped_rows": self.dropped_rows[:max_issues],
            "n_dropped_rows": len(self.dropped_rows),
            "merge": self.merge,
        }


def _iso(ts: Any) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start positions and lengths of runs of True."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(d == 1)
    return starts, np.flatnonzero(d == -1) - starts


def validate_prices(
    df: pd.DataFrame,
    *,
    calendar_check: bool = True,
    max_ffill: int = 3,
    max_jump: float = 0.5,
    stale_sessions: int = 5,
    policy: Policy = "fail",
    fail_on_warnings: bool = False,
    calendar: str = "XNYS",
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check (and under policy "ffill", repair) a wide price frame. Returns (clean frame, report).

    Raises ValidationFailedError (a DataError, exit code 3) when something blocking remains; the exception carries
    the report as `.report`.
    """
    if policy not in ("fail", "ffill"):
        raise DataError(f"unknown validation policy {policy!r} (fail or ffill)")
    repair = policy == "ffill"
    rep = ValidationReport(policy=policy, rows_in=len(df), tickers=[str(c) for c in df.columns])
    rep.fail_on_warnings = fail_on_warnings
    cols = rep.tickers

    # --- dates -----------------------------------------------------------------------------------------------
    idx = df.index
    if not isinstance(idx, pd.DatetimeIndex):
        try:
            idx = pd.DatetimeIndex(pd.to_datetime(idx))
        except (ValueError, TypeError) as e:
            raise DataError(f"price index is not dates: {str(e).splitlines()[0]}") from None
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    idx = idx.normalize().as_unit("ns")
    if idx.isna().any():
        raise DataError("price index contains missing dates (NaT)")

    # --- values ------------------------------------------------------------------------------------------------
    X = np.empty((len(df), len(cols)), dtype="float64")
    for j, c in enumerate(df.columns):
        s = df[c]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            X[:, j] = s.to_numpy(dtype="float64", na_value=np.nan)
        else:
            coerced = pd.to_numeric(s, errors="coerce")
            bad = (coerced.isna() & s.notna()).to_numpy()
            for p in np.flatnonzero(bad).tolist():
                rep._add(Issue("non_numeric", cols[j], _iso(idx[p]), detail=repr(s.iloc[p]), repaired=repair))
            X[:, j] = coerced.to_numpy(dtype="float64", na_value=np.nan)

    # --- order and duplicates ----------------------------------------------------------------------------------
    vals = idx.asi8
    if len(vals) > 1 and not bool(np.all(vals[1:] >= vals[:-1])):
        first_bad = int(np.flatnonzero(vals[1:] < vals[:-1])[0]) + 1
        rep._add(Issue("unsorted", None, _iso(idx[first_bad]), detail="dates out of order", repaired=repair))
        order = np.argsort(vals, kind="stable")
        idx, X = idx[order], X[order]
        vals = idx.asi8
    dup = np.zeros(len(vals), dtype=bool)
    if len(vals) > 1:
        dup[:-1] = vals[:-1] == vals[1:]  # keep the last of equal dates
    if dup.any():
        for d in np.unique(vals[dup]):
            rep._add(
                Issue(
                    "duplicate_date", None, _iso(d), detail="duplicate row (kept the last)", repaired=repair
                )
            )
        rep.dropped_rows.extend(_iso(d) for d in vals[dup])
        keep = ~dup
        idx, X = idx[keep], X[keep]

    # --- calendar ----------------------------------------------------------------------------------------------
    if calendar_check and len(idx):
        from agent.data.calendar import sessions, sessions_mask

        ok_rows = sessions_mask(idx, calendar=calendar)
        if not ok_rows.all():
            for p in np.flatnonzero(~ok_rows).tolist():
                rep._add(
                    Issue(
                        "non_session", None, _iso(idx[p]), detail=f"not a {calendar} session", repaired=repair
                    )
                )
            rep.dropped_rows.extend(_iso(d) for d in idx[~ok_rows])
            idx, X = idx[ok_rows], X[ok_rows]
        if len(idx):
            grid = sessions(idx[0], idx[-1], calendar=calendar)
            if len(grid) != len(idx):  # whole session rows missing: add them so gaps are seen (and fillable)
                pos = np.searchsorted(grid.asi8, idx.asi8)
                full = np.full((len(grid), X.shape[1]), np.nan)
                full[pos] = X
                idx, X = grid, full

    # --- bad values --------------------------------------------------------------------------------------------
    with np.errstate(invalid="ignore"):
        inf = np.isinf(X)
        nonpos = np.isfinite(X) & (X <= 0)
    for kind, mask in (("non_finite", inf), ("non_positive", nonpos)):
        if mask.any():
            rr, cc = np.nonzero(mask)
            for ri, ci in zip(rr.tolist(), cc.tolist(), strict=True):
                rep._add(Issue(kind, cols[ci], _iso(idx[ri]), detail=repr(float(X[ri, ci])), repaired=repair))
            X[mask] = np.nan

    # --- per series: gaps, jumps, stale ------------------------------------------------------------------------
    dates = idx
    arange = np.arange(len(dates))
    for j, t in enumerate(cols):
        x = X[:, j]
        valid = ~np.isnan(x)
        if not valid.any():
            rep._add(Issue("no_data", t, None, detail="no prices at all"))
            continue
        first = int(np.argmax(valid))
        last = len(x) - 1 - int(np.argmax(valid[::-1]))
        vpos = np.flatnonzero(valid)
        v = x[vpos]
        # implausible one-day moves, between consecutive valid prices (before any filling)
        if len(v) > 1:
            r = v[1:] / v[:-1] - 1.0
            for k in np.flatnonzero(np.abs(r) > max_jump).tolist():
                rep._add(
                    Issue(
                        "jump", t, _iso(dates[vpos[k + 1]]), detail=f"return {r[k]:+.1%}", severity="warning"
                    )
                )
            # stale: the same close `stale_sessions` times in a row
            starts, lengths = _runs(v[1:] == v[:-1])
            for s0, ln in zip(starts, lengths, strict=True):
                if ln + 1 >= stale_sessions:
                    rep._add(
                        Issue(
                            "stale",
                            t,
                            _iso(dates[vpos[s0]]),
                            _iso(dates[vpos[s0 + ln]]),
                            detail=f"{ln + 1} identical closes {v[s0]:g}",
                            severity="warning",
                        )
                    )
        # gaps inside [first, last]
        inside = ~valid
        inside[:first] = False
        inside[last + 1 :] = False
        if inside.any():
            starts, lengths = _runs(inside)
            fillable = np.zeros(len(x), dtype=bool)
            for s0, ln in zip(starts, lengths, strict=True):
                can = repair and ln <= max_ffill
                rep._add(
                    Issue(
                        "gap",
                        t,
                        _iso(dates[s0]),
                        _iso(dates[s0 + ln - 1]) if ln > 1 else None,
                        detail=f"{ln} session{'s' if ln > 1 else ''} missing"
                        + ("" if ln <= max_ffill else f" > max_ffill {max_ffill}"),
                        repaired=bool(can),
                    )
                )
                if can:
                    fillable[s0 : s0 + ln] = True
            if fillable.any():
                last_valid = np.maximum.accumulate(np.where(valid, arange, -1))
                cells = np.flatnonzero(fillable)
                x[cells] = x[last_valid[cells]]
                rep.filled.extend((t, _iso(dates[c])) for c in cells.tolist())

    clean = pd.DataFrame(X, index=pd.DatetimeIndex(dates, name="date"), columns=cols)
    rep.rows_out = len(clean)
    if rep.blocking:
        hint = None
        if policy == "fail" and all(i.kind not in ("no_data",) for i in rep.blocking):
            hint = f"--policy ffill repairs gaps up to {max_ffill} sessions, duplicates and non-session rows"
        elif any(i.kind == "gap" for i in rep.blocking):
            hint = "gaps longer than data.max_ffill cannot be repaired: fix the file or raise data.max_ffill"
        exc = ValidationFailedError(rep.one_line(), hint=hint)
        exc.report = rep  # type: ignore[attr-defined]
        raise exc
    return clean, rep
