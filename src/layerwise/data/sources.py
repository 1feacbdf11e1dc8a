"""Turn what a user has (a name, a path, arrays, a DataFrame) into a Data object."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from . import builtin
from .images import is_image_path, read_images, scan_folder
from .tables import read_table


@dataclass
class Data:
    """Raw inputs and targets before splitting: kind is image, table or array.

    x is uint8/float [N, H, W, C] for images, a DataFrame for tables, float [N, d] for arrays;
    y holds the raw targets (labels or numbers). `test` is a split the source came with.
    """

    kind: str
    x: Any
    y: np.ndarray | None
    target: str | None = None
    test: Data | None = None
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)


def load(source: Any, target: str | None = None, image_size: int | None = None, sample_rate: int | None = None,
         clip_seconds: float | None = None) -> Data:
    """Load data from a built-in name ("digits", "mnist"), a path, a DataFrame or an (X, y) pair.

    Example: ``lw.load("digits")``, ``lw.load("table.csv", target="price")``, ``lw.load((X, y))``.
    Audio is resampled to `sample_rate` and padded or cropped to `clip_seconds` when they are given.
    """
    if isinstance(source, Data):
        return source
    if isinstance(source, pd.DataFrame):
        return _from_frame(source, target, None)
    if isinstance(source, tuple) and len(source) == 2:
        return from_arrays(np.asarray(source[0]), np.asarray(source[1]))
    if isinstance(source, (str, Path)):
        name = str(source)
        if name.lower() in builtin.NAMES:
            got = builtin.NAMES[name.lower()]()
            if isinstance(got, pd.DataFrame):
                d = _from_frame(got, target or "target", None)
            elif isinstance(got, Data):  # e.g. fsdd: audio with its own test split
                from .audio import reclip

                d = reclip(got, sample_rate, clip_seconds)
            else:
                d = from_arrays(got["x"], got["y"]) if isinstance(got, dict) else _from_npz(Path(got))
            d.source = name.lower()
            return d
        path = Path(name).expanduser()
        if not path.exists():
            raise DataError(
                f"{name!r} is neither a file, a folder, nor a built-in data set ({', '.join(builtin.NAMES)}); "
                "check the path."
            )
        d = _from_path(path, target, image_size, sample_rate, clip_seconds)
        d.source = str(path)
        return d
    raise DataError(
        f"cannot use a {type(source).__name__} as data; give a path, a built-in name, a pandas DataFrame "
        "or an (X, y) pair of arrays."
    )


def _from_path(path: Path, target: str | None, image_size: int | None, sample_rate: int | None = None,
               clip_seconds: float | None = None) -> Data:
    if path.is_dir():
        from . import audio

        if audio.has_audio(path):  # one sub-folder of WAV files per class
            return audio.load_folder(path, sample_rate, clip_seconds)
        files, labels = scan_folder(path)
        size = (image_size, image_size) if image_size else None
        x, kept = read_images(files, size)
        return Data("image", x, np.array(labels)[kept], notes=[f"{len(kept)} images of {x.shape[1]}x{x.shape[2]}"])
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _from_npz(path)
    if suffix == ".txt":  # a corpus of text, unless its first lines look like a table
        from .textpre import corpus_data, is_table_text

        if not is_table_text(path):
            return corpus_data(path)
    if suffix in (".csv", ".tsv", ".tab", ".txt", ".parquet"):
        return _from_frame(read_table(path), target, path.parent)
    raise DataError(
        f"do not know how to read {path.name!r}; use a CSV/TSV/Parquet table, an .npz file, or a folder of images."
    )


def _from_npz(path: Path) -> Data:
    try:
        z = np.load(path, allow_pickle=False)
        arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise DataError(f"could not read {str(path)!r} as .npz ({e}); save it with numpy.savez.") from None
    for xs, ys, xt, yt in (("x_train", "y_train", "x_test", "y_test"), ("x", "y", None, None),
                           ("X", "y", None, None), ("X_train", "y_train", "X_test", "y_test")):
        if xs in arrays and ys in arrays:
            d = from_arrays(arrays[xs], arrays[ys])
            if xt in arrays and yt in arrays:
                d.test = from_arrays(arrays[xt], arrays[yt])
            return d
    raise DataError(
        f"{path.name!r} holds arrays {sorted(arrays)}; expected x_train/y_train (and x_test/y_test) or x/y."
    )


def from_arrays(x: np.ndarray, y: np.ndarray | None) -> Data:
    """Arrays to Data: 2-D features are a plain array, 3-D/4-D are images (NHW, NHWC or NCHW)."""
    if x.dtype == object or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"features must be numbers, got an array of {x.dtype}; convert them first.")
    if y is not None and len(x) != len(y):
        raise DataError(f"features have {len(x)} rows but targets have {len(y)}; give one target per row.")
    if x.ndim == 1:
        x = x[:, None]
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(1))[:5].tolist()
        raise DataError(f"the features hold NaN or infinite values (rows {bad}); remove or impute them first.")
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
    if x.ndim == 2:
        return Data("array", x.astype(np.float32), y)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
            x = x.transpose(0, 2, 3, 1)
        return Data("image", np.ascontiguousarray(x), y)
    raise DataError(f"features with shape {x.shape} are not supported; use [N, d] or images [N, H, W(, C)].")


def _from_frame(df: pd.DataFrame, target: str | None, root: Path | None) -> Data:
    if df.shape[0] == 0:
        raise DataError("the table has no rows; give a table with data.")
    notes = []
    if target is None:
        target = str(df.columns[-1])
        notes.append(f"target: {target!r} (the last column; pick another with --target)")
    if target not in df.columns:
        raise DataError(f"the table has no column {target!r}; its columns are: {', '.join(map(str, df.columns))}.")
    y = df[target].to_numpy()
    x = df.drop(columns=[target])
    if x.shape[1] == 0:
        raise DataError(f"the table has no feature columns besides the target {target!r}; add input columns.")
    image_cols = [c for c in x.columns if x[c].dtype == object and x[c].dropna().astype(str).map(is_image_path).all()
                  and x[c].notna().any()]
    if image_cols and root is not None and x.shape[1] == 1:
        files = [Path(p) if Path(p).is_absolute() else root / p for p in x[image_cols[0]]]
        imgs, kept = read_images(files)
        return Data("image", imgs, y[kept], target=target, notes=notes)
    from .textpre import is_text_column, text_data

    if x.shape[1] == 1 and is_text_column(x.iloc[:, 0]):  # one text column: a text data set

        return text_data(x.iloc[:, 0].reset_index(drop=True), y, target, notes)
    return Data("table", x.reset_index(drop=True), y, target=target, notes=notes)
