"""Tiny Shakespeare, character level: layerwise's defaults against nanoGPT's documented CPU recipe.

    python benchmarks/shakespeare.py --nanogpt DIR [--threads 1] [--only nanogpt|layerwise]

DIR is a clone of github.com/karpathy/nanoGPT (a work tree, or a bare git directory); its model.py is
imported from there at run time and never copied into this project. The nanoGPT side repeats its
train.py for the README's CPU recipe:

    --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
    --lr_decay_iters=2000 --dropout=0.0 --eval_iters=20   (lr 1e-3, warmup 100, min lr 1e-4, beta2 0.99,
                                                          weight decay 0.1, grad clip 1, eval every 250)

The layerwise side is `lw.train(corpus, task="generate", model="gpt")` with its defaults. Both use the
same split (the last 10% of characters is validation) and are scored the same way at the end: the mean
loss over the whole validation set cut into non-overlapping windows of each model's context. Wall and
CPU seconds cover training and its periodic evaluation (data preparation included for layerwise).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "text" / "tinyshakespeare.txt"


def nanogpt_module(path: Path):
    """model.py from a nanoGPT work tree or bare git directory, imported under the name nanogpt_model."""
    src = path / "model.py"
    if not src.is_file():
        text = subprocess.run(["git", f"--git-dir={path}", "show", "HEAD:model.py"], check=True,
                              capture_output=True, text=True).stdout
        src = Path(tempfile.mkdtemp()) / "model.py"
        src.write_text(text)
    spec = importlib.util.spec_from_file_location("nanogpt_model", src)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@torch.no_grad()
def full_val_loss(logits_fn, val: torch.Tensor, block: int, batch: int = 256) -> float:
    """Mean next-character loss over all of `val`, cut into non-overlapping windows of `block`."""
    n = (len(val) - 1) // block
    x, y = val[:n * block].view(n, block), val[1:n * block + 1].view(n, block)
    total = 0.0
    for i in range(0, n, batch):
        logits = logits_fn(x[i:i + batch])
        total += F.cross_entropy(logits.flatten(0, 1).float(), y[i:i + batch].flatten(), reduction="sum").item()
    return total / (n * block)


def run_nanogpt(ng, train: torch.Tensor, val: torch.Tensor, vocab: int, seed: int) -> dict:
    """nanoGPT's train.py loop with the CPU recipe's settings (fp32 on CPU, no compile)."""
    block, batch, iters, warmup, lr, min_lr, eval_every, eval_iters = 64, 12, 2000, 100, 1e-3, 1e-4, 250, 20
    torch.manual_seed(1337 + seed)
    conf = ng.GPTConfig(block_size=block, vocab_size=vocab, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                        bias=False)
    model = ng.GPT(conf)
    opt = model.configure_optimizers(0.1, lr, (0.9, 0.99), "cpu")

    def get_batch(data):
        ix = torch.randint(len(data) - block, (batch,))
        return torch.stack([data[i:i + block] for i in ix]), torch.stack([data[i + 1:i + 1 + block] for i in ix])

    def get_lr(it):
        if it < warmup:
            return lr * (it + 1) / (warmup + 1)
        if it > iters:
            return min_lr
        ratio = (it - warmup) / (iters - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)

    @torch.no_grad()
    def estimate(data):
        model.eval()
        losses = [model(*get_batch(data))[1].item() for _ in range(eval_iters)]
        model.train()
        return sum(losses) / len(losses)

    t0, c0 = time.perf_counter(), time.process_time()
    estimates = []
    x, y = get_batch(train)
    for it in range(iters + 1):
        for g in opt.param_groups:
            g["lr"] = get_lr(it)
        if it % eval_every == 0:  # train.py's estimate_loss scores both splits
            estimates.append((it, estimate(train), estimate(val)))
        _, loss = model(x, y)
        x, y = get_batch(train)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    model.eval()
    val_loss = full_val_loss(lambda xb: model(xb, xb)[0], val, block)  # targets given: logits at every step
    return {"name": "nanoGPT CPU recipe (4x128, ctx 64, batch 12, 2000 iters)", "val_loss": val_loss,
            "wall": wall, "cpu": cpu, "note": f"its own estimate at iter 2000: train {estimates[-1][1]:.3f}, val {estimates[-1][2]:.3f}"}


def run_layerwise(corpus: Path, threads: int, seed: int) -> dict:
    import layerwise as lw

    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        run = lw.train(str(corpus), task="generate", model="gpt", threads=threads, seed=seed, quiet=True,
                       progress=False, tensorboard=False, out=str(Path(out) / "run"))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        cfg = run.config
        sample = run.generate("ROMEO:", tokens=120, temperature=0.8, top_k=40)
    name = (f"layerwise defaults ({cfg.layers or 4}x{cfg.d_model or 128}, ctx {cfg.block_size}, batch "
            f"{cfg.batch_size}, {cfg.epochs} epochs)")
    return {"name": name, "val_loss": run.info["val_metrics"]["loss"], "wall": wall, "cpu": cpu,
            "note": f"precision {run.info['precision']}", "sample": sample}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nanogpt", type=Path, help="a clone of karpathy/nanoGPT (needed unless --only layerwise)")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("nanogpt", "layerwise"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    text = args.corpus.read_text(encoding="utf-8")
    chars = sorted(set(text))  # nanoGPT's data/shakespeare_char/prepare.py
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(len(data) * 0.9)
    rows = []
    if args.only != "layerwise":
        if args.nanogpt is None:
            sys.exit("give --nanogpt DIR (a clone of karpathy/nanoGPT), or --only layerwise")
        rows.append(run_nanogpt(nanogpt_module(args.nanogpt), data[:n], data[n:], len(chars), args.seed))
    if args.only != "nanogpt":
        rows.append(run_layerwise(args.corpus, args.threads, args.seed))
    print(f"Tiny Shakespeare (char level, last 10% validation), {args.threads} thread(s), seed {args.seed}\n")
    print("| recipe | val loss (whole val set) | wall s | CPU s | wall vs nanoGPT |\n|---|---|---|---|---|")
    base = rows[0]["wall"]
    for r in rows:
        print(f"| {r['name']} | {r['val_loss']:.3f} | {r['wall']:.0f} | {r['cpu']:.0f} | {r['wall'] / base:.2f} |")
    for r in rows:
        print(f"\n{r['name']}: {r['note']}")
        if "sample" in r:
            print(r["sample"])


if __name__ == "__main__":
    main()
