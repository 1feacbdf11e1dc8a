"""Language modelling (`--task generate`): predict each next token of a text corpus.

The corpus is tokenized (characters by default, or BPE/WordPiece trained on the training part only); its
last `val_fraction` (10%) is held out. Training windows of `block_size` tokens are views into the one id
tensor (no copies), re-cut at a new offset every epoch so that every position starts a window sometime.
Metrics: cross-entropy per token (`loss`) and perplexity.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..config import describe_defaults, fill_defaults
from ..errors import ConfigError, DataError, say
from .base import Task

# settings the language model uses unless the user sets them: a small GPT (4 layers, 64 wide) trained for two
# epochs at a high rate with small batches reaches a lower Tiny Shakespeare validation loss in about half the
# compute of nanoGPT's CPU recipe (benchmarks/shakespeare.py)
DEFAULTS = {"tokenizer": "char", "block_size": 64, "d_model": 64, "layers": 4, "heads": 4, "epochs": 2,
            "batch_size": 16, "lr": 4e-3, "dropout": 0.0, "weight_decay": 0.1, "grad_clip": 1.0, "warmup": 0.05,
            "schedule": "cosine"}


class Generate(Task):
    name = "generate"
    monitor = ("loss", "min")

    def __init__(self, vocab_size: int, **_: Any):
        self.vocab_size = vocab_size
        self.train_ids = None  # the training token ids (a torch tensor), set by prepare; not saved

    @property
    def out_dim(self) -> int:
        return self.vocab_size

    @classmethod
    def prepare(cls, cfg: Any, data: Any, quiet: bool = False):
        """Tokenize the corpus, hold out its end, and cut views of block_size windows (see the module doc)."""
        import torch

        from ..data import Data, Prepared, Split
        from ..data.textpre import CorpusPre

        if data.kind != "corpus":
            raise DataError(f"the generate task learns from a text corpus, but the data is {data.kind} data; "
                            "give a .txt file.")
        say(describe_defaults("language-model defaults", fill_defaults(cfg, DEFAULTS)), quiet)
        text: str = data.x
        cut = int(len(text) * (1 - cfg.val_fraction))
        train_text, val_text = text[:cut], text[cut:]
        pre = CorpusPre.fit(Data("corpus", train_text, None), cfg)
        train_ids, val_ids = pre.encode(train_text), pre.encode(val_text)
        unk = int((val_ids == pre.tokenizer.unk_id).sum())
        if unk:
            say(f"{unk} validation tokens are not in the training vocabulary and count as [UNK]", quiet)
        block = cfg.block_size
        n = (len(train_ids) - 1) // block - 1  # one block of slack for the per-epoch offset
        if n < 2:
            raise DataError(f"the corpus has {len(train_ids)} training tokens, too few for windows of "
                            f"block_size={block}; give a longer text or a smaller --block-size.")
        task = cls(pre.tokenizer.vocab_size)
        task.train_ids = torch.from_numpy(train_ids)
        x, y = windows(task.train_ids, block, n, 0)
        say(f"tokens: {len(train_ids):,} train, {len(val_ids):,} validation ({pre.tokenizer.kind} tokenizer, "
            f"{pre.tokenizer.vocab_size} ids); {n:,} windows of {block} per epoch", quiet)
        val = None
        nv = (len(val_ids) - 1) // block
        if nv >= 1:
            vx, vy = windows(torch.from_numpy(val_ids), block, nv, 0)
            val = Split((vx,), vy)
        # the held-out end is the validation split (reported as val_metrics); there is no test split
        return Prepared(pre, task, Split((x,), y), val, None)

    def callbacks(self, cfg: Any, run_dir: Any) -> list:
        return [] if self.train_ids is None else [ShiftWindows(self.train_ids, cfg.block_size)]

    def labelled(self, run: Any, data: Any) -> tuple[tuple, Any]:
        """Windows of block_size tokens of another text (`layerwise evaluate RUN other.txt`)."""
        import torch

        from ..data import load

        d = load(data)
        if d.kind != "corpus":
            raise DataError(f"a language model is evaluated on a text (a .txt file), not on {d.kind} data.")
        ids = torch.from_numpy(run.pre.encode(d.x))
        block = run.pre.block_size
        n = (len(ids) - 1) // block
        if n < 1:
            raise DataError(f"the text has {len(ids)} tokens, fewer than one window of {block}; give a longer text.")
        x, y = windows(ids, block, n, 0)
        return (x,), y

    def fit(self, y: np.ndarray) -> np.ndarray:
        return y

    def encode(self, y: np.ndarray) -> np.ndarray:
        return y

    def loss(self, out, y):
        import torch.nn.functional as F

        return F.cross_entropy(out.flatten(0, 1).float(), y.flatten())

    def metrics(self, out, y) -> dict[str, float]:
        return {"perplexity": math.exp(min(float(self.loss(out, y)), 50.0))}

    def decode(self, out) -> dict[str, Any]:
        return {"prediction": out.argmax(-1).cpu().numpy()}

    def to_dict(self) -> dict:
        return {"name": self.name, "vocab_size": self.vocab_size}

    @classmethod
    def from_dict(cls, d: dict) -> Generate:
        return cls(d["vocab_size"])

    def describe(self) -> str:
        return f"generate (next token of {self.vocab_size})"

    def generate(self, run: Any, prompt: str = "\n", tokens: int = 200, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None) -> str:
        """The prompt followed by `tokens` sampled tokens, decoded to text (KV cache, temperature, top-k)."""
        import torch

        if tokens < 1:
            raise ConfigError(f"tokens must be at least 1 (got {tokens}).")
        if not temperature > 0:
            raise ConfigError(f"temperature must be above 0 (got {temperature}); use --top-k 1 for greedy decoding.")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"top_k must be at least 1 (got {top_k}); leave it out to sample from every token.")
        tok = run.pre.tokenizer
        if not prompt:
            prompt = "\n"
        try:
            ids = run.pre.encode(prompt, strict=tok.kind == "char").tolist()
        except ValueError as e:
            raise DataError(f"the prompt cannot be encoded: {e}") from None
        if not ids:
            raise DataError(f"the prompt {prompt!r} gives no tokens; give some text.")
        model = run.model.eval()
        device = next(model.parameters()).device
        generator = torch.Generator(device=device)
        generator.manual_seed(run.config.seed if seed is None else seed)
        idx = torch.tensor([ids], dtype=torch.long, device=device)
        out = model.generate(idx, tokens, temperature=temperature, top_k=top_k, use_cache=True, generator=generator)
        return tok.decode(out[0].tolist())


def windows(ids, block: int, n: int, offset: int):
    """n inputs and targets of `block` ids starting at offset, offset + block, ...: views, not copies."""
    return ids[offset:offset + n * block].view(n, block), ids[offset + 1:offset + 1 + n * block].view(n, block)


class ShiftWindows:
    """At each epoch start, re-cut the training windows at an offset drawn from the seed and the epoch."""

    def __init__(self, ids, block: int):
        self.ids, self.block = ids, block

    def on_epoch_start(self, loop) -> None:
        offset = int(np.random.default_rng([loop.cfg.seed, loop.epoch]).integers(self.block)) if loop.epoch else 0
        x, y = windows(self.ids, self.block, len(loop.train_y), offset)
        loop.train_inputs, loop.train_y = (x.to(loop.device),), y.to(loop.device)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
