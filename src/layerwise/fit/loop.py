"""The one training loop. Everything around it (progress, logging, checkpoints, early stopping) is a callback."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import torch

from .optim import lr_factor, make_optimizer

EVENTS = ("fit_start", "epoch_start", "batch_start", "after_loss", "after_backward", "after_step", "batch_end",
          "validation_end", "epoch_end", "fit_end")


class Callback:
    """Override on_<event>(loop) for any of EVENTS; set loop.stop = True to end training (after the current batch).

    Callbacks run in the order given, except that a higher `order` runs later (e.g. a callback that must see
    the weights early stopping restores at fit end).
    """

    order = 0

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Loop:
    """Trains `model` on in-memory tensors: shuffled index slices, forward, loss, backward, step, schedule.

    `step_fn(loop)` replaces the default forward/backward/step (a task's `step`, FixMatch's); it sets loop.loss
    and calls `loop.backward_and_step()` for each update it makes.
    """

    def __init__(self, model: torch.nn.Module, task: Any, cfg: Any, train: tuple, val: tuple | None = None,
                 callbacks: Sequence[Callback] = (), device: str = "cpu", bf16: bool = False,
                 channels_last: bool = False, step_fn: Callable[[Loop], None] | None = None):
        self.model, self.task, self.cfg, self.device = model, task, cfg, torch.device(device)
        self.bf16, self.channels_last = bf16, channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(self.device, memory_format=self.memory_format)
        self.train_inputs, self.train_y = self._to_device(train)
        self.val = self._to_device(val) if val is not None else None
        self.optimizer = task.optimizer(model, cfg) or make_optimizer(model, cfg)  # a task may own it
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.callbacks = sorted(callbacks, key=lambda c: getattr(c, "order", 0))  # stable: ties keep their order
        self._hooks = {e: [getattr(c, f"on_{e}") for c in self.callbacks if hasattr(c, f"on_{e}")] for e in EVENTS}
        self.step_fn = step_fn or default_step
        # one process unless fit/distributed.py's Group.attach makes this loop one rank of several: then `net`
        # is the DistributedDataParallel around `model` that training steps call, and each rank takes its part
        # of every batch (weighted by grad_weight when the parts differ in size)
        self.rank, self.world_size, self.dist, self.net, self.grad_weight = 0, 1, None, model, 1.0
        self.batch_size = min(cfg.batch_size, len(self.train_y))
        self.count_steps()
        self.epoch = self.step = self.batch_idx = 0
        self.history: list[dict] = []
        self.val_metrics: dict[str, float] = {}
        self.stop = False
        self.interrupted = False  # Ctrl-C / SIGTERM: stop after this batch, the epoch unfinished (api.train)
        self.inputs: tuple = ()
        self.y = self.out = self.loss = None
        self.stats: dict[str, float] = {}  # numbers a step reports for the callbacks (a GAN's d_loss, ...)

    def count_steps(self) -> None:
        """Steps per epoch and in all; a last partial batch with fewer than 2 rows per process is dropped."""
        n, bs = len(self.train_y), self.batch_size
        self.steps_per_epoch = n // bs + (1 if n % bs >= 2 * self.world_size else 0)
        self.total_steps = self.cfg.epochs * self.steps_per_epoch

    @classmethod
    def for_inference(cls, model: torch.nn.Module, task: Any, bf16: bool = False, channels_last: bool = False):
        """A loop that only computes outputs (Run.predict, evaluate): no data, no optimizer."""
        loop = cls.__new__(cls)
        loop.model, loop.task, loop.device = model, task, next(model.parameters()).device
        loop.bf16, loop.channels_last = bf16, channels_last
        return loop

    def backward_and_step(self) -> None:
        """after_loss, backward, after_backward, gradient clipping, optimizer step (see backward_and_step)."""
        backward_and_step(self)

    def _to_device(self, split: tuple) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        inputs, y = split
        return tuple(torch.as_tensor(x).to(self.device) for x in inputs), torch.as_tensor(y).to(self.device)

    def fire(self, event: str) -> None:
        for hook in self._hooks[event]:
            hook(self)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def batch_inputs(self, inputs: tuple) -> tuple:
        if self.channels_last:
            return tuple(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x for x in inputs)
        return inputs

    def fit(self) -> list[dict]:
        """Train from the current position (epoch, batch) to cfg.epochs; returns the metrics history."""
        self.fire("fit_start")
        n, bs = len(self.train_y), self.batch_size
        while self.epoch < self.cfg.epochs and not self.stop:
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.epoch)
            perm = torch.randperm(n, generator=g).to(self.device)
            self.model.train()
            self.epoch_start, self.loss_sum, self.loss_count = time.perf_counter(), 0.0, 0
            self.fire("epoch_start")
            while self.batch_idx < self.steps_per_epoch and not self.stop and not self.interrupted:
                idx = perm[self.batch_idx * bs:(self.batch_idx + 1) * bs]
                if self.dist is not None:  # this rank's part of the global batch
                    idx = self.dist.shard(self, idx)
                self.inputs = self.batch_inputs(tuple(x[idx] for x in self.train_inputs))
                self.y = self.train_y[idx]
                f = lr_factor(self.step, self.total_steps, self.cfg, self.steps_per_epoch)
                for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                    group["lr"] = base * f
                self.fire("batch_start")
                self.step_fn(self)
                self.loss_sum += self.loss.detach()
                self.loss_count += 1
                self.step += 1
                self.batch_idx += 1
                self.fire("after_step")
                self.fire("batch_end")
            if self.interrupted:  # the caller saves a checkpoint at this batch; the epoch goes on at resume
                return self.history
            self.train_loss = float(self.loss_sum / max(1, self.loss_count))
            if self.dist is not None:  # the mean over the ranks; validation on rank 0, its metrics everywhere
                self.train_loss = self.dist.mean(self.train_loss)
            if self.val is not None:
                self.val_metrics = self.evaluate(self.val) if self.dist is None else \
                    self.dist.on_rank0(self.evaluate, self.val)
                self.fire("validation_end")
            self.history.append({"epoch": self.epoch + 1, "train_loss": self.train_loss,
                                 **{f"val_{k}": v for k, v in self.val_metrics.items()},
                                 "lr": self.optimizer.param_groups[0]["lr"],
                                 "seconds": time.perf_counter() - self.epoch_start})
            self.epoch += 1
            self.batch_idx = 0
            self.fire("epoch_end")
        self.fire("fit_end")
        return self.history

    @torch.no_grad()
    def outputs(self, inputs: tuple, batch_size: int = 1024) -> torch.Tensor:
        """Model outputs for all rows of `inputs`, in evaluation mode, as float32."""
        was_training = self.model.training
        self.model.eval()
        inputs = tuple(torch.as_tensor(x).to(self.device) for x in inputs)
        outs = []
        with self.autocast():
            for i in range(0, len(inputs[0]), batch_size):
                outs.append(self.model(*self.batch_inputs(tuple(x[i:i + batch_size] for x in inputs))).float())
        self.model.train(was_training)
        return torch.cat(outs) if outs else torch.empty(0)

    def evaluate(self, split: tuple) -> dict[str, float]:
        inputs, y = split if isinstance(split[1], torch.Tensor) else self._to_device(split)
        out = self.outputs(inputs)
        return {"loss": float(self.task.loss(out, y)), **self.task.metrics(out, y)}

    # checkpoint state: everything needed to continue exactly where training stopped
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": torch.get_rng_state(), "epoch": self.epoch, "step": self.step, "batch_idx": self.batch_idx,
                "history": self.history, "val_metrics": self.val_metrics,
                "callbacks": {type(c).__name__: c.state_dict() for c in self.callbacks}}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        self.epoch, self.step, self.batch_idx = state["epoch"], state["step"], state["batch_idx"]
        self.history, self.val_metrics = state["history"], state["val_metrics"]
        for c in self.callbacks:
            if type(c).__name__ in state["callbacks"]:
                c.load_state_dict(state["callbacks"][type(c).__name__])


def default_step(loop: Loop) -> None:
    """Forward, loss, backward, optional gradient clipping, optimizer step."""
    with loop.autocast():
        loop.out = loop.net(*loop.inputs)
        loop.loss = loop.task.loss(loop.out, loop.y)
    backward_and_step(loop)


def backward_and_step(loop: Loop) -> None:
    """The rest of every step once loop.loss is set: after_loss, backward, after_backward, clipping, update."""
    loop.fire("after_loss")
    weight = getattr(loop, "grad_weight", 1.0)  # a rank's share of the global batch (fit/distributed.py)
    (loop.loss if weight == 1.0 else loop.loss * weight).backward()
    loop.fire("after_backward")
    if loop.cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(loop.model.parameters(), loop.cfg.grad_clip)
    loop.optimizer.step()
    loop.optimizer.zero_grad(set_to_none=True)
