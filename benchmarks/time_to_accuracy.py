"""Time from process start to 99.0% MNIST test accuracy with the defaults (`layerwise train mnist.npz`).

    python benchmarks/time_to_accuracy.py --data ../shared/data/mnist.npz [--target 0.99] [--full]

The clock starts when this script starts (imports included). After every epoch the test split is scored (the
scoring time is subtracted: it is the benchmark's, not training's). Stops at the target unless --full.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse

import layerwise as lw
from layerwise.fit.loop import Callback


class TestEveryEpoch(Callback):
    def __init__(self, test, target: float, full: bool):
        self.test, self.target, self.full, self.spent, self.rows = test, target, full, 0.0, []

    def on_epoch_end(self, loop) -> None:
        t0 = time.perf_counter()
        acc = loop.evaluate(self.test)["accuracy"]
        self.spent += time.perf_counter() - t0
        self.rows.append((loop.epoch, time.perf_counter() - START - self.spent, acc))
        print(f"epoch {loop.epoch}: {self.rows[-1][1]:.1f} s, test accuracy {acc:.4f}", flush=True)
        if acc >= self.target and not self.full:
            loop.stop = True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/mnist.npz")
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--full", action="store_true", help="train all default epochs instead of stopping at target")
    args = ap.parse_args()
    from layerwise.api import prepare_data, resolve_config

    t0 = time.perf_counter()
    cfg, _ = resolve_config(args.data)
    prep = prepare_data(cfg, quiet=True)  # the same split and preprocessing as the run's: only to score
    cb = TestEveryEpoch((prep.test.inputs, prep.test.y), args.target, args.full)
    cb.spent = time.perf_counter() - t0
    run = lw.train(args.data, callbacks=[cb], progress=False, tensorboard=False, out=f"/tmp/tta-{time.time_ns()}")
    hit = next((r for r in cb.rows if r[2] >= args.target), None)
    print(f"\nmodel {run.info['model']}, precision {run.info['precision']}, {run.info['parameters']:,} parameters")
    print("| epoch | seconds from start | test accuracy |\n|---|---|---|")
    for e, s, a in cb.rows:
        print(f"| {e} | {s:.1f} | {a:.4f} |")
    print(f"time to {args.target:.1%}: " + (f"{hit[1]:.1f} s (epoch {hit[0]})" if hit else "not reached"))


if __name__ == "__main__":
    main()
