"""Semi-supervised classification: a few labels plus unlabelled data, FixMatch-style (Sohn et al. 2020).

`split_labels` turns the prepared data into a labelled part (`--labels-per-class N` kept per class of the
training split) and an unlabelled part (the whole training split with its labels hidden, and/or a separate
`--unlabelled PATH`). `FixMatch` is the step function of the one loop: each step takes a labelled batch of B
and an unlabelled batch of mu*B; the model's confident predictions (>= threshold) on a weak view of each
unlabelled sample become pseudo-labels for a strong view of it (RandAugment + cutout for images, noise,
scaling and masking for features); loss = labelled loss + lambda_u * unlabelled loss.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .loop import Callback, Loop, backward_and_step


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr)


def pick_per_class(y: np.ndarray, n: int, seed: int, classes: list) -> np.ndarray:
    """Indices of `n` samples of each class (sorted), drawn with `seed`; DataError if a class has fewer."""
    counts = np.bincount(y, minlength=len(classes))
    small = int(np.argmin(counts))
    if counts[small] < n:
        raise DataError(f"--labels-per-class {n} is more than the smallest class has: class {classes[small]!r} has "
                        f"only {counts[small]} training samples; use at most {counts[small]}.")
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False) for c in range(len(classes))]))


def split_labels(prepared: Any, cfg: Any, quiet: bool = False) -> Any:
    """Apply --labels-per-class, --unlabelled and --semi-supervised to `prepared` (a data.Prepared).

    Sets `prepared.unlabelled` (a tuple of input arrays, or None). For semi-supervised training the labelled
    part is repeated so that one epoch pairs it with every unlabelled sample once (mu per labelled sample).
    """
    from ..data.prepare import Split

    if cfg.unlabelled and not cfg.semi_supervised:
        cfg.semi_supervised = True
        _say("semi-supervised: on, since unlabelled data was given", quiet)
    if not (cfg.semi_supervised or cfg.labels_per_class):
        return prepared
    task = prepared.task
    if "semi_supervised" not in task.supports:
        what = "--semi-supervised" if cfg.semi_supervised else "--labels-per-class"
        raise ConfigError(f"{what} works for classification only, not for task {task.name!r}; "
                          "use --task classify or leave it out.")
    train = prepared.train
    parts = []
    if cfg.labels_per_class:
        keep = pick_per_class(train.y, cfg.labels_per_class, cfg.seed, task.classes)
        if cfg.semi_supervised:
            parts.append(train.inputs)  # the whole training split, labels hidden (FixMatch keeps the labelled too)
        train = Split(tuple(x[keep] for x in train.inputs), train.y[keep],
                      None if train.index is None else train.index[keep])
    if cfg.unlabelled:
        parts.append(load_unlabelled(cfg.unlabelled, prepared.pre, cfg))
    if cfg.semi_supervised and not parts:
        raise ConfigError("semi-supervised training needs unlabelled data: give --labels-per-class N (the other "
                          "labels of the training split are hidden) or --unlabelled PATH.")
    if parts:
        if cfg.label_smoothing is None and task.label_smoothing:
            # smoothed targets cap the confidence below the pseudo-label threshold (0.91 for 10 classes at 0.1)
            task.label_smoothing = 0.0
            _say("label smoothing: 0 (semi-supervised; pseudo-labels need confident predictions)", quiet)
        unlabelled = tuple(np.concatenate(xs) for xs in zip(*parts)) if len(parts) > 1 else parts[0]
        n_u, n_l = len(unlabelled[0]), len(train)
        reps = max(1, math.ceil(n_u / (cfg.unlabelled_ratio * n_l)))
        if reps > 1:
            train = Split(tuple(np.concatenate([x] * reps) for x in train.inputs), np.concatenate([train.y] * reps),
                          None if train.index is None else np.concatenate([train.index] * reps))
        prepared.unlabelled = unlabelled
        _say(f"semi-supervised: {n_l:,} labelled samples" + (f" (each seen {reps}x per epoch)" if reps > 1 else "")
             + f", {n_u:,} unlabelled; {cfg.unlabelled_ratio} unlabelled per labelled sample in a batch", quiet)
    elif cfg.labels_per_class:
        _say(f"labels: {cfg.labels_per_class} per class kept ({len(train):,} samples), the rest left out", quiet)
    prepared.train = train
    return prepared


def load_unlabelled(path: str, pre: Any, cfg: Any) -> tuple[np.ndarray, ...]:
    """Read unlabelled inputs (a folder of images, at any depth; an .npz; a table whose target column, if
    present, is ignored), check they match the labelled data, and preprocess them like it."""
    from ..data.sources import read_unlabelled

    p = Path(path).expanduser()
    spec = pre.spec()
    d = read_unlabelled(p, cfg.target, cfg.image_size)
    x, kind = d.x, d.kind
    if kind != spec["kind"]:
        raise DataError(f"the unlabelled data is {kind} data but the labelled data is {spec['kind']} data; "
                        "give unlabelled data of the same kind.")
    if kind == "image":
        c, h, w = spec["shape"]
        if tuple(x.shape[1:]) != (h, w, c):
            got = "x".join(map(str, x.shape[1:]))
            fix = " (or set --image-size)" if p.is_dir() else ""
            raise DataError(f"the unlabelled images are {got} (height x width x channels) but the labelled ones "
                            f"are {h}x{w}x{c}; give unlabelled data of the same shape{fix}.")
        if (x.dtype == np.uint8) != (pre.scale != 1.0):
            form = ("8-bit pixels (0-255)", "floats") if x.dtype == np.uint8 else ("floats", "8-bit pixels (0-255)")
            raise DataError(f"the unlabelled images hold {form[0]} but the labelled ones {form[1]}; give both in "
                            "the same form.")
    elif kind == "array" and tuple(x.shape[1:]) != tuple(spec["shape"]):
        raise DataError(f"the unlabelled samples have {x.shape[1]} features but the labelled ones have "
                        f"{spec['shape'][0]}; give unlabelled data of the same shape.")
    return pre.transform(x)


def weak_view(x: torch.Tensor, image: bool, flip: bool, g: torch.Generator) -> torch.Tensor:
    """FixMatch's weak augmentation: flip (colour images) and shift by up to 12.5%; small noise for features."""
    from ..data.policies import jitter, random_flip, random_shift

    if image:
        return random_shift(random_flip(x, g) if flip else x, max(1, round(0.125 * min(x.shape[-2:]))), g)
    return jitter(x, 0.05, g)


