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


# The groups of `layerwise train --help`, in order, each with its one-line description.
GROUPS: dict[str, str] = {
    "data": "where the data come from, and how they are split",
    "task": "what to learn, and with which loss",
    "model": "the architecture and its size",
    "optimisation": "how long and how the weights are trained",
    "regularisation & augmentation": "dropout, weight decay, smoothing, augmentation",
    "text": "tokenizer and lengths for text data and language models",
    "sequences & time series": "forecasting, series classification, recurrent models",
    "audio": "how audio clips become log-mel spectrograms",
    "transfer learning": "pretrained:NAME models: which layers train, and how fast",
    "semi-supervised & synthetic data": "FixMatch; extra images from a trained GAN",
    "mixture of experts": "experts in place of dense or feed-forward layers",
    "GAN": "image generators, --model gan: conditioning on labels or clusters",
    "anomaly & autoencoders": "autoencoder models, --task anomaly and reconstruct",
    "federated learning": "layerwise federated: the clients, the rounds, how the data is dealt out",
    "output & run": "the run folder, checkpoints, logging, seed and hardware",
}
(_DATA, _TASK, _MODEL, _OPTIM, _REGUL, _TEXT, _SEQ, _AUDIO, _TRANSFER, _SEMI, _MOE, _GAN, _ANOMALY, _FED,
 _RUN) = GROUPS


class Setting(NamedTuple):
    name: str
    type: type  # str, int, float, bool or list (of ints)
    default: Any
    help: str  # says "(default: ...)" only where the value alone would not (None, "auto"); the CLI adds it
    bounds: dict = {}  # pydantic constraints: ge, gt, lt, le  # noqa: RUF012 (a NamedTuple field, never mutated)
    choices: tuple = ()
    optional: bool = False
    group: str = _RUN  # one of GROUPS: where `--help` lists the flag


