"""Optuna search with trials evaluated on a Dask cluster (ask-and-tell).

Why ask-and-tell: the study (sampler state and its storage) lives on the client, so workers need no access to
the study's database — one trial is a pure function of (profile, train_end, params) run on any worker. With
`storage` (e.g. sqlite:///study.db) the study persists and a rerun with the same name resumes it. Trials are
asked in batches of the cluster's size; each batch's results are told back before the next batch is asked.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["evaluate_trial", "tune_distributed"]


def evaluate_trial(profile: str, train_end: str, params: dict[str, Any], max_epochs: int | None) -> float:
    """The validation loss of one hyperparameter setting (same objective as training.tune)."""
    from training.datasets import load_config, load_prices, make_dataset
    from training.models import build_model
    from training.train import fit, set_determinism

    cfg = load_config(profile)
    ds = make_dataset(load_prices(cfg), cfg, train_end)
    model_params = {
        "units": params["units"],
        "dropout": params["dropout"],
        "layers": int(cfg.model.get("layers", 1)),
    }
    set_determinism(int(cfg.t("seed", 7)))
    model = build_model(cfg.kind, ds.n_inputs, ds.n_outputs, model_params)
    extra = {"lr": params["lr"], **({"max_epochs": max_epochs} if max_epochs else {})}
    return float(fit(model, ds, params=extra, verbose=False).best_val_loss)


def tune_distributed(
    profile: str,
    trials: int = 20,
    train_end: str | None = None,
    *,
    seed: int = 7,
    max_epochs: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    import optuna
    import pandas as pd

    from agent.research.cluster import dask_client, n_workers
    from training.datasets import load_config, load_prices
    from training.tune import SEARCH_SPACE
    from training.walkforward import retrain_dates

    cfg = load_config(profile)
    te = train_end or str(retrain_dates(pd.DatetimeIndex(load_prices(cfg).index), cfg, "yearly")[0].date())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        storage=storage,
        study_name=study_name or f"{cfg.profile}-{te}",
        load_if_exists=storage is not None,
    )
    done = sum(1 for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    lo, hi, step = SEARCH_SPACE["dropout"]
    dist = {
        "units": optuna.distributions.CategoricalDistribution(SEARCH_SPACE["units"]),
        "dropout": optuna.distributions.FloatDistribution(lo, hi, step=step),
        "lr": optuna.distributions.CategoricalDistribution(SEARCH_SPACE["lr"]),
    }
    with dask_client(scheduler, workers) as client:
        batch = max(1, n_workers(client))
        while done < trials:
            asked = [study.ask(dist) for _ in range(min(batch, trials - done))]
            futs = [
                client.submit(evaluate_trial, profile, te, dict(t.params), max_epochs, pure=False)
                for t in asked
            ]
            for t, f in zip(asked, futs, strict=True):
                try:
                    value: float | None = float(f.result())
                except Exception as e:  # a failed trial is recorded as failed; the search goes on
                    value = None
                    if verbose:
                        print(f"trial {t.number}: {t.params} failed: {type(e).__name__}: {e}")
                if value is None:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(t, value)
                    if verbose:
                        print(f"trial {t.number}: {t.params} -> {value:.6g}", flush=True)
            done += len(asked)
    out = {
        "profile": cfg.profile,
        "train_end": te,
        "best_params": study.best_params,
        "best_val_loss": study.best_value,
        "trials": [{"params": t.params, "val_loss": t.value} for t in study.trials],
    }
    print(json.dumps(out, indent=2, default=str))
    return out
