"""Federated averaging on MNIST: test accuracy of the global model after each round, IID and non-IID.

    python benchmarks/federated.py [--data ../shared/data/mnist.npz] [--clients 10] [--rounds 20]
                                   [--non-iid 2] [--model mlp] [--local-epochs 1] [--threads 1]

Two runs of `layerwise.federated.federated` with the same settings: the training split dealt out IID to
--clients clients, and the pathological non-IID split of McMahan et al. (2017), --non-iid classes per client.
The validation and test splits stay at the server; the global model after rounds 1, 2, 5, 10, 15 and 20 (and
the last) is evaluated on the test split. Prints a markdown table of test accuracy per round count, and the
seconds per round. The target: at least 0.97 IID within 20 rounds. Skips when MNIST is absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from layerwise.federated import federated

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist.npz"


class Snapshots:
    """The global weights after the rounds in `at` (evaluated on the test split after training)."""

    def __init__(self, at: set[int]):
        self.at, self.states = at, {}

    def on_round_end(self, fed) -> None:
        if fed.round in self.at:
            self.states[fed.round] = {k: v.detach().clone() for k, v in fed.model.state_dict().items()}


def accuracy_per_round(data: Path, out: Path, at: set[int], **settings) -> tuple[dict[int, float], float]:
    snaps = Snapshots(at)
    start = time.perf_counter()
    run = federated(str(data), out=out, callbacks=[snaps], quiet=True, tensorboard=False, **settings)
    seconds = (time.perf_counter() - start) / settings["rounds"]
    accuracy = {}
    for r, state in sorted(snaps.states.items()):
        run.model.load_state_dict(state)
        accuracy[r] = run.evaluate()["accuracy"]
    return accuracy, seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--non-iid", type=int, default=2)
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--model", default="mlp")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if not args.data.is_file():
        print(f"skipped: {args.data} is absent")
        return 0
    torch.set_num_threads(args.threads)
    at = {r for r in (1, 2, 5, 10, 15, 20) if r <= args.rounds} | {args.rounds}
    common = {"clients": args.clients, "rounds": args.rounds, "local_epochs": args.local_epochs,
              "model": args.model, "threads": args.threads, "seed": args.seed}
    with tempfile.TemporaryDirectory() as tmp:
        iid, iid_s = accuracy_per_round(args.data, Path(tmp) / "iid", at, **common)
        non, non_s = accuracy_per_round(args.data, Path(tmp) / "non-iid", at, non_iid=args.non_iid, **common)
    print(f"MNIST, {args.clients} clients, {args.local_epochs} local epoch(s) per round, model {args.model}, "
          f"seed {args.seed}, {args.threads} CPU threads\n")
    print(f"| rounds | IID test accuracy | non-IID ({args.non_iid} classes/client) test accuracy |")
    print("|---:|---:|---:|")
    for r in sorted(at):
        print(f"| {r} | {iid[r]:.4f} | {non[r]:.4f} |")
    print(f"| s/round | {iid_s:.1f} | {non_s:.1f} |")
    first = min((r for r in sorted(at) if iid[r] >= 0.97), default=None)
    print(f"\nIID target 0.97: {'reached by round ' + str(first) if first else 'not reached'} "
          f"(final {iid[args.rounds]:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
