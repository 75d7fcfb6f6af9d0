"""Stationary block bootstrap: indices form circular blocks of geometric length; synthetic paths resample
whole return rows and are reproducible from (seed, path)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.research.bootstrap import stationary_bootstrap_indices, synthetic_prices


@settings(max_examples=40, deadline=None)
@given(
    n_source=st.integers(1, 300),
    n_out=st.integers(0, 400),
    mean_block=st.floats(1.0, 50.0),
    seed=st.integers(0, 2**31),
)
def test_indices_in_range_and_reproducible(n_source, n_out, mean_block, seed) -> None:
    idx = stationary_bootstrap_indices(n_source, n_out, mean_block, np.random.default_rng(seed))
    assert idx.shape == (n_out,)
    assert ((idx >= 0) & (idx < n_source)).all()
    again = stationary_bootstrap_indices(n_source, n_out, mean_block, np.random.default_rng(seed))
    np.testing.assert_array_equal(idx, again)


def test_mean_block_length_is_geometric_with_the_given_mean() -> None:
    # count block starts by re-deriving them from the same RNG stream as the function
    n_out, mean_block = 200_000, 8.0
    rng = np.random.default_rng(1)
    new = rng.random(n_out) < 1.0 / mean_block
    new[0] = True
    idx = stationary_bootstrap_indices(10_000, n_out, mean_block, np.random.default_rng(1))
    starts = np.flatnonzero(new)
    lengths = np.diff(np.append(starts, n_out))
    assert abs(lengths.mean() - mean_block) < 0.2
    # inside each block the indices advance by one (circularly)
    inside = ~new[1:]
    assert np.all(idx[1:][inside] == (idx[:-1][inside] + 1) % 10_000)


def test_mean_block_one_is_iid() -> None:
    idx = stationary_bootstrap_indices(50, 5000, 1.0, np.random.default_rng(3))
    counts = np.bincount(idx, minlength=50)
    assert counts.min() > 50  # roughly uniform: expected 100 each


def _prices(n: int = 300, k: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0003, 0.01, size=(n - 1, k))
    px = 100 * np.vstack([np.ones(k), np.cumprod(1 + r, axis=0)])
    idx = pd.bdate_range("2015-01-01", periods=n, name="date")
    return pd.DataFrame(px, index=idx, columns=[f"T{i}" for i in range(k)])


def test_synthetic_path_resamples_whole_rows_and_is_reproducible() -> None:
    px = _prices()
    a = synthetic_prices(px, seed=5, path=2, mean_block=15)
    b = synthetic_prices(px, seed=5, path=2, mean_block=15)
    c = synthetic_prices(px, seed=5, path=3, mean_block=15)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert a.index.equals(px.index) and list(a.columns) == list(px.columns)
    np.testing.assert_allclose(a.iloc[0].to_numpy(), px.iloc[0].to_numpy())
    src = px.pct_change().iloc[1:].to_numpy()
    syn = a.pct_change().iloc[1:].to_numpy()
    # each synthetic return row is one of the source rows (cross-section kept together)
    d = np.abs(syn[:, None, :] - src[None, :, :]).max(axis=2).min(axis=1)
    assert d.max() < 1e-9


def test_synthetic_drops_incomplete_rows_and_needs_data() -> None:
    px = _prices(50)
    px.iloc[:5, 0] = np.nan
    out = synthetic_prices(px, seed=0, path=0, mean_block=5)
    assert len(out) == 45 and out.notna().all().all()
    with pytest.raises(ValueError):
        synthetic_prices(px.iloc[:2], seed=0, path=0, mean_block=5)
