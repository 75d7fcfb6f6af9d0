"""Parse a sweep grid (TOML) into cells: the Cartesian product of overrides, windows, universes and paths.

Why a content hash per cell: results are stored under it, so a rerun after a crash (or a SIGKILL of the client)
skips every cell already finished, and a changed cell (another value, other prices) never reuses a stale result.
"""

from __future__ import annotations

import contextlib
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, DataError, UsageError

__all__ = ["Cell", "MonteCarloSpec", "SweepSpec", "cell_key", "expand_cells", "load_grid", "parse_grid"]

_TOP_KEYS = {
    "profile",
    "config",
    "prices",
    "windows",
    "universes",
    "grid",
    "overrides",
    "heatmap",
    "montecarlo",
    "description",
}


@dataclass(frozen=True)
class MonteCarloSpec:
    """Stationary block bootstrap paths: `paths` synthetic histories, mean block length in sessions, base seed."""

    paths: int
    mean_block: float = 20.0
    seed: int = 0


@dataclass(frozen=True)
class Cell:
    """One replay: a profile (+ optional config file), a window, a universe, fixed + swept overrides, a path.

    `path` is None for a replay on the real prices, else the index of a bootstrap path (seeded from `seed`).
    """

    profile: str | None
    config: str | None
    window: str
    universe: str | None
    tickers: tuple[str, ...] | None
    overrides: tuple[tuple[str, Any], ...]
    path: int | None = None
    seed: int | None = None
    mean_block: float | None = None

    def params(self) -> dict[str, Any]:
        """The cell as plain JSON-able values (what the key hashes and the table shows)."""
        return {
            "profile": self.profile,
            "config": self.config,
            "window": self.window,
            "universe": self.universe,
            "tickers": list(self.tickers) if self.tickers else None,
            "overrides": {k: v for k, v in self.overrides},
            "path": self.path,
            "seed": self.seed,
            "mean_block": self.mean_block,
        }

    def settings_overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.overrides)
        if self.tickers:
            out["universe.tickers"] = list(self.tickers)
        return out


@dataclass(frozen=True)
class SweepSpec:
    profile: str | None
    config: str | None
    prices: str | None
    windows: tuple[str, ...]
    universes: dict[str, tuple[str, ...]]
    grid: dict[str, tuple[Any, ...]]
    overrides: dict[str, Any]
    heatmap: tuple[str, str] | None
    montecarlo: MonteCarloSpec | None
    source: str = ""
    description: str = ""
    axes: tuple[str, ...] = field(default_factory=tuple)


def cell_key(cell: Cell, data_digest: str) -> str:
    """Short content hash of the cell and the prices it replays on (16 hex digits of SHA-256)."""
    from agent.decision import digest

    return digest({"cell": cell.params(), "data": data_digest})[:16]


def _as_tuple(name: str, v: Any) -> tuple[Any, ...]:
    if isinstance(v, list):
        if not v:
            raise ConfigError(f"sweep grid: {name} is an empty list (a sweep over nothing)")
        return tuple(v)
    return (v,)


