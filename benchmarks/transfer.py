"""Transfer learning: pretrained backbones fine-tuned or frozen against models trained from scratch.

    python benchmarks/transfer.py sst2 [--epochs 1] [--threads 2]
    python benchmarks/transfer.py cifar --per-class 50 --epochs 3 --threads 1
    python benchmarks/transfer.py cifar [--per-class 100] [--epochs 3] [--threads 2] [--gradual]

sst2: all-MiniLM-L6-v2 fine-tuned (and frozen) on ../shared/data/sst2, scored on its given test split.
cifar: EfficientNet-Lite0 (ImageNet) frozen and fine-tuned on a CIFAR-10 subset of --per-class training and
test images per class (unzipped from ../shared/data/cifar10 into a temporary folder), against the default
CNN trained from scratch on the same images. Fixed seeds; prints a markdown table (test accuracy, seconds).

Measured (1 thread, on a shared 2-core machine with load ~15, so seconds are only indicative):
| model | test accuracy | epochs | seconds |
|---|---|---|---|
| MiniLM fine-tuned (SST-2, given test split, 1821 sentences) | 0.8726 | 1 | 719 |
| EfficientNet-Lite0 frozen (CIFAR-10, 50/class train, 50/class test) | 0.6720 | 3 | 511 |
| EfficientNet-Lite0 fine-tuned (same) | 0.6940 | 3 | 397 |
| CNN from scratch, defaults + augment (same) | 0.4120 | 30 | 79 |
Needs: pip install 'layerwise[text]' and 'layerwise[vision]'.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import layerwise as lw

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def extract_cifar(root: Path, per_class: int) -> Path:
    """The first `per_class` images of each class of both CIFAR-10 splits, as image folders under root."""
    for split in ("train", "test"):
        counts: dict[str, int] = {}
        with zipfile.ZipFile(DATA / "cifar10" / f"{split}.zip") as z:
            for name in sorted(z.namelist()):
                parts = name.split("/")
                if len(parts) != 3 or not parts[2].endswith(".jpg"):
                    continue
                if counts.get(parts[1], 0) >= per_class:
                    continue
                counts[parts[1]] = counts.get(parts[1], 0) + 1
                out = root / split / parts[1] / parts[2]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(z.read(name))
    return root


def timed(label: str, data, **settings) -> dict:
    t = time.perf_counter()
    run = lw.train(data, quiet=True, progress=False, tensorboard=False, **settings)
    seconds = time.perf_counter() - t
    acc = run.info["test_metrics"]["accuracy"]
    epochs = run.info.get("epochs_done")
    print(f"| {label} | {acc:.4f} | {epochs} | {seconds:.0f} |", flush=True)
    return {"label": label, "accuracy": acc, "seconds": seconds}


def sst2(args, out: Path) -> None:
    train, test = DATA / "sst2" / "train.csv", DATA / "sst2" / "test.csv"
    common = {"target": "sentiment", "test": str(test), "threads": args.threads, "seed": 0}
    timed(f"MiniLM fine-tuned, {args.epochs} epochs", str(train), model="pretrained:minilm", epochs=args.epochs,
          out=str(out / "minilm-finetune"), **common)
    if args.frozen:
        timed(f"MiniLM frozen + linear head, {args.epochs} epochs", str(train), model="pretrained:minilm",
              freeze=True, epochs=args.epochs, out=str(out / "minilm-frozen"), **common)


def cifar(args, out: Path) -> None:
    root = extract_cifar(out / "cifar", args.per_class)
    common = {"test": str(root / "test"), "threads": args.threads, "seed": 0}
    train = str(root / "train")
    timed(f"EfficientNet-Lite0 frozen, {args.epochs} epochs", train, model="pretrained:efficientnet_lite0",
          freeze=True, epochs=args.epochs, out=str(out / "eff-frozen"), **common)
    timed(f"EfficientNet-Lite0 fine-tuned, {args.epochs} epochs", train, model="pretrained:efficientnet_lite0",
          epochs=args.epochs, out=str(out / "eff-finetune"), **common)
    if args.gradual:
        timed(f"EfficientNet-Lite0 gradual unfreezing (every epoch, lr decay 0.5), {args.epochs} epochs", train,
              model="pretrained:efficientnet_lite0", unfreeze_every=1, lr_decay=0.5, epochs=args.epochs,
              out=str(out / "eff-gradual"), **common)
    timed(f"CNN from scratch (defaults, augment), {args.scratch_epochs} epochs", train, model="cnn",
          augment=True, epochs=args.scratch_epochs, out=str(out / "cnn"), **common)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=("sst2", "cifar"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--scratch-epochs", type=int, default=30)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frozen", action="store_true", help="sst2: also the frozen backbone")
    ap.add_argument("--gradual", action="store_true", help="cifar: also gradual unfreezing with lr decay")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent; the benchmark needs the shared data sets.")
    print(f"{args.part}: {vars(args)}")
    print("| model | test accuracy | epochs | seconds |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        (sst2 if args.part == "sst2" else cifar)(args, Path(tmp))


if __name__ == "__main__":
    main()
