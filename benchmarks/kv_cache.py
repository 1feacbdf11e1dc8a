"""GPT generation with and without the key/value cache, same model, prompt and seed, interleaved.

    python benchmarks/kv_cache.py [--tokens 256] [--repeats 3] [--threads N]

Builds GPT(vocab 65, 4 layers, 4 heads, d_model 128, block_size 256), generates --tokens new tokens from
a 1-token prompt (batch 1) both ways, checks they agree, and prints a markdown table of tokens/s and the
ratio cached / uncached (medians over the repeats).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from layerwise.models.transformer import GPT


def timed_generate(model: GPT, prompt: torch.Tensor, tokens: int, use_cache: bool, seed: int):
    t0 = time.perf_counter()
    out = model.generate(prompt, tokens, use_cache=use_cache, generator=torch.Generator().manual_seed(seed))
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads; default: torch's choice")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = GPT(65, block_size=256, d_model=128, heads=4, layers=4, dropout=0.0).eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    for use_cache in (True, False):  # warm-up: first calls page in kernels
        timed_generate(model, prompt, 16, use_cache, args.seed)
    times: dict[bool, list[float]] = {True: [], False: []}
    outputs = {}
    for r in range(args.repeats):
        for use_cache in (True, False) if r % 2 == 0 else (False, True):
            t, outputs[use_cache] = timed_generate(model, prompt, args.tokens, use_cache, args.seed)
            times[use_cache].append(t)
    same = torch.equal(outputs[True], outputs[False])
    cached, uncached = (args.tokens / statistics.median(times[c]) for c in (True, False))
    print(f"GPT 4x128, block_size 256, batch 1, {args.tokens} new tokens, {torch.get_num_threads()} threads, "
          f"{args.repeats} repeats; same tokens: {same}\n")
    print("| generation | tokens/s | ratio |\n|---|---|---|")
    print(f"| uncached (re-run context) | {uncached:.0f} | 1.00 |")
    print(f"| KV cache | {cached:.0f} | {cached / uncached:.2f} |")


if __name__ == "__main__":
    main()
