"""Forecasting data: windows of a series with their targets, the naive and seasonal-naive baselines of
the same windows, and `SeriesPre`, the forecast model's input pipeline (history table → scaled windows)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from .base import Preprocessor
from .timeseries import DAY, Standardizer, _rows, read_series, step_seconds


def make_windows(
    values: np.ndarray,
    lookback: int,
    horizon: int,
    start: int = 0,
    end: int | None = None,
    target_cols: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Windows X [N, lookback, C] and Y [N, horizon, C_target] for every Y inside rows [start, end).

    X may reach back before start (the look-back borrowed from the previous part), never after.
    """
    values = np.asarray(values, dtype=np.float32)
    values = values[:, None] if values.ndim == 1 else values
    n = len(values)
    end = n if end is None else end
    for name, v in (("lookback", lookback), ("horizon", horizon)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    if lookback + horizon > n:
        raise ValueError(
            f"lookback={lookback} plus horizon={horizon} is longer than the series ({n} rows); "
            "use a shorter lookback or horizon."
        )
    if not 0 <= start < end <= n:
        raise ValueError(f"target range [{start}, {end}) is not inside the series' {n} rows.")
    first = max(start - lookback, 0)
    last = end - lookback - horizon  # start of the last window whose targets end by `end`
    if last < first:
        raise ValueError(
            f"rows [{start}, {end}) are too few for any window of lookback={lookback} and horizon={horizon}; "
            "use a shorter window or a larger part."
        )
    view = sliding_window_view(values, lookback + horizon, axis=0)[first : last + 1]  # [N, C, L+H]
    view = view.transpose(0, 2, 1)
    tc = slice(None) if target_cols is None else list(target_cols)
    return np.ascontiguousarray(view[:, :lookback]), np.ascontiguousarray(view[:, lookback:][:, :, tc])


def naive_forecast(X: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat each window's last value: [N, L, C] -> [N, horizon, C]."""
    X = np.asarray(X)
    return np.repeat(X[:, -1:], horizon, axis=1)


def seasonal_naive_forecast(X: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat each window's last season: [N, L, C] -> [N, horizon, C]."""
    X = np.asarray(X)
    if not 1 <= season <= X.shape[1]:
        raise ValueError(
            f"season={season} must be between 1 and the lookback ({X.shape[1]}); use a longer lookback."
        )
    idx = X.shape[1] - season + (np.arange(horizon) % season)
    return X[:, idx]


def is_ett(name: str | None, times: Any) -> bool:
    """An ETT benchmark file (ETTh1/ETTh2/ETTm1/ETTm2 by name) with hourly or 15-minute steps."""
    import re

    return bool(name and re.fullmatch(r"ett[hm][12]", str(name).lower())) and step_seconds(times) in (3600.0, 900.0)


def baselines(values: np.ndarray, lookback: int, horizon: int, start: int, end: int, targets: list[int],
              season: int) -> np.ndarray:
    """Naive and seasonal-naive forecasts [N, horizon, 2 * len(targets)] for the windows of `make_windows`.

    Both use only rows before each window's targets; the seasonal one may reach further back than the
    look-back (clipped at the series' first row).
    """
    first = max(start - lookback, 0)
    last_obs = np.arange(first, end - lookback - horizon + 1) + lookback - 1  # last row each window sees
    v = values[:, targets]
    naive = np.repeat(v[last_obs][:, None], horizon, axis=1)
    idx = last_obs[:, None] - season + 1 + (np.arange(horizon) % season)[None]
    seasonal = v[np.clip(idx, 0, None)]
    return np.concatenate([naive, seasonal], axis=-1).astype(np.float32)


class SeriesPre(Preprocessor):
    """Forecast inputs: the last `lookback` rows of the input columns, standardised with training statistics."""

    kind = "series"

    def __init__(self, columns: list[str], time_col: str | None, lookback: int, horizon: int,
                 mean: list[float], std: list[float], step: float | None = None, fill_gaps: bool = False):
        self.columns, self.time_col, self.lookback, self.horizon = list(columns), time_col, lookback, horizon
        self.scaler = Standardizer(np.asarray(mean, np.float32), np.asarray(std, np.float32))
        self.step, self.fill_gaps = step, fill_gaps

    @classmethod
    def fit(cls, train: Any, cfg: Any = None) -> SeriesPre:
        """Statistics of the training rows: train.x holds their values [T, C], train.meta the columns, the
        time column and the time step; --lookback, --horizon and --fill-gaps come from the settings."""
        m = train.meta
        scaler = Standardizer.fit(train.x)
        return cls(m["columns"], m["time_col"], cfg.lookback, cfg.horizon, scaler.mean.tolist(), scaler.std.tolist(),
                   m["step"], bool(cfg.fill_gaps))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "columns": self.columns, "time_col": self.time_col, "lookback": self.lookback,
                "horizon": self.horizon, **self.scaler.to_dict(), "step": self.step, "fill_gaps": self.fill_gaps}

    @classmethod
    def from_dict(cls, d: dict) -> SeriesPre:
        return cls(d["columns"], d["time_col"], d["lookback"], d["horizon"], d["mean"], d["std"], d.get("step"),
                   d.get("fill_gaps", False))

    def spec(self) -> dict:
        return {"kind": self.kind, "shape": [self.lookback, len(self.columns)], "lookback": self.lookback,
                "horizon": self.horizon, "channels": len(self.columns)}

    def history(self, x: Any) -> tuple[pd.Series | None, np.ndarray]:
        """Times (or None) and raw values [T, C] of a history table or array, checked like the training data."""
        from ..errors import DataError

        if isinstance(x, pd.DataFrame):
            missing = [c for c in self.columns if c not in x.columns]
            if missing:
                raise DataError(f"the history lacks the column(s) {', '.join(map(repr, missing))} that the model "
                                f"was trained on; give all of {', '.join(self.columns)}.")
            time_col = self.time_col if self.time_col in x.columns else None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    times, values, _ = read_series(x, time_col if time_col else None, self.columns,
                                                   "interpolate" if self.fill_gaps else None)
            except ValueError as e:
                raise DataError(str(e)) from None
            return (times if time_col else None), values
        values = np.asarray(x, dtype=np.float32)
        values = values[:, None] if values.ndim == 1 else values
        if values.ndim != 2 or values.shape[1] != len(self.columns):
            raise DataError(f"a history array must be [steps, {len(self.columns)}] (columns "
                            f"{', '.join(self.columns)}), got shape {tuple(np.shape(x))}.")
        if not np.isfinite(values).all():
            bad = np.flatnonzero(~np.isfinite(values).all(1))
            raise DataError(f"the history has missing or infinite values at rows {_rows(bad)}; fill them first.")
        return None, values

    def transform(self, x: Any) -> tuple[np.ndarray]:
        """Model input [1, lookback, C] from a history (table or [T, C] array), or [N, lookback, C] windows."""
        from ..errors import DataError

        if isinstance(x, np.ndarray) and x.ndim == 3:
            if x.shape[1:] != (self.lookback, len(self.columns)):
                raise DataError(f"windows must be [N, {self.lookback}, {len(self.columns)}], got {x.shape}.")
            return (self.scaler.transform(x),)
        _, values = self.history(x)
        if len(values) < self.lookback:
            raise DataError(f"the history has {len(values)} rows but the model needs the last {self.lookback} "
                            "(its lookback) to forecast; give a longer history.")
        return (self.scaler.transform(values[-self.lookback:])[None],)

    def read_inputs(self, x: Any, target: str | None = None):
        """Predict inputs (a CSV path, a DataFrame, an array) as Data of kind series."""
        from pathlib import Path

        from ..errors import DataError
        from .base import Data
        from .tables import read_table

        if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], (str, Path)):
            x = x[0]
        if isinstance(x, (str, Path)):
            path = Path(x)
            if not path.is_file():
                raise DataError(f"history file {str(path)!r} does not exist; give a CSV with the recent rows.")
            x = read_table(path)
        elif isinstance(x, (list, tuple)) and x and all(isinstance(p, (str, Path)) for p in x):
            raise DataError("give one history table (CSV) to forecast after, not several files.")
        return Data("series", x, None)

    def future_times(self, times: pd.Series | None) -> list[str] | None:
        """Timestamps of the `horizon` steps after the history's last one (None without a time column)."""
        if times is None or len(times) == 0 or not pd.api.types.is_datetime64_any_dtype(times):
            return None
        last = pd.Timestamp(times.iloc[-1])
        step = step_seconds(times) or self.step
        if step is None:
            return None
        if 28 * DAY <= step <= 31 * DAY:
            out = [last + pd.DateOffset(months=i) for i in range(1, self.horizon + 1)]
        elif 365 * DAY <= step <= 366 * DAY:
            out = [last + pd.DateOffset(years=i) for i in range(1, self.horizon + 1)]
        else:
            out = [last + pd.Timedelta(seconds=step * i) for i in range(1, self.horizon + 1)]
        idx = pd.DatetimeIndex(out)
        return list(idx.strftime("%Y-%m-%d" if (idx == idx.normalize()).all() else "%Y-%m-%d %H:%M:%S"))

    def annotate(self, out: dict, d: Any) -> dict:
        """Add a table of the forecast (step, time, one column per target) to predict's output."""
        pred = np.asarray(out["prediction"])
        if pred.shape[0] != 1 or not isinstance(d.x, pd.DataFrame):
            return out
        times, _ = self.history(d.x)
        table = pd.DataFrame({"step": np.arange(1, self.horizon + 1)})
        future = self.future_times(times)
        if future is not None:
            table[self.time_col] = future
        names = out.get("targets", [])
        values = pred[0].reshape(self.horizon, -1)
        for j, name in enumerate(names):
            table[name] = values[:, j]
        return {**out, "table": table}
