"""DCGAN (Radford et al. 2016), optionally class-conditional (its training step is tasks/gan.py's).

The generator projects z (plus a label embedding) to a small feature map and doubles it with stride-2
transposed convolutions up to the image size; the discriminator mirrors it with stride-2 convolutions,
spectral norm (Miyato et al. 2018) and, when conditional, a projection head (Miyato & Koyama 2018).
An unconditional GAN is by default self-conditioned on k-means clusters of its training images (see GAN).
Images are in [-1, 1]: scale [0, 1] pixels with `2 * x - 1` before training.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as sn

from .blocks import noise


def _halvings(h: int, w: int) -> tuple[int, int, int]:
    """How many times (h, w) can be halved while even and at least 4 (28 → 7 twice, 32 → 4 three times)."""
    n = 0
    while h % 2 == 0 and w % 2 == 0 and h // 2 >= 4 and w // 2 >= 4:
        h, w, n = h // 2, w // 2, n + 1
    if n == 0:
        raise ValueError(f"image size {h}x{w} cannot be halved to a feature map of at least 4x4; use e.g. 28 or 32.")
    return n, h, w


def dcgan_init(m: nn.Module) -> None:
    """DCGAN initialisation: conv and linear weights ~ N(0, 0.02), batch norm scales ~ N(1, 0.02)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z [B, z_dim] (and labels [B]) → images [B, C, H, W] in [-1, 1]."""

    def __init__(self, out_shape: tuple[int, int, int], z_dim: int = 64, n_classes: int = 0, width: int = 64):
        super().__init__()
        c, h, w = out_shape
        n_up, h0, w0 = _halvings(h, w)
        self.out_shape, self.z_dim, self.n_classes = tuple(out_shape), z_dim, n_classes
        self.embed = nn.Embedding(n_classes, z_dim) if n_classes > 0 else None
        ch = width * 2 ** (n_up - 1)
        layers: list[nn.Module] = [  # "project and reshape": a transposed conv from 1x1 to h0 x w0
            nn.ConvTranspose2d(z_dim * (2 if n_classes else 1), ch, (h0, w0), bias=False),
            nn.BatchNorm2d(ch), nn.ReLU()]
        for i in range(n_up):
            last = i == n_up - 1
            out = c if last else ch // 2
            layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)
        if self.embed is not None:  # small label codes: with N(0, 1) ones the generator ignored z within a class
            nn.init.normal_(self.embed.weight, 0.0, 0.1)  # (MNIST: within-class diversity 0.07 vs 0.42 at step 300)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError(f"this generator is conditional on {self.n_classes} classes; pass labels [B].")
            z = torch.cat([z, self.embed(labels)], 1)
        return self.net(z[:, :, None, None])

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None, truncation: float | None = None) -> torch.Tensor:
        """`n` images from fresh noise (labels 0, 1, 2, ... cycling when conditional and none are given);
        `truncation` t redraws noise outside [-t, t] (see blocks.noise)."""
        device = next(self.parameters()).device
        if self.embed is not None and labels is None:
            labels = torch.arange(n) % self.n_classes
        z = noise(n, self.z_dim, generator, truncation).to(device)
        return self(z, None if labels is None else labels.to(device))


class Discriminator(nn.Module):
    """Images [B, C, H, W] (and labels [B]) → real/fake logits [B]."""

    def __init__(self, in_shape: Sequence[int], n_classes: int = 0, width: int = 64, spectral_norm: bool = True):
        super().__init__()
        c, h, w = in_shape
        n_down, h0, w0 = _halvings(h, w)
        wrap = sn if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        ch = c
        for i in range(n_down):
            out = width * 2 ** i
            conv = nn.Conv2d(ch, out, 4, stride=2, padding=1, bias=spectral_norm or i == 0)
            dcgan_init(conv)
            layers.append(wrap(conv))
            if not spectral_norm and i > 0:  # plain DCGAN: batch norm on all but the first layer
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2))
            ch = out
        self.features = nn.Sequential(*layers, nn.Flatten())
        dim = ch * h0 * w0
        self.fc = wrap(nn.Linear(dim, 1))
        self.embed = None
        if n_classes > 0:  # projection head: adds <embed(y), phi(x)> to the logit
            embed = nn.Embedding(n_classes, dim)
            nn.init.normal_(embed.weight, 0.0, 0.02)
            self.embed = wrap(embed)
        self.n_classes = n_classes
        if not spectral_norm:
            self.apply(dcgan_init)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        phi = self.features(x)
        out = self.fc(phi).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError(f"this discriminator is conditional on {self.n_classes} classes; pass labels [B].")
            out = out + (self.embed(labels) * phi).sum(1)
        return out


class GAN(nn.Module):
    """Generator and discriminator as one module, so a run has one state dict; calling it generates.

    `width` is the generator's last hidden width (the discriminator's first); `n_classes` > 0 makes both
    networks conditional on a class label. `clusters` > 0 instead conditions them on cluster ids of the
    training images (self-conditioning, Liu et al. 2020, "Diverse Image Generation via Self-Conditioned
    GANs"): the GAN stays unconditional for its user, and sampling draws the cluster ids from
    `cluster_prior`, the clusters' shares of the training images. With `ema` > 0, `generator_ema` keeps an
    exponential moving average of the generator's weights (Karras et al. 2018; Yazici et al. 2019), updated
    after every step by `update_ema`: it is the generator that samples, and it makes cleaner images than
    the last weights.
    """

    def __init__(self, shape: Sequence[int], n_classes: int = 0, z_dim: int = 64, width: int = 32,
                 spectral_norm: bool = True, ema: float = 0.999, clusters: int = 0):
        super().__init__()
        if n_classes and clusters:
            raise ValueError("a GAN is conditional on classes or on clusters, not both; pass one of them.")
        k = n_classes or clusters
        self.generator = Generator(tuple(shape), z_dim, k, width)
        self.discriminator = Discriminator(shape, k, width, spectral_norm)
        self.n_classes, self.clusters, self.z_dim, self.ema = n_classes, clusters, z_dim, ema
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if ema else None
        if clusters:
            self.register_buffer("cluster_prior", torch.full((clusters,), 1.0 / clusters))

    @property
    def sampler(self) -> Generator:
        return self.generator_ema if self.generator_ema is not None else self.generator

    def draw_clusters(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Cluster ids [n] drawn from `cluster_prior` (None for a GAN that is not self-conditioned)."""
        if not self.clusters:
            return None
        return torch.multinomial(self.cluster_prior.float().cpu(), n, replacement=True, generator=generator)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None and self.clusters:
            labels = self.draw_clusters(len(z)).to(z.device)
        return self.sampler(z, labels)

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        """Move the average towards the generator; the decay ramps up as (1 + step) / (10 + step) so that
        early averages do not hold on to the random initial weights."""
        if self.generator_ema is None:
            return
        decay = min(self.ema, (1 + step) / (10 + step))
        for avg, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
            avg.lerp_(p, 1 - decay)
        for avg, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            avg.copy_(b)

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
               truncation: float | None = None) -> torch.Tensor:
        """`n` images in [-1, 1] (labels cycling 0, 1, 2, ... when conditional and none are given; cluster ids
        drawn from the prior when self-conditioned)."""
        if labels is None and self.clusters:
            labels = self.draw_clusters(n, generator)
        return self.sampler.sample(n, labels, generator, truncation)