def strong_view(x: torch.Tensor, image: bool, flip: bool, g: torch.Generator) -> torch.Tensor:
    """FixMatch's strong augmentation: a weak view, RandAugment (2 ops) and cutout of a quarter of the side;
    for features: scaling, noise and a fifth of the features masked to their mean (0 after standardising)."""
    from ..data.policies import cutout, jitter, rand_augment, scale

    if image:
        x = rand_augment(weak_view(x, image, flip, g), 2, 10, g)
        return cutout(x, max(1, min(x.shape[-2:]) // 4), g)
    keep = (torch.rand(x.shape, generator=g) >= 0.2).to(x.device, x.dtype)
    return jitter(scale(x, 0.2, g), 0.2, g) * keep


class FixMatch(Callback):
    """The semi-supervised step (FixMatch) for the one loop, and its bookkeeping as a callback.

    Pass `fixmatch.step` as the loop's step_fn and the object among its callbacks. The weak views go through
    the model without a graph (their predictions only pick pseudo-labels, about a third of the cost of a
    training pass); the labelled batch and the strong views share one forward pass, so batch-norm statistics
    see both. Logs the share of unlabelled samples above the threshold (`unlabelled_used`) and the unlabelled
    loss each epoch.
    """

    def __init__(self, unlabelled: tuple, spec: dict, threshold: float = 0.95, ratio: int = 7, weight: float = 1.0):
        self.unlabelled_arrays = unlabelled
        self.threshold, self.ratio, self.weight = threshold, ratio, weight
        self.image = spec["kind"] == "image"
        self.flip = self.image and spec["shape"][0] == 3
        self.generator = torch.Generator()
        self.sums = torch.zeros(3, dtype=torch.float64)  # confident, unlabelled seen, unlabelled loss * steps
        self.steps = 0
        self.augment_labelled = True

    @classmethod
    def from_config(cls, unlabelled: tuple, spec: dict, cfg: Any) -> FixMatch:
        return cls(unlabelled, spec, cfg.confidence, cfg.unlabelled_ratio, cfg.unlabelled_weight)

    def on_fit_start(self, loop: Loop) -> None:
        from .callbacks import Augment

        self.u = tuple(torch.as_tensor(x).to(loop.device) for x in self.unlabelled_arrays)
        self.augment_labelled = not any(isinstance(c, Augment) for c in loop.callbacks)

    def on_epoch_start(self, loop: Loop) -> None:
        g = torch.Generator().manual_seed(loop.cfg.seed * 1_000_033 + loop.epoch + 17)
        self.perm = torch.randperm(len(self.u[0]), generator=g).to(loop.device)
        if loop.batch_idx == 0:
            self.generator.manual_seed(loop.cfg.seed * 7907 + loop.epoch + 1)
            self.sums.zero_()
            self.steps = 0

    def step(self, loop: Loop) -> None:
        b, g = len(loop.y), self.generator
        m = self.ratio * b
        start = loop.batch_idx * loop.batch_size * self.ratio
        idx = self.perm[(start + torch.arange(m, device=loop.device)) % len(self.perm)]
        u = tuple(x[idx] for x in self.u)
        x_l = weak_view(loop.inputs[0], self.image, self.flip, g) if self.augment_labelled else loop.inputs[0]
        weak = (weak_view(u[0], self.image, self.flip, g),) + u[1:]
        strong = (strong_view(u[0], self.image, self.flip, g),) + u[1:]
        with torch.no_grad(), loop.autocast():  # pseudo-labels from the weak views: no graph needed
            confidence, pseudo = loop.model(*loop.batch_inputs(weak)).float().softmax(-1).max(-1)
            mask = (confidence >= self.threshold).float()
        inputs = tuple(torch.cat([p, q]) for p, q in zip((x_l,) + loop.inputs[1:], strong))
        with loop.autocast():
            out = loop.model(*loop.batch_inputs(inputs))
            loop.out = out[:b]
            labelled = loop.task.loss(loop.out, loop.y)
        unlabelled = (F.cross_entropy(out[b:].float(), pseudo, reduction="none") * mask).mean()
        loop.loss = labelled + self.weight * unlabelled
        backward_and_step(loop)
        self.sums += torch.stack([mask.sum().double().cpu(), torch.tensor(float(m), dtype=torch.float64),
                                  unlabelled.detach().double().cpu()])
        self.steps += 1

    def on_epoch_end(self, loop: Loop) -> None:
        h = loop.history[-1]
        h["unlabelled_used"] = float(self.sums[0] / max(1.0, float(self.sums[1])))
        h["unlabelled_loss"] = float(self.sums[2] / max(1, self.steps))
        writer = next((c.writer for c in loop.callbacks if hasattr(getattr(c, "writer", None), "add_scalar")), None)
        if writer is not None:
            writer.add_scalar("semi/unlabelled_used", h["unlabelled_used"], loop.epoch)
            writer.add_scalar("semi/unlabelled_loss", h["unlabelled_loss"], loop.epoch)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "sums": self.sums.clone(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.sums, self.steps = state["sums"].clone(), state["steps"]
