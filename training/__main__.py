"""`python -m training`: build walk-forward models, rebuild everything shipped, tune hyperparameters."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

__all__ = ["PROFILES", "main"]

# every shipped profile, in build order (build-all rebuilds exactly these, deterministically)
PROFILES = (
    "sector-rnn",
    "lstm-allocator",
    "lstm-proportional",
    "etf-lstm-mvo",
    "default",
    "djia-lstm-garch",
    "demo",
)
REPO = Path(__file__).resolve().parent.parent


def write_index(root: Path) -> Path:
    """exported_models/README.md: every shipped model with its window and headline validation metric."""
    from agent.forecast import ModelRegistry

    lines = [
        "# Shipped models",
        "",
        "Rebuild everything with `python -m training build-all` (deterministic: 1 thread, fixed seeds).",
        "Each `<profile>/<model-id>.onnx` carries its metadata (tickers, feature spec, scalers, train window, metrics,",
        "config, data digest, code version) and has a model card `<model-id>.md` beside it. The agent picks, at each",
        "decision date, the newest model with `train_end < asof`.",
        "",
        "| profile | model | train_start | train_end | valid_from | kind | headline validation metric |",
        "|---|---|---|---|---|---|---|",
    ]
    for prof in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for info in ModelRegistry(root / prof).models:
            v = json.loads(info.metadata["metrics"])["val"]
            if "accuracy_next_week" in v:
                head = f"acc next-week {v['accuracy_next_week']:.3f} (majority {v['majority_accuracy']:.3f})"
            elif "sharpe_ann" in v:
                head = f"Sharpe {v['sharpe_ann']:.2f} (1/N {v['ew_sharpe_ann']:.2f})"
            else:
                head = f"MSE/zero {v['mse'] / v['mse_zero']:.4f}, MSE/rolling-mean {v['mse'] / v['mse_rolling_mean']:.4f}"
            lines.append(
                f"| {prof} | [{info.model_id}]({prof}/{info.model_id}.md) | {info.metadata['train_start']} | "
                f"{info.train_end} | {info.metadata['valid_from']} | {info.kind} | {head} |"
            )
    out = root / "README.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def _add_scheduler_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="build on Dask: an existing cluster's scheduler address (default: sequential in this process)",
    )
    p.add_argument(
        "--workers", type=int, default=None, metavar="N", help="build on a Dask LocalCluster of N workers"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="train + export walk-forward models for one profile")
    b.add_argument("--profile", default=None, help="a training profile (training/configs/<name>.toml)")
    b.add_argument(
        "--config",
        default=None,
        metavar="SETTINGS.toml",
        help="an agent settings file instead: its universe, price store and models directory",
    )
    b.add_argument(
        "--recipe",
        default=None,
        metavar="TRAINING.toml",
        help="with --config: a training config for features/model/training (default: the profile's)",
    )
    b.add_argument(
        "--cadence", default="yearly", help="yearly (shipped) or every-N (retrain every N sessions)"
    )
    b.add_argument("--window", type=int, default=None, help="training window in rows (default: the config's)")
    b.add_argument("--start", default=None, help="first decision date for every-N (default 2020-01-01)")
    b.add_argument("--out", type=Path, default=None, help="root folder (default exported_models/)")
    b.add_argument("--only", nargs="*", default=None, help="only these train_end dates or years")
    b.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    _add_scheduler_options(b)
    a = sub.add_parser("build-all", help="rebuild every shipped model (the one documented rebuild command)")
    a.add_argument("--out", type=Path, default=None)
    a.add_argument("--quiet", action="store_true")
    _add_scheduler_options(a)
    t = sub.add_parser(
        "tune", help="Optuna TPE search over units/dropout/lr on the time-ordered validation split"
    )
    t.add_argument("--profile", required=True)
    t.add_argument("--trials", type=int, default=20)
    t.add_argument("--train-end", default=None)
    t.add_argument("--max-epochs", type=int, default=None)
    _add_scheduler_options(t)
    t.add_argument(
        "--storage", default=None, help="with --scheduler/--workers: Optuna storage URL (resumable study)"
    )
    sub.add_parser("list", help="list training profiles")
    lk = sub.add_parser(
        "leaky", help="models for the leakage audit (look-ahead procedures) into runs/leaky-models/"
    )
    lk.add_argument("variant", choices=["kfold", "scaler-all", "onestep"])
    lk.add_argument("--out", type=Path, default=None, help="root folder (default: runs/leaky-models)")
    args = ap.parse_args(argv)

    if args.cmd == "leaky":
        from training.leaky import build as build_leaky

        build_leaky(args.variant, args.out)
        return 0

    if args.cmd == "list":
        for p in PROFILES:
            print(p)
        return 0
    if args.cmd == "build" and (args.profile is None) == (args.config is None):
        ap.error("build needs exactly one of --profile NAME or --config SETTINGS.toml")
    if args.cmd == "tune" and (args.scheduler is not None or args.workers is not None):
        from training.distributed_tune import tune_distributed

        tune_distributed(
            args.profile,
            args.trials,
            args.train_end,
            max_epochs=args.max_epochs,
            scheduler=args.scheduler,
            workers=args.workers,
            storage=args.storage,
        )
        return 0
    if args.cmd == "tune":
        from training.tune import tune

        tune(args.profile, args.trials, args.train_end, max_epochs=args.max_epochs)
        return 0
    from training.walkforward import build_profile

    root = args.out or REPO / "exported_models"
    t0 = time.perf_counter()
    if args.scheduler is not None or args.workers is not None:
        from training.distributed import build_distributed, plan_jobs

        if args.cmd == "build":
            if args.window is not None:
                raise SystemExit("--window is not supported with --scheduler/--workers")
            jobs = plan_jobs(
                [args.profile or ""], args.cadence, args.start, args.only, args.config, args.recipe
            )
        else:
            jobs = plan_jobs(list(PROFILES))
        if args.cmd == "build" and args.config:
            from training.byo import resolve_settings_config

            root = resolve_settings_config(args.config, args.recipe).out_dir
        build_distributed(jobs, root, scheduler=args.scheduler, workers=args.workers, verbose=True)
        if args.cmd == "build-all":
            write_index(root)
    elif args.cmd == "build" and args.config:
        from training.byo import build_from_settings

        build_from_settings(
            args.config,
            recipe=args.recipe,
            cadence=args.cadence,
            start=args.start,
            only=args.only,
            verbose=not args.quiet,
        )
    elif args.cmd == "build":
        build_profile(
            args.profile,
            cadence=args.cadence,
            window=args.window,
            start=args.start,
            out_root=root,
            only=args.only,
            verbose=not args.quiet,
        )
    else:
        for prof in PROFILES:
            t1 = time.perf_counter()
            build_profile(prof, out_root=root, verbose=not args.quiet)
            print(f"== {prof} done in {time.perf_counter() - t1:.0f}s", flush=True)
        write_index(root)
    print(f"total {time.perf_counter() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
