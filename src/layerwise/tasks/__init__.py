"""Tasks: what is learned. Each builds the output size, the loss, metrics and decoding."""

from __future__ import annotations

from ..errors import ConfigError
from .classify import Classify
from .forecast import Forecast
from .gan import GenerateImages
from .generate import Generate
from .infer import infer_task
from .reconstruct import Anomaly, Reconstruct
from .regress import Regress

TASKS = {"classify": Classify, "regress": Regress, "gan": GenerateImages, "generate": Generate,
         "reconstruct": Reconstruct, "anomaly": Anomaly, "forecast": Forecast}


def make_task(name: str, **settings):
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; valid: {', '.join(TASKS)}.")
    return TASKS[name](**settings)


def task_from_dict(d: dict):
    return TASKS[d["name"]].from_dict(d)


__all__ = ["Classify", "Regress", "infer_task", "make_task", "task_from_dict"]
