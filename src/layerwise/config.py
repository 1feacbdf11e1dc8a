"""The one settings schema: Python keywords, CLI flags and YAML files all name these fields.

The schema is a plain table (SETTINGS) so that the command line can list it without importing pydantic;
the validated `Config` class is built from it on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
ACTIVATIONS = ("relu", "leaky_relu", "gelu", "tanh", "sigmoid")
LOSSES = ("cross_entropy", "mse", "mae", "huber")
PRECISIONS = ("auto", "fp32", "bf16")
# augmentation policies (--augment shift,mixup,...); "default": shift (+flip for colour) for images,
# jitter,scale for tables and series
AUGMENTATIONS = ("default", "shift", "flip", "randaugment", "cutout", "mixup", "cutmix", "jitter", "scale")


class Setting(NamedTuple):
    name: str
    type: type  # str, int, float, bool or list (of ints)
    default: Any
    help: str
    bounds: dict = {}  # pydantic constraints: ge, gt, lt, le  # noqa: RUF012 (a NamedTuple field, never mutated)
    choices: tuple = ()
    optional: bool = False


S = Setting
SETTINGS: list[Setting] = [
    # data
    S("data", str, None, "data source: a path or a built-in name (recorded in the run)", optional=True),
    S("target", str, None, "column to predict in a table (default: the last column)", optional=True),
    S("validation", str, None, "explicit validation data (path); the training data is then used whole", optional=True),
    S("test", str, None, "explicit test data (path)", optional=True),
    S("val_fraction", float, 0.1, "share of the training data held out to validate", {"ge": 0, "lt": 1}),
    S("test_fraction", float, 0.2, "share held out to test when no test split is given", {"ge": 0, "lt": 1}),
    S("image_size", int, None, "resize images to this size (default: their median size)", {"gt": 0}, optional=True),
    S("synthetic", str, None, "add generated images to the training split: a count, or a multiple of it "
      "such as 2x (needs --synthetic-from)", optional=True),
    S("synthetic_from", str, None, "run of a trained conditional generator (gan) that makes the --synthetic "
      "images", optional=True),
    S("augment", str, None, "augmentation of training batches, a comma list of: " + ", ".join(AUGMENTATIONS)
      + " (--augment alone: default)", optional=True),
    S("labels_per_class", int, None, "keep only N labels per class of the training split (the rest unlabelled)",
      {"ge": 1}, optional=True),
    S("semi_supervised", bool, False, "FixMatch: also learn from unlabelled data (--labels-per-class or "
      "--unlabelled)"),
    S("unlabelled", str, None, "unlabelled data (path) for semi-supervised training", optional=True),
    S("confidence", float, 0.95, "semi-supervised: pseudo-label confidence threshold", {"gt": 0, "le": 1}),
    S("unlabelled_ratio", int, 3, "semi-supervised: unlabelled samples per labelled sample in a batch (FixMatch "
      "used 7; 3 gives more steps for the same compute)", {"ge": 1}),
    S("unlabelled_weight", float, 1.0, "semi-supervised: weight of the unlabelled loss", {"ge": 0}),
    # task
    S("task", str, None, "what to learn: classify, regress, generate, reconstruct, anomaly, forecast (default: "
      "inferred from the target)", optional=True),
    S("loss", str, None, "loss function (default: the task's)", choices=LOSSES, optional=True),
    S("label_smoothing", float, None, "classification label smoothing (default 0.1 for images, else 0)",
      {"ge": 0, "lt": 1}, optional=True),
    # model
    S("model", str, "auto", "architecture (default: cnn for images, mlp otherwise), or pretrained:NAME for a "
      "pretrained backbone with a new head (list: `layerwise models`)"),
    S("hidden", list, None, "dense hidden layer sizes, e.g. 256,128", optional=True),
    S("activation", str, "relu", "activation of hidden layers", choices=ACTIVATIONS),
    S("dropout", float, 0.1, "dropout probability in dense layers", {"ge": 0, "lt": 1}),
    S("batch_norm", bool, True, "batch normalisation in hidden layers"),
    S("channels", list, None, "conv channels per block (cnn) or stage (resnet), e.g. 32,64,128", optional=True),
    S("depth", int, 2, "residual blocks per stage (resnet)", {"ge": 1, "le": 16}),
    S("latent", int, 16, "size of the code of autoencoders (autoencoder, conv_autoencoder, vae, conv_vae)", {"ge": 1}),
    S("fpr", float, 0.05, "anomaly: share of normal validation samples the threshold flags", {"gt": 0, "lt": 1}),
    S("normal_class", str, None, "anomaly: the label of normal samples; only they are trained on",
      {"coerce_numbers_to_str": True}, optional=True),
    S("conditional", bool, False, "gan: condition generation on the class label (sample a chosen class)"),
    S("clusters", int, None, "gan without --conditional: condition it on this many k-means clusters of the "
      "training images, no labels used (self-conditioning; default: one per 100 images, at most 200; 0: off)",
      {"ge": 0}, optional=True),
    S("moe", int, None, "mixture of experts: this many experts replace the dense hidden layers (mlp) or the "
      "feed-forward of transformer blocks", {"ge": 2}, optional=True),
    S("moe_top_k", int, 2, "experts each sample (token) is routed to", {"ge": 1}),
    S("moe_balance", float, 0.01, "weight of the load-balancing loss of mixture-of-experts layers", {"ge": 0}),
    # sequence models and text
    S("tokenizer", str, None, "text tokenizer trained on the training split: wordpiece, bpe or char (default: "
      "wordpiece for text columns, char for --task generate)", optional=True),
    S("vocab_size", int, None, "tokenizer vocabulary size (default 8000; char: every character seen)", {"ge": 3},
      optional=True),
    S("max_len", int, None, "tokens kept per text (default: the longest training text, at most 256)", {"ge": 1},
      optional=True),
    S("block_size", int, None, "context length of the language model in tokens (default 64)", {"ge": 2},
      optional=True),
    S("d_model", int, None, "width of transformer layers and token embeddings (default 128; gpt 64)", {"ge": 4},
      optional=True),
    S("heads", int, None, "attention heads of transformer layers (default 4)", {"ge": 1}, optional=True),
    S("layers", int, None, "stacked recurrent or transformer layers (default: 1 recurrent, 2 transformer, "
      "4 gpt)", {"ge": 1, "le": 48}, optional=True),
    S("bidirectional", bool, True, "recurrent models read the sequence both ways"),
    S("readout", str, "mean", "recurrent models: pool the states over the real steps (mean, max) or take the "
      "last state", choices=("mean", "max", "last")),
    S("cell", str, "gru", "crnn: the recurrent layer after the convolutions", choices=("gru", "lstm")),
    # time series (--task forecast) and audio
    S("horizon", int, None, "forecast: steps to predict (default: one season, e.g. 24 for hourly data)", {"ge": 1},
      optional=True),
    S("lookback", int, None, "forecast: past steps the model sees (default: 336, less for short series)",
      {"ge": 1}, optional=True),
    S("window", int, None, "classify/regress one long series: windows of this many rows, each labelled by its "
      "last row (was --lookback, which still works for one release)", {"ge": 1}, optional=True),
    S("season", int, None, "forecast: season length of the seasonal-naive baseline (default: from the time step: "
      "24 hourly, 7 daily, 12 monthly)", {"ge": 1}, optional=True),
    S("series_inputs", str, "all", "forecast: all numeric columns as inputs, or the target alone",
      choices=("all", "target")),
    S("series_id", str, None, "classify/regress sequences: the column naming the series of a long table; each "
      "series is one sample", optional=True),
    S("stride", int, None, "classify/regress windows (--window): rows between training windows (default "
      "window/4)", {"ge": 1}, optional=True),
    S("fill_gaps", bool, False, "forecast: fill missing timestamps and values by linear interpolation"),
    S("sample_rate", int, None, "audio: resample every clip to this rate in Hz (default: the most common rate of "
      "the files)", {"ge": 1000}, optional=True),
    S("clip_seconds", float, None, "audio: pad or crop every clip to this length (default: the 95th percentile "
      "of the durations)", {"gt": 0}, optional=True),
    S("n_mels", int, 40, "audio: mel bands of the log-mel spectrogram", {"ge": 8, "le": 256}),
    S("spec_augment", bool, False, "audio: SpecAugment time and frequency masks on training spectrograms"),
    # transfer learning (pretrained:NAME models)
    S("freeze", bool, False, "pretrained models: train only the new head; the backbone stays as it is"),
    S("lr_decay", float, 1.0, "pretrained models: learning-rate factor per layer group below the head "
      "(discriminative learning rates, e.g. 0.5)", {"gt": 0, "le": 1}),
    S("unfreeze_every", int, None, "pretrained models: gradual unfreezing: the head trains alone, then one more "
      "layer group from the top every N epochs", {"ge": 1}, optional=True),
    # optimisation
    S("epochs", int, 10, "passes over the training data", {"ge": 1}),
    S("batch_size", int, 128, "samples per step", {"ge": 1}),
    S("lr", float, None, "peak learning rate (default: 3e-3 Adam/AdamW, 0.05 SGD, 1e-3 RMSprop)", {"gt": 0},
      optional=True),
    S("optimizer", str, "adamw", "optimizer", choices=OPTIMIZERS),
    S("momentum", float, 0.9, "momentum of SGD and RMSprop", {"ge": 0, "lt": 1}),
    S("nesterov", bool, False, "Nesterov momentum for SGD"),
    S("weight_decay", float, 0.01, "weight decay (decoupled for AdamW); not on biases and norms", {"ge": 0}),
    S("schedule", str, "onecycle", "learning-rate schedule", choices=SCHEDULES),
    S("warmup", float, 0.0, "share of steps spent warming up (onecycle: 0.25 when 0)", {"ge": 0, "lt": 1}),
    S("step_every", int, 30, "epochs between drops of the step schedule", {"ge": 1}),
    S("step_gamma", float, 0.1, "learning-rate multiplier at each drop of the step schedule", {"gt": 0, "le": 1}),
    S("grad_clip", float, None, "clip the gradient norm to this value", {"gt": 0}, optional=True),
    S("precision", str, "auto", "auto: bf16 autocast for conv nets where the hardware has native bf16",
      choices=PRECISIONS),
    S("early_stopping", int, None, "stop after this many epochs without validation improvement", {"ge": 1},
      optional=True),
    S("monitor", str, None, "validation metric for early stopping (default: accuracy or rmse)", optional=True),
    S("seed", int, 0, "seed for splits, initialisation, shuffling and augmentation"),
    S("device", str, "auto", "cpu, cuda, or auto"),
    S("threads", int, None, "CPU threads for torch (default: torch's choice)", {"ge": 1}, optional=True),
    # output
    S("out", str, None, "run folder (default: a new folder under runs/)", optional=True),
    S("checkpoint_minutes", float, 5.0, "minutes between checkpoints within an epoch", {"gt": 0}),
    S("keep_optimizer", bool, False, "keep the optimizer state in the checkpoint of a finished run (3x its size "
      "with Adam); without it, continuing the run with more epochs starts a fresh optimizer"),
    S("progress", bool, True, "show a progress bar"),
    S("tensorboard", bool, True, "write TensorBoard event files into the run"),
]
del S

_CONFIG = None


def __getattr__(name: str) -> Any:
    if name == "Config":
        return config_class()
    raise AttributeError(name)


def config_class():
    """The pydantic model built from SETTINGS (once): unknown names and out-of-range values are rejected."""
    global _CONFIG
    if _CONFIG is not None:
        return _CONFIG
    from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

    fields = {}
    for s in SETTINGS:
        t = list[int] if s.type is list else s.type
        fields[s.name] = (t | None if s.optional else t, Field(s.default, description=s.help, **s.bounds))

    class Base(BaseModel):
        model_config = ConfigDict(extra="forbid", validate_assignment=True)

        @field_validator(*[s.name for s in SETTINGS if s.choices], mode="before", check_fields=False)
        @classmethod
        def _choice(cls, v, info):
            if v is None:
                return v
            allowed = next(s.choices for s in SETTINGS if s.name == info.field_name)
            key = str(v).lower().replace("-", "_")
            if key not in allowed:
                raise ValueError(f"unknown {info.field_name} {v!r}; valid: {', '.join(allowed)}")
            return key

        @field_validator(*[s.name for s in SETTINGS if s.type is list], mode="before", check_fields=False)
        @classmethod
        def _int_list(cls, v):
            if isinstance(v, str):
                try:
                    return [int(x) for x in v.replace(" ", "").split(",") if x]
                except ValueError:
                    raise ValueError(f"expected comma-separated whole numbers such as 256,128, got {v!r}") from None
            return v

        @field_validator("task", "model", mode="before", check_fields=False)
        @classmethod
        def _name(cls, v):  # checked against the registries of tasks and models by api.resolve_config
            return v if v is None else str(v).strip().lower().replace("-", "_")

        @field_validator("augment", mode="before", check_fields=False)
        @classmethod
        def _augment(cls, v):
            if v is None or v is False or str(v).lower() in ("", "none", "off", "false"):
                return None
            if v is True or str(v).lower() == "true":
                return "default"
            names = [x.strip().lower().replace("_", "").replace("-", "") for x in str(v).split(",") if x.strip()]
            unknown = [x for x in names if x not in AUGMENTATIONS]
            if unknown:
                raise ValueError(f"unknown augmentation policy {unknown[0]!r}; valid: {', '.join(AUGMENTATIONS)}")
            return ",".join(dict.fromkeys(names))

    _CONFIG = create_model("Config", __base__=Base, __doc__="Every setting of a training run.", **fields)
    return _CONFIG


def make_config(base: dict | None = None, **overrides: Any):
    """Validate settings (from a dict, a YAML file's contents, or keywords) into a Config."""
    from pydantic import ValidationError

    from .errors import ConfigError

    try:
        values = {k: str(v) if isinstance(v, Path) else v for k, v in {**(base or {}), **overrides}.items()}
        return config_class()(**values)
    except ValidationError as e:
        raise ConfigError(_explain(e)) from None


def _explain(e) -> str:
    parts = []
    for err in e.errors():
        name = ".".join(str(x) for x in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden":
            close = closest(name, [s.name for s in SETTINGS])
            parts.append(f"unknown setting {name!r}; did you mean {close!r}?" if close else
                         f"unknown setting {name!r}; valid settings: {', '.join(s.name for s in SETTINGS)}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"setting {name}={err.get('input')} is not allowed: {msg}")
    text = "; ".join(parts)
    return text if text.endswith("?") else text + "."


def closest(name: str, valid: list[str]) -> str | None:
    """The valid name `name` most likely means (a typo, a missing s, - for _), or None (difflib)."""
    from difflib import get_close_matches

    def norm(x: str) -> str:
        return x.lower().replace("-", "_")

    by_norm = {norm(v): v for v in valid}
    match = get_close_matches(norm(name), list(by_norm), n=1, cutoff=0.7)
    return by_norm[match[0]] if match else None


def load_yaml(path: str | Path) -> dict:
    """Read a YAML settings file into a dict (safe loader, no objects)."""
    import yaml

    from .errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist; give the path of a YAML file.")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML ({e.__class__.__name__}); fix the syntax.") \
            from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of setting: value.")
    return {k.replace("-", "_"): v for k, v in data.items()}


def fill_defaults(cfg, defaults: dict, given: set | None = None) -> dict:
    """Set each setting in `defaults` that the user did not give (not in `given`, by default the settings
    named when the config was made or set since) to its default; returns the settings that changed.

    The one helper behind every "defaults unless you set them" rule (tasks, data kinds, models)."""
    given = cfg.model_fields_set if given is None else given
    changed = {k: v for k, v in defaults.items() if k not in given and getattr(cfg, k) != v}
    for k, v in changed.items():
        setattr(cfg, k, v)
    return changed


def describe_defaults(what: str, changed: dict) -> str | None:
    """The one sentence that says which defaults were filled in, e.g. "text defaults: epochs 5 (set them to
    override)"; None when nothing changed."""
    if not changed:
        return None
    shown = ", ".join(f"{k} {','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                      for k, v in changed.items())
    return f"{what}: {shown} (set them to override)"


def dump_yaml(cfg) -> str:
    """The resolved settings as YAML, in the schema's order."""
    import yaml

    return yaml.safe_dump(cfg.model_dump(), sort_keys=False)
