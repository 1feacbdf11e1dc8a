"""Forecasting: the next `horizon` steps of a series from its last `lookback` steps.

The model reads all input columns and predicts every one of them (a channel-independent model thus
learns from every column); metrics are on the target column(s), on the scale standardised with training
statistics, always beside the naive (repeat the last value) and seasonal-naive (repeat the last season)
forecasts of the same windows. `scaled_mae_*` is the model's MAE over the baseline's: below 1 beats it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, say
from .base import Task

LOSSES = ("mse", "mae", "huber")
ETT_MONTH_ROWS = {3600.0: 30 * 24, 900.0: 30 * 24 * 4}


class Forecast(Task):
    name = "forecast"
    monitor = ("mse", "min")

    def __init__(self, horizon: int, lookback: int, columns: list[str], target_cols: list[int], season: int = 1,
                 mean: list[float] | None = None, std: list[float] | None = None, loss: str | None = None):
        loss = loss or "mse"
        if loss not in LOSSES:
            raise ConfigError(f"loss {loss!r} does not fit forecasting; use one of {', '.join(LOSSES)}.")
        self.horizon, self.lookback, self.columns, self.target_cols = horizon, lookback, list(columns), list(target_cols)
        self.season, self.loss_name = season, loss
        self.mean = mean if mean is not None else [0.0] * len(columns)
        self.std = std if std is not None else [1.0] * len(columns)

    @property
    def out_dim(self) -> int:
        return self.horizon * len(self.columns)

    @property
    def target_names(self) -> list[str]:
        return [self.columns[i] for i in self.target_cols]

    # ---- data
    @classmethod
    def prepare(cls, cfg: Any, data: Any, quiet: bool = False):
        """Series from a table, a chronological split, training statistics, windows with their baselines."""
        from ..data import Prepared, Split
        from ..data import forecasting as fc
        from ..data import timeseries as ts

        df, target = _frame(cfg, data)
        cfg.target = target
        if cfg.series_inputs == "target":
            value_cols = [target]
        else:
            value_cols = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                times, values, cols = ts.read_series(df, None, value_cols, "interpolate" if cfg.fill_gaps else None)
            except ValueError as e:
                raise DataError(str(e)) from None
        for w in caught:
            say(f"warning: {w.message}", quiet)
        time_col = str(times.name) if times is not None else None
        if target not in cols:
            raise DataError(f"the target {target!r} is the time column; pick a value column with --target.")
        n = len(values)
        season = cfg.season or ts.infer_season(times)
        horizon = cfg.horizon or max(season, 1)
        name = Path(str(cfg.data)).stem if cfg.data else None
        step = ts.step_seconds(times)
        if fc.is_ett(name, times) and n >= 20 * ETT_MONTH_ROWS[step]:
            m = ETT_MONTH_ROWS[step]
            parts = [(0, 12 * m), (12 * m, 16 * m), (16 * m, 20 * m)]
            how = f"ETT standard split, 12/4/4 months ({n - 20 * m} later rows unused)"
        else:
            parts = _parts(n, cfg.val_fraction, cfg.test_fraction, horizon)
            how = f"chronological split, val_fraction {cfg.val_fraction}, test_fraction {cfg.test_fraction}"
        parts = [p if p[1] > p[0] else None for p in parts]
        n_train = parts[0][1]
        lookback = cfg.lookback or max(1, min(336, (n_train - horizon) // 2))
        if n_train - lookback - horizon + 1 < 1:
            raise DataError(f"lookback {lookback} plus horizon {horizon} leave no training window in the "
                            f"{n_train} training rows; use a shorter --lookback or --horizon.")
        cfg.horizon, cfg.lookback, cfg.season = horizon, lookback, season

        from ..data import Data

        meta = {"columns": cols, "time_col": time_col, "step": step}
        pre = fc.SeriesPre.fit(Data("series", values[:n_train], None, meta=meta), cfg)
        v = pre.scaler.transform(values)
        mean, std = pre.scaler.mean.tolist(), pre.scaler.std.tolist()
        task = cls(horizon, lookback, cols, [cols.index(target)], season, mean, std, cfg.loss)

        def split(part):
            if part is None:
                return None
            if part[1] - part[0] < horizon:
                return None
            return Split(*task.windows(v, *part))

        rows = " / ".join(str(p[1] - p[0]) if p else "0" for p in parts)
        say(f"forecast: {', '.join(task.target_names)}, {horizon} steps ahead from the last {lookback} of "
            f"{len(cols)} column{'s' if len(cols) > 1 else ''} ({'all' if len(cols) > 1 else 'the target'} "
            f"as inputs); {how}: {rows} rows; seasonal-naive season {season}", quiet)
        return Prepared(pre, task, split(parts[0]), split(parts[1]), split(parts[2]))

    def defaults(self, cfg: Any, spec: dict, n_train: int, given: set) -> str | None:
        return _few_windows(cfg, n_train, given)

    def windows(self, v: np.ndarray, start: int = 0, end: int | None = None) -> tuple[tuple[np.ndarray], np.ndarray]:
        """Inputs ([N, lookback, C],) and targets [N, horizon, C + 2T]: all columns' futures, then the naive
        and seasonal-naive forecasts of the targets, for every window whose targets lie in rows [start, end)."""
        from ..data import forecasting as fc

        end = len(v) if end is None else end
        x, y = fc.make_windows(v, self.lookback, self.horizon, start, end)
        base = fc.baselines(v, self.lookback, self.horizon, start, end, self.target_cols, self.season)
        return (x,), np.concatenate([y, base], axis=-1)

    def labelled(self, run: Any, data: Any) -> tuple[tuple[np.ndarray], np.ndarray]:
        """Windows over a whole given series (for evaluate(data)), scaled with the training statistics."""
        from ..data import load

        pre, d = run.pre, load(data, target=run.config.target)
        if d.kind == "table":
            df = d.x.copy()
            if d.target is not None and d.y is not None:
                df[d.target] = d.y
        else:
            df = d.x
        _, values = pre.history(df)
        if len(values) < self.lookback + self.horizon:
            raise DataError(f"the series has {len(values)} rows, fewer than lookback {self.lookback} plus horizon "
                            f"{self.horizon}; give a longer series.")
        return self.windows(pre.scaler.transform(values))

    # ---- learning
    def _split(self, out, y):
        c, t = len(self.columns), len(self.target_cols)
        out = out.float().reshape(len(out), self.horizon, c)
        return out, y[..., :c], y[..., c:c + t], y[..., c + t:c + 2 * t]

    def loss(self, out, y):
        import torch.nn.functional as F

        out, true, _, _ = self._split(out, y)
        if self.loss_name == "mae":
            return F.l1_loss(out, true)
        if self.loss_name == "huber":
            return F.huber_loss(out, true)
        return F.mse_loss(out, true)

    def metrics(self, out, y) -> dict[str, float]:
        out, true, naive, seasonal = self._split(out, y)
        pred, true = out[..., self.target_cols], true[..., self.target_cols]
        m = {"mse": float(((pred - true) ** 2).mean()), "mae": float((pred - true).abs().mean())}
        for name, base in (("naive", naive), ("seasonal_naive", seasonal)):
            mae = float((base - true).abs().mean())
            m[f"{name}_mse"], m[f"{name}_mae"] = float(((base - true) ** 2).mean()), mae
            m[f"scaled_mae_{name}"] = m["mae"] / mae if mae > 0 else float("nan")
        return m

    def decode(self, out) -> dict[str, Any]:
        """Forecasts of the target column(s) in their own units: [N, horizon] (one target) or [N, horizon, T]."""
        out = out.float().reshape(len(out), self.horizon, len(self.columns))[..., self.target_cols].cpu().numpy()
        mean, std = np.asarray(self.mean)[self.target_cols], np.asarray(self.std)[self.target_cols]
        pred = out * std + mean
        return {"prediction": pred[..., 0] if len(self.target_cols) == 1 else pred, "targets": self.target_names}

    # ---- saving
    def to_dict(self) -> dict:
        return {"name": self.name, "horizon": self.horizon, "lookback": self.lookback, "columns": self.columns,
                "target_cols": self.target_cols, "season": self.season, "mean": self.mean, "std": self.std,
                "loss": self.loss_name}

    @classmethod
    def from_dict(cls, d: dict) -> Forecast:
        return cls(d["horizon"], d["lookback"], d["columns"], d["target_cols"], d["season"], d["mean"], d["std"],
                   d["loss"])

    def describe(self) -> str:
        return (f"forecast ({', '.join(self.target_names)}, horizon {self.horizon}, lookback {self.lookback}, "
                f"{len(self.columns)} input column{'s' if len(self.columns) > 1 else ''}, {self.loss_name} loss)")


def _frame(cfg: Any, data: Any) -> tuple[pd.DataFrame, str]:
    """The whole table (inputs and target) and the target column's name."""
    if data.kind == "table":
        df = data.x.copy()
        target = cfg.target or data.target
        if data.target is not None and data.y is not None:
            df[data.target] = data.y
        return df.reset_index(drop=True), str(target)
    if data.kind == "array" and data.x.ndim == 2:
        df = pd.DataFrame(data.x, columns=[f"x{i}" for i in range(data.x.shape[1])])
        if data.y is not None:
            df["y"] = np.asarray(data.y, dtype=np.float64)
        return df, cfg.target or str(df.columns[-1])
    raise DataError(f"forecasting needs a table (CSV) with a time column and value columns, not {data.kind} data.")


