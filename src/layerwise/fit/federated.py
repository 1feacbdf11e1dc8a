"""Federated averaging (FedAvg, McMahan et al. 2017) on the one training loop.

The training split is dealt out into client shards (`iid_shards`, `non_iid_shards`). Each round, the selected
clients start from the global weights and train `local_epochs` on their own shard with an ordinary `Loop`
(a fresh optimizer each, no callbacks); the server then averages every entry of the clients' state dicts,
parameters and buffers (batch-norm running statistics) alike, weighted by shard size, and evaluates the new
global model on the validation split, which stays at the server.

The learning-rate schedule runs over the whole federation: a client's step `s` of round `r` is step
`r * steps + s` of `rounds * steps`, so one-cycle warms up over the first rounds and anneals to the last.
Every random choice (client selection, a client's shuffling, dropout and augmentation) is seeded by
(seed, round, client), so a run resumed from a round's checkpoint ends with the same weights as one that
never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .loop import Loop


def _seed(*parts: int) -> int:
    """A 32-bit seed mixed from whole numbers (numpy's SeedSequence): independent streams per round and client."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def iid_shards(n: int, clients: int, seed: int) -> list[np.ndarray]:
    """A seeded random split of range(n) into `clients` disjoint shards of (nearly) equal size."""
    perm = np.random.default_rng(_seed(seed, 1)).permutation(n)
    return [np.sort(s) for s in np.array_split(perm, clients)]


def non_iid_shards(y: np.ndarray, clients: int, per_client: int, seed: int) -> list[np.ndarray]:
    """The pathological non-IID split of McMahan et al. (2017): the samples sorted by label are cut into
    `clients * per_client` chunks, each within one class (a class of many samples gives more chunks), and each
    client is dealt `per_client` chunks of different classes, so that it holds exactly `per_client` classes.

    The classes with the most chunks left are dealt first (ties broken at random), which always succeeds when
    `per_client` is at most the number of classes."""
    y = np.asarray(y)
    rng = np.random.default_rng(_seed(seed, 2))
    labels = np.unique(y)
    n_chunks = clients * per_client
    counts = np.array([(y == c).sum() for c in labels], dtype=np.int64)
    # chunks per class in proportion to its size (highest averages, at most one per client): with fewer
    # chunks than classes, the smallest classes get none
    share = np.zeros(len(labels), dtype=np.int64)
    for _ in range(min(n_chunks, clients * len(labels))):
        share[int(np.argmax(np.where(share < clients, counts / (share + 1), -1.0)))] += 1
    chunks: dict[int, list[np.ndarray]] = {}
    for i, c in enumerate(labels):
        idx = rng.permutation(np.flatnonzero(y == c))
        chunks[i] = [part for part in np.array_split(idx, share[i]) if len(part)] if share[i] else []
    shards = []
    for _ in range(clients):
        left = np.array([len(chunks[i]) for i in range(len(labels))])
        order = sorted(range(len(labels)), key=lambda i: (-left[i], rng.random()))
        picked = [i for i in order if left[i] > 0][:per_client]
        shards.append(np.sort(np.concatenate([chunks[i].pop() for i in picked])) if picked
                      else np.empty(0, dtype=np.int64))
    return shards


def clients_per_round(clients: int, fraction: float) -> int:
    """max(1, round(fraction * clients)): the clients that train in each round."""
    return max(1, round(fraction * clients))


def select_clients(clients: int, fraction: float, seed: int, round_: int) -> list[int]:
    """The clients that train in round `round_` (0-based), drawn with a seed of their own (the same selection
    after a resume)."""
    m = clients_per_round(clients, fraction)
    if m >= clients:
        return list(range(clients))
    return sorted(np.random.default_rng(_seed(seed, 3, round_)).choice(clients, m, replace=False).tolist())


class Average:
    """A running weighted mean of state dicts (float64 sums; integer buffers rounded back)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.dtypes: dict[str, torch.dtype] = {}
        self.total = 0.0

    def add(self, state: dict[str, torch.Tensor], weight: float) -> None:
        for k, v in state.items():
            v = v.detach()
            if k not in self.sums:
                self.sums[k] = torch.zeros(v.shape, dtype=torch.float64, device=v.device)
                self.dtypes[k] = v.dtype
            self.sums[k] += v.to(torch.float64) * weight
        self.total += weight

    def result(self) -> dict[str, torch.Tensor]:
        out = {}
        for k, s in self.sums.items():
            mean = s / self.total
            out[k] = (mean if self.dtypes[k].is_floating_point else mean.round()).to(self.dtypes[k])
        return out


class FedAvg:
    """Rounds of federated averaging of `model` over client shards of `train` (inputs, y).

    `shards` lists the training rows of each client; `val` (inputs, y) is evaluated after every round.
    `callbacks` are objects with `on_round_end(fed)` (a round's metrics are in fed.history[-1]); setting
    `fed.stop = True` ends the training after that round. `client_callbacks` go into every client's Loop
    (augmentation, say; never a checkpoint: the server saves the global state after the round).
    """

    def __init__(self, model: torch.nn.Module, task: Any, cfg: Any, train: tuple, shards: Sequence[np.ndarray],
                 val: tuple | None = None, callbacks: Sequence[Any] = (), device: str = "cpu", bf16: bool = False,
                 channels_last: bool = False, step_fn: Any = None, client_callbacks: Sequence[Any] = ()):
        self.model, self.task, self.cfg, self.device = model, task, cfg, torch.device(device)
        self.bf16, self.channels_last, self.step_fn = bf16, channels_last, step_fn
        self.model.to(self.device)
        inputs, y = train
        self.shards = [np.asarray(s, dtype=np.int64) for s in shards]
        # each client's data, on the device once (every round's Loop takes these tensors as they are)
        self.client_data = [(tuple(torch.as_tensor(np.asarray(x)[s]).to(self.device) for x in inputs),
                             torch.as_tensor(np.asarray(y)[s]).to(self.device)) for s in self.shards]
        self.val = val
        self.callbacks = list(callbacks)
        self.client_callbacks = list(client_callbacks)  # Loop callbacks of every client (augmentation, ...)
        self.round = 0
        self.history: list[dict] = []
        self.val_metrics: dict[str, float] = {}
        self.stop = False

    def client_config(self, round_: int, client: int) -> Any:
        return self.cfg.model_copy(update={"epochs": self.cfg.local_epochs,
                                           "seed": _seed(self.cfg.seed, 4, round_, client)})

    def train_client(self, round_: int, client: int, start: dict[str, torch.Tensor]) -> tuple[dict, float]:
        """Train one client from the global weights `start` for local_epochs; (its state dict, its mean loss)."""
        self.model.load_state_dict(start)
        cfg = self.client_config(round_, client)
        torch.manual_seed(cfg.seed)  # dropout, augmentation: the client's own stream
        loop = Loop(self.model, self.task, cfg, self.client_data[client], None, self.client_callbacks,
                    str(self.device), self.bf16, self.channels_last, step_fn=self.step_fn)
        per_round = loop.steps_per_epoch * cfg.local_epochs  # the schedule spans all rounds (see the module doc)
        loop.step, loop.total_steps = round_ * per_round, self.cfg.rounds * per_round
        loop.fit()
        loss = float(np.mean([h["train_loss"] for h in loop.history]))
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}, loss

    def run_round(self) -> dict:
        """One round: the selected clients train, the server averages and validates; returns its metrics."""
        start_time = time.perf_counter()
        r = self.round
        start = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        chosen = select_clients(len(self.shards), self.cfg.client_fraction, self.cfg.seed, r)
        avg, losses, sizes = Average(), [], []
        for k in chosen:
            state, loss = self.train_client(r, k, start)
            n = len(self.shards[k])
            avg.add(state, n)
            losses.append(loss)
            sizes.append(n)
        self.model.load_state_dict(avg.result())
        row = {"round": r + 1, "train_loss": float(np.average(losses, weights=sizes))}
        if self.val is not None:
            self.val_metrics = self.evaluate(self.val)
            row.update({f"val_{k}": v for k, v in self.val_metrics.items()})
        row.update(clients=len(chosen), samples=int(sum(sizes)), seconds=time.perf_counter() - start_time)
        self.history.append(row)
        self.round += 1
        return row

    def evaluate(self, split: tuple) -> dict[str, float]:
        """Metrics of the global model on (inputs, y)."""
        return Loop.for_inference(self.model, self.task, self.bf16, self.channels_last).evaluate(split)

    def fit(self) -> list[dict]:
        """Rounds from the current one to cfg.rounds; returns the history (one row per round)."""
        while self.round < self.cfg.rounds and not self.stop:
            self.run_round()
            for cb in self.callbacks:
                if hasattr(cb, "on_round_end"):
                    cb.on_round_end(self)
        return self.history

    # the global state after a round: everything a resume needs to go on exactly as before
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "round": self.round, "rng": torch.get_rng_state(),
                "history": self.history, "val_metrics": self.val_metrics}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.round, self.history, self.val_metrics = state["round"], state["history"], state["val_metrics"]
        torch.set_rng_state(state["rng"])


class RoundCheckpoint:
    """Saves the global state (weights, round, history, RNG) atomically after every round (fit/state.py)."""

    def __init__(self, path: Any):
        self.path = path

    def on_round_end(self, fed: FedAvg) -> None:
        from .state import save_state

        save_state(fed.state_dict(), self.path)


class RoundLog:
    """metrics.jsonl, one line per round, rewritten whole (a resumed run stays clean), as for epochs."""

    def __init__(self, path: Any):
        self.path = path

    def on_round_end(self, fed: FedAvg) -> None:
        from .callbacks import MetricsLog

        MetricsLog(self.path).on_epoch_end(fed)  # it writes `.history`, a federation's as well as a loop's
