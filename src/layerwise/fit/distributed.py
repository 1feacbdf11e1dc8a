"""Training on several processes: under torchrun (one machine or many), or `layerwise train --workers N`,
which starts torchrun on this machine.

- Every process (rank) prepares the same data and builds the same model from the seed; DistributedDataParallel
  broadcasts rank 0's weights and averages the gradients, so the weights stay identical on every rank.
- `--batch-size` is the global batch: every rank computes the epoch's permutation from the seed, cuts it into
  the global batches of a single-process run, and takes its part (one of world_size near-equal, contiguous
  parts) of each. Averaged by DDP, the gradient is that of the whole global batch (a rank with a smaller part
  weights its loss by its share), so N processes take the steps one process would, with the same learning
  rate schedule; what differs is per-process batch norm statistics and dropout masks.
- Rank 0 validates and broadcasts the metrics (early stopping decides the same everywhere); only rank 0 writes
  the run folder (logs, progress, TensorBoard, checkpoints); all ranks read the checkpoint on --resume.
- All ranks stop at the same batch: the stop and interrupt flags are agreed after every batch.

Nothing here runs in a single process: Loop and api.train see `None` instead of a Group.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # torch is imported when a group starts, not for `--workers` or in a single process
    from .loop import Loop


def world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) outside it."""
    size = int(os.environ.get("WORLD_SIZE") or 1)
    if size <= 1:
        return 0, 0, 1
    return int(os.environ.get("RANK") or 0), int(os.environ.get("LOCAL_RANK") or 0), size


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class Group:
    """This process's place among the ranks of one training, and the few collectives the loop needs."""

    def __init__(self, rank: int, local_rank: int, size: int, device: str):
        self.rank, self.local_rank, self.size, self.device = rank, local_rank, size, device
        self.comm = device if device.startswith("cuda") else "cpu"  # where collective tensors live

    @classmethod
    def start(cls, device: str) -> Group | None:
        """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); None in a single process.
        `device` is the run's --device (auto, cpu, cuda, cuda:N): under torchrun cuda means this rank's GPU."""
        rank, local_rank, size = world()
        if size == 1:
            return None
        import torch
        import torch.distributed as dist

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda":
            device = f"cuda:{local_rank}"
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        if not dist.is_initialized():
            import atexit

            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
            atexit.register(dist.destroy_process_group)
        return cls(rank, local_rank, size, device)

    def check(self, cfg: Any, step: Any) -> None:
        """Refuse what does not split across processes (the same sentence on every rank)."""
        if step is not None:
            raise ConfigError("this training takes its own step (a GAN, or semi-supervised FixMatch), which runs "
                              "in one process only; train it without --workers / torchrun.")
        if cfg.batch_size < 2 * self.size:
            raise ConfigError(f"--batch-size {cfg.batch_size} is the global batch, split across {self.size} "
                              f"processes; give at least 2 rows per process: --batch-size {2 * self.size} or more.")

    def attach(self, loop: Loop) -> None:
        """Make `loop` one rank of the training: DDP around its model (after any checkpoint was loaded: DDP
        broadcasts rank 0's weights), its share of each batch, its own dropout stream."""
        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP

        loop.rank, loop.world_size, loop.dist = self.rank, self.size, self
        loop.count_steps()
        cfg = loop.cfg
        # experts that get no tokens, and frozen layer groups, leave parameters without gradients
        unused = bool(cfg.moe or cfg.freeze or cfg.unfreeze_every)
        ids = [loop.device.index] if loop.device.type == "cuda" else None
        loop.net = DDP(loop.model, device_ids=ids, find_unused_parameters=unused)
        if self.rank > 0:  # dropout masks differ between ranks (rank 0 keeps the checkpointed RNG stream)
            torch.manual_seed(cfg.seed * 1_000_003 + loop.step * 7919 + self.rank)

    def shard(self, loop: Loop, idx: Any) -> Any:
        """This rank's part of the global batch `idx`; sets loop.grad_weight so that DDP's average of the
        ranks' mean losses is the mean over the whole batch."""
        part = idx.tensor_split(self.size)[self.rank]
        loop.grad_weight = 1.0 if len(idx) % self.size == 0 else self.size * len(part) / len(idx)
        return part

    def mean(self, value: float) -> float:
        """The mean of a number over the ranks."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.comm)
        dist.all_reduce(t)
        return float(t) / self.size

    def on_rank0(self, fn: Any, *args: Any) -> Any:
        """fn(*args) computed on rank 0, the result sent to every rank (validation metrics)."""
        return self.broadcast(fn(*args) if self.rank == 0 else None)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (a run folder, metrics); also a barrier."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, device=None if self.comm == "cpu" else self.comm)
        return box[0]

    def callback(self) -> Agree:
        return Agree(self)


class Agree:
    """A loop callback: after every batch, all ranks take the union of their stop and interrupt flags (a signal
    that reached one rank, a callback that stops): they leave the epoch at the same batch, none waits in a
    collective."""

    order = 100  # after every callback that may set the flags

    def __init__(self, group: Group):
        self.group = group

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def on_batch_end(self, loop: Loop) -> None:
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(loop.stop), float(loop.interrupted)], device=self.group.comm)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        loop.stop, loop.interrupted = bool(t[0]), bool(t[1])


def launch(argv: list[str], workers: int, threads: int | None) -> int:
    """`layerwise train ... --workers N` on this machine: torchrun with N processes, each running the same
    command without --workers, with `threads` (default cores // N) torch threads each; torchrun's exit code."""
    import subprocess

    n_cores = cores()
    if workers > n_cores:
        raise ConfigError(f"--workers {workers} is more than the {n_cores} CPU cores of this machine; use at most "
                          f"{n_cores} (several machines: torchrun on each, see docs/distributed.md).")
    rest = strip_option(argv, "--workers")
    per = threads or max(1, n_cores // workers)
    if threads is None:
        rest += ["--threads", str(per)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(per))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(workers),
           "-m", "layerwise.cli", *rest]
    p = subprocess.Popen(cmd, env=env)
    while True:
        try:
            return p.wait()
        except KeyboardInterrupt:  # the workers got Ctrl-C too: they save a checkpoint and stop
            continue


def strip_option(argv: list[str], flag: str) -> list[str]:
    """argv without `flag VALUE` and `flag=VALUE`."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == flag:
            skip = True
        elif not a.startswith(flag + "="):
            out.append(a)
    return out
