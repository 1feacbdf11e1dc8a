"""Transfer learning on the one loop: discriminative learning rates as optimizer parameter groups, freezing and
gradual unfreezing as a callback.

A model that supports it has `layer_groups()`: lists of modules from the input up, its new head last.
- discriminative learning rates (`lr_decay`): the head trains at `lr`, the group below it at lr * lr_decay,
  the next at lr * lr_decay**2, ... (Howard & Ruder 2018, ULMFiT; "layer-wise decay" for transformers);
- `freeze`: only the head trains; the backbone is fixed (and kept in evaluation mode);
- `unfreeze_every` N: the head trains alone for N epochs, then one more group from the top joins every N
  epochs, until the whole network trains.
Every parameter sits in the optimizer from the start (a frozen one has no gradient, so the optimizer skips it),
so unfreezing changes nothing but `requires_grad`, and checkpoints resume exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from .loop import Callback, Loop
from .optim import groups_of, head_only, param_groups  # noqa: F401 (discriminative learning rates)


def set_trainable(model: torch.nn.Module, n_top: int | None) -> int:
    """Let the top `n_top` layer groups train (None: all) and freeze the rest; returns how many train."""
    layers = groups_of(model)
    n = len(layers) if n_top is None else max(1, min(n_top, len(layers)))
    for i, params in enumerate(layers):
        for p in params:
            p.requires_grad_(i >= len(layers) - n)
    model.train(model.training)  # fully frozen groups switch to evaluation mode
    return n


def trainable_groups(cfg: Any, epoch: int, n_groups: int) -> int | None:
    """How many layer groups (from the top) train in `epoch` (0-based); None means all."""
    if cfg.unfreeze_every:
        return min(n_groups, 1 + epoch // cfg.unfreeze_every)
    return 1 if cfg.freeze else None


class Unfreeze(Callback):
    """Sets which layer groups train at the start of every epoch: the head only, some, or all."""

    def __init__(self, cfg: Any):
        self.cfg, self.trainable = cfg, None

    def on_epoch_start(self, loop: Loop) -> None:
        n_groups = len(loop.model.layer_groups())
        want = trainable_groups(self.cfg, loop.epoch, n_groups)
        if want != self.trainable:
            n = set_trainable(loop.model, want)
            if self.trainable is not None and self.cfg.progress:
                import sys

                print(f"epoch {loop.epoch + 1}: training the top {n} of {n_groups} layer groups", file=sys.stderr)
            self.trainable = want

    def on_fit_end(self, loop: Loop) -> None:
        set_trainable(loop.model, None)  # a finished model is an ordinary module again


def transfer_callbacks(cfg: Any, model: torch.nn.Module) -> list[Callback]:
    """[Unfreeze] for models with layer groups; the transfer settings on any other model are an error."""
    if hasattr(model, "layer_groups"):
        return [Unfreeze(cfg)] if (cfg.freeze or cfg.unfreeze_every) else []
    used = [name for name, on in (("freeze", cfg.freeze), ("lr_decay", cfg.lr_decay != 1.0),
                                  ("unfreeze_every", cfg.unfreeze_every)) if on]
    if used:
        flags = ", ".join("--" + s.replace("_", "-") for s in used)
        verb, them = ("apply", "them") if len(used) > 1 else ("applies", "it")
        raise ConfigError(f"{flags} {verb} to pretrained models only; use --model pretrained:NAME "
                          f"(see `layerwise models`) or drop {them}.")
    return []
