"""Operations hooks run after every scheduled run: a Prometheus metrics file and webhook notifications.

One entry point, `after_run(settings, outcome)`, called by `agent run` (once and daemon) after the run has
committed or failed. It reads the book read-only (agent.ops.book), writes `ops.metrics_file` atomically when
configured, and POSTs the run's events (agent.ops.events) to `ops.webhook_url` when configured. It never raises
and never changes the ledger, the decision log or the run's exit code: a monitoring problem is logged and the
run carries on.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.ops.book import Book
    from agent.ops.events import Event
    from agent.ops.webhook import Delivery
    from agent.settings import Settings

__all__ = ["OpsResult", "after_run", "book_gauges", "notify", "send_events"]

_STOP_STATES = ("armed", "stopped", "cooling_down", "reentered")


@dataclass
class OpsResult:
    metrics_written: Path | None = None
    events: list[str] = field(default_factory=list)
    deliveries: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _epoch(day: Any) -> float | None:
    try:
        d = dt.date.fromisoformat(str(day)[:10])
    except (TypeError, ValueError):
        return None
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()


def _iso_epoch(ts: Any) -> float | None:
    try:
        t = dt.datetime.fromisoformat(str(ts))
    except (TypeError, ValueError):
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


def book_gauges(
    book: Book | None,
    *,
    status: str,
    exit_code: int,
    now: float,
    duration_s: float | None = None,
) -> list[Any]:
    """The gauges of the metrics file: the run just finished, then the book's state (when there is a book)."""
    from agent.ops.events import stale_weekdays, stop_status
    from agent.ops.promfile import Gauge as G

    g = [
        G("agent_last_run_timestamp_seconds", "Unix time the last run (any outcome) finished.", now),
        G(
            "agent_last_run_success",
            "1 if the last run succeeded (or had nothing to do), 0 if it failed.",
            0.0 if status == "failed" else 1.0,
        ),
        G(
            "agent_last_run_exit_code",
            "Exit code of the last run (0 ok, 1 run failed, 2 config, 3 data).",
            float(exit_code),
        ),
        G(
            "agent_last_run_status",
            "Outcome of the last run (1 for the current status).",
            1.0,
            {"status": status},
        ),
    ]
    if duration_s is not None:
        g.append(
            G(
                "agent_run_duration_seconds",
                "Wall time of the last run (prices, decision, commit).",
                duration_s,
            )
        )
    if book is None:
        return g
    g.append(G("agent_runs_committed", "Runs committed in the ledger.", float(len(book.runs))))
    g.append(
        G("agent_run_failures_recorded", "Failed runs recorded in the ledger.", float(len(book.failures)))
    )
    if len(book.nav):
        last = book.nav.iloc[-1]
        g += [
            G(
                "agent_nav",
                "Net asset value of the paper book at the last marked close (ledger currency).",
                float(last["nav"]),
            ),
            G(
                "agent_drawdown_ratio",
                "Drawdown of the NAV from its running peak (a negative fraction).",
                float(last["drawdown"]),
            ),
            G(
                "agent_cash_ratio",
                "Cash as a fraction of NAV at the last marked close.",
                float(last["cash"]) / float(last["nav"]) if float(last["nav"]) else float("nan"),
            ),
            G(
                "agent_nav_timestamp_seconds",
                "Date of the last marked close (midnight UTC).",
                _epoch(book.nav.index[-1].date()) or float("nan"),
            ),
        ]
    if len(book.executions):
        ex = book.executions.iloc[-1]
        g.append(
            G(
                "agent_last_turnover_ratio",
                "One-way turnover of the last execution (traded / NAV before).",
                float(ex["turnover"]),
            )
        )
        g.append(
            G(
                "agent_costs_total",
                "Transaction costs paid since the book opened (ledger currency).",
                float(book.executions["cost"].sum()),
            )
        )
    if book.runs:
        run = book.runs[-1]
        dec = run.get("decision") or {}
        committed = _iso_epoch(run.get("committed_at"))
        if committed is not None:
            g.append(
                G(
                    "agent_last_commit_timestamp_seconds",
                    "Unix time the last decision was committed.",
                    committed,
                )
            )
        asof = _epoch(run.get("asof"))
        if asof is not None:
            g.append(
                G(
                    "agent_last_decision_date_timestamp_seconds",
                    "As-of date of the last decision (midnight UTC).",
                    asof,
                )
            )
        timings = dec.get("timings_ms")
        if isinstance(timings, dict) and timings:
            total = sum(float(v) for v in timings.values() if isinstance(v, int | float))
            g.append(
                G(
                    "agent_decision_latency_seconds",
                    "Time the last decision took (sum of its stages).",
                    total / 1e3,
                )
            )
        state = stop_status(dec)
        if state is not None:
            g.append(
                G(
                    "agent_drawdown_stop_active",
                    "1 while the drawdown stop holds the book out of the market.",
                    0.0 if state == "armed" else 1.0,
                )
            )
            for s in sorted({*_STOP_STATES, state}):
                g.append(
                    G(
                        "agent_drawdown_stop_state",
                        "Drawdown stop state after the last decision (1 = current).",
                        1.0 if s == state else 0.0,
                        {"state": s},
                    )
                )
        prices = (dec.get("inputs") or {}).get("prices") or {}
        last_px = _epoch(prices.get("last")) if isinstance(prices, dict) else None
        if last_px is not None:
            g.append(
                G(
                    "agent_data_last_price_timestamp_seconds",
                    "Date of the last price the decision saw.",
                    last_px,
                )
            )
        lag = stale_weekdays(dec)
        if lag is not None:
            g.append(
                G(
                    "agent_data_staleness_weekdays",
                    "Weekdays between the last price and the decision date.",
                    float(lag),
                )
            )
        skill = (dec.get("forecast") or {}).get("skill")
        if isinstance(skill, int | float) and not isinstance(skill, bool):
            g.append(
                G(
                    "agent_model_skill",
                    "Out-of-sample skill of the forecast model, as recorded.",
                    float(skill),
                )
            )
        elif isinstance(skill, dict):
            for k, v in sorted(skill.items()):
                if isinstance(v, int | float) and not isinstance(v, bool):
                    g.append(
                        G(
                            "agent_model_skill",
                            "Out-of-sample skill of the forecast model, as recorded.",
                            float(v),
                            {"metric": str(k)},
                        )
                    )
    return g