S = Setting
SETTINGS: list[Setting] = [
    # data
    S("data", str, None, "data source: a path or a built-in name (recorded in the run)", optional=True,
      group=_DATA),
    S("target", str, None, "column to predict in a table (default: the last column)", optional=True,
      group=_DATA),
    S("validation", str, None, "validation data (path); the training data is then used whole", optional=True,
      group=_DATA),
    S("test", str, None, "explicit test data (path)", optional=True, group=_DATA),
    S("val_fraction", float, 0.1, "share of the training data held out to validate", {"ge": 0, "lt": 1},
      group=_DATA),
    S("test_fraction", float, 0.2, "share held out to test when no test split is given", {"ge": 0, "lt": 1},
      group=_DATA),
    S("image_size", int, None, "resize images to this size (default: their median size)", {"gt": 0},
      optional=True, group=_DATA),
    S("synthetic", str, None, "add generated images to the training split: a count, or a multiple of it such "
      "as 2x (needs --synthetic-from)", optional=True, group=_SEMI),
    S("synthetic_from", str, None, "run of the conditional generator (gan) that makes the --synthetic images",
      optional=True, group=_SEMI),
    S("augment", str, None, "augment training batches, a comma list of: " + ", ".join(AUGMENTATIONS[1:])
      + "; alone (= default): shift (+flip for colour images), jitter,scale for tables and series",
      optional=True, group=_REGUL),
    S("labels_per_class", int, None, "keep only N labels per class of the training split (the rest unlabelled)",
      {"ge": 1}, optional=True, group=_SEMI),
    S("semi_supervised", bool, False, "FixMatch: also use unlabelled data (--labels-per-class or --unlabelled)",
      group=_SEMI),
    S("unlabelled", str, None, "unlabelled data (path) for semi-supervised training", optional=True,
      group=_SEMI),
    S("confidence", float, 0.95, "pseudo-label confidence threshold", {"gt": 0, "le": 1}, group=_SEMI),
    S("unlabelled_ratio", int, 3, "unlabelled samples per labelled sample in a batch (default: 3, more steps "
      "for the same compute than FixMatch's 7)", {"ge": 1}, group=_SEMI),
    S("unlabelled_weight", float, 1.0, "weight of the unlabelled loss", {"ge": 0}, group=_SEMI),
    # task
    S("task", str, None, "what to learn: classify, regress, generate, reconstruct, anomaly, forecast (default: "
      "inferred from the target)", optional=True, group=_TASK),
    S("loss", str, None, "loss function (default: the task's)", choices=LOSSES, optional=True, group=_TASK),
    S("label_smoothing", float, None, "classification label smoothing (default: 0.1 for images, else 0)",
      {"ge": 0, "lt": 1}, optional=True, group=_REGUL),
    # model
    S("model", str, "auto", "architecture, or pretrained:NAME for a pretrained backbone with a new head (list: "
      "`layerwise models`; default: cnn for images, mlp otherwise)", group=_MODEL),
    S("hidden", list, None, "dense hidden layer sizes, e.g. 256,128", optional=True, group=_MODEL),
    S("activation", str, "relu", "hidden activation", choices=ACTIVATIONS, group=_MODEL),
    S("dropout", float, 0.1, "dropout probability in dense layers", {"ge": 0, "lt": 1}, group=_REGUL),
    S("batch_norm", bool, True, "batch normalisation in hidden layers", group=_MODEL),
    S("channels", list, None, "conv channels per block (cnn) or stage (resnet), e.g. 32,64,128", optional=True,
      group=_MODEL),
    S("depth", int, 2, "residual blocks per stage (resnet)", {"ge": 1, "le": 16}, group=_MODEL),
    S("latent", int, 16, "code size of autoencoder, conv_autoencoder, vae and conv_vae", {"ge": 1},
      group=_ANOMALY),
    S("fpr", float, 0.05, "share of normal validation samples the threshold flags", {"gt": 0, "lt": 1},
      group=_ANOMALY),
    S("normal_class", str, None, "anomaly: the label of normal samples; only they are trained on",
      {"coerce_numbers_to_str": True}, optional=True, group=_ANOMALY),
    S("conditional", bool, False, "condition generation on the class label (sample a chosen class)",
      group=_GAN),
    S("clusters", int, None, "without --conditional: condition on N k-means clusters of the training images, no "
      "labels used (default: one per 100 images, at most 200; 0: off)", {"ge": 0}, optional=True, group=_GAN),
    S("moe", int, None, "N experts replace the hidden layers (mlp) or transformer feed-forwards", {"ge": 2},
      optional=True, group=_MOE),
    S("moe_top_k", int, 2, "experts each sample (token) is routed to", {"ge": 1}, group=_MOE),
    S("moe_balance", float, 0.01, "weight of the load-balancing loss", {"ge": 0}, group=_MOE),
    # sequence models and text
    S("tokenizer", str, None, "text tokenizer fit on the training split: wordpiece, bpe or char (default: "
      "wordpiece; char for --task generate)", optional=True, group=_TEXT),
    S("vocab_size", int, None, "tokenizer vocabulary size (default: 8000; char: every character seen)",
      {"ge": 3},
      optional=True, group=_TEXT),
    S("max_len", int, None, "tokens kept per text (default: the longest training text, at most 256)", {"ge": 1},
      optional=True, group=_TEXT),
    S("block_size", int, None, "context length of the language model in tokens (default: 64)", {"ge": 2},
      optional=True, group=_TEXT),
    S("d_model", int, None, "width of transformer layers and token embeddings (default: 128; gpt 64)",
      {"ge": 4},
      optional=True, group=_MODEL),
    S("heads", int, None, "attention heads of transformer layers (default: 4)", {"ge": 1}, optional=True,
      group=_MODEL),
    S("layers", int, None, "recurrent/transformer layers (default: 1 recurrent, 2 transformer, 4 gpt)",
      {"ge": 1, "le": 48}, optional=True, group=_MODEL),
    S("bidirectional", bool, True, "recurrent models read the sequence both ways", group=_SEQ),
    S("readout", str, "mean", "recurrent readout over the real steps",
      choices=("mean", "max", "last"), group=_SEQ),
    S("cell", str, "gru", "crnn: recurrent layer after the convolutions", choices=("gru", "lstm"), group=_SEQ),
    # time series (--task forecast) and audio
    S("horizon", int, None, "forecast: steps to predict (default: one season, e.g. 24 for hourly data)",
      {"ge": 1},
      optional=True, group=_SEQ),
    S("lookback", int, None, "forecast: past steps the model sees (default: 336, less for short series)",
      {"ge": 1}, optional=True, group=_SEQ),
    S("window", int, None, "classify/regress one long series: windows of N rows, each labelled by its last row "
      "(was --lookback, still accepted for one release)", {"ge": 1}, optional=True, group=_SEQ),
    S("season", int, None, "forecast: season of the seasonal-naive baseline (default: from the time step: 24 "
      "hourly, 7 daily, 12 monthly)", {"ge": 1}, optional=True, group=_SEQ),
    S("series_inputs", str, "all", "forecast inputs (default: all numeric columns)", choices=("all", "target"),
      group=_SEQ),
    S("series_id", str, None, "classify/regress sequences: the column naming the series of a long table (one "
      "sample each)", optional=True, group=_SEQ),
    S("stride", int, None, "--window: rows between training windows (default: window/4)",
      {"ge": 1}, optional=True, group=_SEQ),
    S("fill_gaps", bool, False, "forecast: fill missing timestamps and values by linear interpolation",
      group=_SEQ),
    S("sample_rate", int, None, "resample clips to this rate in Hz (default: the files' most common rate)",
      {"ge": 1000}, optional=True, group=_AUDIO),
    S("clip_seconds", float, None, "pad or crop clips to this length (default: 95th percentile of durations)",
      {"gt": 0}, optional=True, group=_AUDIO),
    S("n_mels", int, 40, "mel bands of the log-mel spectrogram", {"ge": 8, "le": 256}, group=_AUDIO),
    S("spec_augment", bool, False, "SpecAugment time and frequency masks on training spectrograms",
      group=_AUDIO),
    # transfer learning (pretrained:NAME models)
    S("freeze", bool, False, "train only the new head; the backbone stays as it is", group=_TRANSFER),
    S("lr_decay", float, 1.0, "lr factor per layer group below the head, e.g. 0.5", {"gt": 0, "le": 1},
      group=_TRANSFER),
    S("unfreeze_every", int, None, "gradual unfreezing: the head trains alone, then one more layer group from "
      "the top every N epochs", {"ge": 1}, optional=True, group=_TRANSFER),
    # optimisation
    S("epochs", int, 10, "passes over the training data", {"ge": 1}, group=_OPTIM),
    S("batch_size", int, 128, "samples per step", {"ge": 1}, group=_OPTIM),
    S("lr", float, None, "peak learning rate (default: 3e-3 Adam/AdamW, 0.05 SGD, 1e-3 RMSprop)", {"gt": 0},
      optional=True, group=_OPTIM),
    S("optimizer", str, "adamw", "optimizer", choices=OPTIMIZERS, group=_OPTIM),
    S("momentum", float, 0.9, "momentum of SGD and RMSprop", {"ge": 0, "lt": 1}, group=_OPTIM),
    S("nesterov", bool, False, "Nesterov momentum for SGD", group=_OPTIM),
    S("weight_decay", float, 0.01, "weight decay (AdamW: decoupled); not on biases or norms", {"ge": 0},
      group=_REGUL),
    S("schedule", str, "onecycle", "lr schedule", choices=SCHEDULES, group=_OPTIM),
    S("warmup", float, 0.0, "share of steps spent warming up (default: 0; onecycle then uses 0.25)",
      {"ge": 0, "lt": 1}, group=_OPTIM),
    S("step_every", int, 30, "epochs between drops of the step schedule", {"ge": 1}, group=_OPTIM),
    S("step_gamma", float, 0.1, "learning-rate factor at each drop of the step schedule", {"gt": 0, "le": 1},
      group=_OPTIM),
    S("grad_clip", float, None, "clip the gradient norm to this value", {"gt": 0}, optional=True, group=_OPTIM),
    S("precision", str, "auto", "numeric precision (default: auto = bf16 autocast for conv nets where the "
      "hardware has native bf16)", choices=PRECISIONS, group=_OPTIM),
    S("early_stopping", int, None, "stop after this many epochs without validation improvement", {"ge": 1},
      optional=True, group=_OPTIM),
    S("monitor", str, None, "validation metric for early stopping (default: accuracy or rmse)", optional=True,
      group=_OPTIM),
    S("seed", int, 0, "seed for splits, initialisation, shuffling and augmentation", group=_RUN),
    S("device", str, "auto", "cpu, cuda, or auto", group=_RUN),
    S("threads", int, None, "CPU threads for torch (default: torch's choice)", {"ge": 1}, optional=True,
      group=_RUN),
    # federated learning (`layerwise federated`, layerwise.federated)
    S("clients", int, 10, "clients that each hold one shard of the training split", {"ge": 1}, group=_FED),
    S("rounds", int, 20, "rounds of federated averaging", {"ge": 1}, group=_FED),
    S("local_epochs", int, 1, "epochs each selected client trains on its shard per round", {"ge": 1},
      group=_FED),
    S("non_iid", int, None, "deal each client N classes (sorted label chunks, McMahan et al. 2017; default: "
      "an IID random split)", {"ge": 1}, optional=True, group=_FED),
    S("client_fraction", float, 1.0, "share of the clients selected each round", {"gt": 0, "le": 1},
      group=_FED),
    S("workers", int, 1, "processes sharing each batch (torchrun; docs/distributed.md)", {"ge": 1}, group=_RUN),
    # output
    S("out", str, None, "run folder (default: a new folder under runs/)", optional=True, group=_RUN),
    S("checkpoint_minutes", float, 5.0, "minutes between checkpoints within an epoch", {"gt": 0}, group=_RUN),
    S("keep_optimizer", bool, False, "keep a finished run's full checkpoints (optimizer state, the previous one); "
      "without it, more epochs start a fresh optimizer", group=_RUN),
    S("progress", bool, True, "show a progress bar", group=_RUN),
    S("tensorboard", bool, True, "write TensorBoard event files into the run", group=_RUN),
    S("notify", str, None, "tell when the run ends or fails: desktop, webhook:URL, mailto:ADDRESS (SMTP from "
      "$LAYERWISE_SMTP_HOST/PORT/USER/PASSWORD/FROM); comma list", optional=True, group=_RUN),
]
del S, _DATA, _TASK, _MODEL, _OPTIM, _REGUL, _TEXT, _SEQ, _AUDIO, _TRANSFER, _SEMI, _MOE, _GAN, _ANOMALY, _FED, _RUN

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
