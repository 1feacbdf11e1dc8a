"""Feed-forward network: input → hidden layers (linear, batch norm, activation, dropout) → output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import activation


class MLP(nn.Module):
    """A multilayer perceptron; with `cat_sizes`, categorical columns get learned embeddings.

    forward(x) takes float features [B, ...] (flattened), or (x_num, x_cat) for tables.
    """

    def __init__(self, in_features: int, out_dim: int, hidden: Sequence[int] = (256, 128), act: str = "relu",
                 dropout: float = 0.1, batch_norm: bool = True, cat_sizes: Sequence[int] | None = None):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, min(16, (n + 1) // 2 + 1)) for n in (cat_sizes or []))
        width = in_features + sum(e.embedding_dim for e in self.embeddings)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h)]
            if batch_norm:
                layers += [nn.BatchNorm1d(h)]
            layers += [activation(act)]
            if dropout > 0:
                layers += [nn.Dropout(dropout)]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor, x_cat: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)
        if x_cat is not None:
            x = torch.cat([x] + [e(x_cat[:, i]) for i, e in enumerate(self.embeddings)], 1)
        return self.head(self.hidden(x))
