"""Daily covariance Σ for the optimizer: GARCH vols × rolling correlation (study 004), EWMA (study 003), sample.

Everything here returns a finite, symmetric, positive semi-definite matrix. What could not be estimated as
asked is replaced by something simpler and recorded in `CovEstimate.fallbacks` (per ticker: from, to, reason);
a matrix that needed an eigenvalue repair has `repaired=True`.

Missing values (NaN, e.g. before a listing): a series' NaN returns are skipped by the GARCH fit and filter;
for the cross-sectional estimators they are set to zero after demeaning and each asset is normalized by its own
weight (count) of finite observations, Σ_ij = G_ij / sqrt(W_i W_j), which keeps Σ = D G D positive
semi-definite (pairwise-complete estimates are not) at the price of shrinking correlations of sparse pairs
toward zero.

Hot paths are numpy only; `arch` (1-3 s to import) is imported lazily by `agent.risk.garch.fit_garch`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.errors import DataError
from agent.risk.cov_estimate import CovEstimate, _readonly
from agent.risk.covmath import (
    _EPOCH0,
    _as_2d,
    _column_var,
    _ewma_tail,
    _one_blas_thread,
    assemble_covariance,
    cov_to_corr,
    ewma_covariance,
    ewma_variance,
    make_psd,
    refit_epoch,
    rolling_correlation,
    sample_covariance,
)
from agent.risk.garch import (
    GarchParams,
    Mean,
    filter_batch,
    filter_state,
    fit_garch,
    fit_garch_many,
    forecast_batch,
    stack_params,
)

if TYPE_CHECKING:
    import pandas as pd

    from agent.settings import RiskSettings

__all__ = [
    "CovEstimate",
    "CovarianceEstimator",
    "assemble_covariance",
    "cov_to_corr",
    "ewma_covariance",
    "ewma_variance",
    "make_psd",
    "refit_epoch",
    "rolling_correlation",
    "sample_covariance",
]

_PLAUSIBLE = 1e3  # GARCH holding-period variance must be within [1/x, x] × the fit window's sample variance


# ----------------------------------------------------------------------------------------------------------
# the estimate and the stateful estimator
# ----------------------------------------------------------------------------------------------------------
@dataclass
class _GarchCache:
    """What one estimator remembers between calls: the parameters of the current refit block and the state."""

    epoch: int
    fit_start: np.datetime64
    fit_end: np.datetime64
    params: dict[int, GarchParams]  # column -> params, for assets on GARCH
    failed: dict[int, str]  # column -> reason, for assets on EWMA
    state_date: np.datetime64  # last row filtered
    e: np.ndarray  # M×N ε² history (columns of failed assets unused)
    s: np.ndarray  # M×N σ² history
    window: np.ndarray  # returns from fit_start to state_date (to detect revised data)
    window_dates: np.ndarray  # their dates
    ref_var: np.ndarray  # sample variance of each asset over the fit window (plausibility check)


class CovarianceEstimator:
    """Stateful Σ estimator that one run or backtest keeps across decisions.

    GARCH parameters are re-estimated in the first session of each block of `refit_every` weekdays (see
    `refit_epoch`) on the last `fit_window` returns up to that session, from data-determined starting values
    (never warm-started: a refit is a function of its window alone, so every process agrees); in between,
    variances are filtered forward with fixed parameters over the new rows only.
    Because the block boundaries are calendar dates, the schedule is the same whatever date a backtest or
    daemon starts from. A call whose `asof` is before the cached state, or whose data does not extend the
    cached window (revised prices, a shorter frame), is computed from scratch without a warm start and leaves
    the cache alone (audit replay of an old date). Rows after `asof` are ignored.
    """

    # Cold refits of all assets in lock-step (`fit_garch_many`, agent/risk/garch_batch.py): the same parameters
    # bit for bit as one `fit_garch` per asset, faster. False: one at a time through `fit_garch` (A/B benches).
    batch_refit: bool = True

    def __init__(
        self,
        settings: RiskSettings,
        tickers: Sequence[str],
        horizon: int,
        *,
        mean: Mean = "constant",
    ) -> None:
        if horizon < 1:
            raise ValueError("horizon must be >= 1")
        self.settings = settings
        self.tickers = tuple(tickers)
        self.horizon = int(horizon)
        self.mean = mean
        self._cache: _GarchCache | None = None
        self.n_refits = 0  # for diagnostics and tests

    @property
    def uses_factor_model(self) -> bool:
        """`risk.model`: factor, or auto from `factor_min_n` assets on (settings without the field: full)."""
        model = getattr(self.settings, "model", "full")
        return model == "factor" or (
            model == "auto" and len(self.tickers) >= int(getattr(self.settings, "factor_min_n", 100))
        )

    # ----- public -----
    def estimate(
        self, returns: pd.DataFrame, asof: Any, *, fixed_params: dict[str, dict[str, Any]] | None = None
    ) -> CovEstimate:
        """Σ at `asof` from returns with dates ≤ asof (later rows, if any, are ignored).

        `fixed_params` (ticker -> `GarchParams.to_dict()`, as recorded in a decision) replaces estimation for
        those tickers: audit replay recomputes a decision from its recorded parameters without refitting (and
        so also replays records written by older, warm-started versions). The live cache is left alone."""
        with _one_blas_thread():
            return self._estimate(returns, asof, fixed_params)

    def _estimate(
        self, returns: pd.DataFrame, asof: Any, fixed_params: dict[str, dict[str, Any]] | None = None
    ) -> CovEstimate:
        import time

        import pandas as pd

        t0 = time.perf_counter()
        ts = pd.Timestamp(asof)
        missing = [t for t in self.tickers if t not in returns.columns]
        if missing:
            raise DataError(f"returns have no column for {', '.join(missing)}")
        frame = returns
        if not frame.index.is_monotonic_increasing:
            frame = frame.sort_index()
        end = int(frame.index.searchsorted(ts, side="right"))
        if end == 0:
            raise DataError(f"no returns on or before {ts.date()}")
        if list(frame.columns) != list(self.tickers):
            frame = frame.loc[:, list(self.tickers)]
        x = _as_2d(frame.iloc[:end].to_numpy(dtype=float, na_value=np.nan))
        dates = frame.index[:end].to_numpy().astype("datetime64[D]")
        last = dates[-1]
        method = self.settings.method
        fallbacks: list[dict[str, str]] = []
        params: dict[str, dict[str, Any]] = {}
        refit = False
        if method == "garch":
            var, corr, fallbacks, params, refit = self._garch(x, dates, fixed_params)
            n_fb = sum(1 for f in fallbacks if f["from"] == "garch")
            used = "garch" if n_fb == 0 else ("ewma" if n_fb == len(self.tickers) else "garch+ewma")
        else:
            if method == "ewma":
                lam = self.settings.ewma_lambda
                cov = ewma_covariance(x, lam, window=_ewma_tail(lam))
            else:
                cov = sample_covariance(x, window=self.settings.sample_window)
            var = np.diag(cov).copy()
            _, corr = cov_to_corr(cov)
            used = method
        var = self._sanitize(var, x, fallbacks, method)
        fm = None
        if self.uses_factor_model:
            from agent.risk.factor import factor_model

            st = self.settings
            fm = factor_model(
                x[-st.corr_window :],
                np.sqrt(var),
                int(getattr(st, "factors", 10)),
                getattr(st, "factor_shrinkage", "oas"),
            )
            cov, repaired, min_eig = fm.dense(), False, math.nan  # positive definite by construction
        else:
            cov, repaired, min_eig = assemble_covariance(
                np.sqrt(var), corr, self.settings.shrinkage, self.settings.eigen_floor
            )
        vols, corr_out = cov_to_corr(cov)
        return CovEstimate(
            cov=_readonly(cov),
            vols=_readonly(vols),
            corr=_readonly(corr_out),
            method=used,
            fallbacks=fallbacks,
            repaired=repaired,
            params=params,
            horizon=self.horizon,
            tickers=self.tickers,
            asof=pd.Timestamp(last).date(),
            min_eig=min_eig,
            refit=refit,
            timings={"total_ms": (time.perf_counter() - t0) * 1e3},
            factor=fm,
        )

    # ----- internals -----
    def _sanitize(
        self, var: np.ndarray, x: np.ndarray, fallbacks: list[dict[str, str]], method: str
    ) -> np.ndarray:
        """Last line of defence: a variance that is not finite and positive becomes the universe median."""
        var = np.asarray(var, dtype=float).copy()
        bad = ~(np.isfinite(var) & (var > 0))
        if not bad.any():
            return var
        good = var[~bad]
        if good.size == 0:
            raise DataError("no asset has enough finite returns to estimate a variance")
        med = float(np.median(good))
        for i in np.flatnonzero(bad):
            n = int(np.isfinite(x[:, i]).sum())
            what = (
                "no finite returns" if n == 0 else ("zero variance" if var[i] == 0 else "non-finite variance")
            )
            frm = next((f["to"] for f in fallbacks if f["ticker"] == self.tickers[i]), method)
            fallbacks.append(
                {"ticker": self.tickers[i], "from": frm, "to": "median", "reason": f"{what} ({n} returns)"}
            )
            var[i] = med
        return var

    def _garch(
        self, x: np.ndarray, dates: np.ndarray, fixed: dict[str, dict[str, Any]] | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]], dict[str, dict[str, Any]], bool]:
        st = self.settings
        n_rows = x.shape[0]
        epochs_last = int(refit_epoch(dates[-1:], st.refit_every)[0])
        # first row of the current refit block: the fit ends there
        anchor = np.busday_offset(_EPOCH0, epochs_last * st.refit_every, roll="forward")
        if dates[0] > anchor:
            # the frame starts after the block's first session (refit_every longer than the history given):
            # fit on the latest data; later calls in the same block reuse it
            fit_end = n_rows - 1
        else:
            fit_end = min(int(np.searchsorted(dates, anchor, side="left")), n_rows - 1)
        fit_start = max(0, fit_end + 1 - st.fit_window)
        cache = self._cache
        if fixed is not None:  # recorded parameters (audit replay): no estimation, no cache update
            return self._finish(
                self._fit(x, dates, fit_start, fit_end, epochs_last, warm=None, fixed=fixed), x, True
            )
        if cache is not None and cache.state_date > dates[-1]:
            # going back in time (audit replay of an old date): from scratch, cold, and keep the live cache
            return self._finish(self._fit(x, dates, fit_start, fit_end, epochs_last, warm=None), x, True)
        if cache is not None and cache.epoch == epochs_last:
            k = int(np.searchsorted(dates, cache.state_date, side="left"))
            # the frame may start after the cached fit window (a lookback snapshot): compare the overlap
            lo = max(dates[0], cache.fit_start)
            i0 = int(np.searchsorted(dates, lo, side="left"))
            c0 = int(np.searchsorted(cache.window_dates, lo, side="left"))
            if (
                k < n_rows
                and dates[k] == cache.state_date
                and np.array_equal(cache.window_dates[c0:], dates[i0 : k + 1])
                and np.array_equal(cache.window[c0:], x[i0 : k + 1], equal_nan=True)
            ):
                self._advance(cache, x[k + 1 :], dates[k + 1 :])
                return self._finish(cache, x, False)
        # first call, a new refit block, or data that does not extend the cached window: re-estimate, cold.
        # Why never warm-started from the previous block: a refit must be a function of the fit window alone, so
        # a new process per slot (run --once, a restarted daemon) gets the parameters a continuous replay got.
        self._cache = self._fit(x, dates, fit_start, fit_end, epochs_last, warm=None)
        return self._finish(self._cache, x, True)

    def _fit(
        self,
        x: np.ndarray,
        dates: np.ndarray,
        fit_start: int,
        fit_end: int,
        epoch: int,
        warm: dict[int, GarchParams] | None,
        fixed: dict[str, dict[str, Any]] | None = None,
    ) -> _GarchCache:
        """Estimate every asset on rows fit_start..fit_end (or take its `fixed` parameters), then filter each
        to the last row."""
        st = self.settings
        # Settings name the lags by role (arch_lags = shock lags, garch_lags = variance lags); this package's p
        # is the number of variance lags and q the number of shock lags (see agent/risk/garch.py).
        p, q = st.garch_lags, st.arch_lags
        n = x.shape[1]
        m = max(p, q, 1)
        params: dict[int, GarchParams] = {}
        failed: dict[int, str] = {}
        e = np.zeros((m, n))
        s = np.zeros((m, n))
        fit_date = dates[fit_end].astype(object)
        if fixed is None:
            self.n_refits += 1
        batch: dict[int, GarchParams | Exception] = {}
        if self.batch_refit and not warm:  # every cold fit at once: the same parameters bit for bit, faster
            cols_b = [
                i
                for i in range(n)
                if (fixed is None or self.tickers[i] not in fixed)
                and int(np.isfinite(x[fit_start : fit_end + 1, i]).sum()) >= st.min_observations
            ]
            if cols_b:
                many = fit_garch_many(
                    [x[fit_start : fit_end + 1, i] for i in cols_b], p, q, st.distribution,
                    mean=self.mean, fitted_on=fit_date,
                )  # fmt: skip
                batch = dict(zip(cols_b, many, strict=True))
        for i in range(n):
            if fixed is not None and self.tickers[i] in fixed:
                params[i] = GarchParams.from_dict(fixed[self.tickers[i]])
                continue
            r = x[fit_start : fit_end + 1, i]
            rf = r[np.isfinite(r)]
            if rf.shape[0] < st.min_observations:
                failed[i] = f"too few observations: {rf.shape[0]} < min_observations {st.min_observations}"
                continue
            try:
                got = batch.get(i)
                if isinstance(got, Exception):
                    raise got
                prm = got if got is not None else fit_garch(
                    rf, p, q, st.distribution, (warm or {}).get(i), mean=self.mean, fitted_on=fit_date
                )
                if not prm.converged and warm and i in warm:  # a bad warm start must not cost the asset
                    prm = fit_garch(rf, p, q, st.distribution, None, mean=self.mean, fitted_on=fit_date)
            except Exception as exc:  # arch raises assorted errors on degenerate data: fall back, record
                failed[i] = f"GARCH fit failed: {type(exc).__name__}: {exc}"[:300]
                continue
            if not prm.converged:
                failed[i] = f"GARCH fit did not converge: {prm.message}"[:300]
                continue
            params[i] = prm
        # filter from the start of the fit window to the last row; the pre-sample state is arch's backcast
        cols = np.array(sorted(params), dtype=int)
        if cols.size:
            xs = x[fit_start:, cols]
            dense = np.all(np.isfinite(xs), axis=0)
            omega, a, b, mu = stack_params([params[i] for i in cols], m)
            bc = np.array([params[i].backcast for i in cols], dtype=float)
            if dense.any():
                dc = cols[dense]
                init = np.broadcast_to(bc[dense], (m, int(dense.sum()))).copy()
                _, e1, s1 = filter_batch(
                    (xs[:, dense] - mu[dense]) ** 2, omega[dense], a[dense], b[dense], init, init
                )
                e[:, dc] = e1
                s[:, dc] = s1
            for j in np.flatnonzero(~dense):
                i = int(cols[j])
                _, state = filter_state(xs[:, j], params[i], backcast=params[i].backcast)
                e[:, i] = _pad(state.eps2, m)
                s[:, i] = _pad(state.sigma2, m)
        return _GarchCache(
            epoch=epoch,
            fit_start=dates[fit_start],
            fit_end=dates[fit_end],
            params=params,
            failed=failed,
            state_date=dates[-1],
            e=e,
            s=s,
            window=x[fit_start:].copy(),
            window_dates=dates[fit_start:].copy(),
            ref_var=_column_var(x[fit_start : fit_end + 1]),
        )

    def _advance(self, cache: _GarchCache, new: np.ndarray, new_dates: np.ndarray) -> None:
        """Filter the new rows forward with fixed parameters: batched over assets without gaps."""
        if new.shape[0] == 0:
            return
        cols = np.array(sorted(cache.params), dtype=int)
        if cols.size:
            m = cache.e.shape[0]
            sub = new[:, cols]
            dense = np.all(np.isfinite(sub), axis=0)
            omega, a, b, mu = stack_params([cache.params[i] for i in cols], m)
            if dense.any():
                dc = cols[dense]
                eps2 = (sub[:, dense] - mu[dense]) ** 2
                _, e1, s1 = filter_batch(
                    eps2, omega[dense], a[dense], b[dense], cache.e[:, dc], cache.s[:, dc]
                )
                cache.e[:, dc] = e1
                cache.s[:, dc] = s1
            for j in np.flatnonzero(~dense):  # rows with gaps: skip NaN returns for that asset
                i = int(cols[j])
                r = sub[:, j]
                rf = r[np.isfinite(r)]
                if rf.size == 0:
                    continue
                eps2 = ((rf - mu[j]) ** 2)[:, None]
                _, e1, s1 = filter_batch(
                    eps2,
                    omega[j : j + 1],
                    a[j : j + 1],
                    b[j : j + 1],
                    cache.e[:, i : i + 1],
                    cache.s[:, i : i + 1],
                )
                cache.e[:, i] = e1[:, 0]
                cache.s[:, i] = s1[:, 0]
        cache.window = np.concatenate([cache.window, new], axis=0)
        cache.window_dates = np.concatenate([cache.window_dates, new_dates])
        cache.state_date = new_dates[-1]

    def _finish(
        self, cache: _GarchCache, x: np.ndarray, refit: bool
    ) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]], dict[str, dict[str, Any]], bool]:
        """Holding-period variance per asset (GARCH, else EWMA), the rolling correlation, and the records."""
        st = self.settings
        n = x.shape[1]
        var = np.full(n, np.nan)
        reasons: dict[int, str] = dict(cache.failed)
        cols = np.array(sorted(cache.params), dtype=int)
        if cols.size:
            omega, a, b, _ = stack_params([cache.params[i] for i in cols], cache.e.shape[0])
            fc = forecast_batch(omega, a, b, cache.e[:, cols], cache.s[:, cols], self.horizon)
            avg = fc.mean(axis=0)
            ref = cache.ref_var[cols]
            for j, i in enumerate(cols):
                v = float(avg[j])
                if not (math.isfinite(v) and v > 0):
                    reasons[int(i)] = f"GARCH forecast not finite/positive ({v!r})"
                elif (
                    math.isfinite(ref[j]) and ref[j] > 0 and not (1 / _PLAUSIBLE <= v / ref[j] <= _PLAUSIBLE)
                ):
                    reasons[int(i)] = f"GARCH variance {v:.3g} implausible vs sample variance {ref[j]:.3g}"
                else:
                    var[i] = v
        fallbacks: list[dict[str, str]] = []
        if reasons:
            lam = st.ewma_lambda
            ew = ewma_variance(x, lam, window=_ewma_tail(lam))
            for i in sorted(reasons):
                var[i] = ew[i]
                fallbacks.append(
                    {"ticker": self.tickers[i], "from": "garch", "to": "ewma", "reason": reasons[i]}
                )
        params = {
            self.tickers[i]: cache.params[i].to_dict() for i in sorted(cache.params) if i not in reasons
        }
        corr = rolling_correlation(x, st.corr_window)
        return var, corr, fallbacks, params, refit


def _pad(h: np.ndarray, m: int) -> np.ndarray:
    h = np.asarray(h, dtype=float)
    if h.shape[0] >= m:
        return h[-m:]
    return np.concatenate([np.full(m - h.shape[0], h[0]), h])
