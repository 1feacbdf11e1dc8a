"""The model zoo: every builder returns a plain torch.nn.Module. The registry of architectures by name.

Each entry says how to build the model for an input spec (from the preprocessing), which input kinds it
reads, whether it is convolutional (precision and memory format follow from that: fit/precision.py), and its
defaults, which fill the run's settings where the user gave none (so config.yaml holds the real values).
A new architecture is one file plus one line in MODELS (or `register(...)` from your code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[..., Any]  # build(name, spec, out_dim, cfg) -> nn.Module
    kinds: tuple[str, ...]  # the input kinds it reads (data kinds: image, table, text, ...)
    conv: bool = False  # convolutions over images: channels-last memory format pays
    bf16: bool = False  # large matmuls / convolutions: bf16 autocast pays where the hardware has it
    defaults: dict = field(default_factory=dict)  # settings it uses unless the user sets them
    # tune(cfg, spec, n_train, given) -> sentence or None: defaults that depend on the data (small tables)
    tune: Callable[..., str | None] | None = None
    about: str = ""


def _mlp(name, spec, out_dim, cfg):
    from .mlp import MLP

    if spec["kind"] == "sequence":
        if spec.get("variable"):
            raise ConfigError("model 'mlp' needs sequences of one length, but these differ in length; use --model "
                              "cnn or gru.")
        return MLP(spec["shape"][0] * spec["shape"][1], out_dim, cfg.hidden, cfg.activation, cfg.dropout,
                   cfg.batch_norm)
    if spec["kind"] == "table":
        return MLP(spec["n_num"], out_dim, cfg.hidden, cfg.activation, cfg.dropout, cfg.batch_norm,
                   spec["cat_sizes"])
    n = 1
    for s in spec["shape"]:
        n *= s
    return MLP(n, out_dim, cfg.hidden, cfg.activation, cfg.dropout, cfg.batch_norm)


def _cnn(name, spec, out_dim, cfg):
    from .cnn import CNN, CNN1d

    if spec["kind"] == "sequence":  # a 1-D CNN over the steps
        steps, c = spec["shape"]
        return CNN1d(c, out_dim, cfg.channels, cfg.hidden, cfg.activation, cfg.dropout, cfg.batch_norm, steps)
    _images_only(name, spec)
    return CNN(spec["shape"], out_dim, cfg.channels, cfg.hidden, cfg.activation, cfg.dropout, cfg.batch_norm)


def _resnet(name, spec, out_dim, cfg):
    from .resnet import ResNet

    _images_only(name, spec)
    return ResNet(spec["shape"], out_dim, cfg.channels, cfg.depth, cfg.dropout)


def _images_only(name: str, spec: dict) -> None:
    if spec["kind"] != "image":
        raise ConfigError(f"model {name!r} needs images but the data is a {spec['kind']}; use --model mlp.")


def _gan(name, spec, out_dim, cfg):
    from .gan import GAN

    if spec["kind"] != "image":
        raise ConfigError(f"model 'gan' generates images but the data is a {spec['kind']}; give images.")
    return GAN(spec["shape"], n_classes=out_dim, width=cfg.channels[0], clusters=0 if out_dim else (cfg.clusters or 0))


def _recurrent(name, spec, out_dim, cfg):
    from .rnn import build_recurrent

    return build_recurrent(name, spec, out_dim, cfg)


def _transformer(name, spec, out_dim, cfg):
    from .transformer import build_transformer

    return build_transformer(name, spec, out_dim, cfg)


def _dlinear(name, spec, out_dim, cfg):
    from .forecast import build_dlinear

    return build_dlinear(spec, out_dim)


def _crnn(name, spec, out_dim, cfg):
    from .rnn import build_crnn

    return build_crnn(spec, out_dim, cfg)


def _autoencoder(name, spec, out_dim, cfg):
    from .autoencoder import build_autoencoder

    return build_autoencoder(name, spec, cfg)


def _pretrained(name, spec, out_dim, cfg):
    from .pretrained import build

    return build(name, spec, out_dim, cfg)


SMALL_TABLE = 1000  # training rows below which dense models get small-data defaults


def small_data_defaults(cfg: Any, spec: dict, n_train: int, given: set) -> str | None:
    """A few hundred rows overfit a 256-128 MLP in a handful of steps: use a smaller net, smaller batches, more
    epochs and more dropout unless the user set them. Returns the sentence to print, or None."""
    from ..config import fill_defaults

    if spec.get("kind") not in ("table", "array") or n_train >= SMALL_TABLE:
        return None
    batch = cfg.batch_size if "batch_size" in given else 32
    steps = max(1, n_train // batch)  # at least ~300 optimizer steps in all
    changes = fill_defaults(cfg, {"batch_size": 32, "epochs": min(200, max(cfg.epochs, 20, -(-300 // steps))),
                                  "hidden": [64], "dropout": 0.2}, given)
    if not changes:
        return None
    shown = ", ".join(f"{k} {','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in changes.items())
    return f"small data ({n_train} training rows): {shown} (set them to override)"


DENSE = {"hidden": [256, 128]}
RECURRENT = {"hidden": [128], "d_model": 128, "layers": 1}
AUTOENCODER = {"hidden": [512, 256], "channels": [32, 64]}
MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(_mlp, ("table", "array", "image", "sequence"), defaults=DENSE, tune=small_data_defaults),
    "cnn": ModelEntry(_cnn, ("image", "sequence"), conv=True, bf16=True,
                      defaults={"channels": [32, 64, 128], "hidden": [128]}),
    "resnet": ModelEntry(_resnet, ("image",), conv=True, bf16=True, defaults={"channels": [32, 64, 128]}),
    "gan": ModelEntry(_gan, ("image",), defaults={"channels": [32]}),
    "rnn": ModelEntry(_recurrent, ("text", "sequence"), defaults=RECURRENT),
    "lstm": ModelEntry(_recurrent, ("text", "sequence"), defaults=RECURRENT),
    "gru": ModelEntry(_recurrent, ("text", "sequence"), defaults=RECURRENT),
    "transformer": ModelEntry(_transformer, ("text", "sequence"), defaults={"d_model": 128, "heads": 4, "layers": 2}),
    "gpt": ModelEntry(_transformer, ("corpus",), defaults={"d_model": 128, "heads": 4, "layers": 4}),
    "autoencoder": ModelEntry(_autoencoder, ("table", "array", "image"), defaults=AUTOENCODER),
    "conv_autoencoder": ModelEntry(_autoencoder, ("image",), defaults=AUTOENCODER),
    "vae": ModelEntry(_autoencoder, ("table", "array", "image"), defaults=AUTOENCODER),
    "conv_vae": ModelEntry(_autoencoder, ("image",), defaults=AUTOENCODER),
    "dlinear": ModelEntry(_dlinear, ("series",)),
    "crnn": ModelEntry(_crnn, ("audio",), defaults={"channels": [16, 32, 64], "hidden": [64]}),
}
# the model for each input kind when --model is auto
DEFAULT_MODELS = {"image": "cnn", "text": "gru", "corpus": "gpt", "series": "dlinear", "audio": "crnn",
                  "sequence": "cnn", "table": "mlp", "array": "mlp"}


def register(name: str, build: Callable[..., Any], kinds: tuple[str, ...], **options: Any) -> ModelEntry:
    """Add an architecture: `build(name, spec, out_dim, cfg) -> nn.Module` for inputs of `kinds`."""
    MODELS[name] = ModelEntry(build, tuple(kinds), **options)
    return MODELS[name]


def model_names() -> list[str]:
    return ["auto", *MODELS]


def check_model_name(name: str) -> str:
    """`name` if it is auto, a registered model or pretrained:NAME; a ConfigError listing the valid ones."""
    if name.startswith("pretrained:"):
        from .pretrained import check_name

        try:
            return "pretrained:" + check_name(name.split(":", 1)[1])
        except ValueError as e:
            raise ConfigError(f"setting model={name} is not allowed: {e}.") from None
    if name != "auto" and name not in MODELS:
        raise ConfigError(f"setting model={name} is not allowed: unknown model {name!r}; valid: "
                          f"{', '.join(model_names())}.")
    return name


def model_entry(name: str) -> ModelEntry:
    """The registry entry of a model name (pretrained:NAME included)."""
    if name.startswith("pretrained:"):
        from .pretrained import entry

        e = entry(name)
        return ModelEntry(_pretrained, (e.kind,), conv=e.kind == "image", bf16=True, about=e.about)
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; valid: {', '.join(model_names())}, or your own torch.nn.Module.")
    return MODELS[name]


def default_model(spec: dict) -> str:
    """The model for the input kind (DEFAULT_MODELS): images and sequences → cnn, text → gru (bidirectional),
    a text corpus → gpt, a series to forecast → dlinear, audio → crnn, anything else → mlp."""
    return DEFAULT_MODELS.get(spec["kind"], "mlp")


def fill_model_defaults(name: str, cfg: Any) -> None:
    """Write the model's defaults into the settings the user left unset (None)."""
    for k, v in model_entry(name).defaults.items():
        if getattr(cfg, k) is None:
            setattr(cfg, k, list(v) if isinstance(v, list) else v)


def build_model(name: str, spec: dict, out_dim: int, cfg: Any):
    """Build the named architecture for inputs described by `spec` (from the preprocessing)."""
    entry = model_entry(name)
    fill_model_defaults(name, cfg)
    if cfg.moe and not name.startswith("pretrained:"):  # mixture-of-experts layers in place of dense layers
        from .moe import build_moe

        return build_moe(name, spec, out_dim, cfg)
    return entry.build(name, spec, out_dim, cfg)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
