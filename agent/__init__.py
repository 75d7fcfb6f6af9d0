"""rebalance-agent: a scheduled portfolio-rebalancing agent (paper trading, backtest replay, audit)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
