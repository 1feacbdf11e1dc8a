"""Augmentation policies on batches of tensors, all torch ops (no PIL, no torchvision).

Images are float [B, C, H, W], already normalised ([0, 1] or standardised): ops that need "black" or
"grey" use each image's own per-channel minimum or mean, so they work in either range. Every function
takes `generator` (a torch.Generator, or None for the global one): a fixed seed gives the same batch.
Includes RandAugment (Cubuk et al. 2020), mixup (Zhang et al. 2018), CutMix (Yun et al. 2019),
cutout (DeVries & Taylor 2017), the weak/strong views of FixMatch (Sohn et al. 2020), and jitter and
scaling for tables and series (Um et al. 2017).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .augment import random_flip, random_shift

__all__ = ["augment_batch", "cutmix", "cutout", "jitter", "mixup", "rand_augment", "random_flip", "random_shift",
           "resolve_policies", "scale", "weak_strong"]


def _sign(b: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Random ±1 per image, shaped [b] on the device and dtype of `like`."""
    return (torch.randint(0, 2, (b,), generator=generator) * 2 - 1).to(like.device, like.dtype)


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    """One draw from Beta(alpha, alpha), reproducible from the torch generator."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _blend(x: torch.Tensor, base: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """base + factor * (x - base), with one factor per image: PIL's ImageEnhance, on tensors."""
    return base + factor.view(-1, 1, 1, 1) * (x - base)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample images through affine maps theta [B, 2, 3] (output → input, in [-1, 1] coordinates);
    pixels from outside the image take each image's per-channel minimum (black)."""
    fill = x.amin((2, 3), keepdim=True)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def _matrix(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
            tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """Affine maps given in pixel units (linear part [[a, b], [c, d]], shifts as fractions of the size),
    converted to the normalised coordinates of `affine_grid` for images of any aspect ratio."""
    h, w = x.shape[-2:]
    row0 = torch.stack([a, b * h / w, 2 * tx], -1)
    row1 = torch.stack([c * w / h, d, 2 * ty], -1)
    return torch.stack([row0, row1], 1)


def _rotate(x, level, g):
    angle = _sign(x.shape[0], g, x) * math.radians(30 * level)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    return _affine(x, _matrix(x, cos, -sin, sin, cos, zero, zero))


def _shear(axis: int) -> Callable:
    def op(x, level, g):
        s = _sign(x.shape[0], g, x) * 0.3 * level
        one, zero = torch.ones_like(s), torch.zeros_like(s)
        sx, sy = (s, zero) if axis == 0 else (zero, s)
        return _affine(x, _matrix(x, one, sx, sy, one, zero, zero))
    return op


def _translate(axis: int) -> Callable:
    def op(x, level, g):
        t = _sign(x.shape[0], g, x) * 0.3 * level
        one, zero = torch.ones_like(t), torch.zeros_like(t)
        tx, ty = (t, zero) if axis == 0 else (zero, t)
        return _affine(x, _matrix(x, one, zero, zero, one, tx, ty))
    return op


def _brightness(x, level, g):
    return _blend(x, x.amin((2, 3), keepdim=True), 1 + 0.9 * level * _sign(x.shape[0], g, x))


def _contrast(x, level, g):
    return _blend(x, x.mean((1, 2, 3), keepdim=True), 1 + 0.9 * level * _sign(x.shape[0], g, x))


def _sharpness(x, level, g):
    blur = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return _blend(x, blur, 1 + 0.9 * level * _sign(x.shape[0], g, x))


def _solarize(x, level, g):
    """Invert (min + max - x) the pixels above a threshold that falls from the maximum as level grows."""
    lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    return torch.where(x > hi - level * (hi - lo), lo + hi - x, x)


def _posterize(x, level, g):
    """Quantise each image's range to 2**bits levels, bits falling from 8 to 4 as level grows."""
    lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    n = 2 ** (8 - round(4 * level)) - 1
    span = (hi - lo).clamp_min(1e-8)
    return ((x - lo) / span * n).round() / n * span + lo


def _cutout_op(x, level, g):
    return cutout(x, round(0.4 * level * min(x.shape[-2:])), g)


OPS: dict[str, Callable] = {
    "identity": lambda x, level, g: x, "brightness": _brightness, "contrast": _contrast,
    "sharpness": _sharpness, "solarize": _solarize, "posterize": _posterize, "rotate": _rotate,
    "shear_x": _shear(0), "shear_y": _shear(1), "translate_x": _translate(0), "translate_y": _translate(1),
    "cutout": _cutout_op,
}


def rand_augment(x: torch.Tensor, n: int = 2, magnitude: float = 9,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """RandAugment: `n` times, each image gets one op drawn uniformly from OPS at a fixed `magnitude`
    (0–10 scale of the reference implementation, 10 strongest) with a random direction."""
    level = min(max(magnitude, 0), 10) / 10
    for _ in range(n):
        choice = torch.randint(len(OPS), (x.shape[0],), generator=generator).to(x.device)
        out = x.clone()
        for k, op in enumerate(OPS.values()):
            idx = (choice == k).nonzero().flatten()
            if len(idx):
                out[idx] = op(x[idx], level, generator)
        x = out
    return x


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Set a `size` x `size` square at a random centre (may hang off the edge) to each image's mean."""
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), generator=generator).to(x.device)
    cx = torch.randint(0, w, (b, 1, 1), generator=generator).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None] - cy + size // 2
    xs = torch.arange(w, device=x.device)[None, None, :] - cx + size // 2
    box = ((ys >= 0) & (ys < size) & (xs >= 0) & (xs < size))[:, None]
    return torch.where(box, x.mean((2, 3), keepdim=True), x)


