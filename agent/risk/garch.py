"""Per-asset GARCH(p, q) variance: fit with `arch`, filter and forecast with our own numpy recursion.

Why our own recursion: between re-estimations the parameters are fixed, so the variance only needs the
O(new rows) update σ²_t = ω + Σ α_i ε²_{t-i} + Σ β_j σ²_{t-j}; calling `arch` for that costs 1-3 ms per asset
and re-filters the whole window. The recursion here is vectorized across assets (a loop over time with numpy
vector ops across N) and reproduces `arch`'s conditional variance and analytic forecasts (tests check both).

**Order convention (read this).** Throughout this package ``p`` is the number of lagged *variances* (β terms)
and ``q`` the number of lagged *squared shocks* (α terms), as in the textbook formula of study 004 §3.6.3
(Bollerslev 1986)::

    σ²_t = ω + Σ_{i=1..q} α_i ε²_{t-i} + Σ_{j=1..p} β_j σ²_{t-j}

`arch` uses the opposite names (its ``p`` = shock lags, its ``q`` = variance lags), so `fit_garch` calls
``GARCH(p=q, q=p)``. Study 004's fitted model (§5.3, "GARCH(1,2)", written with `arch`'s naming) is
σ²_t = ω + α1 ε²_{t-1} + β1 σ²_{t-1} + β2 σ²_{t-2}: ONE shock lag and TWO variance lags, i.e. ``p=2, q=1``
here. `RiskSettings` names them by role instead (arch_lags = shock lags, garch_lags = variance lags, defaults
1 and 2 = the study's model), and `CovarianceEstimator` swaps them when it calls in. `GarchParams` stores `alphas` and
`betas` explicitly so a record is never ambiguous.

Units: `arch` is fitted on returns in percent (study 004 §4.3.2: better conditioned optimizer); everything
returned here is rescaled back to decimal returns (ω and the backcast in decimal², μ in decimal per session).
Mean: constant (``mean="constant"``, `arch`'s default and study 004's set-up; μ is estimated jointly and
ε_t = r_t - μ) or zero (``mean="zero"``, ε_t = r_t, RiskMetrics-style). Errors: normal or standardized
Student-t (ν > 2; σ² is the variance in both cases, so filtering and forecasting ignore ν).

Initialization: like `arch`, pre-sample ε² and σ² are the "backcast", an exponentially weighted (0.94, first
75 observations) mean of the squared residuals at the start of the sample; `arch`'s loose variance bounds are
not applied (they never bind for parameters that satisfy its constraints).
"""

from __future__ import annotations

from agent.risk.garch_fit import fit_garch, fit_garch_arch, fit_garch_many, select_order
from agent.risk.garch_model import (
    Dist,
    GarchParams,
    GarchState,
    Mean,
    Metric,
    OrderSelection,
    arch_backcast,
    average_variance,
    filter_batch,
    filter_state,
    filter_variance,
    forecast_batch,
    forecast_variance,
    initial_state,
    stack_params,
)

__all__ = [
    "Dist",
    "GarchParams",
    "GarchState",
    "Mean",
    "Metric",
    "OrderSelection",
    "arch_backcast",
    "average_variance",
    "filter_batch",
    "filter_state",
    "filter_variance",
    "fit_garch",
    "fit_garch_arch",
    "fit_garch_many",
    "forecast_batch",
    "forecast_variance",
    "initial_state",
    "select_order",
    "stack_params",
]
