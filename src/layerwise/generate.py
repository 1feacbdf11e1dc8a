"""Text generation from a trained language model (`layerwise generate`, `Run.generate`)."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError, DataError, RunError


def generate(run: Any, prompt: str = "\n", tokens: int = 200, temperature: float = 1.0, top_k: int | None = None,
             seed: int | None = None) -> str:
    """The prompt followed by `tokens` sampled tokens, decoded to text (KV cache, temperature, top-k)."""
    import torch

    if getattr(run.task, "name", None) != "generate":
        raise RunError(f"run {str(run.path)!r} is a {run.task.name} model, not a language model; `generate` needs "
                       "a run trained with --task generate on a text corpus.")
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
