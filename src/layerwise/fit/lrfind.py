"""Learning-rate range test (Smith 2017): raise the lr exponentially over a few hundred steps, watch the loss."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .loop import Callback, Loop


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


def range_test(model: Any, task: Any, cfg: Any, train: tuple, start: float = 1e-6, end: float = 10.0,
               steps: int = 200, bf16: bool = False, channels_last: bool = False,
               plot: str | Path | None = None) -> dict:
    """Train `model` on `train` (inputs, y) with the learning rate raised from `start` to `end` over `steps`
    steps, stopping when the loss explodes; returns {"suggested_lr", "lrs", "losses"} and saves a plot."""
    from .optim import suggest_lr

    per_epoch = max(1, len(train[1]) // min(cfg.batch_size, len(train[1])))
    cfg = cfg.model_copy(update={"epochs": math.ceil(steps / per_epoch), "schedule": "constant"})
    sweep = _Sweep(start, end, steps)
    Loop(model, task, cfg, train, None, [sweep], bf16=bf16, channels_last=channels_last).fit()
    lrs = sweep.lrs[:len(sweep.losses)]
    suggestion = suggest_lr(lrs, sweep.losses)
    if plot:
        _plot(lrs, sweep.losses, suggestion, Path(plot))
    return {"suggested_lr": suggestion, "lrs": lrs, "losses": sweep.losses}


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
