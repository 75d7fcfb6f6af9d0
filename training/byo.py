"""Bring your own universe: train from the settings TOML the agent runs with.

`python -m training build --config my.toml` reads the agent's settings (profile, universe tickers, price store,
models directory): the recipe (features, model, target, train window, years) is the training config of the
settings' profile, the tickers are the settings' universe, the prices come from the agent's own store
(`paths.data_dir`, filled with `agent data import` / `agent data fetch`), and the models are written where the
agent will look for them (`forecast.models_dir` or `paths.models_dir/<profile>`), so `agent backtest --config
my.toml` finds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from training.datasets import ProfileConfig

__all__ = ["ByoTarget", "build_from_settings", "resolve_settings_config"]


@dataclass
class ByoTarget:
    cfg: ProfileConfig
    prices: pd.DataFrame
    out_dir: Path


def resolve_settings_config(config: str | Path, recipe: str | Path | None = None) -> ByoTarget:
    """The training recipe, prices and output directory for an agent settings file (SystemExit on bad input).

    `recipe`: a training config TOML to use instead of the profile's (its tickers and data file are ignored).
    """
    from agent.data.store import PriceStore
    from agent.errors import AgentError
    from agent.settings import load_settings
    from training.datasets import CONFIG_DIR, load_config

    try:
        settings = load_settings(config)
    except AgentError as e:
        raise SystemExit(f"{config}: {e.one_line()}") from None
    recipe = Path(recipe) if recipe is not None else CONFIG_DIR / f"{settings.profile}.toml"
    if not recipe.exists():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))
        raise SystemExit(
            f"{config}: profile {settings.profile!r} has no training recipe (profiles with one: {known})"
        )
    out_dir = Path(settings.profile_models_dir).resolve()
    shipped = (Path(__file__).resolve().parent.parent / "exported_models").resolve()
    if out_dir == shipped or shipped in out_dir.parents:
        raise SystemExit(
            f"{config}: models would be written into the shipped {shipped}; set forecast.models_dir "
            "(or paths.models_dir) in the settings file to a folder of your own"
        )
    tickers = tuple(settings.universe.tickers)
    frame = PriceStore(settings.paths.data_dir).load()
    missing = [t for t in tickers if t not in frame.columns]
    if missing:
        raise SystemExit(
            f"the price store {settings.paths.data_dir} lacks {', '.join(missing)} "
            "(import them first: agent data import FILE --config ...)"
        )
    base = load_config(recipe)
    cfg = base.replace(
        profile=settings.profile, tickers=tickers, data_file=f"store:{settings.paths.data_dir}"
    )
    prices = frame[list(tickers)].astype("float64")
    complete = prices.notna().all(axis=1).to_numpy()
    if not complete.any():
        raise SystemExit(f"the price store has no session with a price for every ticker of {config}")
    prices = prices.iloc[int(complete.argmax()) :]  # from the first session with every ticker
    return ByoTarget(cfg=cfg, prices=prices, out_dir=out_dir)


def build_from_settings(
    config: str | Path,
    *,
    recipe: str | Path | None = None,
    cadence: str = "yearly",
    start: str | None = None,
    only: list[str] | None = None,
    verbose: bool = True,
) -> list[Path]:
    """Walk-forward build for the settings' universe, in this process (the sequential path)."""
    import time

    from training.export import export_model, write_card
    from training.train import train_one
    from training.walkforward import retrain_dates

    tgt = resolve_settings_config(config, recipe)
    paths = []
    for te in retrain_dates(tgt.prices.index, tgt.cfg, cadence, start):  # type: ignore[arg-type]
        if only and str(te.date()) not in only and str(te.year) not in only:
            continue
        t0 = time.perf_counter()
        tm = train_one(tgt.cfg, tgt.prices, te, verbose=verbose)
        path = export_model(tm, tgt.out_dir, cadence=cadence)
        write_card(tm, path, cadence=cadence)
        print(f"[{tgt.cfg.profile}] wrote {path} in {time.perf_counter() - t0:.1f}s", flush=True)
        paths.append(path)
    return paths
