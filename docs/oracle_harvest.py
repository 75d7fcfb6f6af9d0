"""Where does the research oracle's skill go? A diagnostic on PRE-2020 data only (issue 9 follow-up).

Usage (from the repository root, PYTHONPATH pointing at it; AGENT_SHARED_DATA at the bundled data)::

    python docs/oracle_harvest.py run     [--out runs/oracle_harvest] [--ics 0.05,0.1,0.2] [--seeds 0,1,2]
    python docs/oracle_harvest.py analyze [--out runs/oracle_harvest]

``run`` replays the default profile with the risk overlays off (docs/make_skill.py ``NO_OVERLAYS``), models off
(``forecast.model = none``), the oracle of each IC and seed, and the zero-skill twin (``skill.gate_t = 1e9``).
Every window must end on or before 2019-12-31 (anything later is refused, exit 2), and the price store handed
to the replay -- and to the oracle, which looks ahead -- is cut at 2019-12-31 as well, so no 2020+ price is
read. ``analyze`` prints the JSON of the four measurements in docs/notes/oracle_harvest_pre2020.md:

1. the oracle's realized cross-sectional IC against (a) its own target window (close t .. close t+h, what
   agent.skill.synthetic draws it from and the tracker scores it on) and (b) the returns the book earns
   (close t+lag .. close of the next execution);
2. the gate: the fraction of decisions it is open, the t-statistic, the IC used vs the true IC;
3. the transfer: active return and risk against the zero-skill twin, the implied IR, and how far the proposed
   tilt survives (pre-overlay optimizer weights vs post-overlay targets vs the holdings after execution);
4. an independent reference: w = 1/N + k z on the same oracle scores (k matched to the realized TE), gross and
   net of 5 bps, on both windows, always on and only when the gate is open.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

LAST = dt.date(2019, 12, 31)  # nothing after this date is read or replayed
WINDOW = ("2006-01-01", "2019-12-31")
TWIN = {"forecast.placebo": 0, "skill.gate_t": 1e9}  # mu = pi at every decision (as docs/skill_evidence.py)
BPS = 5.0
# diagnostic variants (not settings proposals): "exec" keeps the profile's execution rules (turnover cap 0.6,
# no-trade band 0.5%) with the risk overlays still off; "cm" states the costs in the objective at face value
# against the alpha the posterior states (the tilt is scaled by delta / active risk aversion = 0.25, which
# scales the alpha against the costs too: cost_multiplier 0.25 undoes exactly that)
VARIANTS: dict[str, dict[str, Any]] = {
    "": {},
    "exec": {"overlays.turnover_cap": 0.6, "overlays.no_trade_band": 0.005},
    "cm": {"skill.cost_multiplier": 0.25},
}


def _refuse_late(end: str) -> None:
    if dt.date.fromisoformat(end) > LAST:
        print(f"error: window end {end} is after {LAST}: this diagnostic is pre-2020 only", file=sys.stderr)
        raise SystemExit(2)


def _frame() -> Any:
    import pandas as pd

    data = Path(os.environ.get("AGENT_SHARED_DATA", REPO.parent / "shared/data"))
    df = pd.read_csv(data / "sector_etfs_daily.csv", index_col="date", parse_dates=True)
    return df.loc[: pd.Timestamp(LAST)]


def _store(settings: Any) -> Any:
    from agent.data.store import PriceStore

    d = settings.data
    return PriceStore.from_frame(
        _frame(),
        source="file:sector_etfs_daily.csv (cut at 2019-12-31)",
        policy=d.on_invalid,
        max_ffill=d.max_ffill,
        max_jump=d.max_jump,
        stale_sessions=d.stale_sessions,
    )


def replay_one(label: str, overrides: dict[str, Any], out: Path, window: tuple[str, str] = WINDOW) -> Path:
    """One leak-free replay (the oracle alone looks ahead, within the cut store); returns its output dir."""
    from make_skill import NO_OVERLAYS

    from agent.backtest import run_backtest
    from agent.settings import load_settings
    from agent.skill.stage import oracle_replay

    _refuse_late(window[1])
    over = {"backtest.baselines": ["equal_weight"], "forecast.model": "none", **NO_OVERLAYS, **overrides}
    s = load_settings(profile="default", overrides=over)
    store = _store(s)
    d = out / label
    start, end = dt.date.fromisoformat(window[0]), dt.date.fromisoformat(window[1])
    if s.forecast.oracle_ic is not None:
        with oracle_replay(store.load()):
            run_backtest(s, store, start, end, d, write_report=False)
    else:
        run_backtest(s, store, start, end, d, write_report=False)
    (d / "overrides.json").write_text(json.dumps(over, sort_keys=True) + "\n")
    return d


def _label(ic: float, seed: int) -> str:
    return f"oracle_ic{ic:g}_s{seed}"


# ---------------------------------------------------------------- analysis


def _corr(a: Any, b: Any) -> float | None:
    import numpy as np

    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else None


def _decisions(d: Path) -> list[dict[str, Any]]:
    return [json.loads(x)["record"] for x in (d / "decisions.jsonl").read_text().splitlines()]


def _vec(rec: dict[str, float], tickers: list[str]) -> Any:
    import numpy as np

    return np.array([float(rec.get(t, 0.0)) for t in tickers])


def _stats(x: list[float | None] | list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray([v for v in x if v is not None and math.isfinite(v)], float)
    if len(a) == 0:
        return {"mean": float("nan"), "se": float("nan"), "n": 0}
    return {
        "mean": float(a.mean()),
        "se": float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0,
        "n": len(a),
    }


def analyze_run(d: Path, twin: Path, px: Any, lag: int = 1) -> dict[str, Any]:
    """The four measurements for one oracle replay ``d`` against its zero-skill twin."""
    import numpy as np
    import pandas as pd

    from agent.allocate.black_litterman import forecast_scores

    recs = _decisions(d)
    tickers = list(recs[0]["tickers"])
    closes = px[tickers]
    idx = closes.index
    pos = {ts.date(): i for i, ts in enumerate(idx)}
    ci = closes.to_numpy(float)
    dec_i = [pos[dt.date.fromisoformat(r["asof"])] for r in recs]
    n_dec = len(recs)
    h = int(recs[0]["risk"]["horizon"])
    w_ref = np.full(len(tickers), 1.0 / len(tickers))

    ic_target, ic_book, ic_next_t = [], [], []
    rows = []
    for k, r in enumerate(recs):
        mu = r.get("forecast", {}).get("used_mu")
        if mu is None or k + 1 >= n_dec:
            continue
        z = forecast_scores(_vec(mu, tickers))
        i = dec_i[k]
        if i + h >= len(ci):
            continue
        target = np.mean(ci[i + 1 : i + h + 1] / ci[i : i + h] - 1.0, axis=0)  # the oracle's own window
        e, e2 = i + lag, dec_i[k + 1] + lag  # executed at close t+lag, held to the next execution
        if e2 >= len(ci):
            continue
        book = ci[e2] / ci[e] - 1.0
        ic_target.append(_corr(z, target))
        ic_book.append(_corr(z, book))
        ic_next_t.append(e2 - e)
        sk = r.get("skill", {})
        s = sk.get("skill", {})
        rows.append(
            {
                "asof": r["asof"],
                "z": z,
                "book": book,
                "target_ret": ci[i + h] / ci[i] - 1.0,
                "gated": bool(s.get("gated", True)),
                "used_ic": float(s.get("used_ic") or 0.0),
                "t": (s.get("combined") or {}).get("t"),
                "live_ic": (s.get("live") or {}).get("ic"),
                "opt": _vec(r["optimizer"]["weights"], tickers) if "optimizer" in r else None,
                "target": _vec(r.get("targets", {}), tickers),
                "before": _vec(r["state_before"]["weights"], tickers),
                "post_minus_pi": (_vec(sk["posterior_mu"], tickers) - _vec(sk["prior_pi"], tickers))
                if "posterior_mu" in sk
                else None,
                "cov": np.array([[r["risk"]["cov"][a][b] for b in tickers] for a in tickers]),
            }
        )
    # 2. the gate
    open_ = [x for x in rows if not x["gated"]]
    gate = {
        "open_fraction": len(open_) / max(len(rows), 1),
        "t_mean": _stats([x["t"] for x in rows if x["t"] is not None])["mean"],
        "used_ic_when_open": _stats([x["used_ic"] for x in open_])["mean"],
        "live_ic_mean": _stats([x["live_ic"] for x in rows if x["live_ic"] is not None])["mean"],
        "validation_prior": (recs[-1].get("skill", {}).get("skill") or {}).get("validation"),
    }
    # 3. transfer: active vs the twin, and how far the tilt survives
    nav = pd.read_csv(d / "nav.csv", index_col="date", parse_dates=True)
    navt = pd.read_csv(twin / "nav.csv", index_col="date", parse_dates=True)
    rs, rt, rn = (
        nav["strategy"].pct_change().dropna(),
        navt["strategy"].pct_change().dropna(),
        nav["equal_weight"].pct_change().dropna(),
    )
    act = (rs - rt).dropna()
    act_n = (rs - rn).dropna()
    ann = lambda x: float(x.mean() * 252)  # noqa: E731
    vol = lambda x: float(x.std(ddof=1) * math.sqrt(252))  # noqa: E731
    sh = lambda x: ann(x) / vol(x)  # noqa: E731
    m = json.loads((d / "metrics.json").read_text())
    mt = json.loads((twin / "metrics.json").read_text())
    # tilts (open decisions): pre-overlay optimizer weights, post-overlay targets, holdings after execution
    # (the next decision's drifted holdings stand in for the executed book)
    tc_opt, tc_unc, surv, size_opt, size_held, tc_held = [], [], [], [], [], []
    by_asof = {x["asof"]: j for j, x in enumerate(rows)}
    for x in open_:
        jj = by_asof[x["asof"]]
        if x["opt"] is None or jj + 1 >= len(rows):
            continue
        a_opt = x["opt"] - w_ref
        a_tgt = x["target"][: len(tickers)] - w_ref
        a_held = rows[jj + 1]["before"][: len(tickers)] - w_ref
        tc_opt.append(_corr(a_opt, x["z"]))
        tc_held.append(_corr(a_held, x["z"]))
        if x["post_minus_pi"] is not None:
            unc = np.linalg.solve(x["cov"], x["post_minus_pi"])  # the unconstrained tilt Sigma^-1 alpha
            tc_unc.append(_corr(unc, x["z"]))
        surv.append(float(np.abs(a_tgt - a_opt).sum()))
        size_opt.append(float(np.abs(a_opt).sum()) / 2)
        size_held.append(float(np.abs(a_held).sum()) / 2)
    transfer = {
        "sharpe": m["strategy"]["sharpe"],
        "twin_sharpe": mt["strategy"]["sharpe"],
        "ref_sharpe": m["equal_weight"]["sharpe"],
        "turnover": m["strategy"]["turnover"],
        "twin_turnover": mt["strategy"]["turnover"],
        "active_ret_vs_twin": ann(act),
        "te_vs_twin": vol(act),
        "ir_vs_twin": sh(act),
        "active_ret_vs_1n": ann(act_n),
        "te_vs_1n": vol(act_n),
        "ir_vs_1n": sh(act_n),
        "corr_opt_tilt_z": _stats(tc_opt)["mean"],
        "corr_unconstrained_tilt_z": _stats(tc_unc)["mean"],
        "corr_held_tilt_z": _stats(tc_held)["mean"],
        "l1_post_minus_pre_overlay": _stats(surv)["mean"],
        "active_share_opt": _stats(size_opt)["mean"],
        "active_share_held": _stats(size_held)["mean"],
    }
    # 1. realized IC
    ic = {
        "target_window": _stats(ic_target),
        "book_window": _stats(ic_book),
        "holding_sessions_median": float(np.median(ic_next_t)),
        "horizon": h,
        "lag": lag,
    }
    # 4. the textbook reference tilt on the same scores
    ref = {}
    te = transfer["te_vs_twin"]
    for name, key, gate_only in (
        ("book", "book", False),
        ("book_gate_open", "book", True),
        ("target_no_lag", "target_ret", False),
    ):
        ref[name] = _reference_tilt(rows, key, gate_only, te, m["equal_weight"]["sharpe"], rn)
    return {"ic": ic, "gate": gate, "transfer": transfer, "reference": ref}


def _reference_tilt(
    rows: list[dict[str, Any]], key: str, gate_only: bool, te: float, ref_sharpe: float, r1n: Any
) -> dict[str, float]:
    """w = 1/N + k z held over each window; k makes the annualized active TE equal ``te``.

    Active return per window = k z . r (z sums to zero); the cost is 5 bps on |k z_t - k z_{t-1}|. The total
    return adds the 1/N baseline's return over the same span (its weekly mean and variance from its NAV).
    """
    import numpy as np

    per = []
    dz = []
    prev = None
    for x in rows:
        z = x["z"] if (not gate_only or not x["gated"]) else np.zeros_like(x["z"])
        per.append(float(z @ x[key]))
        dz.append(float(np.abs(z - (prev if prev is not None else 0 * z)).sum()))
        prev = z
    a = np.asarray(per)
    periods = len(a) / 14.0  # decisions per year on 2006-2019
    sd = float(a.std(ddof=1) * math.sqrt(periods))
    k = te / sd if sd > 0 else 0.0
    gross = a * k
    net = gross - k * np.asarray(dz) * BPS / 1e4
    ir_g = float(gross.mean() * periods / (gross.std(ddof=1) * math.sqrt(periods))) if sd > 0 else 0.0
    ir_n = float(net.mean() * periods / (net.std(ddof=1) * math.sqrt(periods))) if sd > 0 else 0.0
    # total Sharpe: 1/N plus the (nearly uncorrelated) active sleeve
    mu_n, vol_n = float(r1n.mean() * 252), float(r1n.std(ddof=1) * math.sqrt(252))
    tot = lambda ar: (mu_n + ar) / math.sqrt(vol_n**2 + te**2)  # noqa: E731
    return {
        "k": k,
        "active_ir_gross": ir_g,
        "active_ir_net": ir_n,
        "active_ret_gross": float(gross.mean() * periods),
        "active_ret_net": float(net.mean() * periods),
        "sharpe_gross": tot(float(gross.mean() * periods)),
        "sharpe_net": tot(float(net.mean() * periods)),
        "turnover_per_year": float(k * np.mean(dz) * periods),
    }


def sleeve_sharpe(mu: float, vol: float, ir: float, te: float) -> float:
    """Sharpe of 1/N (annual mean ``mu``, vol ``vol``) plus an uncorrelated active sleeve of net IR ``ir`` at TE."""
    return (mu + ir * te) / math.sqrt(vol**2 + te**2)


def ir_needed(mu: float, vol: float, te: float, lift: float) -> float:
    """The sleeve's net IR at tracking error ``te`` that lifts 1/N's Sharpe by ``lift`` (inverse of sleeve_sharpe)."""
    return ((mu / vol + lift) * math.sqrt(vol**2 + te**2) - mu) / te


def ceiling(irs: list[float], tes: list[float], lift: float = 0.3) -> str:
    """What an active sleeve of net information ratio IR, uncorrelated with 1/N, adds to 1/N's Sharpe at tracking
    error TE: (mu + IR * TE) / sqrt(vol^2 + TE^2), with 1/N's (daily rebalanced) mean and vol on 2006-2019; and
    the net IR a sleeve needs for 1/N + ``lift``. Markdown. Arithmetic on pre-2020 prices only."""
    from agent.settings import load_settings

    tickers = list(load_settings(profile="default").universe.tickers)
    r = _frame()[tickers].pct_change().dropna().mean(axis=1)
    mu, vol = float(r.mean() * 252), float(r.std(ddof=1) * math.sqrt(252))
    s0 = mu / vol
    head = " | ".join(f"Sharpe at IR {ir:g}" for ir in irs)
    lines = [
        f"1/N (daily rebalanced, 2006–2019): return {100 * mu:.1f}%, vol {100 * vol:.1f}%, Sharpe {s0:.3f}.",
        "",
        f"| TE | {head} | net IR needed for 1/N + {lift:g} |",
        "|---|" + "---|" * (len(irs) + 1),
    ]
    for te in tes:
        cells = " | ".join(f"{sleeve_sharpe(mu, vol, ir, te):.3f}" for ir in irs)
        lines.append(f"| {100 * te:g}% | {cells} | {ir_needed(mu, vol, te, lift):.2f} |")
    best = ", ".join(
        f"IR {ir:g}: {math.sqrt(s0**2 + ir**2):.3f} at TE {100 * vol * ir / s0:.0f}%" for ir in irs
    )
    lines += ["", f"Unconstrained best (any TE): {best}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cmd", choices=["run", "analyze", "ceiling"])
    p.add_argument("--irs", default="0.33,0.52,0.88", help="ceiling: net information ratios of the sleeve")
    p.add_argument("--tes", default="0.02,0.04,0.06,0.08,0.1", help="ceiling: tracking errors")
    p.add_argument("--out", type=Path, default=REPO / "runs/oracle_harvest")
    p.add_argument("--ics", default="0.05,0.1,0.2")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--end", default=WINDOW[1])
    p.add_argument("--variant", default="", choices=sorted(VARIANTS))
    p.add_argument("--markdown", action="store_true", help="analyze: the note's tables instead of JSON")
    a = p.parse_args(argv)
    extra = VARIANTS[a.variant]
    pre = f"{a.variant}_" if a.variant else ""
    _refuse_late(a.end)
    ics = [float(x) for x in a.ics.split(",")]
    seeds = [int(x) for x in a.seeds.split(",")]
    if a.cmd == "ceiling":
        print(ceiling([float(x) for x in a.irs.split(",")], [float(x) for x in a.tes.split(",")]))
        return 0
    if a.cmd == "run":
        if not (a.out / f"{pre}twin" / "nav.csv").exists():
            replay_one(f"{pre}twin", {**TWIN, **extra}, a.out)
        for ic in ics:
            for seed in seeds:
                lab = pre + _label(ic, seed)
                if not (a.out / lab / "nav.csv").exists():
                    replay_one(lab, {"forecast.oracle_ic": ic, "forecast.oracle_seed": seed, **extra}, a.out)
                    print("done", lab, flush=True)
        return 0
    px = _frame()
    res = {}
    for ic in ics:
        for seed in seeds:
            lab = pre + _label(ic, seed)
            if (a.out / lab / "nav.csv").exists():
                res[lab] = analyze_run(a.out / lab, a.out / f"{pre}twin", px)
    print(markdown(res) if a.markdown else json.dumps(res, indent=1, default=float))
    return 0


def markdown(res: dict[str, Any]) -> str:
    """Per-IC means over the seeds present (the note's tables)."""
    import numpy as np

    by: dict[str, list[dict[str, Any]]] = {}
    for lab, v in res.items():
        by.setdefault(lab.rsplit("_s", 1)[0], []).append(v)

    def m(vs: list[dict[str, Any]], *path: str) -> float:
        out = []
        for v in vs:
            for p in path:
                v = v[p]
            out.append(float(v))  # type: ignore[arg-type]
        return float(np.mean(out))

    lines = [
        "| run | seeds | IC vs close t..t+h (the old oracle and tracker window) | IC vs book (t+lag .. next execution) | gate open | mean t | used IC (open) | live IC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, vs in by.items():
        lines.append(
            f"| {k} | {len(vs)} | {m(vs, 'ic', 'target_window', 'mean'):.3f} | {m(vs, 'ic', 'book_window', 'mean'):.3f}"
            f" | {m(vs, 'gate', 'open_fraction'):.0%} | {m(vs, 'gate', 't_mean'):.2f}"
            f" | {m(vs, 'gate', 'used_ic_when_open'):.3f} | {m(vs, 'gate', 'live_ic_mean'):.3f} |"
        )
    lines += [
        "",
        "| run | Sharpe | twin Sharpe | 1/N Sharpe | turnover (twin) | active ret vs twin | TE vs twin | IR vs twin"
        " | corr(optimizer tilt, z) | corr(Σ⁻¹α, z) | corr(held tilt, z) | active share opt / held"
        " | L1 post − pre overlay |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, vs in by.items():
        t = lambda *p, vs=vs: m(vs, "transfer", *p)  # noqa: E731
        lines.append(
            f"| {k} | {t('sharpe'):.3f} | {t('twin_sharpe'):.3f} | {t('ref_sharpe'):.3f}"
            f" | {t('turnover'):.1f} ({t('twin_turnover'):.1f}) | {t('active_ret_vs_twin'):.2%}"
            f" | {t('te_vs_twin'):.2%} | {t('ir_vs_twin'):.2f} | {t('corr_opt_tilt_z'):.2f}"
            f" | {t('corr_unconstrained_tilt_z'):.2f} | {t('corr_held_tilt_z'):.2f}"
            f" | {t('active_share_opt'):.2f} / {t('active_share_held'):.2f} | {t('l1_post_minus_pre_overlay'):.3f} |"
        )
    lines += [
        "",
        "| run | reference | active IR gross / net | Sharpe gross / net | turnover per year |",
        "|---|---|---|---|---|",
    ]
    for k, vs in by.items():
        for name in vs[0]["reference"]:
            r = lambda f, vs=vs, name=name: m(vs, "reference", name, f)  # noqa: E731
            lines.append(
                f"| {k} | {name} | {r('active_ir_gross'):.2f} / {r('active_ir_net'):.2f}"
                f" | {r('sharpe_gross'):.2f} / {r('sharpe_net'):.2f} | {r('turnover_per_year'):.0f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
