"""Mixture-of-experts training: the load-balancing loss added to the task loss, and expert utilisation logged."""

from __future__ import annotations

import torch

from ..models.moe import MoE, moe_aux_loss
from .loop import Callback, Loop


class MoEBalance(Callback):
    """Adds `weight` x the load-balancing loss of every MoE layer to the loss (after_loss), and logs each
    layer's share of routed tokens per expert, averaged over the epoch's training batches: to the metrics
    history as `experts.<layer>` lists and `experts_min` (the least used expert's share), and to TensorBoard."""

    def __init__(self, weight: float = 0.01):
        self.weight = weight
        self.load: dict[str, torch.Tensor] = {}
        self.batches = 0

    def layers(self, loop: Loop) -> list[tuple[str, MoE]]:
        return [(name, m) for name, m in loop.model.named_modules() if isinstance(m, MoE)]

    def on_epoch_start(self, loop: Loop) -> None:
        if loop.batch_idx == 0:
            self.load, self.batches = {}, 0

    def on_after_loss(self, loop: Loop) -> None:
        if self.weight:
            loop.loss = loop.loss + self.weight * moe_aux_loss(loop.model).to(loop.loss.dtype)

    def on_batch_end(self, loop: Loop) -> None:
        for name, m in self.layers(loop):
            if m.last_load is not None:
                self.load[name] = self.load.get(name, 0) + m.last_load.cpu()
        self.batches += 1

    def on_epoch_end(self, loop: Loop) -> None:
        if not self.load:
            return
        shares = {name: (v / max(1, self.batches)).tolist() for name, v in self.load.items()}
        h = loop.history[-1]
        h["experts_min"] = min(min(v) for v in shares.values())
        for name, v in shares.items():
            h[f"experts.{name}"] = [round(x, 4) for x in v]
        writer = next((c.writer for c in loop.callbacks if hasattr(getattr(c, "writer", None), "add_scalar")), None)
        if writer is not None:
            for name, v in shares.items():
                for i, x in enumerate(v):
                    writer.add_scalar(f"experts/{name}/{i}", x, loop.epoch)
            writer.add_scalar("experts/min_share", h["experts_min"], loop.epoch)

    def state_dict(self) -> dict:
        return {"load": dict(self.load), "batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.load, self.batches = dict(state["load"]), state["batches"]
