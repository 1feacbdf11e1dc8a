"""Small shared pieces: activations by name."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


def noise(n: int, dim: int, generator: torch.Generator | None = None, truncation: float | None = None) -> torch.Tensor:
    """Standard normal noise [n, dim]; with `truncation` t, values outside [-t, t] are drawn again (the
    truncation trick of BigGAN, Brock et al. 2019): cleaner, more typical samples for less variety."""
    if truncation is None:
        return torch.randn(n, dim, generator=generator)
    if truncation <= 0:
        raise ValueError(f"truncation must be above 0, got {truncation}.")
    z = torch.empty(n, dim)
    return torch.nn.init.trunc_normal_(z, 0.0, 1.0, -truncation, truncation, generator=generator)
