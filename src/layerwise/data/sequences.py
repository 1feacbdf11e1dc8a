"""Sequence classification and regression data: one label per series, or one per window of a long series.

Three ways in:
- a table in long form with `--series-id ID`: the rows of each ID (in time order when there is a time
  column) are one sample, labelled by its target value, which must be the same on all its rows. Series
  may differ in length: they are padded at the end and the models are told the true lengths.
- a table holding one long series with a label on every row, and `--window N`: windows of N rows every
  `--stride` rows, each labelled by its last row (the state the series is in at that moment). The split
  is in time order (train, validation, test) and no window crosses from one part into the next.
- arrays [N, T, C] (or [N, T]) as Data of kind "sequence", e.g. the built-in `mnist1d`.
Channels are standardised with statistics of the training split only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import fill_defaults
from ..errors import DataError
from .base import Data, Preprocessor

MAX_LENGTH = 2000  # steps kept per series (the last ones) unless --window says otherwise


def wants_sequences(cfg: Any, d: Data) -> bool:
    """Sequence data, or a table the settings ask to read as sequences (--series-id, or --lookback outside
    forecasting)."""
    if d.kind == "sequence":
        return True
    return d.kind == "table" and cfg.task in (None, "classify", "regress") and bool(cfg.series_id or cfg.window
                                                                                    or cfg.lookback)


def time_column_hint(d: Data) -> str | None:
    """For a table with a column of times classified row by row: the sentence on how to read it as a series."""
    if d.kind != "table":
        return None
    col = _time_column(d.x.head(200), [])
    if col is None:
        return None
    return (f"note: column {col!r} holds times: each row is classified on its own. To classify windows of the "
            "series give --window N (each window labelled by its last row); for one label per series of a "
            "long table, --series-id COLUMN.")


def as_array(seqs: Any) -> np.ndarray:
    """A list of [T_i, C] float arrays as a 1-D object array (so that fancy indexing keeps them apart)."""
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = s
    return out


def _value_columns(df: pd.DataFrame, skip: list[str]) -> list[str]:
    cols = [c for c in df.columns if c not in skip]
    bad = [c for c in cols if not pd.api.types.is_numeric_dtype(df[c]) and
           pd.to_numeric(df[c], errors="coerce").isna().sum() > df[c].isna().sum()]
    if bad:
        rows = np.flatnonzero((pd.to_numeric(df[bad[0]], errors="coerce").isna() & df[bad[0]].notna()).to_numpy())
        raise DataError(f"column {bad[0]!r} has non-numeric values at rows {', '.join(map(str, rows[:5]))}; "
                        "sequence models read numbers: fix those cells or drop the column.")
    if not cols:
        raise DataError("the table has no value columns besides the id, time and target columns; add some.")
    return [str(c) for c in cols]


def _time_column(df: pd.DataFrame, skip: list[str]) -> str | None:
    from .timeseries import detect_time_column

    return detect_time_column(df.drop(columns=[c for c in skip if c in df.columns]))


def long_to_series(df: pd.DataFrame, series_id: str, target: str | None, columns: list[str] | None = None,
                   time_col: str | None = None) -> tuple[np.ndarray, np.ndarray | None, list, list[str], str | None]:
    """Group a long table by `series_id`: (series [N] of [T_i, C] arrays, labels [N] or None, ids, value
    columns, time column). Rows are sorted by the time column when there is one."""
    if series_id not in df.columns:
        raise DataError(f"the table has no column {series_id!r} for --series-id; its columns are: "
                        f"{', '.join(map(str, df.columns))}.")
    skip = [series_id] + ([target] if target else [])
    if time_col is None and columns is None:
        time_col = _time_column(df, skip)
    if columns is None:
        columns = _value_columns(df, skip + ([time_col] if time_col else []))
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"the table lacks the column(s) {', '.join(map(repr, missing))} that the model was "
                        f"trained on; give all of {', '.join(columns)}.")
    df = df.copy()
    if time_col is not None and time_col in df.columns:
        from .timeseries import parse_times

        key = df[time_col] if pd.api.types.is_numeric_dtype(df[time_col]) else parse_times(df[time_col])
        df = df.assign(_t=key).sort_values([series_id, "_t"], kind="stable")
    values = df[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    bad = ~np.isfinite(values).all(1)
    if bad.any():
        ids = pd.unique(df[series_id].to_numpy()[bad])[:5]
        raise DataError(f"series {', '.join(map(repr, map(_py, ids)))} have missing or non-numeric values; "
                        "fill or drop those rows.")
    pos = df.groupby(series_id, sort=False).indices  # id -> row positions, in time order
    ids = list(pos)
    seqs = as_array([values[pos[k]] for k in ids])
    labels = None
    if target is not None and target in df.columns:
        y = df[target].to_numpy()
        mixed = [k for k in ids if pd.Series(y[pos[k]]).nunique(dropna=False) > 1]
        if mixed:
            raise DataError(f"series {', '.join(map(repr, map(_py, mixed[:5])))} have more than one value of "
                            f"{target!r}; with --series-id each series has one label. To label windows of "
                            "one long series, leave out --series-id and give --window.")
        labels = np.array([y[pos[k][0]] for k in ids])
    return seqs, labels, [_py(k) for k in ids], columns, time_col


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


class SequencePre(Preprocessor):
    """Sequences [T, C] padded (or cut, keeping the last steps) to `length`, channels standardised."""

    kind = "sequence"

    def __init__(self, columns: list[str], length: int, mean: list[float], std: list[float], variable: bool,
                 mode: str = "array", series_id: str | None = None, time_col: str | None = None, stride: int = 1):
        self.columns, self.length, self.variable, self.mode = list(columns), length, variable, mode
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.series_id, self.time_col, self.stride = series_id, time_col, stride

    @classmethod
    def fit(cls, train: Data, cfg: Any = None) -> SequencePre:
        """Statistics of the training sequences; train.meta says how they were read (columns, mode, ...)."""
        meta = dict(train.meta)
        return cls.from_sequences(train.x, meta.pop("columns", None), meta.pop("length", None), **meta)

    @classmethod
    def from_sequences(cls, seqs: np.ndarray, columns: list[str] | None = None, length: int | None = None,
                       **kw: Any) -> SequencePre:
        """Statistics from training sequences (a [N, T, C] array or [N] of [T_i, C] arrays)."""
        lengths = np.array([len(s) for s in seqs])
        flat = np.concatenate([np.asarray(s, np.float32).reshape(len(s), -1) for s in seqs])
        c = flat.shape[1]
        if length is None:
            length = int(min(lengths.max(), MAX_LENGTH))
        return cls(columns or [f"x{i}" for i in range(c)], length, flat.mean(0).tolist(),
                   np.maximum(flat.std(0), 1e-6).tolist(), bool(lengths.min() != lengths.max()), **kw)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "columns": self.columns, "length": self.length, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "variable": self.variable, "mode": self.mode,
                "series_id": self.series_id, "time_col": self.time_col, "stride": self.stride}

    @classmethod
    def from_dict(cls, d: dict) -> SequencePre:
        return cls(d["columns"], d["length"], d["mean"], d["std"], d["variable"], d["mode"], d["series_id"],
                   d["time_col"], d["stride"])

    def spec(self) -> dict:
        return {"kind": self.kind, "shape": [self.length, len(self.columns)], "channels": len(self.columns),
                "variable": self.variable}

    def transform(self, x: Any) -> tuple[np.ndarray, ...]:
        """(x [N, length, C],) standardised, plus the lengths [N] when training series differed in length."""
        c, n = len(self.columns), len(x)
        if isinstance(x, np.ndarray) and x.dtype != object:
            x = x[..., None] if x.ndim == 2 and c == 1 else x
            if x.ndim != 3 or x.shape[2] != c:
                raise DataError(f"sequences must be [N, steps, {c}] (channels {', '.join(self.columns)}), "
                                f"got shape {tuple(x.shape)}.")
            seqs: Any = x
        else:
            seqs = [np.asarray(s, np.float32).reshape(len(s), -1) for s in x]
            wrong = [s.shape for s in seqs if s.shape[1] != c]
            if wrong:
                raise DataError(f"sequences must have {c} channel(s) per step, got {wrong[0][1]}.")
        out = np.zeros((n, self.length, c), np.float32)
        lengths = np.zeros(n, np.int64)
        cut = 0
        for i, s in enumerate(seqs):
            s = np.asarray(s, np.float32)
            if len(s) == 0:
                raise DataError(f"sequence {i} is empty; every sample needs at least one step.")
            cut += len(s) > self.length
            s = s[-self.length:]
            out[i, :len(s)] = (s - self.mean) / self.std
            lengths[i] = len(s)
        if cut:
            warnings.warn(f"{cut} sequence(s) were longer than the model's {self.length} steps; kept their last "
                          f"{self.length}.", stacklevel=2)
        if not self.variable and self.mode == "array" and (lengths < self.length).any():
            raise DataError(f"sequences must have {self.length} steps like the training data; "
                            f"got {int(lengths.min())}.")
        return (out, lengths) if self.variable else (out,)

    # ---- predict
    def defaults(self, cfg: Any, n_train: int, given: set) -> str | None:
        """A few thousand sequences make few steps per epoch: unless set, enough epochs for about 1500
        optimizer steps (at most 100 epochs)."""
        steps, per_epoch = 1500, max(1, -(-n_train // cfg.batch_size))
        epochs = min(100, max(cfg.epochs, -(-steps // per_epoch)))
        if fill_defaults(cfg, {"epochs": epochs}, given):
            return f"few sequences ({n_train}): epochs {epochs} for about {steps} steps (set --epochs to override)"
        return None

    def read_inputs(self, x: Any, target: str | None = None) -> Data:
        """Predict inputs: arrays, or a table (CSV path or DataFrame) laid out like the training table."""
        if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], (str, Path)):
            x = x[0]
        if isinstance(x, (str, Path)):
            from .tables import read_table

            path = Path(x)
            if not path.is_file():
                raise DataError(f"input file {str(path)!r} does not exist; check the path.")
            if path.suffix.lower() == ".npz":
                z = np.load(path, allow_pickle=False)
                key = next((k for k in ("x", "X", "x_test") if k in z.files), None)
                if key is None:
                    raise DataError(f"{path.name!r} holds {sorted(z.files)}; put the sequences under 'x'.")
                return Data("sequence", z[key], None)
            x = read_table(path)
        if isinstance(x, pd.DataFrame):
            return self._from_table(x)
        return Data("sequence", np.asarray(x, np.float32), None)

    def _from_table(self, df: pd.DataFrame) -> Data:
        if self.mode == "series":
            seqs, _, ids, _, _ = long_to_series(df, self.series_id, None, self.columns, self.time_col)
            return Data("sequence", seqs, None, meta={"ids": (self.series_id, ids)})
        if self.mode == "windows":
            times, values = _series_values(df, self.columns, self.time_col)
            if len(values) < self.length:
                raise DataError(f"the table has {len(values)} rows but the model reads windows of {self.length} "
                                "(its window); give a longer series.")
            ends = np.arange(self.length - 1, len(values))
            ids = list(times.iloc[ends].astype(str)) if times is not None else ends.tolist()
            return Data("sequence", _windows(values, self.length, ends), None, meta={"ids": (self.time_col or "row", ids)})
        raise DataError("this model was trained on arrays of sequences; give an array [N, steps, channels].")

    def labelled(self, d: Data) -> Data:
        """Labelled sequences from data like the training data (for evaluate): a long table grouped by the
        series id, or every window of a long series labelled by its last row; sequence Data as it is."""
        if d.kind == "sequence" or self.mode == "array":
            return d
        if d.y is None:
            raise DataError("the data has no targets to evaluate against; give the label column.")
        if self.mode == "series":
            target = d.target or "__label__"
            seqs, labels, _, _, _ = long_to_series(d.x.assign(**{target: d.y}), self.series_id, target,
                                                   self.columns, self.time_col)
            return Data("sequence", seqs, labels, d.target)
        windows = self._from_table(d.x)  # rows in time order, as _series_values sorts them
        labels = np.asarray(d.y)[_time_order(d.x, self.time_col)][self.length - 1:]
        keep = ~pd.isna(pd.Series(labels)).to_numpy()
        return Data("sequence", windows.x[keep], labels[keep], d.target)

    def annotate(self, out: dict, d: Any) -> dict:
        """A table of predictions, one row per series id (or per window end), when the inputs were a table."""
        ids = d.meta.get("ids")
        if ids is None:
            return out
        table = pd.DataFrame({ids[0]: ids[1], "prediction": list(out["prediction"])})
        probs, classes = out.get("probabilities"), out.get("classes")
        if probs is not None and classes is not None:
            for i, c in enumerate(classes):
                table[f"p_{c}"] = probs[:, i]
        return {**out, "table": table}


def _series_values(df: pd.DataFrame, columns: list[str], time_col: str | None) -> tuple[pd.Series | None, np.ndarray]:
    """Times and values [T, C] of one long series, in time order, checked for gaps and bad cells."""
    from .timeseries import read_series

    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"the table lacks the column(s) {', '.join(map(repr, missing))} that the model was "
                        f"trained on; give all of {', '.join(columns)}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times, values, _ = read_series(df, time_col if time_col in df.columns else None, columns)
    except ValueError as e:
        raise DataError(str(e)) from None
    return times, values


def _time_order(df: pd.DataFrame, time_col: str | None) -> np.ndarray:
    """Row positions in time order (stable; the table's order when there is no time column)."""
    if time_col is None or time_col not in df.columns:
        return np.arange(len(df))
    return np.argsort(pd.to_datetime(df[time_col], errors="coerce").to_numpy(), kind="stable")


def _windows(values: np.ndarray, length: int, ends: np.ndarray) -> np.ndarray:
    """The windows [len(ends), length, C] of a series [T, C] that end at the rows `ends`."""
    from numpy.lib.stride_tricks import sliding_window_view

    return np.ascontiguousarray(sliding_window_view(values, length, axis=0).transpose(0, 2, 1)[ends - length + 1])
