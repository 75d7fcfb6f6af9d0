"""Risk models: per-asset GARCH variances, EWMA and sample covariances, and the stateful Σ estimator.

Import cost: numpy only; `arch` is imported lazily when a GARCH model is fitted.
"""

from agent.risk.covariance import (
    CovarianceEstimator,
    CovEstimate,
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
    GarchState,
    OrderSelection,
    arch_backcast,
    average_variance,
    filter_batch,
    filter_state,
    filter_variance,
    fit_garch,
    forecast_batch,
    forecast_variance,
    initial_state,
    select_order,
    stack_params,
)

__all__ = [
    "CovEstimate",
    "CovarianceEstimator",
    "GarchParams",
    "GarchState",
    "OrderSelection",
    "arch_backcast",
    "assemble_covariance",
    "average_variance",
    "cov_to_corr",
    "ewma_covariance",
    "ewma_variance",
    "filter_batch",
    "filter_state",
    "filter_variance",
    "fit_garch",
    "forecast_batch",
    "forecast_variance",
    "initial_state",
    "make_psd",
    "refit_epoch",
    "rolling_correlation",
    "sample_covariance",
    "select_order",
    "stack_params",
]
