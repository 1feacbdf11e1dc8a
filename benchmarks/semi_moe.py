"""Semi-supervised MNIST (FixMatch, 10 labels per class) beside the labelled-only baseline, and a
mixture-of-experts MLP beside the dense MLP on Adult (accuracy and every expert's share of tokens).

    python benchmarks/semi_moe.py --threads 1                    # both parts
    python benchmarks/semi_moe.py --part moe --moe-epochs 5      # one part

Data: ../shared/data (mnist.npz, adult/). Fixed seeds; prints a table. Each configuration is one run of
`layerwise.train`, the same as the command line:
    layerwise train mnist --labels-per-class 10 --semi-supervised --batch-size 64 --unlabelled-ratio 3 --epochs 4
    layerwise train adult/train.csv --target income --test adult/test.csv --model mlp --moe 8 --moe-top-k 2

Measured (1 thread; the semi-supervised part on a quiet 2-core machine, the MoE part under heavy load, so
its seconds are only rough):
    FixMatch, 100 labels + 54k unlabelled (mu=3, 4 epochs)     test acc 0.9749   193 s  1128 steps
    FixMatch, the same with --semi-epochs 2                     test acc 0.9665   100 s   564 steps
    labelled only, 100 labels (150 epochs, shift augmentation)  test acc 0.9015   264 s   300 steps
    Adult, dense MLP 256-128 (5 epochs)                         test acc 0.8560    88 s  51,701 parameters
    Adult, MoE MLP, 8 experts, top-2 (5 epochs)                 test acc 0.8571   336 s  1,603,957 parameters;
        expert share of tokens on the test set: min 0.105, max 0.162
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import layerwise as lw

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def expert_shares(run) -> list[float]:
    """Share of routed tokens per expert on the run's test split, for every MoE layer (flattened)."""
    from layerwise.models.moe import MoE

    inputs, _ = run._test
    layers = [m for m in run.model.modules() if isinstance(m, MoE)]
    counts = [torch.zeros(m.n_experts) for m in layers]
    run.model.eval()
    with torch.no_grad():
        for i in range(0, len(inputs[0]), 1024):
            run.model(*(torch.as_tensor(x[i:i + 1024]) for x in inputs))
            for c, m in zip(counts, layers):
                c += m.last_load * min(1024, len(inputs[0]) - i)
    return [float(v) for c in counts for v in c / c.sum()]


def semi(args, out: Path) -> list[tuple]:
    common = {"labels_per_class": 10, "batch_size": 64, "seed": args.seed, "threads": args.threads, "quiet": True,
              "tensorboard": False, "precision": args.precision}
    rows = []
    t = time.perf_counter()
    fm = lw.train(DATA / "mnist.npz", semi_supervised=True, unlabelled_ratio=args.ratio, epochs=args.semi_epochs,
                  out=out / "fixmatch", **common)
    steps = fm.info["epochs_done"] * _steps(args.ratio)
    rows.append((f"FixMatch, 100 labels + 54k unlabelled (mu={args.ratio}, {args.semi_epochs} epochs)",
                 fm.info["test_metrics"]["accuracy"], time.perf_counter() - t,
                 f"{steps} steps; unlabelled used in the last epoch {fm.history[-1]['unlabelled_used']:.2f}"))
    t = time.perf_counter()
    base = lw.train(DATA / "mnist.npz", augment="default", epochs=args.base_epochs, out=out / "labelled", **common)
    rows.append((f"labelled only, 100 labels ({args.base_epochs} epochs, shift augmentation)",
                 base.info["test_metrics"]["accuracy"], time.perf_counter() - t, f"{2 * args.base_epochs} steps"))
    return rows


def _steps(ratio: int) -> int:
    """Steps per FixMatch epoch: the 100 labelled samples repeated to pair with the 54,000 unlabelled, batch 64."""
    n = 100 * max(1, -(-54000 // (ratio * 100)))
    return n // 64 + (1 if n % 64 > 1 else 0)


def moe(args, out: Path) -> list[tuple]:
    adult = {"target": "income", "test": str(DATA / "adult" / "test.csv"), "model": "mlp",
             "epochs": args.moe_epochs, "seed": args.seed, "threads": args.threads, "quiet": True, "tensorboard": False}
    rows = []
    for name, extra in (("dense MLP 256-128", {}), ("MoE MLP, 8 experts, top-2", {"moe": 8, "moe_top_k": 2})):
        t = time.perf_counter()
        run = lw.train(DATA / "adult" / "train.csv", out=out / name.split()[0], **adult, **extra)
        seconds = time.perf_counter() - t
        note = f"{run.info['parameters']:,} parameters"
        if extra:
            shares = expert_shares(run)
            note += f"; expert share of tokens (test) min {min(shares):.3f}, max {max(shares):.3f}"
        rows.append((f"Adult, {name} ({args.moe_epochs} epochs)", run.info["test_metrics"]["accuracy"], seconds,
                     note))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("all", "semi", "moe"), default="all")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--semi-epochs", type=int, default=4)
    p.add_argument("--ratio", type=int, default=3, help="unlabelled samples per labelled one in a batch (mu)")
    p.add_argument("--base-epochs", type=int, default=150)
    p.add_argument("--moe-epochs", type=int, default=5)
    p.add_argument("--precision", default="auto")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("all", "moe"):
            rows += moe(args, Path(tmp))
        if args.part in ("all", "semi"):
            rows += semi(args, Path(tmp))
    print(f"\n{'configuration':<72} {'test acc':>8} {'seconds':>8}  notes")
    for name, acc, sec, note in rows:
        print(f"{name:<72} {acc:>8.4f} {sec:>8.0f}  {note}")


if __name__ == "__main__":
    main()
