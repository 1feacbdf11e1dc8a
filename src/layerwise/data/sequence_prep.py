"""Preparing sequence data for a run: one label per series of a long table, one per window of one long series,
or arrays of sequences (the reading and the SequencePre preprocessor are data/sequences.py's)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, say
from .base import Data
from .sequences import (
    SequencePre,
    _series_values,
    _time_column,
    _time_order,
    _value_columns,
    _windows,
    long_to_series,
)


def window_length(cfg: Any, quiet: bool = False) -> tuple[int | None, str]:
    """The window length for classifying windows of one long series, and the flag the user named it with.
    `--lookback` (its old name, a forecasting setting) still works for one release, with a note."""
    if cfg.window or not cfg.lookback:
        return cfg.window, "window"
    say(f"note: --lookback for windows to classify is now --window; using window {cfg.lookback} "
        "(--lookback keeps working for one release)", quiet)
    cfg.window, cfg.lookback = cfg.lookback, None
    return cfg.window, "lookback"


def prepare_sequences(cfg: Any, d: Data, make_task: Any, quiet: bool = False):
    """Split sequence data, fit the task's labels and the channel statistics on the training part.

    `make_task(y)` returns the task for the targets (tasks/base.py: from --task, or inferred from y)."""
    from .prepare import prepare

    if cfg.series_id and d.kind != "table":
        raise ConfigError(f"--series-id needs a table in long form, but the data is {d.kind} data; leave it out.")
    flag = window_length(cfg, quiet)[1]
    if d.kind == "table" and not cfg.series_id:
        return _prepare_windows(cfg, d, make_task, flag, quiet)
    if d.kind == "table":
        if d.y is None:
            raise DataError("the data has no targets; give the label column with --target.")
        target = cfg.target or d.target
        frame = d.x.assign(**{target: d.y})
        seqs, labels, _, columns, time_col = long_to_series(frame, cfg.series_id, target)
        lengths = [len(s) for s in seqs]
        say(f"sequences: {len(seqs)} series by {cfg.series_id!r}, {min(lengths)}–{max(lengths)} steps of "
            f"{len(columns)} channel(s) ({', '.join(columns[:6])}{', ...' if len(columns) > 6 else ''})"
            f"{f', in {time_col!r} order' if time_col else ''}", quiet)
        meta = {"columns": columns, "length": cfg.window, "mode": "series", "series_id": cfg.series_id,
                "time_col": time_col}
        seq_data = Data("sequence", seqs, labels, target, meta=meta)

        def convert(extra: Data | None) -> Data | None:
            if extra is None:
                return None
            if extra.kind != "table":
                raise DataError(f"the training data is a table but the extra data is {extra.kind}; give a table.")
            s, lab, _, _, _ = long_to_series(extra.x.assign(**{target: extra.y}), cfg.series_id, target, columns,
                                             time_col)
            return Data("sequence", s, lab, target)
    else:
        meta = {"length": cfg.window, "mode": "array"}
        seq_data = Data("sequence", d.x, d.y, d.target, meta=meta)
        x = d.x
        if isinstance(x, np.ndarray) and x.dtype != object and x.ndim == 2:
            seq_data = Data("sequence", x[..., None], d.y, d.target, meta=meta)

        def convert(extra_data: Data | None) -> Data | None:
            if extra_data is None or extra_data.kind == "sequence":
                return extra_data
            raise DataError(f"the training data is sequences but the extra data is {extra_data.kind} data.")

    if seq_data.y is None:
        raise DataError("the data has no targets; give the label column with --target.")
    task = make_task(seq_data.y)
    return prepare(seq_data, task, cfg.val_fraction, cfg.test_fraction, cfg.seed, convert(d.validation),
                   convert(d.test), cfg=cfg)


def _prepare_windows(cfg: Any, d: Data, make_task: Any, flag: str, quiet: bool):
    """One long series with a label per row: windows of `window` rows in a chronological split."""
    from .prepare import Prepared, Split
    from .timeseries import chronological_split

    if d.y is None:
        raise DataError("the data has no targets; give the label column with --target.")
    lookback = cfg.window
    time_col = _time_column(d.x, [])
    columns = _value_columns(d.x, [time_col] if time_col else [])
    _, values = _series_values(d.x, columns, time_col)
    y_raw = np.asarray(d.y)[_time_order(d.x, time_col)]
    keep = ~pd.isna(pd.Series(y_raw)).to_numpy()
    n = len(values)
    stride = cfg.stride = cfg.stride or max(1, lookback // 4)
    task = make_task(y_raw[keep])
    try:
        parts = chronological_split(n, cfg.val_fraction, cfg.test_fraction)
    except ValueError as e:
        raise DataError(str(e)) from None
    if parts[0][1] < lookback:
        raise DataError(f"{flag} {lookback} is longer than the {parts[0][1]} training rows; use a shorter "
                        f"--{flag} or a longer series.")
    task.fit(y_raw[keep])
    meta = {"columns": columns, "length": lookback, "mode": "windows", "time_col": time_col, "stride": stride}
    pre = SequencePre.fit(Data("sequence", values[None, :parts[0][1]], None, meta=meta), cfg)

    def windows(start: int, end: int, step: int) -> Split | None:
        ends = np.arange(start + lookback - 1, end, step)
        ends = ends[keep[ends]]
        if len(ends) == 0:
            return None
        return Split(pre.transform(_windows(values, lookback, ends)), task.encode(y_raw[ends]), ends)

    train, val, test = (windows(a, b, stride if i == 0 else 1) for i, (a, b) in enumerate(parts))
    if train is None:
        raise DataError("no labelled training window; check the target column.")
    say(f"sequences: windows of {lookback} rows of {len(columns)} channel(s) every {stride} rows, labelled by "
        f"their last row; chronological split {' / '.join(str(b - a) for a, b in parts)} rows", quiet)
    return Prepared(pre, task, train, val, test)
