"""Optimizers, learning-rate schedules (as pure functions of the step) and the LR range test."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ConfigError

DEFAULT_LR = {"sgd": 0.05, "adam": 3e-3, "adamw": 3e-3, "rmsprop": 1e-3}


def groups_of(model: torch.nn.Module) -> list[list[torch.nn.Parameter]]:
    """The parameters of each layer group, input first, head last (each parameter once)."""
    seen: set[int] = set()
    out = []
    for modules in model.layer_groups():
        params = []
        for m in modules:
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        out.append(params)
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:  # anything a model forgot to list trains with the lowest group
        out[0] = rest + out[0]
    return out


def head_only(cfg: Any) -> bool:
    return bool(getattr(cfg, "freeze", False)) and not getattr(cfg, "unfreeze_every", None)


def param_groups(model: torch.nn.Module, cfg: Any, lr: float | None = None) -> tuple[list[dict], float]:
    """Optimizer groups with a learning rate per layer group (and no weight decay on biases and norms).

    The peak learning rate of the head is `lr`, else cfg.lr, else the model's fine-tuning default (or the
    optimizer's default when only the head trains). Returns (groups, head learning rate).
    """
    lr = lr or cfg.lr or (DEFAULT_LR[cfg.optimizer] if head_only(cfg) else getattr(model, "finetune_lr", None)
                          or DEFAULT_LR[cfg.optimizer])
    decay = getattr(cfg, "lr_decay", 1.0) or 1.0
    groups = []
    layers = groups_of(model)
    for depth, params in enumerate(reversed(layers)):  # depth 0 is the head
        group_lr = lr * decay ** depth
        for wd, chosen in ((cfg.weight_decay, [p for p in params if p.ndim >= 2]),
                           (0.0, [p for p in params if p.ndim < 2])):
            if chosen:
                groups.append({"params": chosen, "lr": group_lr, "weight_decay": wd, "layer_group": depth})
    return groups, lr


def make_optimizer(model: torch.nn.Module, cfg: Any, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimizer named in the config; weight decay is not applied to biases and norm layers."""
    asked = lr
    lr = lr or cfg.lr or DEFAULT_LR[cfg.optimizer]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]] if cfg.weight_decay else [{"params": decay + no_decay}]
    groups = [g for g in groups if g["params"]]
    if hasattr(model, "layer_groups"):  # pretrained backbones: a learning rate per layer group (fit/transfer.py)
        groups, lr = param_groups(model, cfg, asked)
    if not groups:
        raise ConfigError("the model has no trainable parameters; unfreeze some layers.")
    fast = {"foreach": True}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               **fast)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, **fast)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **fast)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=cfg.momentum, **fast)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; valid: {', '.join(DEFAULT_LR)}.")


def lr_factor(step: int, total: int, cfg: Any, steps_per_epoch: int) -> float:
    """Multiplier of the peak learning rate at `step` (0-based) of `total` steps."""
    warm = int(cfg.warmup * total)
    if cfg.schedule == "onecycle":
        warm = warm or int(0.25 * total)
        if step < warm:  # cosine rise from peak/25 to peak, as in Smith & Topin's one-cycle
            return 1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi * step / warm)) / 2
        t = (step - warm) / max(1, total - warm)
        return 1e-4 + (1 - 1e-4) * (1 + math.cos(math.pi * t)) / 2
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "cosine":
        t = (step - warm) / max(1, total - warm)
        return (1 + math.cos(math.pi * t)) / 2
    if cfg.schedule == "step":
        return cfg.step_gamma ** ((step // steps_per_epoch) // cfg.step_every)
    return 1.0


def suggest_lr(lrs: list[float], losses: list[float]) -> float:
    """The learning rate where the smoothed loss falls fastest, a tenth of the way before its minimum."""
    import numpy as np

    loss = np.asarray(losses, dtype=np.float64)
    smooth = np.copy(loss)
    for i in range(1, len(loss)):
        smooth[i] = 0.8 * smooth[i - 1] + 0.2 * loss[i]
    stop = int(np.argmin(smooth)) + 1
    if stop < 3:
        return float(lrs[max(0, stop - 1)] / 10)
    grad = np.gradient(smooth[:stop], np.log(np.asarray(lrs[:stop])))
    return float(lrs[int(np.argmin(grad))])
