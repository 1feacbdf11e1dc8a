"""Forecasting: series reading, chronological windows without leakage, baselines, and the task end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import layerwise as lw
from layerwise.cli import main
from layerwise.data import forecasting as fc
from layerwise.data import timeseries as ts

QUIET = {"progress": False, "tensorboard": False, "threads": 1, "quiet": True}


def _hourly(n: int, **cols) -> pd.DataFrame:
    return pd.DataFrame({"time": pd.date_range("2021-01-01", periods=n, freq="h").astype(str), **cols})


def _series_csv(path: Path, n: int = 24 * 40, seed: int = 0) -> Path:
    """Two hourly columns: a daily cycle with a slow drift (target y) and a noisy companion x."""
    g = np.random.default_rng(seed)
    t = np.arange(n)
    y = 10 + 3 * np.sin(2 * np.pi * t / 24) + 0.002 * t + 0.3 * g.normal(size=n)
    x = np.cos(2 * np.pi * t / 24) + 0.3 * g.normal(size=n)
    _hourly(n, x=x, y=y).to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- reading and windows


def test_read_series_detects_time_and_season():
    times, values, cols = ts.read_series(_hourly(48, a=np.arange(48.0), b=np.ones(48)))
    assert cols == ["a", "b"] and values.shape == (48, 2) and values.dtype == np.float32
    assert ts.infer_season(times) == 24
    assert ts.infer_season(pd.date_range("2020", periods=5, freq="D")) == 7
    assert ts.infer_season(pd.date_range("2020", periods=5, freq="MS")) == 12
    assert ts.infer_season(None) == 1
    assert ts.read_series(pd.DataFrame({"x": [1.0, 2.0]}))[0] is None


def test_gaps_nans_and_non_numeric_name_the_rows():
    df = _hourly(10, a=np.arange(10.0)).drop(index=[4, 7]).reset_index(drop=True)
    with pytest.raises(ValueError, match=r"2 missing timestamps, after rows 3 \(2021-01-01 03:00:00\), 5 "):
        ts.read_series(df)
    with pytest.warns(UserWarning, match="interpolation"):
        times, values, _ = ts.read_series(df, fill="interpolate")
    assert len(times) == 10 and values[4, 0] == 4.0 and values[7, 0] == 7.0
    with pytest.raises(ValueError, match=r"2 rows have missing values \(rows 1, 4\)"):
        ts.read_series(_hourly(6, a=[1.0, np.nan, 3.0, 4.0, np.nan, 6.0]))
    with pytest.raises(ValueError, match=r"column 'a' has non-numeric values at rows 2, 4"):
        ts.read_series(_hourly(6, a=["1", "2", "x", "4", "?", "6"]))
    with pytest.raises(ValueError, match="not dates at rows 1"):
        ts.read_series(pd.DataFrame({"t": ["2020-01-01", "soon"], "a": [1, 2]}), time_col="t")


def test_windows_align_with_the_series():
    values = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    X, Y = fc.make_windows(values, lookback=8, horizon=4, start=20, end=40, target_cols=[2])
    assert X.shape == (40 - 20 - 4 + 1, 8, 3) and Y.shape == (17, 4, 1)
    for i in range(len(X)):
        s = 20 - 8 + i  # the first window borrows its look-back from before `start`
        np.testing.assert_array_equal(X[i], values[s : s + 8])
        np.testing.assert_array_equal(Y[i, :, 0], values[s + 8 : s + 12, 2])
    with pytest.raises(ValueError, match=r"lookback=40 plus horizon=20 .*\(50 rows\)"):
        fc.make_windows(values, 40, 20)


def test_no_leakage_between_chronological_parts():
    n = 200
    rows = np.arange(n, dtype=np.float32)[:, None]  # each value is its own row number
    (a0, a1), (b0, b1), (c0, c1) = ts.chronological_split(n, 0.1, 0.2)
    assert (a1, b1, c1) == (140, 160, 200) and a0 == 0 and b0 == a1 and c0 == b1
    _, Ytr = fc.make_windows(rows, 24, 6, a0, a1)
    Xte, Yte = fc.make_windows(rows, 24, 6, c0, c1)
    assert Ytr.max() < a1 and Yte.min() >= c0
    assert (Xte[:, -1, 0] + 1 == Yte[:, 0, 0]).all()  # history ends right before the targets
    scaler = ts.Standardizer.fit(rows[a0:a1])
    assert abs(scaler.mean[0] - 69.5) < 1e-4  # fitted on the training part only
    back = ts.Standardizer.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_allclose(back.inverse_transform(back.transform(rows)), rows, atol=1e-3)


def test_baselines_match_the_window_forecasts():
    t = np.arange(24 * 20, dtype=np.float64)
    series = np.stack([np.sin(2 * np.pi * t / 24), t / 100], 1).astype(np.float32)
    X, Y = fc.make_windows(series, lookback=48, horizon=12, start=100, end=300)
    base = fc.baselines(series, 48, 12, 100, 300, [0], 24)
    assert base.shape == (len(X), 12, 2)
    np.testing.assert_array_equal(base[..., 0], fc.naive_forecast(X, 12)[..., 0])
    np.testing.assert_array_equal(base[..., 1], fc.seasonal_naive_forecast(X, 12, 24)[..., 0])
    assert np.abs(base[..., 1] - Y[..., 0]).max() < 1e-5  # a pure season is repeated exactly


# ---------------------------------------------------------------- the task end to end


def test_forecast_end_to_end(tmp_path, capsys):
    csv = _series_csv(tmp_path / "load.csv")
    run = lw.train(csv, task="forecast", target="y", horizon=24, lookback=96, epochs=4, out=tmp_path / "run",
                   **QUIET)
    m = run.info["test_metrics"]
    for k in ("mse", "mae", "naive_mse", "naive_mae", "seasonal_naive_mse", "seasonal_naive_mae",
              "scaled_mae_naive", "scaled_mae_seasonal_naive"):
        assert k in m
    assert m["mse"] < m["naive_mse"] and m["scaled_mae_naive"] < 1
    assert abs(m["scaled_mae_naive"] - m["mae"] / m["naive_mae"]) < 1e-6
    cfg = run.config
    assert (cfg.target, cfg.horizon, cfg.lookback, cfg.season) == ("y", 24, 96, 24)
    # standardised with statistics of the training rows only (the first 70% of 960 rows)
    raw = pd.read_csv(csv)
    np.testing.assert_allclose(run.pre.scaler.mean, raw[["x", "y"]].iloc[:672].mean().to_numpy(), rtol=1e-5)

    back = lw.Run.load(tmp_path / "run")
    again = back.evaluate()
    assert abs(again["mse"] - m["mse"]) < 1e-6 and abs(again["seasonal_naive_mse"] - m["seasonal_naive_mse"]) < 1e-6
    history = raw.iloc[:500]
    out = back.predict(history)
    assert out["prediction"].shape == (1, 24) and out["targets"] == ["y"]
    table = out["table"]
    assert list(table.columns) == ["step", "time", "y"] and len(table) == 24
    assert table["time"].iloc[0] == "2021-01-21 20:00:00"  # the hour after row 499
    np.testing.assert_allclose(table["y"], out["prediction"][0])
    assert np.abs(table["y"].to_numpy() - raw["y"].iloc[500:524].to_numpy()).mean() < 1.5

    history.to_csv(tmp_path / "recent.csv", index=False)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "recent.csv"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 24 and rows[0]["time"] == "2021-01-21 20:00:00"
    assert abs(rows[0]["y"] - table["y"].iloc[0]) < 1e-4
    # evaluate on a given series: windows over all of it, scaled with the run's training statistics
    whole = back.evaluate(str(csv))
    assert whole["naive_mse"] > 0 and np.isfinite(whole["mse"])


def test_univariate_defaults_and_few_windows(tmp_path, capsys):
    months = pd.date_range("1990-01", periods=96, freq="MS").strftime("%Y-%m")
    t = np.arange(96)
    pd.DataFrame({"Month": months, "Sales": 100 + t + 20 * np.sin(2 * np.pi * t / 12)}).to_csv(
        tmp_path / "sales.csv", index=False)
    assert main(["train", str(tmp_path / "sales.csv"), "--task", "forecast", "--out", str(tmp_path / "r"),
                 "--no-progress", "--no-tensorboard", "--threads", "1", "--epochs", "3"]) == 0
    err = capsys.readouterr().err
    assert "target: 'Sales'" in err and "forecast: Sales, 12 steps ahead" in err and "season 12" in err
    assert "few windows" in err and "batch_size 8" in err
    run = lw.Run.load(tmp_path / "r")
    assert run.config.epochs == 3 and run.config.batch_size == 8  # epochs were set, batch size was not
    assert run.config.lookback == (96 - 12 - 19 - 12) // 2  # val grown to one horizon, test 19 rows
    out = run.predict(np.arange(run.config.lookback, dtype=float))
    assert out["prediction"].shape == (1, 12) and "table" not in out


def test_ett_files_get_the_standard_split(tmp_path, capsys):
    n = 24 * 30 * 20 + 100
    g = np.random.default_rng(0)
    _hourly(n, a=g.normal(size=n), OT=g.normal(size=n)).to_csv(tmp_path / "ETTh1.csv", index=False)
    from layerwise.config import make_config
    from layerwise.tasks.forecast import Forecast

    cfg = make_config(data=str(tmp_path / "ETTh1.csv"), task="forecast", target="OT", horizon=96, lookback=336)
    prepared = Forecast.prepare(cfg, lw.load(cfg.data, target="OT"))
    assert "ETT standard split, 12/4/4 months (100 later rows unused): 8640 / 2880 / 2880 rows" in \
        capsys.readouterr().err
    assert (len(prepared.train), len(prepared.val), len(prepared.test)) == (8640 - 336 - 96 + 1, 2785, 2785)
    x, y = prepared.test.inputs[0], prepared.test.y
    assert x.shape == (2785, 336, 2) and y.shape == (2785, 96, 2 + 2)


# ---------------------------------------------------------------- bad input


def _err(capsys, *argv) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 2
    return capsys.readouterr().err


def test_bad_series_are_named(tmp_path, capsys):
    base = ["--task", "forecast", "--horizon", "4", "--no-progress", "--no-tensorboard", "--epochs", "1"]
    gaps = _hourly(200, v=np.arange(200.0)).drop(index=[50, 51, 120]).reset_index(drop=True)
    gaps.to_csv(tmp_path / "gaps.csv", index=False)
    err = _err(capsys, "train", str(tmp_path / "gaps.csv"), *base)
    assert "error: the series has 3 missing timestamps, after rows 49 (2021-01-03 01:00:00), " \
           "117 (2021-01-05 23:00:00); add the missing rows, or fill them" in err and "--fill-gaps" in err and "Traceback" not in err

    words = _hourly(100, v=np.arange(100.0).astype(str))
    words.loc[[7, 42], "v"] = ["n/a?", "oops"]
    words.to_csv(tmp_path / "words.csv", index=False)
    err = _err(capsys, "train", str(tmp_path / "words.csv"), *base)
    assert "column 'v' has non-numeric values at rows 7, 42" in err

    _hourly(100, v=np.arange(100.0)).to_csv(tmp_path / "short.csv", index=False)
    err = _err(capsys, "train", str(tmp_path / "short.csv"), "--task", "forecast", "--horizon", "40")
    assert "error: horizon 40 is longer than the series allows: its 100 rows cannot hold training windows plus " \
           "validation and test parts of 40 rows or more; use a horizon of at most 33, or smaller --val-fraction " \
           "/ --test-fraction." in err
    err = _err(capsys, "train", str(tmp_path / "short.csv"), "--task", "forecast", "--horizon", "10",
               "--lookback", "70")
    assert "lookback 70 plus horizon 10 leave no training window in the 70 training rows" in err


def test_fill_gaps_and_short_history(tmp_path, capsys):
    gaps = _hourly(200, v=np.sin(np.arange(200.0) / 4)).drop(index=[50, 51]).reset_index(drop=True)
    gaps.to_csv(tmp_path / "gaps.csv", index=False)
    run = lw.train(tmp_path / "gaps.csv", task="forecast", horizon=4, lookback=24, fill_gaps=True, epochs=1,
                   out=tmp_path / "r", **QUIET)
    assert len(run.pre.columns) == 1
    gaps.iloc[:10].to_csv(tmp_path / "recent.csv", index=False)
    err = _err(capsys, "predict", str(tmp_path / "r"), str(tmp_path / "recent.csv"))
    assert "error: the history has 10 rows but the model needs the last 24 (its lookback) to forecast; give a " \
           "longer history." in err
    pd.DataFrame({"time": gaps["time"], "w": gaps["v"]}).to_csv(tmp_path / "other.csv", index=False)
    err = _err(capsys, "predict", str(tmp_path / "r"), str(tmp_path / "other.csv"))
    assert "the history lacks the column(s) 'v' that the model was trained on" in err


# ---------------------------------------------------------------- real data


@pytest.mark.slow
def test_etth2_beats_seasonal_naive(shared_data, tmp_path):
    """ETTh2, target OT, all 7 columns as inputs, horizon 96, look-back 336, the standard 12/4/4-month split."""
    run = lw.train(shared_data / "timeseries" / "ETTh2.csv", task="forecast", target="OT", horizon=96,
                   lookback=336, out=tmp_path / "r", threads=1, progress=False, tensorboard=False, quiet=True)
    m = run.info["test_metrics"]
    assert m["mse"] <= 0.30 and m["mse"] < m["seasonal_naive_mse"] and m["scaled_mae_seasonal_naive"] < 1
    assert m["loss"] <= 0.30  # the MSE over all 7 columns (the multivariate-to-multivariate setting)
