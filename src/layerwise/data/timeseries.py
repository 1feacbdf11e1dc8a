"""Time series: a table to a clean, regular series (gaps and bad cells named), its season, chronological
splits and training-only standardisation. Forecast windows and baselines are in forecasting.py."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

DAY = 86400.0


def _rows(idx: Any, k: int = 5) -> str:
    idx = list(idx)
    return ", ".join(str(int(i)) for i in idx[:k]) + (", ..." if len(idx) > k else "")


def parse_times(col: pd.Series) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(col, errors="coerce")


def detect_time_column(df: pd.DataFrame) -> str | None:
    """The first column that holds datetimes, or text that all parses as datetimes."""
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_datetime64_any_dtype(col):
            return c
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col) or col.notna().sum() == 0:
            continue
        if parse_times(col).notna().sum() == col.notna().sum():
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
        time_col = detect_time_column(df)
    elif time_col not in df.columns:
        raise ValueError(f"time column {time_col!r} is not in the table; use one of {list(df.columns)}.")
    df = df.reset_index(drop=True).copy()
    if time_col is not None and not pd.api.types.is_numeric_dtype(df[time_col]):
        parsed = parse_times(df[time_col])
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


def step_seconds(times: Any) -> float | None:
    """The median step of datetime stamps in seconds (None without datetimes)."""
    if times is None or len(times) < 2 or not pd.api.types.is_datetime64_any_dtype(times):
        return None
    return float(np.median(np.diff(pd.Series(times).to_numpy()).astype("timedelta64[s]").astype(np.float64)))
