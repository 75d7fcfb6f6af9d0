"""Walk-forward model builds spread over a Dask cluster: one task per (profile, train_end).

Why the worker returns bytes instead of writing files: a remote cluster need not share a filesystem with the
client, and the client writing every file keeps `exported_models/` consistent (atomic writes, one index). A
model's bytes do not depend on the worker: training is deterministic (one thread, fixed seeds, deterministic
torch kernels) and the metadata holds no host, time or path.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BuildJob", "build_distributed", "build_job", "plan_jobs"]


@dataclass(frozen=True)
class BuildJob:
    """One model: a training profile name (or a training config .toml path), its train_end, the cadence."""

    profile: str
    train_end: str
    cadence: str = "yearly"
    # bring your own universe: an agent settings TOML instead of a profile, optionally another training recipe
    settings_config: str | None = None
    recipe: str | None = None


def plan_jobs(
    profiles: list[str],
    cadence: str = "yearly",
    start: str | None = None,
    only: list[str] | None = None,
    settings_config: str | None = None,
    recipe: str | None = None,
) -> list[BuildJob]:
    """Every (profile, train_end) the sequential build would train, in the same order."""
    import pandas as pd

    from training.datasets import load_config, load_prices
    from training.walkforward import retrain_dates

    jobs = []
    if settings_config is not None:
        from training.byo import resolve_settings_config

        tgt = resolve_settings_config(settings_config, recipe)
        for te in retrain_dates(pd.DatetimeIndex(tgt.prices.index), tgt.cfg, cadence, start):
            if only and str(te.date()) not in only and str(te.year) not in only:
                continue
            jobs.append(BuildJob(tgt.cfg.profile, str(te.date()), cadence, settings_config, recipe))
        return jobs
    for prof in profiles:
        cfg = load_config(prof)
        for te in retrain_dates(pd.DatetimeIndex(load_prices(cfg).index), cfg, cadence, start):
            if only and str(te.date()) not in only and str(te.year) not in only:
                continue
            jobs.append(BuildJob(prof, str(te.date()), cadence))
    return jobs


def build_job(job: BuildJob) -> dict[str, Any]:
    """Train + export one model in a scratch directory (on a worker); return its files' bytes."""
    import pandas as pd

    from training.datasets import load_config, load_prices
    from training.export import export_model, write_card
    from training.train import train_one

    t0 = time.perf_counter()
    if job.settings_config is not None:
        from training.byo import resolve_settings_config

        tgt = resolve_settings_config(job.settings_config, job.recipe)
        cfg, prices, subdir = tgt.cfg, tgt.prices, ""
    else:
        cfg = load_config(job.profile)
        prices = load_prices(cfg)
        subdir = cfg.profile
    tm = train_one(cfg, prices, pd.Timestamp(job.train_end), verbose=False)
    with tempfile.TemporaryDirectory(prefix="agent-build-") as tmp:
        path = export_model(tm, Path(tmp), cadence=job.cadence)
        card = write_card(tm, path, cadence=job.cadence)
        files = {p.name: p.read_bytes() for p in (path, Path(card))}
    return {
        "profile": cfg.profile,
        "subdir": subdir,
        "train_end": job.train_end,
        "files": files,
        "seconds": time.perf_counter() - t0,
        "worker": f"{os.uname().nodename}:{os.getpid()}",
    }


def build_distributed(
    jobs: list[BuildJob],
    out_root: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    verbose: bool = True,
) -> list[Path]:
    """Run `jobs` on Dask (a LocalCluster by default); write each model under out_root/<profile>/ (directly
    under out_root for a settings-file job) as it arrives. A failed job raises after the others finished (a partial rebuild is never silent)."""
    from distributed import as_completed

    from agent.atomic import atomic_write_bytes
    from agent.research.cluster import dask_client, n_workers

    written: list[Path] = []
    failures: list[str] = []
    with dask_client(scheduler, workers) as client:
        if verbose:
            print(f"building {len(jobs)} models on {n_workers(client)} Dask worker(s)", flush=True)
        futs = {
            client.submit(build_job, j, key=f"build-{j.profile}-{j.train_end}-{j.cadence}", pure=False): j
            for j in jobs
        }
        for fut in as_completed(futs, loop=client.loop):
            j = futs[fut]
            try:
                res = fut.result()
            except Exception as e:
                failures.append(f"{j.profile} {j.train_end}: {type(e).__name__}: {e}")
                continue
            out_dir = out_root / res["subdir"] if res["subdir"] else out_root
            out_dir.mkdir(parents=True, exist_ok=True)
            for name, data in sorted(res["files"].items()):
                atomic_write_bytes(out_dir / name, data)
                if name.endswith(".onnx"):
                    written.append(out_dir / name)
                    if verbose:
                        sha = hashlib.sha256(data).hexdigest()[:12]
                        print(
                            f"[{res['profile']}] wrote {name} in {res['seconds']:.1f}s on {res['worker']} "
                            f"(sha256 {sha})",
                            flush=True,
                        )
    if failures:
        raise SystemExit("model builds failed: " + "; ".join(failures))
    return sorted(written)
