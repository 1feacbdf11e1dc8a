"""The one reader of user files: a name, a path, arrays, a DataFrame or an (X, y) pair become a Data object.

Training data, explicit validation and test data, evaluate/embed/score data, unlabelled data and predict
inputs all come through here, so that every command reads the same files the same way: one list of table
suffixes, one list of .npz layouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from . import builtin
from .base import Data
from .images import is_image_path, read_images, scan_folder
from .tables import read_table

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".parquet")
# .npz layouts, in order: (inputs, targets, test inputs, test targets); targets may be absent for unlabelled data
NPZ_LAYOUTS = (("x_train", "y_train", "x_test", "y_test"), ("X_train", "y_train", "X_test", "y_test"),
               ("x", "y", None, None), ("X", "y", None, None), ("x_unlabelled", None, None, None),
               (None, None, "x_test", "y_test"), (None, None, "X_test", "y_test"))


def load_like(source: Any, like: Data, target: str | None = None) -> Data:
    """Extra data (validation, test) read like the training data `like`: images at its size, audio at its
    rate and clip length."""
    size = like.x.shape[1] if like.kind == "image" and like.x.shape[1] == like.x.shape[2] else None
    d = load(source, target=target or like.target, image_size=size)
    if like.kind == "audio":
        from .audio import reclip

        d = reclip(d, like.x.sr, like.x.shape[1] / like.x.sr)
    return d


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
    if suffix in TABLE_SUFFIXES:
        return _from_frame(read_table(path), target, path.parent)
    raise DataError(
        f"do not know how to read {path.name!r}; use a CSV/TSV/Parquet table, an .npz file, or a folder of images."
    )


def read_npz(path: Path, labels: bool = True) -> Data:
    """An .npz in one of NPZ_LAYOUTS. `labels=False` also takes inputs without targets (predict, unlabelled
    data); a file with only a test part gives that part."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise DataError(f"could not read {str(path)!r} as .npz ({e}); save it with numpy.savez.") from None
    for xs, ys, xt, yt in NPZ_LAYOUTS:
        if xs is None and not labels and xt in arrays:  # a test part only
            return from_arrays(arrays[xt], arrays.get(yt))
        if xs in arrays and (ys in arrays or not labels):
            d = from_arrays(arrays[xs], arrays.get(ys))
            if xt in arrays and (yt in arrays or not labels):
                d.test = from_arrays(arrays[xt], arrays.get(yt))
            return d
    raise DataError(
        f"{path.name!r} holds arrays {sorted(arrays)}; expected x_train/y_train (and x_test/y_test) or x/y"
        f"{'' if labels else ' (x alone for inputs without labels)'}."
    )


def _from_npz(path: Path) -> Data:
    return read_npz(path, labels=True)


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


# ---- data given to a trained run: predict inputs, labelled data like the training data, unlabelled data


def read_inputs(x: Any, pre: Any, target: str | None) -> Data:
    """Predict inputs (arrays, a DataFrame, image files or folders, a CSV or .npz path) as Data of the kind the
    model was trained on; a kind that reads its own inputs (series history, WAV files, texts) does so."""
    kind = pre.spec()["kind"]
    if isinstance(x, Data):
        return x
    own = pre.read_inputs(x, target)
    if own is not None:
        return own
    if isinstance(x, pd.DataFrame):
        return Data("table", x.drop(columns=[target], errors="ignore"), None)
    if isinstance(x, (str, Path)):
        x = [x]
    if isinstance(x, (list, tuple)) and x and all(isinstance(p, (str, Path)) for p in x):
        paths = [Path(p) for p in x]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise DataError(f"input file {missing[0]!r} does not exist; check the path.")
        if len(paths) == 1 and paths[0].suffix.lower() in TABLE_SUFFIXES and kind != "image":
            return Data("table", read_table(paths[0]).drop(columns=[target], errors="ignore"), None)
        if len(paths) == 1 and paths[0].suffix.lower() == ".npz":
            d = read_npz(paths[0], labels=False)
            return Data(d.kind, (d.test or d).x, None)
        if kind != "image":
            raise DataError(f"the model expects a table (CSV) but got {', '.join(map(str, paths[:3]))}.")
        return read_image_inputs(paths, pre)
    if isinstance(x, dict) and kind == "table":
        return Data("table", pd.DataFrame(x), None)
    arr = np.asarray(x)
    if kind == "image" and arr.ndim == 2:
        c, h, w = pre.shape
        if arr.shape == (h, w):  # one image
            arr = arr[None]
        elif arr.shape[1] == c * h * w:  # flattened images, as the training arrays were before reshaping
            arr = arr.reshape(len(arr), h, w, c) if c > 1 else arr.reshape(len(arr), h, w)
    elif kind == "array" and arr.ndim == 1:  # a single sample
        arr = arr[None]
    return from_arrays(arr, None)


