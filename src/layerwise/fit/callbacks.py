"""The callbacks every run uses: progress bar, metrics log, TensorBoard, checkpoints, early stopping, augmentation."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .loop import Callback, Loop
from .state import save_state


class ProgressBar(Callback):
    """Progress per epoch: a tqdm bar (loss, the last validation metric, samples/s) in an interactive terminal;
    elsewhere (a pipe, a log file, CI) one plain line per epoch, with no carriage returns:
    ``epoch 3/10  loss 0.1234  val_loss 0.1000  val_accuracy 0.9700  12.3 s``.

    `bar`: None (default) draws the bar only when stderr is a terminal; False always prints the plain lines
    (``--no-progress``); True always draws the bar.
    """

    def __init__(self, metric: str, bar: bool | None = None):
        self.metric, self.want_bar, self.bar = metric, bar, None

    def on_fit_start(self, loop: Loop) -> None:
        self.use_bar = self.want_bar if self.want_bar is not None else _interactive(sys.stderr)

    def on_epoch_start(self, loop: Loop) -> None:
        if not getattr(self, "use_bar", False):
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(loop.train_y), unit="sample", unit_scale=True, leave=True, file=sys.stderr,
                        desc=f"epoch {loop.epoch + 1}/{loop.cfg.epochs}", dynamic_ncols=True,
                        initial=min(len(loop.train_y), loop.batch_idx * loop.batch_size))
        self.last = 0.0

    def on_batch_end(self, loop: Loop) -> None:
        if self.bar is None:
            return
        self.bar.update(len(loop.y) * getattr(loop, "world_size", 1))  # every rank's part of the batch
        now = time.perf_counter()
        if now - self.last > 0.5:
            self.last = now
            self.bar.set_postfix_str(f"loss {float(loop.loss_sum) / loop.loss_count:.4f}", refresh=False)

    def on_epoch_end(self, loop: Loop) -> None:
        h = loop.history[-1]
        parts = [f"loss {h['train_loss']:.4f}"]
        if f"val_{self.metric}" in h:
            parts += [f"val_loss {h['val_loss']:.4f}", f"val_{self.metric} {h[f'val_{self.metric}']:.4f}"]
        if self.bar is not None:
            self.bar.set_postfix_str(", ".join(parts), refresh=True)
            self.bar.close()
            self.bar = None
            return
        sec = h["seconds"]
        print("  ".join([f"epoch {h['epoch']}/{loop.cfg.epochs}", *parts, f"{sec:.{1 if sec >= 1 else 2}f} s"]),
              file=sys.stderr, flush=True)


def _interactive(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class MetricsLog(Callback):
    """Writes the history, one JSON line per epoch, to metrics.jsonl (rewritten whole, so resumes stay clean)."""

    def __init__(self, path: Path):
        self.path = path

    def on_epoch_end(self, loop: Loop) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(h) + "\n" for h in loop.history))
        tmp.replace(self.path)


class TensorBoard(Callback):
    """Loss every 20 steps; learning rate and validation metrics every epoch."""

    def __init__(self, logdir: Path, every: int = 20):
        self.logdir, self.every, self.writer = logdir, every, None

    def on_fit_start(self, loop: Loop) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.logdir), purge_step=loop.step if loop.step else None)

    def on_batch_end(self, loop: Loop) -> None:
        if loop.step % self.every == 0:
            self.writer.add_scalar("train/loss", float(loop.loss.detach()), loop.step)
            self.writer.add_scalar("train/lr", loop.optimizer.param_groups[0]["lr"], loop.step)

    def on_epoch_end(self, loop: Loop) -> None:
        for k, v in loop.history[-1].items():
            if k.startswith("val_") and isinstance(v, float) and math.isfinite(v):
                self.writer.add_scalar(f"val/{k[4:]}", v, loop.epoch)
        self.writer.add_scalar("epoch/train_loss", loop.history[-1]["train_loss"], loop.epoch)
        self.writer.flush()

    def on_fit_end(self, loop: Loop) -> None:
        self.writer.close()


class Checkpoint(Callback):
    """Saves the whole training state atomically at each epoch end and every `minutes` within an epoch."""

    def __init__(self, path: Path, minutes: float = 5.0):
        self.path, self.seconds = path, minutes * 60

    def on_fit_start(self, loop: Loop) -> None:
        self.last = time.monotonic()

    def on_batch_end(self, loop: Loop) -> None:
        if time.monotonic() - self.last > self.seconds and loop.batch_idx < loop.steps_per_epoch:
            self.save(loop)

    def on_epoch_end(self, loop: Loop) -> None:
        self.save(loop)

    def save(self, loop: Loop) -> None:
        if getattr(loop, "rank", 0) == 0:  # under torchrun, rank 0 writes for all (fit/distributed.py)
            save_state(loop.state_dict(), self.path)
        self.last = time.monotonic()


class EarlyStopping(Callback):
    """Stops when the monitored validation metric has not improved for `patience` epochs; restores the best weights."""

    def __init__(self, metric: str, mode: str, patience: int):
        self.metric, self.mode, self.patience = metric, mode, patience
        self.best: float | None = None
        self.best_epoch, self.best_weights = 0, None

    def on_validation_end(self, loop: Loop) -> None:
        value = loop.val_metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch = value, loop.epoch + 1
            self.best_weights = {k: v.detach().clone() for k, v in loop.model.state_dict().items()}
        elif loop.epoch + 1 - self.best_epoch >= self.patience:
            loop.stop = True
            print(f"early stopping: val_{self.metric} has not improved for {self.patience} epochs "
                  f"(best {self.best:.4f} at epoch {self.best_epoch})", file=sys.stderr)

    def on_fit_end(self, loop: Loop) -> None:
        if self.best_weights is not None:
            loop.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.best_weights = state["best"], state["best_epoch"], state["best_weights"]


class Augment(Callback):
    """Augmentation policies on each training batch (data/policies.py: shift, flip, randaugment, cutout,
    mixup, cutmix, jitter, scale), drawn from a generator seeded by the run seed and epoch, so that a
    resumed run sees the same batches. `Augment(flip=True)` is the classic ±2 px shift + flip."""

    def __init__(self, policies: Sequence[str] | None = None, *, flip: bool = False, n_classes: int | None = None):
        self.policies = list(policies) if policies is not None else ["shift"] + (["flip"] if flip else [])
        self.n_classes = n_classes
        self.generator = torch.Generator()

    @classmethod
    def from_config(cls, cfg, spec: dict, task) -> Augment:
        """The callback for `cfg.augment` on data described by `spec`; ConfigError for policies that do not fit."""
        from ..data.policies import resolve_policies

        policies = resolve_policies(cfg.augment, spec["kind"], spec.get("shape"), task.name,
                                    "mix" in task.supports)
        return cls(policies, n_classes=len(task.classes) if task.classes is not None else None)

    def on_epoch_start(self, loop: Loop) -> None:
        if loop.batch_idx == 0:
            self.generator.manual_seed(loop.cfg.seed * 7919 + loop.epoch + 104_729 * getattr(loop, "rank", 0))

    def on_batch_start(self, loop: Loop) -> None:
        from ..data.policies import augment_batch

        inputs, loop.y = augment_batch(self.policies, loop.inputs, loop.y, self.generator, self.n_classes)
        loop.inputs = loop.batch_inputs(inputs)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
