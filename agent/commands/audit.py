"""`agent audit verify | show ID | replay ID`: check, read and independently recompute logged decisions."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from agent.commands.common import settings_from_args

__all__ = ["compare_records", "register"]

_DESC = """\
Audit the hash-chained decision log (<state_dir>/decisions.jsonl) against the ledger (<state_dir>/ledger.sqlite).
Works on a backtest's output too: `agent audit verify --state-dir runs/demo-2020-2022` (or --decision-log FILE).

  verify      check every record's hash, the chain, seq continuity and agreement with the ledger; names the first
              bad record (exit 1) - an edit, deletion, insertion or reordering is always found
  show ID     one record (ID = seq / run id, slot or asof date, or a hash prefix)
  replay ID   recompute the decision from the recorded inputs (prices as of that date, the recorded model, the
              book state before the decision) and compare targets, forecast, covariance, optimizer and overlay
              outputs (exit 0 when identical within 1e-9, 1 otherwise)
"""

TOL = 1e-9


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "audit",
        parents=[parent],
        help="verify the decision log, show or replay a decision",
        description=_DESC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = argparse.ArgumentParser(add_help=False)
    g = where.add_argument_group("what to audit")
    # `--log` needs allow_abbrev=False on the top-level parser (else argparse calls it an ambiguous prefix of
    # --log-level/--log-format); `--decision-log` works either way.
    g.add_argument(
        "--log",
        "--decision-log",
        dest="log",
        metavar="FILE",
        help="decision log (default: <state_dir>/decisions.jsonl)",
    )
    g.add_argument(
        "--ledger",
        metavar="FILE",
        help="ledger (default: ledger.sqlite next to --log, else <state_dir>/ledger.sqlite)",
    )
    asub = p.add_subparsers(dest="audit_cmd", metavar="COMMAND", required=True)
    v = asub.add_parser(
        "verify", parents=[parent, where], help="check the hash chain and its agreement with the ledger"
    )
    v.add_argument("--no-ledger", action="store_true", help="check the chain alone (weaker: see the docs)")
    v.set_defaults(handler=_verify)
    s = asub.add_parser("show", parents=[parent, where], help="pretty-print one decision record")
    s.add_argument("id", metavar="ID", help="seq / run id, slot or asof date (YYYY-MM-DD), or a hash prefix")
    s.add_argument("--json", action="store_true", help="the raw record as JSON")
    s.set_defaults(handler=_show)
    r = asub.add_parser("replay", parents=[parent, where], help="recompute one decision and compare")
    r.add_argument("id", metavar="ID", help="seq / run id, slot or asof date (YYYY-MM-DD), or a hash prefix")
    r.add_argument(
        "--prices", metavar="FILE", help="price file to replay on (default: the store / configured file)"
    )
    r.add_argument("--max-diffs", type=int, default=40, metavar="N", help="list at most N differences")
    r.set_defaults(handler=_replay)


# ----------------------------------------------------------------------------------------------------------------
# locating files


def _paths(args: argparse.Namespace) -> tuple[Path, Path | None, Any]:
    from agent.service.paths import StatePaths

    settings = settings_from_args(args)
    sp = StatePaths.from_settings(settings)
    log = Path(args.log).expanduser() if args.log else sp.log
    if getattr(args, "no_ledger", False):
        return log, None, settings
    if args.ledger:
        ledger: Path | None = Path(args.ledger).expanduser()
    elif args.log and (log.parent / "ledger.sqlite").exists():
        ledger = log.parent / "ledger.sqlite"
    else:
        ledger = sp.ledger
    return log, ledger, settings


def _open_ledger(path: Path | None) -> Any:
    from agent.errors import UsageError
    from agent.ledger import open_reader

    if path is None:
        return None
    if not path.exists():
        raise UsageError(
            f"no ledger at {path}", hint="use --ledger FILE, or --no-ledger to check the chain alone"
        )
    return open_reader(path)


# ----------------------------------------------------------------------------------------------------------------
# verify


def _verify(args: argparse.Namespace) -> int:
    from agent.decisionlog import DecisionLog
    from agent.errors import UsageError

    log_path, ledger_path, _ = _paths(args)
    if not log_path.exists() and (ledger_path is None or not ledger_path.exists()):
        raise UsageError(f"no decision log at {log_path}", hint="use --state-dir DIR or --log FILE")
    ledger = _open_ledger(ledger_path)
    try:
        res = DecisionLog(log_path).verify(ledger)
        runs = ledger.run_count() if ledger is not None else None
    finally:
        if ledger is not None:
            ledger.close()
    if res.ok:
        against = (
            f", in line with the ledger {ledger_path} ({runs} runs)"
            if ledger is not None
            else " (chain only)"
        )
        print(f"OK: {log_path}: {res.n_records} records, hash chain intact{against}")
        return 0
    print(f"FAILED: {log_path}: first bad record seq {res.first_bad_seq}: {res.problem}")
    return 1


# ----------------------------------------------------------------------------------------------------------------
# show


def _fmt_weights(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return ", ".join(
        f"{k} {float(v) * 100:.2f}%" for k, v in d.items() if v is not None and abs(float(v)) > 1e-12
    )


def _show(args: argparse.Namespace) -> int:
    from agent.decisionlog import DecisionLog
    from agent.errors import UsageError

    log_path, _, _ = _paths(args)
    if not log_path.exists():
        raise UsageError(f"no decision log at {log_path}", hint="use --state-dir DIR or --log FILE")
    entry = DecisionLog(log_path).show(args.id)
    if args.json:
        print(json.dumps(entry, indent=2, sort_keys=True))
        return 0
    rec = entry.get("record") or {}
    lines = [
        f"seq {entry['seq']}  run {entry['run_id']}  slot {entry['slot']}  asof {entry['asof']}  "
        f"profile {entry['profile']}",
        f"hash       {entry['hash']}",
        f"prev_hash  {entry['prev_hash']}",
        f"status     {rec.get('status')}: {rec.get('reason')}",
    ]
    inputs = rec.get("inputs") or {}
    px = inputs.get("prices") or {}
    if px:
        lines.append(
            f"prices     {px.get('rows')} rows {px.get('first')}..{px.get('last')}  digest {px.get('digest')}"
        )
    if inputs.get("model"):
        m = inputs["model"]
        lines.append(f"model      {m.get('id')} (train_end {m.get('train_end')}, sha256 {m.get('sha256')})")
    lines.append(f"config     {rec.get('config_digest')}  agent {rec.get('agent_version')}")
    sb = rec.get("state_before") or {}
    if sb:
        lines.append(
            f"before     NAV {float(sb.get('nav', 0)):,.2f}, drawdown {float(sb.get('drawdown', 0)) * 100:.2f}%, "
            f"stop {((sb.get('stop') or {}).get('status'))}"
        )
        lines.append(f"holdings   {_fmt_weights(sb.get('weights'))}")
    fc = rec.get("forecast") or {}
    if fc.get("mu"):
        lines.append(
            f"forecast   mu: {', '.join(f'{k} {v:+.5f}' for k, v in fc['mu'].items() if v is not None)}"
        )
    risk = rec.get("risk") or {}
    if risk:
        lines.append(
            f"risk       {risk.get('method')} (horizon {risk.get('horizon')}), fallbacks {risk.get('fallbacks') or '-'}"
        )
    opt = rec.get("optimizer") or {}
    if opt:
        lines.append(
            f"optimizer  {opt.get('method_requested')} -> {opt.get('method_used')} ({opt.get('status')}, "
            f"{opt.get('reason_code')}): {_fmt_weights(opt.get('weights'))}"
        )
    for ov in rec.get("overlays") or []:
        if ov.get("action") not in ("none", None):
            lines.append(f"overlay    {ov['name']}: {ov['action']} - {ov.get('reason')}")
    for fb in rec.get("fallbacks") or []:
        lines.append(f"fallback   {fb.get('stage')}: {fb.get('from')} -> {fb.get('to')} ({fb.get('reason')})")
    lines.append(f"targets    {_fmt_weights(rec.get('targets'))}")
    if rec.get("orders"):
        lines.append(f"orders     {', '.join(f'{k} {v * 100:+.2f}%' for k, v in rec['orders'].items())}")
    if rec.get("timings_ms"):
        lines.append(f"timings    {', '.join(f'{k} {v:.1f} ms' for k, v in rec['timings_ms'].items())}")
    print("\n".join(lines))
    return 0


# ----------------------------------------------------------------------------------------------------------------
# replay


def compare_records(old: Any, new: Any, path: str = "", tol: float = TOL) -> list[tuple[str, Any, Any]]:
    """Differences between two JSON-like values: numbers within `tol` (absolute) are equal, None == NaN."""
    out: list[tuple[str, Any, Any]] = []

    def num(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in old:
                out.append((p, "<absent>", new[k]))
            elif k not in new:
                out.append((p, old[k], "<absent>"))
            else:
                out.extend(compare_records(old[k], new[k], p, tol))
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            out.append((f"{path}[len]", len(old), len(new)))
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            out.extend(compare_records(a, b, f"{path}[{i}]", tol))
    elif num(old) and num(new):
        a, b = float(old), float(new)
        if not (math.isclose(a, b, rel_tol=0.0, abs_tol=tol) or (math.isnan(a) and math.isnan(b))):
            out.append((path, old, new))
    elif old != new:
        out.append((path, old, new))
    return out


def _replay_store(settings: Any, prices: str | None) -> tuple[Any, str]:
    """The prices a decision saw: the given file, else the local store (daemon), else the configured file/demo."""
    from agent.backtest import load_prices_for
    from agent.data.store import PriceStore

    if prices:
        store, label = load_prices_for(settings, prices)
        return store, f"file {label}"
    store = PriceStore(Path(settings.paths.data_dir).expanduser())
    if set(settings.universe.tickers) <= set(store.tickers):
        # the store the run read (never updated here: a replay must not move its own inputs)
        return store, f"price store {settings.paths.data_dir}"
    store, label = load_prices_for(settings, None)
    return store, label


def _state_from_record(
    rec: dict[str, Any], asof: dt.date, tickers: tuple[str, ...], last_decision: dt.date | None
) -> Any:
    import numpy as np

    from agent.decision import PortfolioState, StopState

    sb = rec.get("state_before") or {}
    w = sb.get("weights") or {}
    return PortfolioState(
        asof=asof,  # the ledger describes the book as of the decision date (Ledger.portfolio_state(asof))
        tickers=tickers,
        weights=np.array([float(w.get(t) or 0.0) for t in tickers], dtype=float),
        nav=float(sb.get("nav", 0.0)),
        peak_nav=float(sb.get("peak_nav", 0.0)),
        stop=StopState.from_dict(sb.get("stop") or {}),
        last_decision=last_decision,  # the previous record's asof (the runner takes it from the ledger)
    )


def _replay(args: argparse.Namespace) -> int:
    from agent.decision import canonical_json
    from agent.decisionlog import DecisionLog
    from agent.engine import EngineContext, decide, decision_without_timings
    from agent.errors import UsageError

    log_path, _, settings = _paths(args)
    if not log_path.exists():
        raise UsageError(f"no decision log at {log_path}", hint="use --state-dir DIR or --log FILE")
    dlog = DecisionLog(log_path)
    entry = dlog.show(args.id)
    rec = entry["record"]
    asof = dt.date.fromisoformat(str(entry["asof"])[:10])
    prev = dlog.show(int(entry["seq"]) - 1) if int(entry["seq"]) > 1 else None
    last_decision = dt.date.fromisoformat(str(prev["asof"])[:10]) if prev else None
    notes: list[str] = []
    if settings.profile != entry["profile"]:
        notes.append(f"the record is for profile {entry['profile']!r}: replaying with that profile")
        args.profile = entry["profile"]
        settings = settings_from_args(args)
    tickers = tuple(rec.get("tickers") or settings.universe.tickers)
    if tickers != settings.universe.tickers:
        raise UsageError(
            f"the record's universe ({', '.join(tickers)}) is not the configured one "
            f"({', '.join(settings.universe.tickers)})",
            hint="pass the --config the decision was made with",
        )
    cfg = settings.strategy_digest()
    if rec.get("config_digest") and rec["config_digest"] != cfg:
        notes.append(
            f"config digest differs (recorded {str(rec['config_digest'])[:12]}…, now {cfg[:12]}…): the strategy "
            "settings changed since; outputs are compared regardless"
        )
    store, where = _replay_store(settings, args.prices)
    ctx = EngineContext.create(settings, store)
    if ctx.skill is not None:  # issue 9: the skill tracker exactly as the decision saw it, rebuilt from the log
        from agent.skill.store import tracker_from_records

        before = (e["record"] for e in dlog.records() if int(e["seq"]) < int(entry["seq"]))
        ctx.skill.tracker = tracker_from_records(before, settings.skill.halflife)
    from agent.allocate.registry import StaticMvoAllocator

    if isinstance(ctx.allocator, StaticMvoAllocator):  # the book's one static fit, as the decision held it
        fit = (rec.get("optimizer") or {}) if (rec.get("optimizer") or {}).get("fit_weights") else None
        if fit is not None:
            ctx.allocator.restore(fit)
    model = (rec.get("inputs") or {}).get("model")
    problems: list[str] = []
    if model and ctx.forecaster is not None:
        reg = ctx.forecaster.registry
        pinned = [m for m in reg.models if m.sha256 == model.get("sha256")]
        if not pinned:
            problems.append(
                f"the recorded model {model.get('id')} (sha256 {model.get('sha256')}) is not in {reg.models_dir}"
            )
        else:
            reg.models = pinned
    risk = rec.get("risk") or {}
    if risk.get("params"):
        # GARCH parameters are recorded inputs (like the model): warm-started refits depend on the run's
        # history at optimizer tolerance, so the replay filters with the recorded ones instead of re-fitting
        ctx.replay_garch_params = risk["params"]
    opt = rec.get("optimizer") or {}
    state = _state_from_record(rec, asof, tickers, last_decision)
    if opt.get("method_used") == "static_mvo" and opt.get("fit_on") and opt["fit_on"] != asof.isoformat():
        # static MVO is fit once, at the first decision: warm the context exactly as the run did
        decide(dt.date.fromisoformat(opt["fit_on"]), state, settings, ctx)
    dec = decide(asof, state, settings, ctx)
    new = json.loads(canonical_json(decision_without_timings(dec.record)))
    old = decision_without_timings(rec)
    # not outputs of decide(): the strategy digest, and the ledger's corporate-action rebases of that run
    old = {k: v for k, v in old.items() if k not in ("config_digest", "corporate_actions")}
    new = {k: v for k, v in new.items() if k not in ("config_digest", "corporate_actions")}
    diffs = compare_records(old, new)
    head = f"replay of seq {entry['seq']} (slot {entry['slot']}, asof {asof}, profile {entry['profile']}) on {where}"
    print(head)
    for n in notes:
        print(f"  note: {n}")
    for p in problems:
        print(f"  problem: {p}")
    if not diffs and not problems:
        print(
            f"IDENTICAL: targets {_fmt_weights(new.get('targets'))} (status {new.get('status')}); every recorded "
            f"output matches within {TOL:g}"
        )
        return 0
    print(f"DIFFERENT: {len(diffs)} field(s) differ")
    for p, a, b in diffs[: max(1, args.max_diffs)]:
        print(f"  {p}: recorded {_short(a)} | replayed {_short(b)}")
    if len(diffs) > args.max_diffs:
        print(f"  ... and {len(diffs) - args.max_diffs} more")
    return 1


def _short(x: Any) -> str:
    s = json.dumps(x, sort_keys=True, default=str)
    return s if len(s) <= 120 else s[:117] + "..."
