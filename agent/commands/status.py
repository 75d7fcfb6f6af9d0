"""`agent status`: what the agent did last, what it holds, when it runs next, and whether its log is intact."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from agent.commands.common import settings_from_args

__all__ = ["collect_status", "register"]


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "status",
        parents=[parent],
        help="last run, next run, positions, NAV, drawdown, stop state, log chain",
        description="Show the paper book of the state directory: the last run (slot, status, reason, commit time) "
        "and the next scheduled run, positions with weights, cash, NAV, drawdown from peak, the drawdown stop, "
        "pending orders, and a quick check of the decision log's hash chain against the ledger.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable JSON")
    p.set_defaults(handler=_run)


def collect_status(settings: Any) -> dict[str, Any]:
    """Everything `agent status` shows, as plain data (the --json output)."""
    from agent.decision import StopState
    from agent.decisionlog import DecisionLog
    from agent.ledger import open_reader as open_existing_ledger
    from agent.service.clock import SystemClock
    from agent.service.lock import lock_holder, lock_is_held
    from agent.service.paths import StatePaths
    from agent.service.slots import next_run_time, slot_anchor

    paths = StatePaths.from_settings(settings)
    s = settings.schedule
    out: dict[str, Any] = {
        "profile": settings.profile,
        "state_dir": str(paths.root),
        "schedule": {
            "frequency": s.frequency,
            "every_n": s.every_n if s.frequency == "every_n_sessions" else None,
            "time": s.time,
            "timezone": s.timezone,
            "catch_up": s.catch_up,
        },
    }
    held = lock_is_held(paths.root)
    out["agent_process"] = {"running": held, "pid": lock_holder(paths.root) if held else None}
    ledger = open_existing_ledger(paths.ledger)
    anchor = None
    if ledger is None:
        out.update({"last_run": None, "book": None, "positions": [], "log": None})
    try:
        if ledger is not None:
            first = ledger.run(1)
            anchor = slot_anchor(settings, dt.date.fromisoformat(first["slot"][:10]) if first else None)
            out["ledger_profile"] = ledger.profile
            last = ledger.last_run()
            out["last_run"] = (
                None
                if last is None
                else {
                    k: last.get(k)
                    for k in (
                        "run_id",
                        "slot",
                        "asof",
                        "status",
                        "reason",
                        "exec_date",
                        "committed_at",
                        "record_hash",
                    )
                }
            )
            if last is not None:
                full = ledger.run(int(last["run_id"])) or {}
                try:
                    rec = json.loads(full.get("decision_json") or "{}")
                except ValueError:
                    rec = {}
                fc = rec.get("forecast") or {}
                out["model"] = {
                    "model_id": fc.get("model_id"),
                    "skipped_models": fc.get("skipped_models") or [],
                    "error": fc.get("error"),
                }
                sk = (rec.get("skill") or {}).get("skill")
                if sk:  # issue 9's drift monitor: live skill next to validation skill, and what was used
                    out["skill"] = sk
            fails = ledger.failures()
            lastf = fails[-1] if fails else None
            out["last_failure"] = lastf
            out["runs"] = ledger.run_count()
            state = ledger.portfolio_state(None)
            prices = ledger.get_state("ledger.last_prices") or [None] * len(ledger.tickers)
            shares = ledger.positions()
            positions = []
            for i, t in enumerate(ledger.tickers):
                px = prices[i] if i < len(prices) else None
                sh = float(shares.get(t, 0.0))
                positions.append(
                    {
                        "ticker": t,
                        "shares": sh,
                        "price": px,
                        "value": None if px is None else sh * float(px),
                        "weight": float(state.weights[i]),
                    }
                )
            out["positions"] = positions
            stop_raw = ledger.get_state("stop")
            stop = StopState.from_dict(stop_raw) if stop_raw else StopState(peak_nav=ledger.initial_capital)
            dd_cfg = settings.overlays.drawdown_stop
            out["book"] = {
                "marked_to": ledger.last_marked.isoformat() if ledger.last_marked else None,
                "nav": float(state.nav),
                "cash": ledger.cash(),
                "cash_weight": float(state.cash_weight),
                "peak_nav": float(state.peak_nav),
                "drawdown": float(state.drawdown),
                "initial_capital": ledger.initial_capital,
                "return_since_start": float(state.nav) / ledger.initial_capital - 1.0,
            }
            out["drawdown_stop"] = {
                "enabled": bool(dd_cfg.enabled),
                "threshold": dd_cfg.threshold,
                "in_force": stop.status in ("stopped", "cooling_down"),
                **stop.to_dict(),
            }
            acts = ledger.events("corporate_action")
            out["corporate_actions"] = [
                {"date": e["date"], "ticker": e["ticker"], "factor": e["detail"].get("factor")} for e in acts
            ]
            pend = ledger.pending_orders()
            out["pending_orders"] = {
                "exec_date": pend[0]["exec_date"] if pend else None,
                "targets": {o["ticker"]: o["target_weight"] for o in pend},
            }
            dlog = DecisionLog(paths.log)
            try:
                v = dlog.verify(ledger)
                out["log"] = {
                    "path": str(paths.log),
                    "ok": v.ok,
                    "records": v.n_records,
                    "first_bad_seq": v.first_bad_seq,
                    "problem": v.problem,
                }
            except Exception as e:  # status must always answer
                out["log"] = {"path": str(paths.log), "ok": False, "records": None, "problem": str(e)}
    finally:
        if ledger is not None:
            ledger.close()
    nxt = next_run_time(settings, SystemClock().now(), anchor)
    out["next_run"] = nxt.isoformat() if nxt else None
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _human(st: dict[str, Any]) -> str:
    s = st["schedule"]
    freq = s["frequency"] + (f" ({s['every_n']} sessions)" if s.get("every_n") else "")
    lines = [
        f"profile       {st['profile']}  ({freq} at {s['time']} {s['timezone']}, catch_up = {s['catch_up']})",
        f"state dir     {st['state_dir']}",
    ]
    proc = st["agent_process"]
    lines.append(
        f"agent         {'running (pid ' + str(proc['pid']) + ')' if proc['running'] else 'not running'}"
    )
    if st.get("ledger_profile") and st["ledger_profile"] != st["profile"]:
        lines.append(
            f"warning       the ledger belongs to profile {st['ledger_profile']!r}, not {st['profile']!r}"
        )
    last = st.get("last_run")
    if last is None:
        lines.append("last run      none yet")
    else:
        ex = f", orders for {last['exec_date']}" if last.get("exec_date") else ""
        lines.append(
            f"last run      #{last['run_id']} slot {last['slot']}: {last['status']} ({last['reason']}){ex}, "
            f"committed {last['committed_at']}"
        )
    lf = st.get("last_failure")
    if lf and (last is None or str(lf.get("failed_at", "")) > str(last.get("committed_at", ""))):
        lines.append(f"last failure  slot {lf['slot']} at {lf['failed_at']}: {lf['reason']}")
    lines.append(f"next run      {st.get('next_run') or '-'}")
    book = st.get("book")
    if book:
        lines.append(
            f"book          marked to {book['marked_to'] or '-'}: NAV {_money(book['nav'])}, cash "
            f"{_money(book['cash'])} ({_pct(book['cash_weight'])}), since start {_pct(book['return_since_start'])}"
        )
        lines.append(f"drawdown      {_pct(book['drawdown'])} from peak {_money(book['peak_nav'])}")
        stop = st["drawdown_stop"]
        if not stop["enabled"]:
            lines.append("stop          drawdown stop disabled")
        elif stop["in_force"]:
            lines.append(
                f"stop          IN FORCE: {stop['status']} since {stop['stopped_on']}, {stop['sessions_left']} "
                f"session(s) left (threshold {_pct(stop['threshold'])})"
            )
        else:
            lines.append(f"stop          {stop['status']} (threshold {_pct(stop['threshold'])})")
        pos = [p for p in st["positions"] if p["shares"] != 0]
        if pos:
            lines.append("positions     ticker        shares         price           value   weight")
            for p in pos:
                px = "-" if p["price"] is None else f"{p['price']:.4f}"
                lines.append(
                    f"              {p['ticker']:<8s} {p['shares']:>12.4f} {px:>13s} {_money(p['value']):>15s} "
                    f"{_pct(p['weight']):>8s}"
                )
        else:
            lines.append("positions     none (all cash)")
        mdl = st.get("model") or {}
        if mdl.get("model_id") or mdl.get("error"):
            line = f"model         {mdl.get('model_id') or 'none'}"
            if mdl.get("error"):
                line += f" (forecast failed: {mdl['error']})"
            if mdl.get("skipped_models"):
                names = ", ".join(str(x[0]) for x in mdl["skipped_models"])
                line += f"; SUBSTITUTED: newer model(s) passed over: {names}"
            lines.append(line)
        sk = st.get("skill") or {}
        if sk:

            def _ic(e: Any) -> str:
                if not e:
                    return "none"
                return f"IC {e['ic']:+.3f} (t {e['t']:+.2f}, n {e['n']})"

            gated = " (gated: holding the reference)" if sk.get("gated") else ""
            lines.append(
                f"skill         validation {_ic(sk.get('validation'))}; live {_ic(sk.get('live'))}; "
                f"used IC {float(sk.get('used_ic') or 0.0):+.3f}{gated}"
            )
        acts = st.get("corporate_actions") or []
        if acts:
            a = acts[-1]
            lines.append(
                f"corp. actions {len(acts)} rebase(s); last {a['ticker']} at {a['date']} (price factor "
                f"{a['factor']:.6g})"
            )
        po = st.get("pending_orders") or {}
        if po.get("exec_date"):
            lines.append(f"pending       orders to execute at the close of {po['exec_date']}")
    log = st.get("log")
    if log is None:
        lines.append("decision log  none yet")
    elif log["ok"]:
        lines.append(f"decision log  {log['records']} records, hash chain OK and in line with the ledger")
    else:
        lines.append(f"decision log  PROBLEM at record {log.get('first_bad_seq')}: {log['problem']}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    st = collect_status(settings)
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True, default=str))
    else:
        print(_human(st))
    return 0
