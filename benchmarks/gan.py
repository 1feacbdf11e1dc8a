"""GAN on MNIST, judged by a separately trained layerwise MNIST classifier.

Trains the classifier (label smoothing off, so its confidence means something), then an unconditional and
a conditional GAN with layerwise defaults (the unconditional one is self-conditioned on 200 k-means
clusters of the images; `--plain` adds the plain DCGAN, `--clusters 0`), continuing each run (resume with
more epochs; the GAN's learning rate is constant) to report the numbers after several epoch counts:
  confident  share of 1,000 samples the classifier labels with probability >= 0.9   (bar: >= 90%)
  min class  the rarest predicted class among them                                   (bar: >= 5%)
  as asked   conditional GAN: share classified as the label it was asked for          (bar: >= 90%)
  FID        Frechet distance of the classifier's penultimate features, samples vs the 10,000 test images

    python benchmarks/gan.py --epochs 1,2,4,6                 # one process, or two side by side:
    python benchmarks/gan.py --only uncond & python benchmarks/gan.py --only cond; wait; python benchmarks/gan.py
    python benchmarks/gan.py --plain --only plain              # the plain DCGAN, no self-conditioning
    python benchmarks/gan.py --only uncond --seed 1            # another seed (a table once the judge exists)
"""

from __future__ import annotations

import argparse
import shutil
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
    (inputs,) = run.pre.transform(x[..., None] if x.ndim == 3 else x)
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


def train_classifier(out: Path, threads: int):
    """The default CNN (channels 32,64,128), two epochs, no label smoothing (so that its confidence means
    something): about 99.3% test accuracy, and confident (p >= 0.9) on about 99% of the real test images."""
    if (out / "classifier" / "model.safetensors").is_file():
        return lw.Run.load(out / "classifier")
    return lw.train(str(MNIST), model="cnn", epochs=2, label_smoothing=0.0, out=out / "classifier", threads=threads,
                    quiet=True, progress=False, seed=0)


KINDS = {"unconditional": {}, "conditional": {"conditional": True}, "plain": {"clusters": 0}}


def train_gan(path: Path, settings: dict, epochs: list[int], threads: int, seed: int = 0) -> None:
    """Train to each epoch count in turn (resuming), keeping a copy of the weights at each."""
    for i, e in enumerate(epochs):
        snap = path / f"model-e{e}.safetensors"
        if snap.is_file():
            continue
        if i == 0:
            run = lw.train(str(MNIST), model="gan", epochs=e, out=path, threads=threads, quiet=True,
                           progress=False, seed=seed, **settings)
        else:
            run = lw.train(resume=path, epochs=e, quiet=True)
        shutil.copy(path / "model.safetensors", snap)
        print(f"{path.name}: {e} epochs done, {run.history[-1]['seconds']:.0f} s for the last", flush=True)


def main() -> None:
    from safetensors.torch import load_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", default="1,2,4,6", help="epoch counts to report (the GAN is continued)")
    ap.add_argument("--out", default="runs/bench-gan")
    ap.add_argument("--only", choices=("uncond", "cond", "plain"), default=None,
                    help="train only one GAN (run two processes side by side, then once more to print the table)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the GANs (the classifier keeps seed 0)")
    ap.add_argument("--plain", action="store_true", help="also the plain unconditional DCGAN (--clusters 0)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out, epochs = Path(args.out), [int(v) for v in args.epochs.split(",")]
    names = ["unconditional", "conditional"] + (["plain"] if args.plain or args.only == "plain" else [])
    short = {"unconditional": "uncond", "conditional": "cond", "plain": "plain"}
    kinds = [n for n in names if not args.only or args.only == short[n]]
    folder = lambda name: name if args.seed == 0 else f"{name}-seed{args.seed}"

    t = time.perf_counter()
    have_judge = (out / "classifier" / "model.safetensors").is_file()  # --only: print a table once it exists
    clf = train_classifier(out, args.threads) if args.only is None or have_judge else None
    if clf is not None:
        print(f"classifier trained/loaded in {time.perf_counter() - t:.0f} s", flush=True)
    for name in kinds:
        train_gan(out / folder(name), KINDS[name], epochs, args.threads, args.seed)
    if clf is None:
        return
    data = np.load(MNIST)
    test_probs, test_feats = classify(clf, data["x_test"])
    acc = float((test_probs.argmax(1) == data["y_test"]).mean())
    print(f"classifier: test accuracy {acc:.4f}; confident (p >= 0.9) on real test images "
          f"{(test_probs.max(1) >= 0.9).mean():.3f}")
    real = classify(clf, data["x_train"][:1000])[1]
    print(f"FID of 1,000 real training images vs the test set: {fid(real, test_feats):.2f}")
    print(f"\n{'GAN':<14}{'epochs':>7}{'s/epoch':>9}{'confident':>11}{'min class':>11}{'as asked':>10}{'FID':>9}")
    for name in kinds:
        c = name == "conditional"
        gan = lw.Run.load(out / folder(name))
        for e in epochs:
            sec = np.mean([h["seconds"] for h in gan.history[:e]])
            gan.model.load_state_dict(load_file(str(out / folder(name) / f"model-e{e}.safetensors")))
            r = judge(clf, gan, test_feats, c)
            asked = f"{r['as asked']:.3f}" if c else "-"
            print(f"{name:<14}{e:>7}{sec:>9.0f}{r['confident']:>11.3f}{r['min class']:>11.3f}{asked:>10}"
                  f"{r['FID']:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
