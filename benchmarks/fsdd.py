"""Free Spoken Digit Dataset (3,000 recordings, the usual split: takes 0-4 of each speaker and digit are the
test set): test accuracy of the default audio model (crnn on log-mel spectrograms), with and without
SpecAugment.

    LAYERWISE_FSDD=../shared/data/fsdd_recordings.tar.gz python benchmarks/fsdd.py [--threads 2] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import layerwise as lw


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args()
    shared = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd_recordings.tar.gz"
    if "LAYERWISE_FSDD" not in os.environ and shared.exists():
        os.environ["LAYERWISE_FSDD"] = str(shared)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LAYERWISE_CACHE", str(Path(tmp) / "cache"))
        for spec_augment in (False, True):
            for seed in map(int, args.seeds.split(",")):
                t = time.perf_counter()
                run = lw.train("fsdd", seed=seed, epochs=args.epochs, spec_augment=spec_augment, threads=args.threads,
                               out=Path(tmp) / f"{spec_augment}-{seed}", progress=False, tensorboard=False, quiet=True)
                train_s = sum(h["seconds"] for h in run.history)
                rows.append((spec_augment, seed, run.info["test_metrics"], train_s, time.perf_counter() - t))
    print(f"{'setting':<32}{'seed':>5}{'accuracy':>10}{'macro F1':>10}{'train s':>9}{'total s':>9}")
    for sa, seed, m, train_s, total in rows:
        name = f"crnn{' + SpecAugment' if sa else ''}, {args.epochs} epochs"
        print(f"{name:<32}{seed:>5}{m['accuracy']:>10.4f}{m['macro_f1']:>10.4f}{train_s:>9.1f}{total:>9.1f}")
    print("test set: 300 clips (takes 0-4 of each of 6 speakers and 10 digits); train 2,430, validation 270.")


if __name__ == "__main__":
    main()
