"""Tasks: what is learned. Each builds the output size, the loss, metrics and decoding."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .classify import Classify
from .forecast import Forecast
from .gan import GenerateImages
from .generate import Generate
from .reconstruct import Anomaly, Reconstruct
from .regress import Regress

TASKS = {"classify": Classify, "regress": Regress, "gan": GenerateImages, "generate": Generate,
         "reconstruct": Reconstruct, "anomaly": Anomaly, "forecast": Forecast}


def infer_task(y: np.ndarray) -> tuple[str, str]:
    """Pick classify or regress from the target values; returns (name, reason)."""
    import pandas as pd

    s = pd.Series(y).dropna()
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return "classify", f"the target holds labels ({s.nunique()} distinct)"
    values = s.to_numpy(dtype=np.float64)
    whole = np.all(values == np.round(values))
    n = np.unique(values).size
    if whole and n <= max(20, int(0.05 * len(values)) if len(values) < 400 else 20):
        return "classify", f"the target holds {n} distinct whole numbers"
    return "regress", f"the target holds {n} distinct numbers"


def make_task(name: str, **settings):
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; valid: {', '.join(TASKS)}.")
    return TASKS[name](**settings)


def task_from_dict(d: dict):
    return TASKS[d["name"]].from_dict(d)


__all__ = ["Classify", "Regress", "infer_task", "make_task", "task_from_dict"]
