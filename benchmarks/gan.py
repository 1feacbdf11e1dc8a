"""GAN on MNIST, judged by a separately trained layerwise MNIST classifier.

Trains the classifier (label smoothing off, so its confidence means something), then an unconditional and
a conditional GAN with layerwise defaults, continuing each run (resume with more epochs; the GAN's
learning rate is constant) to report the numbers after several epoch counts:
  confident  share of 1,000 samples the classifier labels with probability >= 0.9   (bar: >= 90%)
  min class  the rarest predicted class among them                                   (bar: >= 5%)
  as asked   conditional GAN: share classified as the label it was asked for          (bar: >= 90%)
  FID        Frechet distance of the classifier's penultimate features, samples vs the 10,000 test images

    python benchmarks/gan.py --threads 2 --epochs 1,2,4,6
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import layerwise as lw

MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist.npz"


def classify(run, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and penultimate features (the input of the last linear layer) for uint8 images."""
    model = run.model.eval()
    feats = []
    hook = model.classifier[-1].register_forward_hook(lambda m, i, o: feats.append(i[0].detach().float()))
    (inputs,) = run.pre.transform(x)
    probs = []
    with torch.no_grad():
        for i in range(0, len(inputs), 1000):
            probs.append(model(torch.from_numpy(inputs[i:i + 1000])).float().softmax(1))
    hook.remove()
    return torch.cat(probs).numpy(), torch.cat(feats).numpy().astype(np.float64)


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean.real))


def judge(clf, gan, test_feats: np.ndarray, conditional: bool) -> dict:
    x = gan.sample(1000, seed=1)  # conditional: labels cycle 0..9, 100 of each
    probs, feats = classify(clf, x)
    pred = probs.argmax(1)
    out = {"confident": float((probs.max(1) >= 0.9).mean()),
           "min class": float(np.bincount(pred, minlength=10).min() / len(pred)),
           "FID": fid(feats, test_feats)}
    if conditional:
        out["as asked"] = float((pred == np.arange(1000) % 10).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", default="1,2,4,6", help="epoch counts to report (the GAN is continued)")
    ap.add_argument("--out", default="runs/bench-gan")
    ap.add_argument("--only", choices=("uncond", "cond"), default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    common = {"threads": args.threads, "quiet": True, "progress": False, "seed": 0}

    t = time.perf_counter()
    if (out / "classifier" / "model.safetensors").is_file():
        clf = lw.Run.load(out / "classifier")
    else:
        clf = lw.train(str(MNIST), model="cnn", epochs=2, label_smoothing=0.0, out=out / "classifier", **common)
    data = np.load(MNIST)
    test_probs, test_feats = classify(clf, data["x_test"])
    acc = float((test_probs.argmax(1) == data["y_test"]).mean())
    print(f"classifier: test accuracy {acc:.4f}, confident (p >= 0.9) on real test images "
          f"{(test_probs.max(1) >= 0.9).mean():.3f} ({time.perf_counter() - t:.0f} s)")
    real = classify(clf, data["x_train"][:1000])[1]
    print(f"FID of 1,000 real training images vs the test set: {fid(real, test_feats):.2f}")

    print(f"\n{'GAN':<14}{'epochs':>7}{'s/epoch':>9}{'confident':>11}{'min class':>11}{'as asked':>10}{'FID':>9}")
    for conditional in (False, True):
        if args.only and args.only != ("cond" if conditional else "uncond"):
            continue
        name = "conditional" if conditional else "unconditional"
        path = out / name
        for i, e in enumerate(int(v) for v in args.epochs.split(",")):
            t = time.perf_counter()
            if i == 0:
                gan = lw.train(str(MNIST), model="gan", conditional=conditional, epochs=e, out=path, **common)
            else:
                gan = lw.train(resume=path, epochs=e, quiet=True)
            seconds = gan.history[-1]["seconds"]
            r = judge(clf, lw.Run.load(path), test_feats, conditional)
            asked = f"{r['as asked']:.3f}" if conditional else "-"
            print(f"{name:<14}{e:>7}{seconds:>9.0f}{r['confident']:>11.3f}{r['min class']:>11.3f}{asked:>10}"
                  f"{r['FID']:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
