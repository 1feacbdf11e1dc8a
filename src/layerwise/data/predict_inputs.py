"""Inputs given to predict (arrays, a DataFrame, image files, a CSV or .npz path) as Data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .images import is_image_path, read_images
from .sources import Data, from_arrays
from .tables import read_table


def to_data(x: Any, pre: Any, target: str | None) -> Data:
    """Turn predict inputs into Data of the kind the model was trained on."""
    kind = pre.spec()["kind"]
    if isinstance(x, Data):
        return x
    if hasattr(pre, "read_inputs"):  # preprocessors that read their own inputs (series history, WAV files)
        return pre.read_inputs(x)
    if kind == "text":  # strings are texts (or a CSV / .txt file of them)
        from .textpre import text_inputs

        return text_inputs(x, pre, target)
    if isinstance(x, pd.DataFrame):
        return Data("table", x.drop(columns=[target], errors="ignore"), None)
    if isinstance(x, (str, Path)):
        x = [x]
    if isinstance(x, (list, tuple)) and x and all(isinstance(p, (str, Path)) for p in x):
        paths = [Path(p) for p in x]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise DataError(f"input file {missing[0]!r} does not exist; check the path.")
        if len(paths) == 1 and paths[0].suffix.lower() in (".csv", ".tsv", ".parquet"):
            return Data("table", read_table(paths[0]).drop(columns=[target], errors="ignore"), None)
        if len(paths) == 1 and paths[0].suffix.lower() == ".npz":
            z = np.load(paths[0], allow_pickle=False)
            for key in ("x_test", "x", "X", "X_test", "x_train"):
                if key in z.files:
                    return from_arrays(z[key], None)
            raise DataError(f"{paths[0].name!r} holds {z.files}; expected an array named x or x_test.")
        files = [f for p in paths for f in (sorted(p.rglob("*")) if p.is_dir() else [p]) if is_image_path(f)]
        if kind != "image" or not files:
            raise DataError(f"the model expects {'image files' if kind == 'image' else 'a table (CSV)'} "
                            f"but got {', '.join(map(str, paths[:3]))}.")
        imgs, _ = read_images(files, size=tuple(pre.shape[1:]), channels=pre.shape[0])
        return Data("image", imgs, None)
    if isinstance(x, dict) and kind == "table":
        return Data("table", pd.DataFrame(x), None)
    arr = np.asarray(x)
    if (kind == "image" and arr.ndim == 2) or (kind == "array" and arr.ndim == 1):  # a single sample
        arr = arr[None]
    return from_arrays(arr, None)
