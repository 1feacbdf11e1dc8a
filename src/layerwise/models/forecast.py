"""DLinear (Zeng et al. 2023, "Are Transformers Effective for Time Series Forecasting?"): a moving-average
trend/remainder decomposition, then one linear map from the look-back to the horizon for each part.

Channel-independent: the same weights forecast every column from its own past, so every column of a
multivariate series is training data. Each window is first shifted by its last value (the NLinear
normalisation of the same paper), which keeps the model honest under the level shifts of real series.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MovingAverage(nn.Module):
    """Mean over `kernel` steps along time of [B, L, C], the ends padded by repeating the edge values."""

    def __init__(self, kernel: int):
        super().__init__()
        self.kernel = kernel

    def forward(self, x: Tensor) -> Tensor:
        k = self.kernel
        padded = torch.cat([x[:, :1].expand(-1, (k - 1) // 2, -1), x, x[:, -1:].expand(-1, k // 2, -1)], 1)
        return F.avg_pool1d(padded.transpose(1, 2), k, stride=1).transpose(1, 2)


class DLinear(nn.Module):
    """[B, lookback, C] -> [B, horizon, C]: seasonal and trend parts each mapped by a linear layer over time."""

    def __init__(self, lookback: int, horizon: int, channels: int, kernel: int = 25, last_value: bool = True):
        super().__init__()
        self.lookback, self.horizon, self.channels, self.last_value = lookback, horizon, channels, last_value
        kernel = max(1, min(kernel, lookback))
        self.decompose = MovingAverage(kernel)
        self.seasonal = nn.Linear(lookback, horizon)
        self.trend = nn.Linear(lookback, horizon)
        with torch.no_grad():  # start as the average of the look-back, as in the paper's code
            for layer in (self.seasonal, self.trend):
                layer.weight.fill_(1.0 / lookback)
                layer.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[1:] != (self.lookback, self.channels):
            raise ValueError(f"DLinear expects [B, {self.lookback}, {self.channels}], got {list(x.shape)}.")
        last = x[:, -1:] if self.last_value else 0.0
        x = x - last
        trend = self.decompose(x)
        out = self.seasonal((x - trend).transpose(1, 2)) + self.trend(trend.transpose(1, 2))
        return out.transpose(1, 2) + last


def build_dlinear(spec: dict, out_dim: int) -> DLinear:
    """`--model dlinear` for forecast windows [B, lookback, C] (spec kind "series")."""
    from ..errors import ConfigError

    if spec["kind"] != "series":
        raise ConfigError(f"model 'dlinear' forecasts series but the data is {spec['kind']}; use --task forecast.")
    return DLinear(spec["lookback"], out_dim // spec["channels"], spec["channels"])