def read_image_inputs(paths: list[Path], pre: Any) -> Data:
    """Image files and folders (at any depth) given to predict, each kept under its own name, in order; files
    that are not images or cannot be read are listed in meta["skipped"] with the reason."""
    files, skipped = [], []
    for p in paths:
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.is_file())
            skipped += [(str(f), "not an image file") for f in inside if not is_image_path(f)]
            files += [f for f in inside if is_image_path(f)]
        elif is_image_path(p):
            files.append(p)
        else:
            skipped.append((str(p), "not an image file (.png, .jpg, ...)"))
    if not files:
        raise DataError(f"no image files among {', '.join(map(str, paths[:3]))}; give .png or .jpg files or "
                        "folders of them.")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unreadable files are listed in skipped instead
        try:
            imgs, kept = read_images(files, size=tuple(pre.shape[1:]), channels=pre.shape[0])
        except DataError:
            imgs, kept = np.zeros((0, *pre.shape[1:], pre.shape[0]), np.uint8), []
    kept_set = set(kept)
    skipped += [(str(f), "cannot be read as an image") for i, f in enumerate(files) if i not in kept_set]
    return Data("image", imgs, None, meta={"names": [str(files[i]) for i in kept], "skipped": skipped})


def read_labelled(data: Any, pre: Any, target: str | None, run_target: str | None = None) -> Data:
    """Data like a run's training data, with labels where it has them (embed, cluster, score): a built-in
    name, a class folder or an .npz read as for training (images at the run's size); a table whose `target`
    column (default: the run's) holds the labels; anything else read as predict inputs."""
    if isinstance(data, Data):
        return data
    if isinstance(data, (str, Path)) and Path(data).suffix.lower() in TABLE_SUFFIXES and Path(data).is_file():
        data = read_table(Path(data))
    if isinstance(data, pd.DataFrame):
        x = data.copy()
        if target is not None and target != run_target and target not in x.columns:
            raise DataError(f"the table has no column {target!r}; its columns are: {', '.join(map(str, x.columns))}.")
        y = x.pop(target).to_numpy() if target is not None and target in x.columns else None
        return Data("table", x.reset_index(drop=True), y, target)
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], (str, Path)):
        return load(data)
    if isinstance(data, (str, Path)) and Path(data).suffix.lower() == ".npz" and Path(data).is_file():
        return read_npz(Path(data), labels=False)
    if isinstance(data, (str, Path)) and (str(data).lower() in builtin.NAMES or Path(data).is_dir()):
        shape = pre.spec().get("shape", [])
        if Path(data).is_dir():
            files, labels = scan_folder(Path(data))
            x, kept = read_images(files, (shape[1], shape[2]) if len(shape) == 3 else None,
                                  shape[0] if len(shape) == 3 else None)
            return Data("image", x, np.array(labels)[kept])
        size = shape[1] if len(shape) == 3 and shape[1] == shape[2] else None
        return load(data, image_size=size)
    return read_inputs(data, pre, target)


def read_unlabelled(path: str | Path, target: str | None = None, image_size: int | None = None) -> Data:
    """Unlabelled inputs: a folder of images (at any depth, no classes), an .npz (x_unlabelled or x), or a
    table whose target column, if present, is dropped."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"the unlabelled data {str(path)!r} does not exist; give a folder of images, an .npz or "
                        "a table.")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and is_image_path(f))
        if not files:
            raise DataError(f"no image files (.png, .jpg, ...) in the unlabelled folder {str(path)!r}; put images "
                            "there.")
        x, _ = read_images(files, (image_size, image_size) if image_size else None)
        return Data("image", x, None)
    if p.suffix.lower() == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "x_unlabelled" in z.files:
                return from_arrays(z["x_unlabelled"], None)
        return read_npz(p, labels=False)
    if p.suffix.lower() in TABLE_SUFFIXES:
        x = read_table(p)
        return Data("table", x.drop(columns=[target]) if target in x.columns else x, None)
    raise DataError(f"do not know how to read the unlabelled data {p.name!r}; use a folder of images, an .npz "
                    "or a CSV/Parquet table.")