def send_events(settings: Settings, events: list[Event], *, profile: str, slot: str | None) -> list[Delivery]:
    """POST each enabled event to ops.webhook_url (one JSON object per event); nothing when no URL is set."""
    from agent.ops.webhook import post_json

    ops = settings.ops
    if ops.webhook_url is None:
        return []
    url = ops.webhook_url.get_secret_value()
    out = []
    for ev in events:
        if ev.kind not in ops.events:
            continue
        payload = {
            "source": "rebalance-agent",
            "profile": profile,
            "slot": slot,
            "event": ev.kind,
            "severity": ev.severity,
            "message": ev.message,
            "text": f"[rebalance-agent {profile}] {ev.severity}: {ev.message}",  # Slack/Mattermost-compatible
            "details": ev.details,
            "sent_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        out.append(post_json(url, payload, timeout=ops.webhook_timeout_seconds, retries=ops.webhook_retries))
    return out


def after_run(settings: Settings, outcome: Any, *, duration_s: float | None = None) -> OpsResult:
    """Write the metrics file and send the run's events. Never raises; problems are logged and returned."""
    res = OpsResult()
    try:
        _after_run(settings, outcome, duration_s, res)
    except Exception as e:  # monitoring must never fail a run
        res.errors.append(f"{type(e).__name__}: {e}")
    if res.errors:
        try:
            from agent.logging import get_logger

            get_logger("agent.ops").warning("ops.failed", errors=res.errors)
        except Exception:  # pragma: no cover - logging itself broken
            pass
    return res


def _after_run(settings: Settings, outcome: Any, duration_s: float | None, res: OpsResult) -> None:
    from agent.errors import AgentError
    from agent.ops.book import read_book
    from agent.ops.events import detect_events
    from agent.ops.promfile import render, write_metrics_file

    ops = settings.ops
    if ops.metrics_file is None and ops.webhook_url is None:
        return
    status = str(getattr(outcome, "status", "failed"))
    code = int(getattr(outcome, "exit_code", 1))
    slot_v = getattr(outcome, "slot", None)
    slot = slot_v.isoformat() if isinstance(slot_v, dt.date) else (str(slot_v) if slot_v else None)
    book = None
    try:
        book = read_book(Path(settings.paths.state_dir))
    except AgentError as e:
        if status != "failed":
            res.errors.append(e.one_line())
    if ops.metrics_file is not None:
        try:
            gauges = book_gauges(book, status=status, exit_code=code, now=time.time(), duration_s=duration_s)
            write_metrics_file(ops.metrics_file, render(gauges, {"profile": settings.profile}))
            res.metrics_written = Path(ops.metrics_file)
        except Exception as e:
            res.errors.append(f"metrics file {ops.metrics_file}: {type(e).__name__}: {e}")
    events = detect_events(
        book.runs if book is not None else [],
        outcome_status=status,
        outcome_message=str(getattr(outcome, "message", "")),
        slot=slot,
    )
    res.events = [e.kind for e in events]
    res.deliveries = send_events(settings, events, profile=settings.profile, slot=slot)
    for d in res.deliveries:
        if not d.delivered:
            res.errors.append(f"webhook not delivered after {d.attempts} attempt(s): {'; '.join(d.errors)}")


def notify(
    settings: Settings, kind: str, message: str, details: dict[str, Any] | None = None
) -> list[Delivery]:
    """Send one event by hand (the systemd OnFailure= unit's `python -m agent.ops notify`)."""
    from agent.ops.events import Event

    return send_events(settings, [Event(kind, message, details or {})], profile=settings.profile, slot=None)
