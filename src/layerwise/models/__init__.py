"""The model zoo. Every builder returns a plain torch.nn.Module."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

CONV_MODELS = ("cnn", "resnet")


def default_model(spec: dict) -> str:
    """Images and sequences → cnn, text → gru (bidirectional), a text corpus → gpt, a series to forecast →
    dlinear, audio → crnn, anything else → mlp."""
    return {"image": "cnn", "text": "gru", "corpus": "gpt", "series": "dlinear", "audio": "crnn",
            "sequence": "cnn"}.get(
        spec["kind"], "mlp")


def build_model(name: str, spec: dict, out_dim: int, cfg: Any):
    """Build the named architecture for inputs described by `spec` (from the preprocessing)."""
    if name.startswith("pretrained:"):  # a pretrained backbone with a new head
        from .pretrained import build

        return build(name, spec, out_dim, cfg)
    if getattr(cfg, "moe", None):  # mixture-of-experts layers in place of dense feed-forward layers
        from .moe import build_moe

        return build_moe(name, spec, out_dim, cfg)
    from .cnn import CNN
    from .mlp import MLP
    from .resnet import ResNet

    if spec["kind"] == "sequence" and name in ("mlp", "cnn"):
        return _sequence_model(name, spec, out_dim, cfg)
    if name == "mlp":
        if spec["kind"] == "table":
            return MLP(spec["n_num"], out_dim, cfg.hidden or (256, 128), cfg.activation, cfg.dropout,
                       cfg.batch_norm, spec["cat_sizes"])
        n = 1
        for s in spec["shape"]:
            n *= s
        return MLP(n, out_dim, cfg.hidden or (256, 128), cfg.activation, cfg.dropout, cfg.batch_norm)
    if name in CONV_MODELS:
        if spec["kind"] != "image":
            raise ConfigError(f"model {name!r} needs images but the data is a {spec['kind']}; use --model mlp.")
        if name == "cnn":
            return CNN(spec["shape"], out_dim, cfg.channels or (32, 64, 128),
                       (128,) if cfg.hidden is None else cfg.hidden, cfg.activation, cfg.dropout, cfg.batch_norm)
        return ResNet(spec["shape"], out_dim, cfg.channels or (32, 64, 128), cfg.depth, cfg.dropout)
    if name == "gan":
        from .gan import GAN

        if spec["kind"] != "image":
            raise ConfigError(f"model 'gan' generates images but the data is a {spec['kind']}; give images.")
        return GAN(spec["shape"], n_classes=out_dim, width=(cfg.channels or [32])[0],
                   clusters=0 if out_dim else (cfg.clusters or 0))
    if name in ("rnn", "lstm", "gru"):
        from .rnn import build_recurrent

        return build_recurrent(name, spec, out_dim, cfg)
    if name in ("transformer", "gpt"):
        from .transformer import build_transformer

        return build_transformer(name, spec, out_dim, cfg)
    if name == "dlinear":
        from .forecast import build_dlinear

        return build_dlinear(spec, out_dim)
    if name == "crnn":
        from .rnn import build_crnn

        return build_crnn(spec, out_dim, cfg)
    if name in ("autoencoder", "conv_autoencoder", "vae", "conv_vae"):
        from .autoencoder import build_autoencoder

        return build_autoencoder(name, spec, cfg)
    raise ConfigError(f"unknown model {name!r}; valid: mlp, cnn, resnet, or your own torch.nn.Module.")


def _sequence_model(name: str, spec: dict, out_dim: int, cfg: Any):
    """cnn (1-D) or mlp (one length) for sequences [B, T, C] (+ lengths when they vary); the recurrent and
    transformer builders take sequences too."""
    from .cnn import CNN1d
    from .mlp import MLP

    steps, c = spec["shape"]
    if name == "cnn":
        return CNN1d(c, out_dim, cfg.channels or (32, 64, 128), (128,) if cfg.hidden is None else cfg.hidden,
                     cfg.activation, cfg.dropout, cfg.batch_norm, steps)
    if spec.get("variable"):
        raise ConfigError("model 'mlp' needs sequences of one length, but these differ in length; use --model "
                          "cnn or gru.")
    return MLP(steps * c, out_dim, cfg.hidden or (256, 128), cfg.activation, cfg.dropout, cfg.batch_norm)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
