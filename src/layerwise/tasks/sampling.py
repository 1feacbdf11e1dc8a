"""Drawing images from a trained generative run (a GAN, or a VAE on images), and mixing them into a
classifier's training data.

`sample(run, 64, label=7)` returns images in the same form as the data the run was trained on (uint8
pixels for uint8 images); `add_synthetic` is what `--synthetic 2x --synthetic-from RUN` does (options.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, RunError, say

GRID_SUFFIXES = (".png", ".jpg", ".jpeg")


def check_generative(run) -> None:
    """Raise a clear error when `run` cannot make images (image data and a model that samples)."""
    if run.pre.spec().get("kind") != "image":
        raise RunError(f"run {str(run.path)!r} is not generative (task {run.info.get('task', '?')}, model "
                       f"{run.info.get('model', '?')}); sample from a run trained with --task generate --model gan.")


def _labels(run, n: int, label: Any):
    """Class indices for `n` samples: all `label`, or cycling through the classes when conditional."""
    import torch

    out_dim = run.task.out_dim if run.task.classes else 0
    if label is not None:
        return torch.full((n,), run.task.class_index(label), dtype=torch.long)
    return torch.arange(n) % out_dim if out_dim else None


def generate(run, n: int, label: Any = None, seed: int = 0, labels=None, truncation: float | None = None):
    """`n` samples as the model makes them ([n, C, H, W], in the model's input units) and their class indices.

    `labels` (class indices, a tensor) overrides `label`; `truncation` t draws the noise from a normal cut at
    [-t, t] (cleaner samples, less variety; t around 0.5-1).
    """
    import torch

    check_generative(run)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"the number of samples must be a whole number of at least 1, got {n!r}.")
    if truncation is not None and not truncation > 0:
        raise ConfigError(f"truncation must be a number above 0 (e.g. 0.7), got {truncation!r}.")
    if labels is None:
        labels = _labels(run, n, label)
    g = torch.Generator().manual_seed(seed)
    model = run.model
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for i in range(0, n, 1000):
                m = min(1000, n - i)
                if labels is None:
                    out.append(model.sample(m, generator=g, truncation=truncation).float().cpu())
                else:
                    out.append(model.sample(m, labels[i:i + m], generator=g, truncation=truncation).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out), labels


def to_data_units(run, images) -> np.ndarray:
    """Model-space images [N, C, H, W] → arrays like the training data: [N, H, W, C], uint8 when it was uint8."""
    pre = run.pre
    mean = np.asarray(pre.mean, dtype=np.float32)[None, :, None, None]
    std = np.asarray(pre.std, dtype=np.float32)[None, :, None, None]
    x = (images.numpy() * std + mean) / np.float32(pre.scale)
    x = x.transpose(0, 2, 3, 1)
    if abs(pre.scale - 1 / 255) < 1e-12:
        return np.clip(np.round(x), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x, dtype=np.float32)


def sample(run, n: int = 64, label: Any = None, seed: int = 0, truncation: float | None = None) -> np.ndarray:
    """`n` generated images [n, H, W, C] (labels cycle through the classes of a conditional run unless
    `label` picks one). Example: ``lw.Run.load("runs/gan").sample(16, label=7)``."""
    images, _ = generate(run, n, label, seed, truncation=truncation)
    return to_data_units(run, images)


def save_samples(run, out: str | Path, n: int = 64, label: Any = None, seed: int = 0,
                 truncation: float | None = None) -> Path:
    """Write `n` samples to `out`: a PNG/JPEG grid, or an .npz with `x` (images) and `y` (labels, if any).

    Everything is checked before anything is written.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in GRID_SUFFIXES + (".npz",):
        raise ConfigError(f"cannot write samples to {out.name!r}; give a .png (a grid) or .npz (arrays) file.")
    if not out.parent.is_dir():
        raise ConfigError(f"folder {str(out.parent)!r} does not exist; create it or write elsewhere.")
    images, labels = generate(run, n, label, seed, truncation=truncation)
    if suffix == ".npz":
        arrays = {"x": to_data_units(run, images)}
        if labels is not None:
            arrays["y"] = np.asarray([run.task.classes[i] for i in labels.tolist()])
        np.savez_compressed(out, **arrays)
        return out
    if images.shape[1] not in (1, 3):
        raise ConfigError(f"a grid needs 1 or 3 channels but the samples have {images.shape[1]}; write an .npz.")
    conditional = labels is not None and label is None
    k = run.task.out_dim if run.task.classes else 0
    nrow = k if conditional and k <= 10 else math.ceil(math.sqrt(n))
    import torch

    x = to_data_units(run, images).astype(np.float32) * np.float32(run.pre.scale)  # pixels, usually in [0, 1]
    lo, hi = (0.0, 1.0) if x.min() >= -0.01 and x.max() <= 1.01 else (float(x.min()), float(x.max()) + 1e-6)
    scaled = torch.from_numpy(2 * (x - lo) / (hi - lo) - 1).permute(0, 3, 1, 2)
    save_grid(scaled.clamp(-1, 1), out, nrow=nrow)
    return out


def parse_amount(text: str, n_train: int) -> int:
    """"2x" → 2 × n_train, "0.5x" → half, "5000" → 5000."""
    t = str(text).strip().lower()
    try:
        n = round(float(t[:-1]) * n_train) if t.endswith("x") else int(t)
    except ValueError:
        n = -1
    if n < 1:
        raise ConfigError(f"--synthetic {text!r} is not a count or a multiple of the training split; give e.g. "
                          "5000 or 2x.")
    return n


def add_synthetic(cfg, prepared, gen, quiet: bool = False):
    """Append labelled samples of the conditional generator `gen` (the run at cfg.synthetic_from) to the
    training split only. Labels follow the class frequencies of the real training split; validation and test
    stay real."""
    import torch

    from ..data import Split

    task = prepared.task
    gen.task.sample(gen, 1)  # a run that cannot generate says so
    if not gen.task.classes:
        raise ConfigError(f"run {cfg.synthetic_from!r} is unconditional, so its samples have no labels; train the "
                          "generator with --conditional.")
    have, want = list(gen.pre.spec()["shape"]), list(prepared.pre.spec()["shape"])
    if have != want:
        raise DataError(f"the generator makes images of shape {have} (channels, height, width) but this data has "
                        f"{want}; use a generator trained on images like these.")
    n = parse_amount(cfg.synthetic, len(prepared.train))
    gen_index = {str(c): i for i, c in enumerate(gen.task.classes)}
    missing = [c for c in task.classes if str(c) not in gen_index]
    if missing:
        raise DataError(f"the generator cannot make classes {missing[:10]} of this data (it knows "
                        f"{gen.task.classes[:20]}); train it on the same classes.")
    rng = np.random.default_rng(cfg.seed)
    y_train = np.asarray(prepared.train.y)
    y_syn = y_train[rng.permutation(len(y_train))] if n <= len(y_train) else \
        np.resize(y_train[rng.permutation(len(y_train))], n)
    y_syn = y_syn[:n]
    gen_labels = torch.as_tensor([gen_index[str(task.classes[i])] for i in y_syn], dtype=torch.long)
    images, _ = generate(gen, n, seed=cfg.seed, labels=gen_labels)
    x_syn = prepared.pre.transform(to_data_units(gen, images))
    train = prepared.train
    inputs = tuple(np.concatenate([a, b]) for a, b in zip(train.inputs, x_syn))
    say(f"synthetic: added {n} images from {cfg.synthetic_from} to the {len(train)} real training images "
        "(validation and test stay real)", quiet)
    prepared.train = Split(inputs, np.concatenate([y_train, y_syn.astype(y_train.dtype)]), None)
    return prepared


def save_grid(images, path: str | Path, nrow: int = 8, padding: int = 2) -> None:
    """Write images [N, C, H, W] in [-1, 1] (C = 1 or 3) as one PNG grid, `nrow` images per row."""
    import torch
    from PIL import Image

    n, c, h, w = images.shape
    if c not in (1, 3):
        raise ValueError(f"save_grid needs 1 or 3 channels, got {c}.")
    pix = ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    rows = math.ceil(n / nrow)
    grid = torch.zeros(c, rows * (h + padding) + padding, nrow * (w + padding) + padding, dtype=torch.uint8)
    for i in range(n):
        y, x = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        grid[:, y:y + h, x:x + w] = pix[i]
    arr = grid.permute(1, 2, 0).numpy()
    Image.fromarray(arr[:, :, 0] if c == 1 else arr).save(path)
