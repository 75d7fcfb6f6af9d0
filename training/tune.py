"""Hyperparameter search (study 004's ranges) with Optuna's TPE sampler on the time-ordered validation split.

Prints the best parameters; it never edits a config (a human copies them into training/configs/<profile>.toml).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SEARCH_SPACE", "tune"]

SEARCH_SPACE: dict[str, Any] = {
    "units": [32, 64, 96, 128],
    "dropout": (0.1, 0.5, 0.1),
    "lr": [1e-4, 1e-3, 1e-2],
}


def tune(
    profile: str, trials: int = 20, train_end: str | None = None, seed: int = 7, max_epochs: int | None = None
) -> dict[str, Any]:
    import optuna

    from training.datasets import load_config, load_prices, make_dataset
    from training.models import build_model
    from training.train import fit, set_determinism
    from training.walkforward import retrain_dates

    cfg = load_config(profile)
    prices = load_prices(cfg)
    te = train_end or str(retrain_dates(prices.index, cfg, "yearly")[0].date())
    ds = make_dataset(prices, cfg, te)  # validation = the last ~20% of samples before te, in time order

    def objective(trial: optuna.Trial) -> float:
        lo, hi, step = SEARCH_SPACE["dropout"]
        params = {
            "units": trial.suggest_categorical("units", SEARCH_SPACE["units"]),
            "dropout": trial.suggest_float("dropout", lo, hi, step=step),
            "layers": int(cfg.model.get("layers", 1)),
        }
        lr = trial.suggest_categorical("lr", SEARCH_SPACE["lr"])
        set_determinism(int(cfg.t("seed", 7)))
        model = build_model(cfg.kind, ds.n_inputs, ds.n_outputs, params)
        extra = {"lr": lr, **({"max_epochs": max_epochs} if max_epochs else {})}
        res = fit(model, ds, params=extra, desc=f"trial{trial.number}", verbose=False)
        return res.best_val_loss

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, show_progress_bar=False)
    out = {
        "profile": cfg.profile,
        "train_end": te,
        "valid_from": str(ds.valid_from.date()),
        "best_params": study.best_params,
        "best_val_loss": study.best_value,
        "trials": [{"params": t.params, "val_loss": t.value} for t in study.trials],
    }
    print(json.dumps(out, indent=2, default=str))
    return out
