"""Learning-rate range test (Smith 2017): raise the lr exponentially over a few hundred steps, watch the loss."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from .fit.loop import Callback, Loop


class _Sweep(Callback):
    def __init__(self, start: float, end: float, steps: int):
        self.start, self.end, self.steps = start, end, steps
        self.lrs: list[float] = []
        self.losses: list[float] = []

    def on_batch_start(self, loop: Loop) -> None:
        lr = self.start * (self.end / self.start) ** (loop.step / max(1, self.steps - 1))
        for g in loop.optimizer.param_groups:
            g["lr"] = lr
        self.lrs.append(lr)

    def on_batch_end(self, loop: Loop) -> None:
        loss = float(loop.loss.detach())
        self.losses.append(loss)
        best = min(self.losses)
        if not math.isfinite(loss) or loss > 4 * best or len(self.losses) >= self.steps:
            loop.stop = True


def lr_find(data: Any, plot: str | Path | None = "lr_find.png", start: float = 1e-6, end: float = 10.0,
            steps: int = 200, config: str | None = None, **settings: Any) -> dict:
    """Run the range test on a fresh model; returns {"suggested_lr", "lrs", "losses"} and saves a plot.

    Example: ``lw.lr_find("digits", model="mlp")["suggested_lr"]``.
    """
    import torch

    from .api import choose_precision, prepare_data, resolve_config
    from .fit.optim import suggest_lr
    from .models import build_model, default_model

    cfg, module = resolve_config(data, config, **settings)
    prepared = prepare_data(cfg, data if not isinstance(data, (str, Path)) else None, quiet=True)
    torch.manual_seed(cfg.seed)
    name = "custom" if module is not None else (default_model(prepared.pre.spec()) if cfg.model == "auto"
                                                 else cfg.model)
    model = module or build_model(name, prepared.pre.spec(), prepared.task.out_dim, cfg)
    bf16, channels_last, _ = choose_precision(cfg, name, "cpu", prepared.pre.spec()["kind"])
    per_epoch = max(1, len(prepared.train) // min(cfg.batch_size, len(prepared.train)))
    cfg = cfg.model_copy(update={"epochs": math.ceil(steps / per_epoch), "schedule": "constant"})
    sweep = _Sweep(start, end, steps)
    Loop(model, prepared.task, cfg, (prepared.train.inputs, prepared.train.y), None, [sweep],
         bf16=bf16, channels_last=channels_last).fit()
    suggestion = suggest_lr(sweep.lrs[:len(sweep.losses)], sweep.losses)
    if plot:
        _plot(sweep.lrs[:len(sweep.losses)], sweep.losses, suggestion, Path(plot))
    print(f"suggested learning rate: {suggestion:.2g} (use --lr {suggestion:.2g}); plot: {plot}", file=sys.stderr)
    return {"suggested_lr": suggestion, "lrs": sweep.lrs[:len(sweep.losses)], "losses": sweep.losses}


def _plot(lrs: list[float], losses: list[float], suggestion: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
