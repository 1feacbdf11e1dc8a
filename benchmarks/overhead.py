"""Loop overhead: lw.train vs a hand-written PyTorch loop, same model, data, batches and epochs, interleaved.

    python benchmarks/overhead.py --data ../shared/data/mnist.npz --limit 12800 --epochs 1 --repeats 5 [--precision bf16]

Prints a markdown table of training seconds (median of the repeats; layerwise: the epochs' wall time as the loop
records it, callbacks included) and the ratio layerwise / raw for an MLP and the default CNN. Both sides get the
same preprocessed tensors, model, optimizer (AdamW, foreach), constant learning rate and batch size.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import numpy as np
import torch

import layerwise as lw
from layerwise.models import build_model


def raw_loop(model, x, y, cfg, bf16: bool, channels_last: bool) -> None:
    """What a user writes by hand: shuffled index slices, AdamW, one-cycle-free constant lr."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, foreach=True)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt).train()
    n = len(y)
    for epoch in range(cfg["epochs"]):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        for i in range(0, n, cfg["batch_size"]):
            idx = perm[i:i + cfg["batch_size"]]
            xb, yb = x[idx].contiguous(memory_format=fmt) if x.ndim == 4 else x[idx], y[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="digits")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--limit", type=int, default=0, help="use the first N training samples only")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--models", default="mlp,cnn", help="comma list of models to compare")
    args = ap.parse_args()
    bf16 = args.precision == "bf16"
    if args.threads:
        torch.set_num_threads(args.threads)
    data = lw.load(args.data)
    data.test = None
    if args.limit:
        data.x, data.y = data.x[:args.limit], data.y[:args.limit]
    common = {"epochs": args.epochs, "batch_size": args.batch_size, "val_fraction": 0.0, "test_fraction": 0.0,
              "quiet": True, "tensorboard": False, "schedule": "constant", "precision": args.precision,
              "weight_decay": 0.0, "label_smoothing": 0.0, "progress": False}
    from layerwise.api import prepare_data, resolve_config

    cfg, _ = resolve_config(None, **{k: v for k, v in common.items() if k != "quiet"})
    prep = prepare_data(cfg, data, quiet=True)
    x, y = torch.as_tensor(prep.train.inputs[0]), torch.as_tensor(prep.train.y)
    rows = []
    for name in args.models.split(","):
        times = {"layerwise": [], "raw": []}
        warm = build_model(name, prep.pre.spec(), prep.task.out_dim, cfg)  # untimed: thread pools, kernels
        raw_loop(warm, x[:1024], y[:1024], {"epochs": 1, "batch_size": args.batch_size}, bf16, bf16 and name == "cnn")
        for r in range(args.repeats):
            for side in ("layerwise", "raw") if r % 2 == 0 else ("raw", "layerwise"):
                torch.manual_seed(0)
                t0 = time.perf_counter()
                if side == "layerwise":
                    run = lw.train(data, model=name, out=f"/tmp/lw-bench-{name}-{r}-{time.time_ns()}", **common)
                    t = sum(h["seconds"] for h in run.history)
                else:
                    model = build_model(name, prep.pre.spec(), prep.task.out_dim, cfg)
                    t0 = time.perf_counter()
                    raw_loop(model, x, y, {"epochs": args.epochs, "batch_size": args.batch_size}, bf16,
                             bf16 and name == "cnn")
                    t = time.perf_counter() - t0
                times[side].append(t)
        lw_t, raw_t = np.median(times["layerwise"]), np.median(times["raw"])
        rows.append((name, lw_t, raw_t, lw_t / raw_t))
    print(f"{len(y)} samples, batch {args.batch_size}, {args.epochs} epoch(s), median of {args.repeats}, "
          f"torch threads {torch.get_num_threads()}")
    print("| model | precision | layerwise s | raw s | ratio |\n|---|---|---|---|---|")
    for name, a, b, ratio in rows:
        print(f"| {name} | {args.precision} | {a:.2f} | {b:.2f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
