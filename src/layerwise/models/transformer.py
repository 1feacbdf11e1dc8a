"""Transformers in the style of nanoGPT, readable top to bottom:

- KVCache and SelfAttention: multi-head attention (Vaswani et al. 2017) through
  F.scaled_dot_product_attention, with an optional key padding mask and a key/value cache.
- Block: pre-norm attention + MLP (GPT-2, Radford et al. 2019).
- TransformerEncoder: tokens or feature vectors -> blocks -> pooled -> head, for classify/regress.
- GPT: decoder-only language model with weight tying and cached generation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class KVCache:
    """Keys and values of one attention layer in one tensor [2, B, heads, size, head_dim], allocated on
    the first write, so each decoding step writes in place instead of concatenating."""

    def __init__(self, size: int):
        self.size, self.pos = size, 0  # pos: steps filled so far
        self.kv: Tensor | None = None

    def update(self, kv: Tensor) -> Tensor:
        """Append new steps kv [2, B, heads, t, head_dim]; return every key and value so far."""
        t = kv.size(3)
        if self.pos + t > self.size:
            raise ValueError(f"the KV cache holds {self.size} steps; {self.pos} + {t} would overflow it.")
        if self.kv is None or self.kv.shape[:3] != kv.shape[:3] or self.kv.dtype != kv.dtype:
            self.kv = kv.new_empty(*kv.shape[:3], self.size, kv.size(4))
        self.kv[:, :, :, self.pos:self.pos + t] = kv
        self.pos += t
        return self.kv[:, :, :, :self.pos]


class SelfAttention(nn.Module):
    """Multi-head self-attention. mask: bool [B, S], True = a real key (S counts cached steps too)."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads}).")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, is_causal: bool = False,
                cache: KVCache | None = None) -> Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], *(qkv[1:] if cache is None else cache.update(qkv[1:]))
        S = k.size(2)
        attn_mask = None if mask is None else mask[:, None, None, :]  # broadcast over heads and queries
        if is_causal and T == 1:
            is_causal = False  # the single newest query may see every key
        if is_causal and (attn_mask is not None or S != T):
            # SDPA's is_causal aligns top-left; with cached keys query i sits at step S - T + i
            causal = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)
            attn_mask, is_causal = causal if attn_mask is None else attn_mask & causal, False
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)); the MLP is 4x
    wide with GPT-2's tanh-approximate GELU (also 3-4x faster than exact erf on CPU).
    Hook: `mlp` may be any module [..., d] → [..., d]; `models.moe.use_moe` swaps in a mixture of experts."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, bias=bias)
        self.attn = SelfAttention(d_model, heads, dropout, bias)
        self.ln_2 = nn.LayerNorm(d_model, bias=bias)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model, bias=bias), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * d_model, d_model, bias=bias), nn.Dropout(dropout))

    def forward(self, x: Tensor, mask: Tensor | None = None, is_causal: bool = False,
                cache: KVCache | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), mask, is_causal, cache)
        return x + self.mlp(self.ln_2(x))


