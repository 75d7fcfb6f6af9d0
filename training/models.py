"""Torch models for the studies. Initial recurrent states are built from the input's batch size at run time
(never a constant), so the ONNX export stays correct for any batch size."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["LSTMAllocator", "LSTMForecaster", "RNNTwoHead", "build_model"]


class LSTMForecaster(nn.Module):
    """LSTM (layers x units) -> dropout -> linear: one return forecast per ticker (scaled target units)."""

    def __init__(self, n_inputs: int, n_outputs: int, units: int = 64, layers: int = 1, dropout: float = 0.2):
        super().__init__()
        self.layers, self.units = layers, units
        self.lstm = nn.LSTM(
            n_inputs, units, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(units, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = x.new_zeros((self.layers, x.shape[0], self.units))
        out, _ = self.lstm(x, (h0, h0))
        return self.head(self.drop(out[:, -1]))


class LSTMAllocator(LSTMForecaster):
    """Same trunk, softmax head: long-only weights that sum to one (study 001)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(super().forward(x), dim=-1)


class RNNTwoHead(nn.Module):
    """Study 000: SimpleRNN(tanh) -> dropout -> (sigmoid p(rebalance), linear next-week returns)."""

    def __init__(self, n_inputs: int, n_outputs: int, units: int = 64, layers: int = 1, dropout: float = 0.2):
        super().__init__()
        self.layers, self.units = layers, units
        self.rnn = nn.RNN(n_inputs, units, num_layers=layers, nonlinearity="tanh", batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.reb = nn.Linear(units, 1)
        self.ret = nn.Linear(units, n_outputs)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h0 = x.new_zeros((self.layers, x.shape[0], self.units))
        out, _ = self.rnn(x, h0)
        h = self.drop(out[:, -1])
        return self.reb(h)[:, 0], self.ret(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit, ret = self.logits(x)
        return torch.sigmoid(logit)[:, None], ret


def build_model(kind: str, n_inputs: int, n_outputs: int, params: dict[str, Any]) -> nn.Module:
    kw = {k: params[k] for k in ("units", "layers", "dropout") if k in params}
    if kind == "rebalance_returns":
        return RNNTwoHead(n_inputs, n_outputs, **kw)
    if kind == "weights":
        return LSTMAllocator(n_inputs, n_outputs, **kw)
    if kind == "returns":
        return LSTMForecaster(n_inputs, n_outputs, **kw)
    raise ValueError(f"unknown model kind {kind!r}")