def _few_windows(cfg: Any, n: int, given: set, steps: int = 400) -> str | None:
    """A short series gives a few dozen windows, one batch per epoch: unless set, use smaller batches and
    enough epochs for about `steps` optimizer steps. Returns the sentence to print, or None."""
    if n >= 4 * cfg.batch_size:
        return None
    from ..config import describe_defaults, fill_defaults

    batch = cfg.batch_size if "batch_size" in given else (16 if n >= 64 else 8)
    epochs = min(500, max(cfg.epochs, -(-steps // -(-n // batch))))
    return describe_defaults(f"few windows ({n})", fill_defaults(cfg, {"batch_size": batch, "epochs": epochs}, given))


def _parts(n: int, val_fraction: float, test_fraction: float, horizon: int) -> list[tuple[int, int]]:
    """Row ranges of train, validation and test in time order; a part that is asked for holds at least one
    horizon of rows so that it has a window. A horizon too long for that is an error."""

    def sizes(h: int) -> tuple[int, int, int]:
        n_test = max(round(n * test_fraction), h) if test_fraction > 0 else 0
        n_val = max(round(n * val_fraction), h) if val_fraction > 0 else 0
        return n - n_val - n_test, n_val, n_test

    n_train, n_val, _ = sizes(horizon)
    if n_train < horizon + 1:
        most = max([h for h in range(1, n) if sizes(h)[0] >= h + 1], default=0)
        parts = " plus validation and test parts" if val_fraction and test_fraction else (
            " plus a validation part" if val_fraction else " plus a test part" if test_fraction else "")
        raise DataError(f"horizon {horizon} is longer than the series allows: its {n} rows cannot hold training "
                        f"windows{parts} of {horizon} rows or more; use a horizon of at most {most}"
                        f"{', or smaller --val-fraction / --test-fraction' if parts else ''}.")
    return [(0, n_train), (n_train, n_train + n_val), (n_train + n_val, n)]