class TransformerEncoder(nn.Module):
    """Transformer encoder for sequence classification/regression: token ids [B, T] (`vocab_size`,
    `pad_id` marks padding) or features [B, T, F] (`in_features`, embedded by a kernel-3 convolution over
    time), learned positions, blocks, final
    LayerNorm, then a masked mean over real steps ("mean") or a learned [CLS] token ("cls"), and a head."""

    def __init__(self, out_dim: int, *, vocab_size: int | None = None, in_features: int | None = None,
                 max_len: int = 512, d_model: int = 128, heads: int = 4, layers: int = 4, dropout: float = 0.1,
                 pad_id: int = 0, pooling: str = "mean"):
        super().__init__()
        if (vocab_size is None) == (in_features is None):
            raise ValueError("give exactly one of vocab_size (token-id input) or in_features (float input).")
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls'; got {pooling!r}.")
        self.max_len, self.pad_id, self.tokens = max_len, pad_id, vocab_size is not None
        # float steps: a kernel-3 convolution as the token embedding (as Informer's), so each token already
        # carries its neighbours (the local slope) before attention
        self.embed = (nn.Embedding(vocab_size, d_model, padding_idx=pad_id) if self.tokens
                      else nn.Conv1d(in_features, d_model, 3, padding=1))
        self.pos = nn.Embedding(max_len, d_model)
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02) if pooling == "cls" else None
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, out_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: [B, T] token ids or [B, T, F] floats; mask: optional bool [B, T], True = real step, or the
        lengths [B] of sequences padded at the end (token input derives it from x != pad_id)."""
        B, T = x.shape[:2]
        if mask is not None and mask.dtype != torch.bool:  # lengths
            mask = torch.arange(T, device=x.device)[None] < mask.to(x.device)[:, None]
        if T > self.max_len:
            raise ValueError(f"the input has {T} steps but this TransformerEncoder was built with "
                             f"max_len={self.max_len}; crop the sequences or build it with a larger max_len.")
        if mask is None and self.tokens:
            mask = x != self.pad_id
        if self.tokens:
            h = self.embed(x)
        else:  # padded steps are zeroed first, so they never reach a real step's token
            x = x if mask is None else x.masked_fill(~mask.unsqueeze(-1), 0.0)
            h = self.embed(x.transpose(1, 2)).transpose(1, 2)
        h = h + self.pos(torch.arange(T, device=x.device))
        if self.cls is not None:
            h = torch.cat([self.cls.expand(B, -1, -1), h], dim=1)
            mask = None if mask is None else F.pad(mask, (1, 0), value=True)
        if mask is not None:
            mask = mask | ~mask.any(1, keepdim=True)  # an all-padding row attends everywhere, not to NaN
        h = self.drop(h)
        for block in self.blocks:
            h = block(h, mask)
        h = self.ln_f(h)
        if self.cls is not None:
            pooled = h[:, 0]
        elif mask is None:
            pooled = h.mean(1)
        else:
            m = mask.unsqueeze(-1)
            pooled = h.masked_fill(~m, 0.0).sum(1) / m.sum(1)
        return self.head(pooled)


class GPT(nn.Module):
    """Decoder-only language model (GPT-2 layout, as in nanoGPT): token + learned position embeddings,
    causal blocks, final LayerNorm, lm_head tied to the token embedding (Press & Wolf 2017)."""

    def __init__(self, vocab_size: int, *, block_size: int = 256, d_model: int = 384, heads: int = 6,
                 layers: int = 6, dropout: float = 0.2, bias: bool = False):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(block_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, heads, dropout, bias) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model, bias=bias)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        self.apply(self._init_weights)
        for block in self.blocks:  # GPT-2: residual projections scaled by 1/sqrt(2 * layers)
            for w in (block.attn.proj.weight, block.mlp[2].weight):
                nn.init.normal_(w, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _hidden(self, idx: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        """Final hidden states [B, T, d_model]; with caches, idx continues the steps already cached."""
        start, T = (0 if caches is None else caches[0].pos), idx.size(1)
        if start + T > self.block_size:
            raise ValueError(f"the sequence has {start + T} tokens but block_size is {self.block_size}; "
                             f"crop it to the last {self.block_size} tokens.")
        x = self.drop(self.wte(idx) + self.wpe.weight[start:start + T])  # positions start..start+T-1
        for i, block in enumerate(self.blocks):
            x = block(x, is_causal=True, cache=None if caches is None else caches[i])
        return self.ln_f(x)

    def forward(self, idx: Tensor) -> Tensor:
        """idx: token ids [B, T] -> next-token logits [B, T, vocab] (the task computes the loss)."""
        return self.lm_head(self._hidden(idx))

    @torch.no_grad()
    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 use_cache: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """Sample max_new_tokens after idx [B, T]; returns [B, T + max_new_tokens]. Call model.eval() first.

        With use_cache the prompt runs once and each new token runs alone against cached keys/values.
        Once the context would pass block_size it is cropped to the last block_size tokens; positions
        then shift, so the cache is rebuilt from the cropped context (exactly what use_cache=False sees).
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (got {temperature}); use top_k=1 for greedy decoding.")
        caches: list[KVCache] | None = None
        for _ in range(max_new_tokens):
            if not use_cache:
                h = self._hidden(idx[:, -self.block_size:])
            elif caches is None or caches[0].pos == self.block_size:
                caches = caches or [KVCache(self.block_size) for _ in self.blocks]
                for cache in caches:
                    cache.pos = 0
                h = self._hidden(idx[:, -self.block_size:], caches)
            else:
                h = self._hidden(idx[:, -1:], caches)
            logits = self.lm_head(h[:, -1, :]) / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx

    def configure_optimizer_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups: matrices and embeddings (2-D and up) decay; biases and norm gains do not."""
        params = [p for p in self.parameters() if p.requires_grad]  # tied weights appear once
        return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def build_transformer(name: str, spec: dict, out_dim: int, cfg) -> nn.Module:
    """`--model transformer` (an encoder over a text column or float sequences) or `--model gpt` (a language
    model of a corpus)."""
    from ..errors import ConfigError

    d_model, heads = cfg.d_model, cfg.heads  # defaults: the registry (models/__init__.py)
    if d_model % heads:
        raise ConfigError(f"d_model={d_model} must be divisible by heads={heads}; change one of them.")
    if name == "gpt":
        if spec["kind"] != "corpus":
            raise ConfigError(f"model 'gpt' is a language model: train it on a text corpus (.txt) with --task "
                              f"generate; the data here is {spec['kind']} data.")
        return GPT(spec["vocab_size"], block_size=spec["block_size"], d_model=d_model, heads=heads,
                   layers=cfg.layers, dropout=cfg.dropout)
    if spec["kind"] == "sequence":
        return TransformerEncoder(out_dim, in_features=spec["channels"], max_len=spec["shape"][0], d_model=d_model,
                                  heads=heads, layers=cfg.layers, dropout=cfg.dropout)
    if spec["kind"] != "text":
        hint = "use --model gpt" if spec["kind"] == "corpus" else "give a text column"
        raise ConfigError(f"model 'transformer' reads text here, but the data is {spec['kind']} data; {hint}.")
    return TransformerEncoder(out_dim, vocab_size=spec["vocab_size"], max_len=spec["max_len"], d_model=d_model,
                              heads=heads, layers=cfg.layers, dropout=cfg.dropout,
                              pad_id=spec.get("pad_id", 0))
