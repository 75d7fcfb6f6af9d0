"""Persistence of the skill tracker in its own table of the ledger's SQLite file.

Why: the daemon and the backtest must agree on measured skill, and a restart must change nothing (issue 9).
The tracker's state is small (one row per forecast made); it lives beside the ledger so that one file holds a
run's state, but in a table this module owns (own DDL, own connection), so the ledger's schema is untouched.
Writes are idempotent upserts keyed by (profile, asof, model_id): replaying a decision rewrites the same row.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agent.skill.tracker import ForecastObs, SkillTracker

__all__ = ["DDL", "SkillStore", "flush", "load_into", "tracker_from_records"]

DDL = """
CREATE TABLE IF NOT EXISTS skill_forecasts (
    profile    TEXT NOT NULL,
    asof       TEXT NOT NULL,
    model_id   TEXT NOT NULL,
    horizon    INTEGER NOT NULL,
    tickers    TEXT NOT NULL,
    mu         TEXT NOT NULL,
    matured_on TEXT,
    ic         REAL,
    PRIMARY KEY (profile, asof, model_id)
)
"""


class SkillStore:
    """Load and save a profile's ``ForecastObs`` list in ``skill_forecasts`` of a SQLite file."""

    def __init__(self, path: Path | str, profile: str) -> None:
        self.path = Path(path)
        self.profile = profile

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        conn.execute(DDL)
        return conn

    def load(self, halflife: float = 26.0) -> SkillTracker:
        """The tracker as saved (an empty one when the file or the table has no rows for the profile)."""
        if not self.path.exists():
            return SkillTracker(halflife=halflife)
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT asof, model_id, horizon, tickers, mu, matured_on, ic FROM skill_forecasts "
                "WHERE profile = ? ORDER BY asof, model_id",
                (self.profile,),
            ).fetchall()
        finally:
            conn.close()
        obs = [
            ForecastObs(
                asof=dt.date.fromisoformat(a),
                model_id=m,
                horizon=int(h),
                tickers=tuple(json.loads(t)),
                mu=tuple(float(x) for x in json.loads(mu)),
                matured_on=None if mo is None else dt.date.fromisoformat(mo),
                ic=None if ic is None else float(ic),
            )
            for a, m, h, t, mu, mo, ic in rows
        ]
        return SkillTracker(halflife=halflife, obs=obs)

    def save(self, observations: list[ForecastObs]) -> int:
        """Upsert observations in one transaction; returns the number written."""
        if not observations:
            return 0
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO skill_forecasts (profile, asof, model_id, horizon, tickers, mu, matured_on, ic) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (profile, asof, model_id) DO UPDATE SET "
                "horizon = excluded.horizon, tickers = excluded.tickers, mu = excluded.mu, "
                "matured_on = excluded.matured_on, ic = excluded.ic",
                [
                    (
                        self.profile,
                        o.asof.isoformat(),
                        o.model_id,
                        o.horizon,
                        json.dumps(list(o.tickers)),
                        json.dumps([repr(float(x)) for x in o.mu]).replace('"', ""),
                        None if o.matured_on is None else o.matured_on.isoformat(),
                        o.ic,
                    )
                    for o in observations
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
        return len(observations)


def load_into(ctx: Any, path: Path | str) -> None:
    """Daemon / `run --once` start-up: give the engine context the tracker saved beside the ledger.

    A no-op when skill tracking is off. Call before the first decision of a process.
    """
    if getattr(ctx, "skill", None) is None:
        return
    ctx.skill.tracker = SkillStore(path, ctx.settings.profile).load(ctx.settings.skill.halflife)


def flush(ctx: Any, path: Path | str) -> int:
    """After each run_slot (outside the ledger's transaction): persist what the decision recorded or matured."""
    if getattr(ctx, "skill", None) is None:
        return 0
    return SkillStore(path, ctx.settings.profile).save(ctx.skill.take_pending())


def tracker_from_records(records: Iterable[Mapping[str, Any]], halflife: float = 26.0) -> SkillTracker:
    """Rebuild a tracker from earlier decision records (``record["skill"]["tracker_delta"]``), in log order.

    For `audit replay` of a decision (pass the records before it) and for a daemon whose skill table is missing:
    the hash-chained log is enough to restore exactly the skill state the decision saw.
    """
    t = SkillTracker(halflife=halflife)
    for rec in records:
        for d in (rec.get("skill") or {}).get("tracker_delta") or []:
            o = ForecastObs(
                asof=dt.date.fromisoformat(d["asof"]),
                model_id=str(d["model_id"]),
                horizon=int(d["horizon"]),
                tickers=tuple(d["tickers"]),
                mu=tuple(float(x) for x in d["mu"]),
                matured_on=None if d.get("matured_on") is None else dt.date.fromisoformat(d["matured_on"]),
                ic=None if d.get("ic") is None else float(d["ic"]),
            )
            found = False
            for i, old in enumerate(t.obs):
                if old.asof == o.asof and old.model_id == o.model_id:
                    t.obs[i], found = o, True
            if not found:
                t.obs.append(o)
    return t
