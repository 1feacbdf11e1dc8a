"""Forecasting data: a table to a clean series, chronological splits, windows, baselines and metrics."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

DAY = 86400.0


def _rows(idx: Any, k: int = 5) -> str:
    idx = list(idx)
    return ", ".join(str(int(i)) for i in idx[:k]) + (", ..." if len(idx) > k else "")


def _parse_times(col: pd.Series) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(col, errors="coerce")


def _detect_time_col(df: pd.DataFrame) -> str | None:
    """The first column that holds datetimes, or text that all parses as datetimes."""
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_datetime64_any_dtype(col):
            return c
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col) or col.notna().sum() == 0:
            continue
        if _parse_times(col).notna().sum() == col.notna().sum():
            return c
    return None


def _grid(times: pd.Series) -> tuple[np.ndarray, float, str]:
    """Positions of the timestamps on a regular grid, its step, and its unit: month, year, seconds or number."""
    if not pd.api.types.is_datetime64_any_dtype(times):
        pos, unit = times.to_numpy(np.float64), "number"
    else:
        secs = (times - times.iloc[0]).dt.total_seconds().to_numpy()
        med = float(np.median(np.diff(secs))) if len(secs) > 1 else 0.0
        if 28 * DAY <= med <= 31 * DAY:
            return (times.dt.year * 12 + times.dt.month - 1).to_numpy(np.float64), 1.0, "month"
        if 365 * DAY <= med <= 366 * DAY:
            return times.dt.year.to_numpy(np.float64), 1.0, "year"
        pos, unit = secs, "seconds"
    vals, counts = np.unique(np.diff(pos), return_counts=True)
    return pos, (float(vals[counts.argmax()]) if len(vals) else 1.0), unit


def _fill_gaps(df: pd.DataFrame, time_col: str, fill: str | None) -> pd.DataFrame:
    """Check the timestamps are regular; missing ones are an error, or new NaN rows when filling."""
    t = df[time_col]
    dup = np.flatnonzero(t.duplicated().to_numpy())
    if len(dup):
        raise ValueError(
            f"time column {time_col!r} repeats timestamps at rows {_rows(dup)}; remove the duplicates."
        )
    if not t.is_monotonic_increasing:
        warnings.warn(f"rows were not in time order; sorted them by {time_col!r}.", stacklevel=3)
        df = df.sort_values(time_col, kind="stable").reset_index(drop=True)
        t = df[time_col]
    pos, step, unit = _grid(t)
    k = (pos - pos[0]) / step
    off = np.flatnonzero(np.abs(k - np.round(k)) > 1e-6)
    if len(off) or step <= 0:
        raise ValueError(
            f"time column {time_col!r} is irregular at rows {_rows(off)} "
            f"(the usual step is {step:g}{'' if unit == 'number' else ' ' + unit}); "
            "resample the series to a regular step first."
        )
    k = np.round(k).astype(np.int64)
    after = np.flatnonzero(np.diff(k) > 1)
    if not len(after):
        return df
    missing = int((np.diff(k) - 1).sum())
    if fill != "interpolate":
        shown = ", ".join(f"{i} ({t.iloc[i]})" for i in after[:5]) + (", ..." if len(after) > 5 else "")
        raise ValueError(
            f"the series has {missing} missing timestamps, after rows {shown}; "
            "add the missing rows, or fill them by linear interpolation with --fill-gaps (fill_gaps=True)."
        )
    full = pd.DataFrame(index=np.arange(k[-1] + 1))
    full = full.join(df.set_index(k))
    first = t.iloc[0]
    if unit in ("month", "year"):
        full[time_col] = [
            first + pd.DateOffset(months=int(i) * (1 if unit == "month" else 12)) for i in full.index
        ]
    elif unit == "seconds":
        full[time_col] = first + pd.to_timedelta(full.index.to_numpy() * step, unit="s")
    else:
        full[time_col] = first + full.index.to_numpy() * step
    return full.reset_index(drop=True)


def read_series(
    df: pd.DataFrame,
    time_col: str | None = None,
    value_cols: list[str] | None = None,
    fill: str | None = None,
) -> tuple[pd.Series | None, np.ndarray, list[str]]:
    """Times (or None), float32 values [T, C] and their column names from a table, checked for gaps.

    time_col None means auto-detect (a column of datetimes, or none); fill='interpolate' fills
    missing timestamps and NaNs linearly instead of raising.
    """
    if fill not in (None, "interpolate"):
        raise ValueError(f"fill must be None or 'interpolate', got {fill!r}.")
    if time_col is None:
        time_col = _detect_time_col(df)
    elif time_col not in df.columns:
        raise ValueError(f"time column {time_col!r} is not in the table; use one of {list(df.columns)}.")
    df = df.reset_index(drop=True).copy()
    if time_col is not None and not pd.api.types.is_numeric_dtype(df[time_col]):
        parsed = _parse_times(df[time_col])
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if len(bad):
            raise ValueError(
                f"time column {time_col!r} has values that are not dates at rows {_rows(bad)}; "
                "fix those cells."
            )
        df[time_col] = parsed
    cols = [c for c in df.columns if c != time_col] if value_cols is None else list(value_cols)
    missing = [c for c in cols if c not in df.columns]
    if missing or not cols:
        raise ValueError(
            f"value columns {missing or cols} are not in the table; use some of {list(df.columns)}."
        )
    for c in cols:
        num = pd.to_numeric(df[c], errors="coerce")
        bad = np.flatnonzero((num.isna() & df[c].notna()).to_numpy())
        if len(bad):
            raise ValueError(
                f"column {c!r} has non-numeric values at rows {_rows(bad)}; "
                "fix those cells, or forecast from the target alone with --series-inputs target."
            )
        df[c] = num.astype(np.float64)
    if time_col is not None:
        df = _fill_gaps(df, time_col, fill)
    nan_rows = np.flatnonzero(df[cols].isna().any(axis=1).to_numpy())
    if len(nan_rows):
        if fill != "interpolate":
            raise ValueError(
                f"{len(nan_rows)} rows have missing values (rows {_rows(nan_rows)}); fill them, "
                "or interpolate them linearly with --fill-gaps (fill_gaps=True)."
            )
        empty = [c for c in cols if df[c].isna().all()]
        if empty:
            raise ValueError(f"columns {empty} have no values at all; leave them out of value_cols.")
        df[cols] = df[cols].interpolate(method="linear", limit_direction="both")
        warnings.warn(
            f"filled {len(nan_rows)} rows with missing values by linear interpolation.", stacklevel=2
        )
    times = df[time_col] if time_col is not None else None
    return times, df[cols].to_numpy(np.float32), [str(c) for c in cols]


def infer_season(times: Any) -> int:
    """Season length from the time step: 24 for hourly, 7 for daily, 12 for monthly, 4 quarterly, else 1."""
    if times is None or len(times) < 2:
        return 1
    t = pd.Series(pd.to_datetime(pd.Series(times), errors="coerce"))
    if t.isna().any():
        return 1
    step = float(np.median(np.diff(t.to_numpy()).astype("timedelta64[s]").astype(np.float64)))
    for seconds, season in ((3600.0, 24), (DAY, 7)):
        if abs(step - seconds) < 1.0:
            return season
    if 28 * DAY <= step <= 31 * DAY:
        return 12
    if 89 * DAY <= step <= 92 * DAY:
        return 4
    return 1


Ranges = list[tuple[int, int]]


def chronological_split(n: int, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Ranges:
    """Target row ranges [(0, a), (a, b), (b, n)] for train, validation and test, in time order."""
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ValueError(f"{name} must be in [0, 1), got {f}.")
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    if n - n_test - n_val < 1:
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} leave no training rows "
            f"out of {n}; "
            "use smaller fractions."
        )
    a, b = n - n_test - n_val, n - n_test
    return [(0, a), (a, b), (b, n)]


def ett_split(n_rows: int, hourly: bool = True) -> Ranges:
    """The ETT benchmark split (Informer, PatchTST): 12 / 4 / 4 months of target rows; later rows unused.

    Windows over val/test borrow their look-back from the part before, as border1s in that code.
    """
    m = 30 * 24 * (1 if hourly else 4)
    if n_rows < 20 * m:
        raise ValueError(f"the ETT split needs {20 * m} rows (20 months), the series has {n_rows}.")
    return [(0, 12 * m), (12 * m, 16 * m), (16 * m, 20 * m)]


@dataclass
class Standardizer:
    """Per-column mean/std scaling, fitted on the training rows only so nothing leaks from the future."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardizer:
        """Fit on training values [T, C]; a constant column keeps std 1."""
        values = np.asarray(values, dtype=np.float64)
        std = values.std(axis=0)
        return cls(values.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32))

    def _pick(self, cols: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
        return (self.mean, self.std) if cols is None else (self.mean[cols], self.std[cols])

    def transform(self, x: np.ndarray, cols: list[int] | None = None) -> np.ndarray:
        """Scale x [..., C] (or only the columns `cols`)."""
        mean, std = self._pick(cols)
        return ((np.asarray(x) - mean) / std).astype(np.float32)

    def inverse_transform(self, x: np.ndarray, cols: list[int] | None = None) -> np.ndarray:
        """Undo `transform` on x [..., C] (or only the columns `cols`)."""
        mean, std = self._pick(cols)
        return (np.asarray(x) * std + mean).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-able form for the run folder."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        """Rebuild from `to_dict`."""
        return cls(np.asarray(d["mean"], dtype=np.float32), np.asarray(d["std"], dtype=np.float32))


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


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def forecast_metrics(
    pred: Any, true: Any, X_hist: Any, season: int = 1, target_cols: list[int] | None = None
) -> dict[str, float]:
    """MAE and MSE of pred and of the naive and seasonal-naive baselines; scaled MAE < 1 beats a baseline."""
    pred, true, X = (_np(a).astype(np.float64) for a in (pred, true, X_hist))
    if pred.shape != true.shape:
        raise ValueError(f"pred has shape {pred.shape} but true has {true.shape}; they must match.")
    if target_cols is not None:
        X = X[:, :, list(target_cols)]
    if X.shape[-1] != true.shape[-1]:
        raise ValueError(
            f"X_hist has {X.shape[-1]} columns and the targets {true.shape[-1]}; "
            "pass target_cols to pick them."
        )
    h = true.shape[1]
    out = {"mae": float(np.abs(pred - true).mean()), "mse": float(((pred - true) ** 2).mean())}
    baselines = {"naive": naive_forecast(X, h)}
    if season <= X.shape[1]:
        baselines["seasonal_naive"] = seasonal_naive_forecast(X, h, season)
    else:
        warnings.warn(
            f"season={season} is longer than the lookback ({X.shape[1]}); "
            "skipped the seasonal-naive baseline.",
            stacklevel=2,
        )
    for name, b in baselines.items():
        mae = float(np.abs(b - true).mean())
        out[f"{name}_mae"], out[f"{name}_mse"] = mae, float(((b - true) ** 2).mean())
        out[f"scaled_mae_{name}"] = out["mae"] / mae if mae > 0 else float("nan")
    return out


def is_ett(name: str | None, times: Any) -> bool:
    """An ETT benchmark file (ETTh1/ETTh2/ETTm1/ETTm2 by name) with hourly or 15-minute steps."""
    import re

    return bool(name and re.fullmatch(r"ett[hm][12]", str(name).lower())) and step_seconds(times) in (3600.0, 900.0)


def step_seconds(times: Any) -> float | None:
    """The median step of datetime stamps in seconds (None without datetimes)."""
    if times is None or len(times) < 2 or not pd.api.types.is_datetime64_any_dtype(times):
        return None
    return float(np.median(np.diff(pd.Series(times).to_numpy()).astype("timedelta64[s]").astype(np.float64)))


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


class SeriesPre:
    """Forecast inputs: the last `lookback` rows of the input columns, standardised with training statistics."""

    kind = "series"

    def __init__(self, columns: list[str], time_col: str | None, lookback: int, horizon: int,
                 mean: list[float], std: list[float], step: float | None = None, fill_gaps: bool = False):
        self.columns, self.time_col, self.lookback, self.horizon = list(columns), time_col, lookback, horizon
        self.scaler = Standardizer(np.asarray(mean, np.float32), np.asarray(std, np.float32))
        self.step, self.fill_gaps = step, fill_gaps

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

    def read_inputs(self, x: Any):
        """Predict inputs (a CSV path, a DataFrame, an array) as Data of kind series."""
        from pathlib import Path

        from ..errors import DataError
        from .sources import Data
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
