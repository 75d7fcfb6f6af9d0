"""Losses: MSE (return forecasters), BCE+MSE (two-head RNN), drawdown-sensitive with costs (allocator)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["bce_mse", "drawdown_loss", "mse"]


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target)


def bce_mse(
    logit: torch.Tensor,
    label: torch.Tensor,
    ret_pred: torch.Tensor,
    ret_true: torch.Tensor,
    bce_weight: float = 1.0,
) -> torch.Tensor:
    """Study 000: binary cross-entropy on the rebalance signal + MSE on the returns (on logits: stable)."""
    return bce_weight * F.binary_cross_entropy_with_logits(logit, label) + F.mse_loss(ret_pred, ret_true)


def drawdown_loss(
    weights: torch.Tensor, next_returns: torch.Tensor, lam: float = 20.0, cost: float = 0.001
) -> torch.Tensor:
    """Study 001: -E[Rp] + lam * E[max(0, -Rp)^2], Rp net of `cost` x |w_t - w_{t-1}|.

    Rows must be consecutive sessions in time order (the batches are contiguous chunks); the first row of a
    chunk pays no cost because its predecessor is not in the batch.
    """
    rp = (weights * next_returns).sum(dim=-1)
    turnover = torch.cat([weights.new_zeros(1), (weights[1:] - weights[:-1]).abs().sum(dim=-1)])
    rp = rp - cost * turnover
    return -rp.mean() + lam * torch.clamp(-rp, min=0.0).pow(2).mean()
