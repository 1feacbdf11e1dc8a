"""Tasks: what is learned. The registry of tasks by name; the interface is tasks/base.py's Task.

A new task is one file with a Task subclass plus one line in TASKS (or `register(MyTask)` from your code).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, say
from .base import Task
from .classify import Classify
from .forecast import Forecast
from .gan import GenerateImages
from .generate import Generate
from .infer import infer_task
from .reconstruct import Anomaly, Reconstruct
from .regress import Regress

TASKS: dict[str, type[Task]] = {"classify": Classify, "regress": Regress, "gan": GenerateImages,
                                "generate": Generate, "reconstruct": Reconstruct, "anomaly": Anomaly,
                                "forecast": Forecast}
# `--task generate` learns to make more of what the data is: the generator is picked by the data kind here
GENERATORS = {"corpus": "generate", "image": "gan"}


class Supervised(Task):
    """No --task on labelled data: classify or regress, inferred from the targets (said in one line)."""

    @classmethod
    def create(cls, cfg: Any, y: np.ndarray | None = None, kind: str | None = None, quiet: bool = False) -> Task:
        cfg.task, why = infer_task(y)
        say(f"task: {cfg.task} ({why}; set --task to change)", quiet)
        return TASKS[cfg.task].create(cfg, y, kind, quiet)


def register(task: type[Task]) -> type[Task]:
    """Add a Task subclass to the registry under its `name` (usable as a decorator)."""
    if not (isinstance(task, type) and issubclass(task, Task)) or not task.name:
        raise ConfigError("a task to register must be a subclass of layerwise.tasks.Task with a name.")
    TASKS[task.name] = task
    return task


def task_class(cfg: Any, data: Any, quiet: bool = False) -> type[Task]:
    """The task class that learns from `data` with these settings: --task by name, `generate` by the data kind
    (GENERATORS), a text corpus alone means generate, `--model gan` means images; no --task: inferred later
    from the targets (Supervised)."""
    if data.kind == "corpus" and cfg.task is None:
        cfg.task = "generate"
        say("task: generate (the data is a text corpus: a language model learns it; set --task to change)", quiet)
    if cfg.model == "gan":
        return TASKS["gan"]
    if cfg.task == "generate" and cfg.model == "auto":
        return TASKS[GENERATORS.get(data.kind, "generate")]
    if cfg.task is None:
        return Supervised
    if cfg.task not in TASKS:
        raise ConfigError(f"unknown task {cfg.task!r}; valid: {', '.join(task_names())}.")
    return TASKS[cfg.task]


def task_names() -> list[str]:
    """The names a user gives as --task (the image generator is reached as `generate`)."""
    return [n for n in TASKS if n != "gan"]


def make_task(name: str, **settings: Any) -> Task:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; valid: {', '.join(TASKS)}.")
    return TASKS[name](**settings)


def task_from_dict(d: dict) -> Task:
    if d.get("name") not in TASKS:
        raise DataError(f"this run's task {d.get('name')!r} is not registered here; register it before loading "
                        "the run (layerwise.tasks.register).")
    return TASKS[d["name"]].from_dict(d)


__all__ = ["TASKS", "Classify", "Regress", "Task", "infer_task", "make_task", "register", "task_class",
           "task_from_dict"]


def prepare_data(cfg: Any, data: Any = None, validation: Any = None, test: Any = None, quiet: bool = False):
    """Read the data (data/sources.py: `data`, else cfg.data; explicit validation and test data, given as
    anything `data` takes, else cfg.validation / cfg.test) and let its task prepare it: a data.Prepared."""
    from ..data.sources import load, load_like

    d = load(data if data is not None else cfg.data, target=cfg.target, image_size=cfg.image_size,
             sample_rate=cfg.sample_rate, clip_seconds=cfg.clip_seconds)
    for note in d.notes:
        say(note, quiet)
    validation = validation if validation is not None else cfg.validation
    test = test if test is not None else cfg.test
    if validation is not None:
        d.validation = load_like(validation, d, cfg.target)
    if test is not None:
        d.test = load_like(test, d, cfg.target)
    return task_class(cfg, d, quiet).prepare(cfg, d, quiet)
