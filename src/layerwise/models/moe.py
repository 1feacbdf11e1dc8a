"""Mixture of experts: a top-k gated feed-forward layer (Shazeer et al. 2017; Switch Transformer,
Fedus et al. 2021), the MLP with MoE layers in place of its hidden layers, and `use_moe`, which puts MoE
layers in place of the feed-forward of transformer blocks.

Add `moe_aux_loss(model)` (times a small weight such as 0.01) to the task loss so the router spreads
tokens over the experts instead of collapsing onto a few; training does so through the
`fit.experts.MoEBalance` callback, which also logs the experts' load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


class MoE(nn.Module):
    """Top-k routed feed-forward experts: input [..., dim] → output [..., out_dim] (default dim).

    Each token goes to its `top_k` most probable experts (softmax router); their outputs are summed,
    weighted by the router probabilities renormalised over the chosen k. Tokens are grouped by expert
    with one sort, so the Python loop runs over experts, never over tokens.
    After each forward, `aux_loss` holds the Switch load-balancing loss
    n_experts * sum_i(fraction of assignments to expert i * mean router probability of expert i),
    which is 1 when routing is uniform, and `last_load` the fraction of assignments per expert (detached).
    """

    def __init__(self, dim: int, hidden: int, n_experts: int = 8, top_k: int = 2, dropout: float = 0.0,
                 activation: Callable[[], nn.Module] = nn.GELU, out_dim: int | None = None):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be between 1 and n_experts={n_experts}, got {top_k}.")
        self.n_experts, self.top_k, self.out_dim = n_experts, top_k, out_dim or dim
        self.router = nn.Linear(dim, n_experts, bias=False)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden), activation(), nn.Dropout(dropout), nn.Linear(hidden, self.out_dim))
            for _ in range(n_experts))
        self.aux_loss: torch.Tensor | None = None
        self.last_load: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        n = x.shape[0]
        probs = self.router(x).float().softmax(-1)  # [N, E], in float32 even under autocast
        weight, expert = probs.topk(self.top_k, dim=-1)  # [N, k]
        weight = weight / weight.sum(-1, keepdim=True)

        flat = expert.flatten()  # one entry per (token, choice)
        order = flat.argsort(stable=True)
        counts = torch.bincount(flat, minlength=self.n_experts)
        token = order // self.top_k
        inputs = x[token].split(counts.tolist())
        outputs = [self.experts[e](inp) for e, inp in enumerate(inputs) if inp.shape[0] > 0]
        y = torch.cat(outputs) * weight.flatten()[order, None].to(outputs[0].dtype)
        out = torch.zeros(n, self.out_dim, dtype=y.dtype, device=y.device).index_add_(0, token, y)

        load = counts.float() / (n * self.top_k)
        self.aux_loss = self.n_experts * (load * probs.mean(0)).sum()
        self.last_load = load.detach()
        return out.reshape(shape[:-1] + (out.shape[-1],))


def moe_aux_loss(module: nn.Module) -> torch.Tensor:
    """Sum of the load-balancing losses of every MoE layer inside `module` (0 if there are none)."""
    losses = [m.aux_loss for m in module.modules() if isinstance(m, MoE) and m.aux_loss is not None]
    return torch.stack(losses).sum() if losses else torch.zeros(())


def expert_load(module: nn.Module) -> dict[str, list[float]]:
    """Fraction of routed tokens per expert for every MoE layer, by module name (for logging)."""
    return {name: m.last_load.tolist() for name, m in module.named_modules()
            if isinstance(m, MoE) and m.last_load is not None}


class MoEMLP(nn.Module):
    """The MLP (models/mlp.py) with its hidden layers replaced by mixture-of-experts layers.

    Categorical columns get embeddings as in MLP; a linear stem maps the features to width `dim`
    (default hidden[0]); then, per hidden size h, a pre-norm residual block x + MoE(LayerNorm(x)) whose
    experts are dim → h → dim networks; a final LayerNorm, dropout and a linear head. Without `hidden`,
    `layers` blocks with experts dim → 2*dim → dim. forward(x) takes float features [B, ...] (flattened),
    or (x_num, x_cat) for tables.
    """

    def __init__(self, in_features: int, out_dim: int, hidden: Sequence[int] | None = None, act: str = "gelu",
                 dropout: float = 0.1, cat_sizes: Sequence[int] | None = None, n_experts: int = 8, top_k: int = 2,
                 *, dim: int | None = None, layers: int = 2):
        super().__init__()
        from .blocks import activation

        if hidden is None:
            dim = dim or 256
            hidden = [2 * dim] * layers
        dim = dim or hidden[0]
        self.embeddings = nn.ModuleList(nn.Embedding(n, min(16, (n + 1) // 2 + 1)) for n in (cat_sizes or []))
        self.embed = nn.Linear(in_features + sum(e.embedding_dim for e in self.embeddings), dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in hidden)
        self.blocks = nn.ModuleList(MoE(dim, h, n_experts, top_k, dropout, lambda: activation(act)) for h in hidden)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Dropout(dropout), nn.Linear(dim, out_dim))

    def forward(self, x: torch.Tensor, x_cat: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)
        if x_cat is not None:
            x = torch.cat([x] + [e(x_cat[:, i]) for i, e in enumerate(self.embeddings)], 1)
        h = self.embed(x)
        for norm, moe in zip(self.norms, self.blocks):
            h = h + moe(norm(h))
        return self.head(h)


def use_moe(model: nn.Module, n_experts: int, top_k: int = 2, dropout: float = 0.0) -> int:
    """Replace the feed-forward `mlp` of every transformer block in `model` (models/transformer.py Block)
    by a top-k MoE layer with experts of the same shape (d → 4d → d, tanh GELU). Returns how many blocks
    were changed (0: the model has no transformer blocks)."""
    from .transformer import Block

    changed = 0
    for block in model.modules():
        if isinstance(block, Block):
            d = block.ln_2.normalized_shape[0]
            block.mlp = MoE(d, 4 * d, n_experts, top_k, dropout, lambda: nn.GELU(approximate="tanh"))
            changed += 1
    return changed


def build_moe(name: str, spec: dict, out_dim: int, cfg) -> nn.Module:
    """`--moe E --moe-top-k K`: the MLP with MoE layers, or any model with transformer blocks (their
    feed-forward replaced by `use_moe`); other models raise ConfigError."""
    from ..errors import ConfigError
    from . import build_model

    if cfg.moe_top_k > cfg.moe:
        raise ConfigError(f"--moe-top-k {cfg.moe_top_k} is more than the {cfg.moe} experts; "
                          f"use a top-k between 1 and {cfg.moe}.")
    if name == "mlp":
        n = 1
        for s in spec.get("shape", [spec.get("n_num", 0)]):
            n *= s
        table = spec["kind"] == "table"
        return MoEMLP(spec["n_num"] if table else n, out_dim, cfg.hidden, cfg.activation, cfg.dropout,
                      spec["cat_sizes"] if table else None, cfg.moe, cfg.moe_top_k)
    model = build_model(name, spec, out_dim, cfg.model_copy(update={"moe": None}))
    if use_moe(model, cfg.moe, cfg.moe_top_k, cfg.dropout) == 0:
        raise ConfigError(f"--moe works with --model mlp or a transformer, not {name!r}; "
                          "pick one of those or leave --moe out.")
    return model