def mixup(x: torch.Tensor, y_onehot: torch.Tensor, alpha: float = 0.2,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """mixup: lam * (x, y) + (1 - lam) * a shuffled copy, one lam ~ Beta(alpha, alpha) per batch."""
    lam = _beta(alpha, generator)
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y_onehot + (1 - lam) * y_onehot[perm]


def cutmix(x: torch.Tensor, y_onehot: torch.Tensor, alpha: float = 1.0,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix: paste a random box from a shuffled copy of the batch; labels mix by the pasted area."""
    b, _, h, w = x.shape
    lam = _beta(alpha, generator)
    perm = torch.randperm(b, generator=generator).to(x.device)
    r = math.sqrt(1 - lam)
    cy, cx = int(torch.randint(0, h, (1,), generator=generator)), int(torch.randint(0, w, (1,), generator=generator))
    y0, y1 = max(cy - int(h * r) // 2, 0), min(cy + int(h * r) // 2, h)
    x0, x1 = max(cx - int(w * r) // 2, 0), min(cx + int(w * r) // 2, w)
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
    return out, lam * y_onehot + (1 - lam) * y_onehot[perm]


def jitter(x: torch.Tensor, sigma: float = 0.03, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add Gaussian noise N(0, sigma^2) to every value (tables, series, or images)."""
    return x + sigma * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)


def scale(x: torch.Tensor, sigma: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Multiply by a factor ~ N(1, sigma^2) drawn per sample and per feature (the last axis), shared
    along the axes between: for a series [B, T, F] each channel of each sample is scaled as a whole."""
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    return x * (1 + sigma * torch.randn(shape, generator=generator)).to(x.device, x.dtype)


def weak_strong(x: torch.Tensor, flip: bool = True, magnitude: float = 10,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's two views of an unlabelled batch: weak = flip + shift by up to 12.5% of the size;
    strong = an independent weak view, then RandAugment (n=2) and a cutout of a quarter of the size.
    Use flip=False where mirroring changes the class (digits, text)."""
    h, w = x.shape[-2:]
    pad = max(1, round(0.125 * min(h, w)))

    def weak_view() -> torch.Tensor:
        return random_shift(random_flip(x, generator) if flip else x, pad, generator)

    weak = weak_view()
    strong = rand_augment(weak_view(), 2, magnitude, generator)
    return weak, cutout(strong, max(1, min(h, w) // 4), generator)


# ---- named policies, as given to `--augment shift,mixup,...`

IMAGE_ONLY = ("shift", "flip", "randaugment", "cutout", "cutmix")
MIXING = ("mixup", "cutmix")


def resolve_policies(names: str | Sequence[str], kind: str, shape: Sequence[int] | None = None,
                     task: str | None = None, mixable: bool | None = None) -> list[str]:
    """The policy list for data of `kind` ("image", "table", "array", "series", ...): "default" becomes
    shift (+ flip for colour images) for images and jitter, scale for everything else. Policies that do
    not fit the data or the task raise ConfigError with the ones that do. `mixable`: whether the task `task`
    can learn from mixed targets (its `supports` has "mix"; by default classify and regress can)."""
    from ..config import AUGMENTATIONS
    from ..errors import ConfigError

    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    if kind in ("text", "corpus"):
        raise ConfigError(f"--augment does not apply to {kind} data (token ids); leave it out.")
    out: list[str] = []
    for n in names:
        if n not in AUGMENTATIONS:
            raise ConfigError(f"unknown augmentation policy {n!r}; valid: {', '.join(AUGMENTATIONS)}.")
        if n == "default":
            colour = kind == "image" and shape is not None and shape[0] == 3
            out += (["shift", "flip"] if colour else ["shift"]) if kind == "image" else ["jitter", "scale"]
        else:
            out.append(n)
    if kind != "image":
        bad = [n for n in out if n in IMAGE_ONLY]
        if bad:
            raise ConfigError(f"augmentation {bad[0]!r} works on images only, but the data is a {kind}; "
                              "use jitter, scale or mixup.")
    mixing = [n for n in out if n in MIXING]
    if mixing and not (mixable if mixable is not None else task in ("classify", "regress")):
        raise ConfigError(f"augmentation {mixing[0]!r} mixes targets and works for classify and regress only, "
                          f"not for task {task!r}; leave it out.")
    return list(dict.fromkeys(out))


def augment_batch(policies: Sequence[str], inputs: tuple, y: torch.Tensor, generator: torch.Generator | None,
                  n_classes: int | None = None) -> tuple[tuple, torch.Tensor]:
    """Apply `policies` to a training batch: per-sample ops on the first (float) input in the order given,
    then mixup or CutMix (one of the two, drawn per batch, when both are named). Class targets become soft
    (one-hot, then mixed) when mixing; other inputs (e.g. a table's category codes) follow the first
    sample of each mixed pair."""
    x = inputs[0]
    for name in policies:
        if name == "shift":
            x = random_shift(x, max(1, round(min(x.shape[-2:]) / 14)), generator)
        elif name == "flip":
            x = random_flip(x, generator)
        elif name == "randaugment":
            x = rand_augment(x, 2, 9, generator)
        elif name == "cutout":
            x = cutout(x, max(1, min(x.shape[-2:]) // 4), generator)
        elif name == "jitter":
            x = jitter(x, 0.05, generator)
        elif name == "scale":
            x = scale(x, 0.1, generator)
    mixing = [n for n in policies if n in MIXING]
    if mixing:
        pick = mixing[int(torch.randint(len(mixing), (1,), generator=generator))] if len(mixing) > 1 else mixing[0]
        if n_classes is not None and not y.is_floating_point():
            y = F.one_hot(y.long(), n_classes).to(x.dtype)
        x, y = (mixup(x, y, 0.2, generator) if pick == "mixup" else cutmix(x, y, 1.0, generator))
    return (x,) + tuple(inputs[1:]), y
