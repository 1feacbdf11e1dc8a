"""Autoencoders: dense and convolutional, and the variational autoencoder (Kingma & Welling 2014).

Inputs are floats already normalised by the data layer (pixels in [0, 1], or standardised to zero
mean and unit variance); tables come as (numbers, category codes) and are flattened to numbers plus
one-hot codes. Decoders end in a linear layer, so reconstructions live in the same units as the
inputs and the squared error is the natural reconstruction loss.

Every model has `encode(*inputs)` (the embedding) and `decode(z)`; `forward` returns one tensor, so
the training loop can batch and concatenate it like any other output (the VAE packs its posterior
next to the reconstruction; `VAE.unpack` splits it again).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def split_vae_output(out, latent: int):
    """(recon [B, D], mu [B, latent], logvar [B, latent]) from a VAE's packed output [B, D + 2 * latent]."""
    d = out.shape[1] - 2 * latent
    return out[:, :d], out[:, d:d + latent], out[:, d + latent:]


def vae_terms(x, out, latent: int, likelihood: str = "mse"):
    """Per-sample reconstruction term and KL(q(z|x) || N(0, I)) [B] of a packed VAE output; x is the target."""
    import torch.nn.functional as F

    recon, mu, logvar = split_vae_output(out.float(), latent)
    x = x.float().flatten(1)
    if likelihood == "mse":
        rec = (recon - x).pow(2).sum(1)
    else:
        rec = F.binary_cross_entropy_with_logits(recon, x, reduction="none").sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    return rec, kl


def dense_encoder(in_features: int, hidden: Sequence[int], out: int) -> nn.Sequential:
    """Flatten, then Linear–GELU layers, then a linear map to `out` features."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.GELU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, out))


def dense_decoder(latent: int, hidden: Sequence[int], out: int) -> nn.Sequential:
    """The mirror of `dense_encoder`: latent → reversed hidden widths → `out`, linear output."""
    return dense_encoder(latent, tuple(reversed(hidden)), out)[1:]  # no Flatten at the front


def _conv_out(size: int) -> int:
    """Spatial size after a 3x3 convolution with stride 2 and padding 1."""
    return (size - 1) // 2 + 1


class ConvEncoder(nn.Module):
    """Stride-2 3x3 conv–batch norm–ReLU blocks, then a linear map of the flattened features to `out`."""

    def __init__(self, in_shape: Sequence[int], channels: Sequence[int], out: int):
        super().__init__()
        c, h, w = in_shape
        self.sizes = [(h, w)]  # spatial size at each depth, for the decoder to retrace
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU()]
            c, h, w = ch, _conv_out(h), _conv_out(w)
            self.sizes.append((h, w))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c * h * w, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """The mirror of a `ConvEncoder`: linear map to a feature map, then stride-2 transposed convolutions
    sized to land exactly on the encoder's shapes (so any H, W work, e.g. 28 and 32)."""

    def __init__(self, latent: int, out_channels: int, channels: Sequence[int], sizes: Sequence[tuple[int, int]]):
        super().__init__()
        c = channels[-1]
        h, w = sizes[-1]
        self.start = (c, h, w)
        self.fc = nn.Linear(latent, c * h * w)
        layers: list[nn.Module] = [nn.ReLU()]
        outs = list(reversed(channels[:-1])) + [out_channels]
        for i, (ch, (th, tw)) in enumerate(zip(outs, reversed(sizes[:-1]))):
            pad = (th - (2 * h - 1), tw - (2 * w - 1))  # output_padding that reaches the target size
            layers.append(nn.ConvTranspose2d(c, ch, 3, stride=2, padding=1, output_padding=pad,
                                             bias=i == len(outs) - 1))
            if i < len(outs) - 1:
                layers += [nn.BatchNorm2d(ch), nn.ReLU()]
            c, h, w = ch, th, tw
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, *self.start))


def flatten_inputs(inputs: Sequence[torch.Tensor], cat_sizes: Sequence[int] = ()) -> torch.Tensor:
    """One float matrix [B, D] from model inputs: images/arrays flattened; for tables (numbers, codes),
    the numbers followed by a one-hot block per categorical column."""
    x = inputs[0].flatten(1).float()
    if len(inputs) > 1 and cat_sizes:
        codes = inputs[1]
        x = torch.cat([x] + [F.one_hot(codes[:, i], n).to(x.dtype) for i, n in enumerate(cat_sizes)], 1)
    return x


