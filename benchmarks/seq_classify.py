"""Sequence classification on MNIST-1D (Greydanus 2020; 4,000 training and 1,000 test signals of 40 steps,
generated offline by the mnist1d package): the defaults (1-D CNN) against a GRU and an MLP, each with the
default settings otherwise. The paper reports CNN 94%, GRU 91%, MLP 68%, logistic regression 32%.

    python benchmarks/seq_classify.py [--threads 2] [--seeds 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import layerwise as lw


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", default="0")
    p.add_argument("--models", default="cnn,gru,mlp")
    args = p.parse_args()
    print(f"{'model':<8}{'seed':>5}{'epochs':>8}{'accuracy':>10}{'seconds':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for seed in map(int, args.seeds.split(",")):
                t = time.perf_counter()
                run = lw.train("mnist1d", model=model, seed=seed, threads=args.threads, out=Path(tmp) / f"{model}{seed}",
                               progress=False, tensorboard=False, quiet=True)
                print(f"{model:<8}{seed:>5}{run.info['epochs_done']:>8}{run.info['test_metrics']['accuracy']:>10.3f}"
                      f"{time.perf_counter() - t:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
