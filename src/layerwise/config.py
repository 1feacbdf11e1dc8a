"""The one settings schema: Python keywords, CLI flags and YAML files all name these fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

TASKS = ("classify", "regress")
MODELS = ("auto", "mlp", "cnn", "resnet")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
ACTIVATIONS = ("relu", "leaky_relu", "gelu", "tanh", "sigmoid")
LOSSES = ("cross_entropy", "mse", "mae", "huber")
PRECISIONS = ("auto", "fp32", "bf16")


class Config(BaseModel):
    """Every setting of a training run, with its default. Unknown names are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # data
    data: Optional[str] = Field(None, description="data source: a path or a built-in name (recorded in the run)")
    target: Optional[str] = Field(None, description="column to predict in a table")
    validation: Optional[str] = Field(None, description="explicit validation data (path); train data used whole")
    test: Optional[str] = Field(None, description="explicit test data (path)")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of the training data held out to validate")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share held out to test when no test split is given")
    image_size: Optional[int] = Field(None, gt=0, description="resize images to this size (default: median size)")
    augment: bool = Field(False, description="random shifts (and flips for photos) on training images")
    # task
    task: Optional[str] = Field(None, description=f"one of {', '.join(TASKS)} (default: inferred from the target)")
    loss: Optional[str] = Field(None, description=f"one of {', '.join(LOSSES)} (default: from the task)")
    label_smoothing: Optional[float] = Field(None, ge=0.0, lt=1.0, description="for classify (default 0.1 for images)")
    # model
    model: str = Field("auto", description=f"one of {', '.join(MODELS)} (default: from the data)")
    hidden: Optional[list[int]] = Field(None, description="hidden layer sizes of the MLP, e.g. 256,128")
    activation: str = Field("relu", description=f"one of {', '.join(ACTIVATIONS)}")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout probability in dense layers")
    batch_norm: bool = Field(True, description="batch normalisation in hidden layers")
    channels: Optional[list[int]] = Field(None, description="conv channels per block (cnn) or per stage (resnet)")
    depth: int = Field(2, ge=1, le=16, description="residual blocks per stage (resnet)")
    # optimisation
    epochs: int = Field(10, ge=1, description="passes over the training data")
    batch_size: int = Field(128, ge=1, description="samples per step")
    lr: Optional[float] = Field(None, gt=0.0, description="peak learning rate (default: 3e-3 for Adam-type, 0.05 for SGD)")
    optimizer: str = Field("adamw", description=f"one of {', '.join(OPTIMIZERS)}")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum (or RMSprop momentum)")
    nesterov: bool = Field(False, description="Nesterov momentum for SGD")
    weight_decay: float = Field(0.01, ge=0.0, description="L2 penalty (decoupled for AdamW)")
    schedule: str = Field("onecycle", description=f"one of {', '.join(SCHEDULES)}")
    warmup: float = Field(0.0, ge=0.0, lt=1.0, description="share of steps spent warming up the learning rate")
    step_every: int = Field(30, ge=1, description="epochs between lr drops for the step schedule")
    step_gamma: float = Field(0.1, gt=0.0, le=1.0, description="lr multiplier at each drop of the step schedule")
    grad_clip: Optional[float] = Field(None, gt=0.0, description="clip the gradient norm to this value")
    precision: str = Field("auto", description=f"one of {', '.join(PRECISIONS)}")
    early_stopping: Optional[int] = Field(None, ge=1, description="stop after this many epochs without improvement")
    monitor: Optional[str] = Field(None, description="validation metric for early stopping (default: task's)")
    seed: int = Field(0, description="seed for splits, initialisation and shuffling")
    device: str = Field("auto", description="cpu, cuda, or auto")
    threads: Optional[int] = Field(None, ge=1, description="CPU threads for torch (default: torch's choice)")
    # output
    out: Optional[str] = Field(None, description="run folder (default: a new folder under runs/)")
    checkpoint_minutes: float = Field(5.0, gt=0, description="minutes between checkpoints within an epoch")
    progress: bool = Field(True, description="show a progress bar")
    tensorboard: bool = Field(True, description="write TensorBoard event files into the run")

    @field_validator("task")
    @classmethod
    def _task(cls, v):
        return _one_of("task", v, TASKS)

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        return v if not isinstance(v, str) else _one_of("model", v, MODELS)

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, v):
        return _one_of("optimizer", v, OPTIMIZERS)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v):
        return _one_of("schedule", v, SCHEDULES)

    @field_validator("activation")
    @classmethod
    def _activation(cls, v):
        return _one_of("activation", v, ACTIVATIONS)

    @field_validator("loss")
    @classmethod
    def _loss(cls, v):
        return _one_of("loss", v, LOSSES)

    @field_validator("precision")
    @classmethod
    def _precision(cls, v):
        return _one_of("precision", v, PRECISIONS)

    @field_validator("hidden", "channels", mode="before")
    @classmethod
    def _int_list(cls, v):
        if isinstance(v, str):
            try:
                return [int(s) for s in v.replace(" ", "").split(",") if s]
            except ValueError:
                raise ValueError(f"expected comma-separated whole numbers such as 256,128, got {v!r}") from None
        return v


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> Any:
    if value is None:
        return None
    v = str(value).lower().replace("-", "_")
    if v not in allowed:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(allowed)}")
    return v


def make_config(base: Optional[dict] = None, **overrides: Any) -> Config:
    """Validate settings (from a dict, a YAML file's contents, or keywords) into a Config."""
    values = {**(base or {}), **{k: v for k, v in overrides.items()}}
    try:
        return Config(**values)
    except ValidationError as e:
        raise ConfigError(_explain(e)) from None


def _explain(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        name = ".".join(str(x) for x in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown setting {name!r}; valid settings: {', '.join(Config.model_fields)}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"setting {name}={err.get('input')!r} is not allowed: {msg}")
    return "; ".join(parts) + "."


def load_yaml(path: str | Path) -> dict:
    """Read a YAML settings file into a dict (safe loader, no objects)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist; give the path of a YAML file.")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML ({e.__class__.__name__}); fix the syntax.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of setting: value.")
    return {k.replace("-", "_"): v for k, v in data.items()}


def dump_yaml(cfg: Config) -> str:
    """The resolved settings as YAML, in the schema's field order."""
    import yaml

    return yaml.safe_dump(cfg.model_dump(), sort_keys=False)