def parse_grid(raw: dict[str, Any], source: str = "") -> SweepSpec:
    """Validate the grid's keys and shapes; unknown keys are errors (a typo must not silently shrink a sweep)."""
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"sweep grid {source}: unknown key(s) {', '.join(unknown)}",
            hint=f"allowed: {', '.join(sorted(_TOP_KEYS))}",
        )
    profile = raw.get("profile")
    config = raw.get("config")
    if profile is not None and not isinstance(profile, str):
        raise ConfigError(f"sweep grid {source}: profile must be a name")
    if config is not None and not isinstance(config, str):
        raise ConfigError(f"sweep grid {source}: config must be a path")
    if config and source and not Path(config).is_absolute():
        config = str((Path(source).parent / config).resolve())
    windows = raw.get("windows")
    if windows is None:
        raise ConfigError(f'sweep grid {source}: give windows = ["2019", "2020-2021", ...]')
    windows_t = tuple(str(w) for w in _as_tuple("windows", windows))
    for w in windows_t:
        # the syntax is checked here (a usage error fails the whole grid); a well-formed window outside the
        # data fails its own cells, each recorded with one line
        with contextlib.suppress(DataError):
            window_dates(w)
    universes_raw = raw.get("universes", {})
    if not isinstance(universes_raw, dict):
        raise ConfigError(f"sweep grid {source}: [universes] maps a name to a list of tickers")
    universes = {}
    for name, ticks in universes_raw.items():
        if not isinstance(ticks, list) or not ticks or not all(isinstance(t, str) for t in ticks):
            raise ConfigError(f"sweep grid {source}: universe {name!r} must be a non-empty list of tickers")
        universes[str(name)] = tuple(ticks)
    grid_raw = raw.get("grid", {})
    if not isinstance(grid_raw, dict):
        raise ConfigError(f"sweep grid {source}: [grid] maps a dotted setting to a list of values")
    grid = {str(k): _as_tuple(f"grid.{k}", v) for k, v in grid_raw.items()}
    for k in grid:
        if "." not in k:
            raise ConfigError(
                f"sweep grid {source}: grid key {k!r} must be a dotted setting like risk.method"
            )
    overrides = raw.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"sweep grid {source}: [overrides] maps a dotted setting to one value")
    clash = sorted(set(overrides) & set(grid))
    if clash:
        raise ConfigError(f"sweep grid {source}: {', '.join(clash)} both fixed in [overrides] and swept")
    heat = raw.get("heatmap")
    heatmap: tuple[str, str] | None = None
    if heat is not None:
        if not (isinstance(heat, list) and len(heat) == 2 and all(isinstance(h, str) for h in heat)):
            raise ConfigError(f"sweep grid {source}: heatmap names two swept parameters")
        heatmap = (heat[0], heat[1])
    mc_raw = raw.get("montecarlo")
    mc: MonteCarloSpec | None = None
    if mc_raw is not None:
        if not isinstance(mc_raw, dict) or "paths" not in mc_raw:
            raise ConfigError(f"sweep grid {source}: [montecarlo] needs paths = N")
        extra = sorted(set(mc_raw) - {"paths", "mean_block", "seed"})
        if extra:
            raise ConfigError(f"sweep grid {source}: unknown [montecarlo] key(s) {', '.join(extra)}")
        paths, block, seed = mc_raw["paths"], mc_raw.get("mean_block", 20.0), mc_raw.get("seed", 0)
        if not (isinstance(paths, int) and paths >= 1):
            raise ConfigError(f"sweep grid {source}: montecarlo.paths must be an integer >= 1")
        if not (isinstance(block, int | float) and block >= 1):
            raise ConfigError(f"sweep grid {source}: montecarlo.mean_block must be >= 1 session")
        if not isinstance(seed, int):
            raise ConfigError(f"sweep grid {source}: montecarlo.seed must be an integer")
        mc = MonteCarloSpec(paths=paths, mean_block=float(block), seed=seed)
    axes: list[str] = []
    if len(windows_t) > 1:
        axes.append("window")
    if len(universes) > 1:
        axes.append("universe")
    axes += [k for k, v in grid.items() if len(v) > 1]
    if mc is not None:
        axes.append("path")
    if heatmap is not None:
        for h in heatmap:
            if h not in axes:
                raise ConfigError(
                    f"sweep grid {source}: heatmap axis {h!r} is not swept",
                    hint=f"swept: {', '.join(axes) or 'nothing'}",
                )
    return SweepSpec(
        profile=profile,
        config=config,
        prices=str(raw["prices"]) if raw.get("prices") else None,
        windows=windows_t,
        universes=universes,
        grid=grid,
        overrides=dict(overrides),
        heatmap=heatmap,
        montecarlo=mc,
        source=source,
        description=str(raw.get("description", "")),
        axes=tuple(axes),
    )


def load_grid(path: str | Path) -> SweepSpec:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"sweep grid not found: {p}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"sweep grid {p}: not valid TOML: {e}") from None
    except OSError as e:
        raise UsageError(f"cannot read sweep grid {p}: {e.strerror}") from None
    return parse_grid(raw, str(p))


def window_dates(window: str) -> tuple[Any, Any]:
    """`2019`, `2019-2021` (whole years) or `2019-03-01:2019-09-30` (dates) -> (start, end) dates."""
    from agent.backtest import parse_window

    if ":" in window:
        a, _, b = window.partition(":")
        return parse_window(None, a.strip(), b.strip())
    return parse_window(window, None, None)


def expand_cells(spec: SweepSpec) -> list[Cell]:
    """Every cell in a stable order: windows x universes x grid values (in file order) x paths."""
    fixed = tuple(sorted(spec.overrides.items()))
    names = list(spec.grid)
    unis: list[tuple[str | None, tuple[str, ...] | None]] = (
        [(n, t) for n, t in spec.universes.items()] if spec.universes else [(None, None)]
    )
    mc = spec.montecarlo
    paths: list[int | None] = list(range(mc.paths)) if mc else [None]
    cells = []
    for w, (uname, ticks), combo, p in itertools.product(
        spec.windows, unis, itertools.product(*(spec.grid[n] for n in names)), paths
    ):
        ov = tuple(sorted((*fixed, *zip(names, combo, strict=True))))
        cells.append(
            Cell(
                profile=spec.profile,
                config=spec.config,
                window=w,
                universe=uname,
                tickers=ticks,
                overrides=ov,
                path=p,
                seed=mc.seed if mc and p is not None else None,
                mean_block=mc.mean_block if mc and p is not None else None,
            )
        )
    return cells