class DenseAutoencoder(nn.Module):
    """Fully connected autoencoder: [B, ...] → latent code [B, latent] → flat reconstruction [B, D].

    With `cat_sizes`, inputs are tables (numbers [B, n], codes [B, c]) and D counts one-hot columns.
    """

    def __init__(self, in_features: int, latent: int = 16, hidden: Sequence[int] = (512, 256),
                 cat_sizes: Sequence[int] = ()):
        super().__init__()
        self.cat_sizes = tuple(cat_sizes)
        self.in_features, self.latent = in_features + sum(self.cat_sizes), latent
        self.encoder = dense_encoder(self.in_features, hidden, latent)
        self.decoder = dense_decoder(latent, hidden, self.in_features)

    def encode(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The latent code [B, latent] of inputs [B, ...] (flattened inside)."""
        return self.encoder(flatten_inputs(inputs, self.cat_sizes))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Flat reconstructions [B, D] of codes [B, latent]."""
        return self.decoder(z)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(*inputs))


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder for images [B, C, H, W]: stride-2 convs down, transposed convs back up."""

    def __init__(self, in_shape: Sequence[int], latent: int = 16, channels: Sequence[int] = (32, 64)):
        super().__init__()
        self.in_shape, self.latent = tuple(in_shape), latent
        self.encoder = ConvEncoder(in_shape, channels, latent)
        self.decoder = ConvDecoder(latent, in_shape[0], channels, self.encoder.sizes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The latent code [B, latent] of images [B, C, H, W]."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] from codes [B, latent]."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class VAE(nn.Module):
    """Variational autoencoder with a diagonal Gaussian posterior and a standard normal prior.

    `likelihood="mse"` (default): Gaussian decoder with a linear output; the reconstruction term is the
    sum of squared errors per sample, for inputs in any normalised range (e.g. [0, 1] or standardised).
    `likelihood="bce"`: Bernoulli decoder whose outputs are logits; inputs must lie in [0, 1].
    `forward` returns `[recon (flat) | mu | logvar]` as one tensor [B, D + 2 * latent]; in training mode
    z is sampled (the reparameterisation trick), in evaluation mode z = mu, so scores are deterministic.
    """

    def __init__(self, in_shape: Sequence[int], latent: int = 16, hidden: Sequence[int] = (512, 256),
                 conv: bool = False, channels: Sequence[int] = (32, 64), likelihood: str = "mse",
                 cat_sizes: Sequence[int] = ()):
        super().__init__()
        if likelihood not in ("mse", "bce"):
            raise ValueError(f"likelihood must be 'mse' or 'bce', got {likelihood!r}.")
        if conv and len(in_shape) != 3:
            raise ValueError(f"conv=True needs in_shape (C, H, W), got {tuple(in_shape)}.")
        self.cat_sizes, self.conv = tuple(cat_sizes), conv
        self.in_shape, self.latent, self.likelihood = tuple(in_shape), latent, likelihood
        self.in_features = math.prod(in_shape) + sum(self.cat_sizes)
        if conv:
            self.encoder: nn.Module = ConvEncoder(in_shape, channels, 2 * latent)
            self.decoder: nn.Module = ConvDecoder(latent, in_shape[0], channels, self.encoder.sizes)
        else:
            self.encoder = dense_encoder(self.in_features, hidden, 2 * latent)
            self.decoder = dense_decoder(latent, hidden, self.in_features)

    def posterior(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance [B, latent] of q(z | x)."""
        x = inputs[0] if self.conv else flatten_inputs(inputs, self.cat_sizes)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The posterior mean mu [B, latent]: the embedding to cluster or visualise."""
        return self.posterior(*inputs)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Flat reconstructions [B, D] (logits when likelihood='bce')."""
        return self.decoder(z).flatten(1)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.posterior(*inputs)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return torch.cat([self.decode(z), mu, logvar], 1)

    def unpack(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(recon [B, D], mu, logvar) from the packed output of `forward`."""
        return split_vae_output(out, self.latent)

    def terms(self, x: torch.Tensor, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample reconstruction term and KL(q(z|x) || N(0, I)), both [B]; x is the flat target [B, D]."""
        return vae_terms(x, out, self.latent, self.likelihood)

    def loss(self, x: torch.Tensor, out: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """Negative ELBO averaged over the batch: reconstruction + beta * KL (beta-VAE when beta != 1)."""
        rec, kl = self.terms(x, out)
        return (rec + beta * kl).mean()

    @torch.no_grad()
    def score(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Per-sample negative ELBO [B], decoding the mean (deterministic): higher means more anomalous."""
        mu, logvar = self.posterior(*inputs)
        rec, kl = self.terms(flatten_inputs(inputs, self.cat_sizes), torch.cat([self.decode(mu), mu, logvar], 1))
        return rec + kl

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, truncation: float | None = None
               ) -> torch.Tensor:
        """`n` new samples [n, D] (images: [n, C, H, W]) decoded from the prior (probabilities for 'bce');
        `truncation` t redraws prior noise outside [-t, t]."""
        from .blocks import noise

        device = next(self.parameters()).device
        z = noise(n, self.latent, generator, truncation).to(device)
        out = self.decode(z)
        out = out.sigmoid() if self.likelihood == "bce" else out
        return out.view(n, *self.in_shape) if not self.cat_sizes else out


AUTOENCODERS = ("autoencoder", "conv_autoencoder", "vae", "conv_vae")


def build_autoencoder(name: str, spec: dict, cfg) -> nn.Module:
    """The named autoencoder for inputs described by `spec` (from the preprocessing)."""
    from ..errors import ConfigError

    latent, hidden, channels = cfg.latent, tuple(cfg.hidden), tuple(cfg.channels)  # defaults: models/__init__.py
    if spec["kind"] == "table":
        if name in ("conv_autoencoder", "conv_vae"):
            raise ConfigError(f"model {name!r} needs images but the data is a table; use --model "
                              "autoencoder or vae.")
        shape, cats = (spec["n_num"],), tuple(spec["cat_sizes"])
    else:
        shape, cats = tuple(spec["shape"]), ()
    if name == "autoencoder":
        return DenseAutoencoder(math.prod(shape), latent, hidden, cats)
    if name in ("conv_autoencoder", "conv_vae"):
        if spec["kind"] != "image":
            raise ConfigError(f"model {name!r} needs images but the data is a {spec['kind']}; use "
                              "--model autoencoder or vae.")
        if name == "conv_vae":
            return VAE(shape, latent, hidden, conv=True, channels=channels)
        return ConvAutoencoder(shape, latent, channels)
    if name == "vae":
        return VAE(shape, latent, hidden, cat_sizes=cats)
    raise ConfigError(f"unknown autoencoder {name!r}; valid: {', '.join(AUTOENCODERS)}.")
