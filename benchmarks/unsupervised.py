"""MNIST autoencoder benchmarks: embeddings + k-means (NMI, ARI) and one-class anomaly detection (AUROC).

    python benchmarks/unsupervised.py --part cluster --model conv_autoencoder --seeds 0,1  # AE (latent 16) + k-means
    python benchmarks/unsupervised.py --part oneclass  # 10 runs: train on one digit, score the whole test set

Fixed seeds; prints a table. Needs mnist.npz: ../shared/data/mnist.npz, $LAYERWISE_MNIST, or the cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist.npz"


def mnist_path() -> str:
    if os.environ.get("LAYERWISE_MNIST"):
        return os.environ["LAYERWISE_MNIST"]
    return str(SHARED.resolve()) if SHARED.is_file() else "mnist"


def bench_cluster(args, root: Path) -> None:
    """For each seed: train the autoencoder, then k-means (k = 10) on the test codes, whitened (the default),
    raw, and (with --tsne) on a t-SNE map of the codes."""
    import layerwise as lw

    data = mnist_path()
    epochs = args.epochs or 15
    print(f"MNIST {args.model} (latent 16, {epochs} epochs) + k-means, k = 10, on the 10,000 test images")
    print(f"{'seed':>4} {'k-means on':>18} {'NMI':>7} {'ARI':>7} {'seconds':>8}  (training: test mse, seconds)")
    for seed in args.seeds:
        t = time.perf_counter()
        run = lw.train(data, task="reconstruct", model=args.model, latent=16, epochs=epochs, seed=seed,
                       quiet=True, progress=False, tensorboard=False, threads=args.threads,
                       out=root / f"cluster{seed}", **({"channels": args.channels} if args.channels else {}))
        train = f"({run.info['test_metrics']['mse']:.4f}, {time.perf_counter() - t:.0f} s)"
        ways = [("whitened codes", {}), ("raw codes", {"whiten": False})]
        if args.tsne:
            ways.append(("t-SNE map", {"manifold": "tsne"}))
        for name, kw in ways:
            t = time.perf_counter()
            r = run.cluster(data, k=10, **kw)
            print(f"{seed:>4} {name:>18} {r['nmi']:>7.4f} {r['ari']:>7.4f} {time.perf_counter() - t:>8.1f}  {train}",
                  flush=True)


def bench_oneclass(args, root: Path) -> None:
    import layerwise as lw

    data = mnist_path()
    rows, epochs = [], args.epochs or 15
    for d in args.digits:
        t = time.perf_counter()
        run = lw.train(data, task="anomaly", normal_class=d, model=args.model, latent=args.latent,
                       epochs=epochs, seed=0, quiet=True, progress=False, tensorboard=False,
                       threads=args.threads, out=root / f"digit{d}")
        m = run.info["test_metrics"]
        rows.append((d, m["auroc"], m["average_precision"], m["tpr"], m["fpr"], time.perf_counter() - t))
        print(f"digit {d}: AUROC {m['auroc']:.4f} ({rows[-1][-1]:.0f} s)", file=sys.stderr, flush=True)
    print(f"\nMNIST one-class ({args.model}, latent {args.latent}, {epochs} epochs): train on one digit, "
          "score all 10,000 test images")
    print(f"{'digit':>5} {'AUROC':>7} {'AP':>7} {'TPR@thr':>8} {'FPR@thr':>8} {'seconds':>8}")
    for d, auroc, ap, tpr, fpr, s in rows:
        print(f"{d:>5} {auroc:>7.4f} {ap:>7.4f} {tpr:>8.3f} {fpr:>8.3f} {s:>8.0f}")
    print(f"{'mean':>5} {np.mean([r[1] for r in rows]):>7.4f} {np.mean([r[2] for r in rows]):>7.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("cluster", "oneclass", "all"), default="all")
    p.add_argument("--model", default=None, help="autoencoder (default), conv_autoencoder or vae")
    p.add_argument("--channels", default=None, help="conv channels, e.g. 32,64,128 (default: the model's)")
    p.add_argument("--epochs", type=int, default=None, help="default: 15")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0],
                   help="cluster: training seeds, e.g. 0,1,2")
    p.add_argument("--latent", type=int, default=16, help="one-class code size (cluster: always 16)")
    p.add_argument("--digits", type=lambda s: [int(x) for x in s.split(",")], default=list(range(10)))
    p.add_argument("--tsne", action=argparse.BooleanOptionalAction, default=True,
                   help="also k-means on a t-SNE map of the embeddings")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    args.model = args.model or "autoencoder"
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("cluster", "all"):
            bench_cluster(args, Path(tmp))
        if args.part in ("oneclass", "all"):
            bench_oneclass(args, Path(tmp))


if __name__ == "__main__":
    main()
