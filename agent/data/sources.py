"""Where prices come from: Yahoo Finance (yfinance), a local CSV/Parquet file, or the offline demo set.

Every source returns the same shape (ARCHITECTURE.md): a wide DataFrame, tz-naive midnight DatetimeIndex named
`date`, one float64 column per requested ticker, rows sorted and unique. Sources only *fetch*; validation and
caching live in `validate.py` and `store.py`, so a source can be swapped without touching either.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from agent.data.price_frame import PriceSource, to_price_frame
from agent.data.source_file import FileSource, _select, read_price_file
from agent.data.source_yfinance import YFinanceSource, offline_message
from agent.data.source_yfinance import (
    _yf_download as _yf_download,  # re-exported: tests call sources._yf_download
)
from agent.errors import DataError

__all__ = [
    "DEMO_SETS",
    "DemoSource",
    "FileSource",
    "PriceSource",
    "YFinanceSource",
    "demo_data_dir",
    "offline_message",
    "read_price_file",
    "resolve_prices_file",
    "shared_data_dir",
    "source_from_settings",
    "to_price_frame",
]

DEMO_SETS: dict[str, tuple[str, ...]] = {
    "sp500": ("sp500_dataset.csv.gz", "sp500_index.csv.gz"),  # 20 US large caps + the index level as SP500
    "factors": ("factors_dataset.csv.gz",),
}


# ----------------------------------------------------------------------------------------------------------------
# offline demo set (skfolio's bundled real prices, read as files: importing skfolio is slow)


def demo_data_dir() -> Path:
    spec = importlib.util.find_spec("skfolio")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the offline demo prices need the skfolio package (pip install skfolio)",
            hint="or use `--prices FILE` / `agent data import FILE`",
        )
    d = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    if not d.is_dir():
        raise DataError(f"skfolio is installed but its bundled datasets are missing at {d}")
    return d


class DemoSource:
    """The offline demo set: real daily prices bundled with skfolio.

    sp500: 20 US large caps 1990-01-02..2022-12-28 plus the S&P 500 index level as ticker SP500 (benchmark).
    factors: the MTUM QUAL SIZE USMV VLUE factor ETFs 2014..2022.
    """

    def __init__(self, name: str = "sp500") -> None:
        if name not in DEMO_SETS:
            raise DataError(f"unknown demo set {name!r}", hint=f"one of {', '.join(DEMO_SETS)}")
        self.set_name = name
        self.name = f"demo:{name}"
        self._frame: pd.DataFrame | None = None

    def read(self) -> pd.DataFrame:
        if self._frame is None:
            d = demo_data_dir()
            frames = []
            for fname in DEMO_SETS[self.set_name]:
                path = d / fname
                if not path.exists():
                    raise DataError(f"demo price file missing from the skfolio package: {path}")
                frames.append(read_price_file(path))
            df = pd.concat(frames, axis=1) if len(frames) > 1 else frames[0]
            self._frame = df.sort_index()
        return self._frame.copy(deep=False)

    def fetch(self, tickers: Sequence[str] | None, start: Any = None, end: Any = None) -> pd.DataFrame:
        return _select(self.read(), tickers, start, end, f"the demo set {self.set_name!r}")


# ----------------------------------------------------------------------------------------------------------------
# locating files and building a source from settings


def shared_data_dir() -> Path | None:
    """$AGENT_SHARED_DATA, else ../shared/data next to the cwd, else next to the repository (None if absent)."""
    env = os.environ.get("AGENT_SHARED_DATA")
    if env:
        return Path(env).expanduser()
    from agent.settings import repo_root

    for cand in (Path.cwd().parent / "shared" / "data", repo_root().parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return None


def resolve_prices_file(path: str | os.PathLike[str]) -> Path:
    """Find a price file: as given (relative to the cwd), then inside the shared data directory."""
    p = Path(path).expanduser()
    looked: list[Path] = [p if p.is_absolute() else Path.cwd() / p]
    if p.exists():
        return p.resolve()
    if not p.is_absolute():
        env = os.environ.get("AGENT_SHARED_DATA")
        if env:
            bases = [Path(env).expanduser()]
        else:
            from agent.settings import repo_root

            bases = [Path.cwd().parent / "shared" / "data", repo_root().parent / "shared" / "data"]
        for base in bases:
            cand = base / p
            looked.append(cand)
            if cand.exists():
                return cand.resolve()
    where = ", ".join(dict.fromkeys(str(x) for x in looked))
    raise DataError(f"price file not found: {path} (looked in {where})")


def source_from_settings(data: Any) -> PriceSource:
    """The configured source (`settings.data`): yfinance, file (prices_file) or demo (demo_set)."""
    if data.source == "yfinance":
        proxy = data.proxy.get_secret_value() if data.proxy is not None else None
        return YFinanceSource(
            retries=data.retries,
            backoff_seconds=data.backoff_seconds,
            auto_adjust=data.auto_adjust,
            proxy=proxy,
        )
    if data.source == "file":
        if data.prices_file is None:
            raise DataError("data.source = 'file' needs data.prices_file")
        return FileSource(resolve_prices_file(data.prices_file))
    if data.source == "demo":
        return DemoSource(data.demo_set)
    raise DataError(f"unknown data source {data.source!r}")
