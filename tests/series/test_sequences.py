"""Sequence classification: one label per series (long tables, arrays) or per window of a long series."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import layerwise as lw
from layerwise.api import prepare_data
from layerwise.cli import main
from layerwise.data.sequences import long_to_series
from layerwise.errors import DataError

QUIET = {"progress": False, "tensorboard": False, "threads": 1, "quiet": True}


def _waves_long(path: Path, n: int = 240, seed: int = 0) -> Path:
    """A long table of n series of 30-60 steps, two channels: class 'slow' is a sine of period ~16 steps,
    'fast' of period ~6, under noise, with random phase; rows shuffled so grouping and time order matter."""
    g = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "fast" if i % 2 else "slow"
        steps = int(g.integers(30, 61))
        period = (6 if label == "fast" else 16) * g.uniform(0.85, 1.15)
        t = np.arange(steps)
        a = np.sin(2 * np.pi * t / period + g.uniform(0, 2 * np.pi)) + 0.4 * g.normal(size=steps)
        b = 0.5 * g.normal(size=steps) + 3.0
        for k in range(steps):
            rows.append({"unit": f"u{i:03d}", "time": f"2024-01-01 00:{k // 60:02d}:{k % 60:02d}", "a": a[k],
                         "b": b[k], "kind": label})
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=seed)
    df.to_csv(path, index=False)
    return path


def _regimes(path: Path, n: int = 4000, seed: int = 0) -> Path:
    """One long hourly series with a state per row: 'calm' stretches of small noise, 'storm' stretches of a
    fast oscillation with larger noise; each stretch 40-120 rows."""
    g = np.random.default_rng(seed)
    states, k = [], 0
    while len(states) < n:
        states += ["storm" if k % 2 else "calm"] * int(g.integers(40, 121))
        k += 1
    states = np.array(states[:n])
    t = np.arange(n)
    storm = states == "storm"
    v = 0.3 * g.normal(size=n) + storm * (1.5 * np.sin(t * 1.3) + 0.6 * g.normal(size=n))
    pd.DataFrame({"time": pd.date_range("2023-01-01", periods=n, freq="h").astype(str), "v": v,
                  "state": states}).to_csv(path, index=False)
    return path


def test_long_table_groups_and_orders_each_series():
    df = pd.DataFrame({"id": ["b", "a", "b", "a", "b"], "t": [3, 2, 1, 1, 2], "x": [30.0, 20, 10, 10, 20],
                       "y": ["p", "q", "p", "q", "p"]})
    seqs, labels, ids, cols, time_col = long_to_series(df, "id", "y", time_col="t")
    assert ids == ["a", "b"] and list(labels) == ["q", "p"] and cols == ["x"] and time_col == "t"
    assert seqs[0][:, 0].tolist() == [10, 20] and seqs[1][:, 0].tolist() == [10, 20, 30]


def test_padding_never_changes_the_cnn_or_gru_output():
    from layerwise.models.cnn import CNN1d
    from layerwise.models.rnn import RecurrentNet
    from layerwise.models.transformer import TransformerEncoder

    torch.manual_seed(0)
    x = torch.randn(3, 37, 2)
    lengths = torch.tensor([37, 20, 9])
    for model in (CNN1d(2, 4, length=64), RecurrentNet(4, cell="gru", in_features=2, bidirectional=True),
                  RecurrentNet(4, cell="lstm", in_features=2, bidirectional=True, readout="last"),
                  TransformerEncoder(4, in_features=2, max_len=64, layers=1)):
        model.eval()
        padded = torch.cat([x, torch.randn(3, 27, 2)], 1)
        for i, n in enumerate(lengths.tolist()):
            padded[i, n:] = 99.0  # garbage after the real steps
        short = x.clone()
        for i, n in enumerate(lengths.tolist()):
            short[i, n:] = -5.0
        a, b = model(short, lengths), model(padded, lengths)
        assert torch.allclose(a, b, atol=1e-5), type(model).__name__


def test_long_table_end_to_end(tmp_path, capsys):
    csv = _waves_long(tmp_path / "units.csv")
    capsys.readouterr()
    assert main(["train", str(csv), "--target", "kind", "--series-id", "unit", "--out", str(tmp_path / "r"),
                 "--epochs", "12", "--no-progress", "--no-tensorboard", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "sequences: 240 series by 'unit', 30–60 steps of 2 channel(s) (a, b), in 'time' order" in err
    assert "model: cnn" in err
    run = lw.Run.load(tmp_path / "r")
    assert run.info["test_metrics"]["accuracy"] >= 0.9
    assert run.pre.variable and run.pre.length == 60 and run.pre.columns == ["a", "b"]
    # statistics from the training split only: the constant-ish channel b has mean ~3
    assert abs(run.pre.mean[1] - 3.0) < 0.1
    # predict on a table: one row per series id, with class probabilities
    new = pd.read_csv(csv)
    new = new[new.unit.isin(["u000", "u001", "u002", "u003"])].drop(columns=["kind"])
    new.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(tmp_path / "r"), str(tmp_path / "new.csv"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["unit"] for r in rows] == ["u000", "u001", "u002", "u003"]
    assert [r["prediction"] for r in rows] == ["slow", "fast", "slow", "fast"]
    assert abs(rows[0]["p_fast"] + rows[0]["p_slow"] - 1) < 1e-5
    # evaluate on a long table: grouped by id like the training data
    part = pd.read_csv(csv)
    part = part[part.unit.isin([f"u{i:03d}" for i in range(40)])]
    m = run.evaluate(part)
    assert m["accuracy"] >= 0.85 and "loss" in m


def test_transformer_and_lstm_read_variable_length_series(tmp_path):
    csv = _waves_long(tmp_path / "units.csv", n=400)
    for model, extra in (("transformer", {"layers": 1, "d_model": 32}), ("lstm", {"readout": "last"})):
        run = lw.train(csv, target="kind", series_id="unit", model=model, epochs=25, batch_size=32, out=tmp_path / model,
                       **extra, **QUIET)
        assert run.info["test_metrics"]["accuracy"] >= 0.8, model
        again = lw.Run.load(tmp_path / model)
        assert again.config.readout == run.config.readout and again.evaluate()["accuracy"] == \
            pytest.approx(run.info["test_metrics"]["accuracy"])


def test_gru_on_sequences_and_resume_is_exact(tmp_path, crash_after_epoch):
    csv = _waves_long(tmp_path / "units.csv", n=120)
    common = dict(target="kind", series_id="unit", model="gru", epochs=3, **QUIET)
    full = lw.train(csv, out=tmp_path / "full", **common)
    with crash_after_epoch(1):
        lw.train(csv, out=tmp_path / "crash", **common)
    resumed = lw.train(csv, resume=tmp_path / "crash", quiet=True)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_windows_of_one_series_labelled_by_their_last_row(tmp_path, capsys):
    csv = _regimes(tmp_path / "plant.csv")
    run = lw.train(csv, target="state", lookback=24, epochs=20, out=tmp_path / "w", **QUIET)
    assert run.pre.mode == "windows" and run.config.stride == 6
    assert run.info["test_metrics"]["accuracy"] >= 0.9
    # chronological split, no window crosses into the next part: test windows end in the last 20% of rows
    prepared = prepare_data(run.config, quiet=True)
    assert prepared.test.index.min() >= 3200 + 24 - 1 and prepared.train.index.max() < 2800
    assert len(prepared.test) == 800 - 23  # every test window (stride 1 outside training)
    # predict on a table: a label for every row that ends a full window
    recent = pd.read_csv(csv).iloc[-100:].drop(columns=["state"])
    out = run.predict(recent)
    table = out["table"]
    assert len(table) == 100 - 23 and list(table.columns[:2]) == ["time", "prediction"]
    assert table["time"].iloc[0] == recent["time"].iloc[23]
    truth = pd.read_csv(csv)["state"].iloc[-77:].to_numpy()
    assert (table["prediction"].to_numpy() == truth).mean() >= 0.85
    # evaluate on a table: every window, labelled by its last row
    m = run.evaluate(pd.read_csv(csv).iloc[-100:])
    assert m["accuracy"] == pytest.approx((table["prediction"].to_numpy() == truth).mean())


def test_arrays_and_mlp_need_one_length(tmp_path):
    g = np.random.default_rng(0)
    x = g.normal(size=(300, 20, 1)).astype(np.float32)
    y = (x[:, :10, 0].mean(1) > x[:, 10:, 0].mean(1)).astype(int)
    run = lw.train(lw.Data("sequence", x, y), model="mlp", epochs=15, out=tmp_path / "a", **QUIET)
    assert run.info["test_metrics"]["accuracy"] >= 0.8
    preds = run.predict(x[:100])["prediction"]
    assert len(preds) == 100 and np.mean(np.array(preds) == y[:100]) >= 0.8
    with pytest.raises(DataError, match=r"sequences must be \[N, steps, 1\]"):
        run.predict(np.zeros((2, 20, 3)))


def _err(capsys, *argv) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_bad_sequence_input_gets_a_sentence(tmp_path, capsys):
    csv = _waves_long(tmp_path / "units.csv", n=20)
    base = ["--target", "kind", "--no-progress", "--no-tensorboard", "--epochs", "1"]
    err = _err(capsys, "train", str(csv), "--series-id", "machine", *base)
    assert "the table has no column 'machine' for --series-id; its columns are: unit, time, a, b, kind." in err

    df = pd.read_csv(csv)
    df.loc[df.unit == "u003", "kind"] = ["slow", "fast"] * (int((df.unit == "u003").sum()) // 2) + \
        ["slow"] * (int((df.unit == "u003").sum()) % 2)
    df.to_csv(tmp_path / "mixed.csv", index=False)
    err = _err(capsys, "train", str(tmp_path / "mixed.csv"), "--series-id", "unit", *base)
    assert "series 'u003' have more than one value of 'kind'; with --series-id each series has one label." in err

    df = pd.read_csv(csv)
    df.loc[df.index[5], "a"] = np.nan
    bad_unit = df.loc[df.index[5], "unit"]
    df.to_csv(tmp_path / "nan.csv", index=False)
    err = _err(capsys, "train", str(tmp_path / "nan.csv"), "--series-id", "unit", *base)
    assert f"series '{bad_unit}' have missing or non-numeric values; fill or drop those rows." in err

    df = pd.read_csv(csv)
    df["a"] = df["a"].astype(str)
    df.loc[df.index[7], "a"] = "broken"
    df.to_csv(tmp_path / "words.csv", index=False)
    err = _err(capsys, "train", str(tmp_path / "words.csv"), "--series-id", "unit", *base)
    assert "column 'a' has non-numeric values at rows 7; sequence models read numbers" in err

    err = _err(capsys, "train", str(csv), "--series-id", "unit", "--model", "mlp", *base)
    assert "model 'mlp' needs sequences of one length, but these differ in length; use --model cnn or gru." in err

    _regimes(tmp_path / "plant.csv", n=300)
    err = _err(capsys, "train", str(tmp_path / "plant.csv"), "--target", "state", "--lookback", "250", *base[2:])
    assert "lookback 250 is longer than the 210 training rows" in err


def test_table_with_a_time_column_gets_a_hint(tmp_path, capsys):
    _regimes(tmp_path / "plant.csv", n=400)
    lw.train(tmp_path / "plant.csv", target="state", epochs=1, out=tmp_path / "t", progress=False,
             tensorboard=False, threads=1)
    err = capsys.readouterr().err
    assert "column 'time' holds times: each row is classified on its own. To classify windows of the series " \
           "give --window N" in err


@pytest.mark.slow
def test_mnist1d_defaults_reach_095(tmp_path):
    pytest.importorskip("mnist1d")
    run = lw.train("mnist1d", out=tmp_path / "m", **QUIET)
    assert run.info["model"] == "cnn"
    assert run.info["test_metrics"]["accuracy"] >= 0.95
