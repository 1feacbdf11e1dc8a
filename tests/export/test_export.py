"""layerwise export: ONNX and torch.export programs that take raw inputs and compute what eager PyTorch does."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import layerwise as lw
from layerwise.cli import main
from layerwise.export import export

QUIET = {"progress": False, "tensorboard": False, "threads": 1, "quiet": True}
TOL = 1e-4


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    yield tmp_path_factory.mktemp("export")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits_run(folder):
    return lw.train("digits", model="mlp", epochs=1, out=folder / "digits", **QUIET)


@pytest.fixture(scope="module")
def table_run(folder):
    rng = np.random.default_rng(0)
    n = 240
    df = pd.DataFrame({"size": rng.normal(50, 10, n), "age": rng.normal(3, 1, n), "colour": rng.choice(list("rgb"), n)})
    df["label"] = np.where(df["size"] + 8 * (df["colour"] == "r") > 52, "big", "small")
    df.loc[::9, "size"] = np.nan  # missing numbers: median and flag inside the graph
    df.to_csv(folder / "table.csv", index=False)
    return lw.train(folder / "table.csv", target="label", epochs=2, out=folder / "table", **QUIET)


@pytest.fixture(scope="module")
def text_run(folder):
    rng = np.random.default_rng(1)
    good, bad, fill = ["great", "superb", "moving"], ["dull", "awful", "boring"], ["the", "film", "was", "a", "plot"]
    rows = []
    for i in range(160):
        words = list(rng.choice(fill, rng.integers(2, 9))) + [rng.choice(good if i % 2 else bad)]
        rows.append((" ".join(words), "pos" if i % 2 else "neg"))
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(folder / "text.csv", index=False)
    return lw.train(folder / "text.csv", target="label", model="gru", epochs=1, d_model=16, hidden=[16],
                    out=folder / "text", **QUIET)


@pytest.fixture(scope="module")
def series_run(folder):
    t = np.arange(300)
    df = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=300, freq="h"),
                       "load": np.sin(2 * np.pi * t / 24) + 0.01 * t, "temp": np.cos(t / 10.0)})
    df.to_csv(folder / "series.csv", index=False)
    return lw.train(folder / "series.csv", task="forecast", target="load", horizon=6, lookback=24, epochs=1,
                    out=folder / "series", **QUIET)


def eager(run, inputs):
    import torch

    run.model.eval()  # a run fresh from training is still in training mode
    with torch.no_grad():
        return run.model(*(torch.as_tensor(x) for x in inputs)).numpy()


def meta_of(result):
    return json.loads(Path(result["preprocessing"]).read_text())


def run_usage(result, **variables):
    """Run the how-to of the preprocessing JSON (plain numpy/pandas/onnxruntime) in the export's folder."""
    meta = meta_of(result)
    assert "layerwise" not in meta["usage"].replace(meta["run"], "")
    cwd = os.getcwd()
    os.chdir(os.path.dirname(result["path"]))
    try:
        scope = dict(variables)
        exec(meta["usage"], scope)  # noqa: S102 (the how-to written beside the export)
    finally:
        os.chdir(cwd)
    return scope


def test_digits_mlp_onnx_takes_raw_pixels(digits_run, folder):
    ort = pytest.importorskip("onnxruntime")
    r = export(digits_run, "onnx", folder / "digits.onnx", quiet=True)
    assert r["exporter"] in ("dynamo", "torchscript") and r["max_abs_diff"] <= TOL
    assert "test split" in r["checked_on"] and "NHWC -> NCHW" in r["folded"]
    d = lw.load("digits")
    raw = d.x[:50]  # [N, 8, 8, 1] pixels as loaded, no layerwise preprocessing
    session = ort.InferenceSession(r["path"])
    for batch in (raw[:1], raw):  # a dynamic batch axis
        got = session.run(None, {"pixels": np.asarray(batch, np.float32)})[0]
        want = eager(digits_run, digits_run.transform(lw.Data("image", batch, None)))
        assert np.abs(got - want).max() <= TOL
    meta = meta_of(r)
    assert meta["inputs"][0]["shape"] == ["batch", 8, 8, 1] and meta["decode"]["classes"] == list(range(10))
    labels = run_usage(r, images=raw)["labels"]
    assert labels == list(digits_run.predict(raw)["prediction"])


def test_table_mlp_onnx_takes_raw_columns(table_run, folder):
    pytest.importorskip("onnxruntime")
    r = export(table_run, "onnx", folder, quiet=True)
    assert r["path"] == str(folder / "model.onnx") and r["inputs"] == ["numbers", "categories"]
    assert r["max_abs_diff"] <= TOL
    df = pd.read_csv(folder / "table.csv").drop(columns="label").head(40)
    df.loc[3, "colour"] = "purple"  # unseen category: code 0
    df.loc[4, "age"] = np.nan  # a gap where training had none: the median, no flag
    scope = run_usage(r, df=df)  # raw columns in, through the how-to alone
    assert np.abs(scope["out"] - eager(table_run, table_run.transform(lw.Data("table", df, None)))).max() <= TOL
    assert scope["labels"] == list(table_run.predict(df)["prediction"])
    meta = meta_of(r)
    pre = meta["preprocessing"]
    assert pre["columns"] == ["size", "age", "colour"] and set(pre["categories"]["colour"]) == set("rgb")
    assert set(pre["medians"]) == {"size", "age"}


def test_text_gru_onnx(text_run, folder):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    r = export(text_run, "onnx", folder / "text.onnx", quiet=True)
    assert r["exporter"] == "dynamo" and r["max_abs_diff"] <= TOL  # packed sequences replaced for export
    texts = ["the film was great", "awful", "a plot the film was dull dull boring and the great plot"]
    scope = run_usage(r, texts=texts)
    ids = text_run.transform(lw.Data("text", np.array(texts, dtype=object), None))
    assert np.array_equal(scope["feeds"]["token_ids"], ids[0])
    assert np.abs(scope["out"] - eager(text_run, ids)).max() <= TOL
    meta = meta_of(r)
    assert meta["preprocessing"]["max_len"] == ids[0].shape[1] and "tokenizer" in meta["preprocessing"]


def test_dlinear_forecast_onnx_takes_raw_history(series_run, folder):
    pytest.importorskip("onnxruntime")
    r = export(series_run, "onnx", folder / "series.onnx", quiet=True)
    assert r["max_abs_diff"] <= TOL and "series" in r["checked_on"]
    history = pd.read_csv(folder / "series.csv").iloc[:200]
    forecast = run_usage(r, df=history)["forecast"]
    want = series_run.predict(history)["prediction"]  # [1, horizon] in the target's units
    assert forecast.shape == (1, 6, 1) and np.abs(forecast[..., 0] - want).max() <= TOL


def test_variable_length_sequences_take_raw_steps_and_lengths(folder):
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(2)
    seqs = np.empty(60, dtype=object)
    seqs[:] = [rng.normal(5, 2, (int(t), 2)).astype(np.float32) for t in rng.integers(3, 16, 60)]
    run = lw.train(lw.Data("sequence", seqs, np.arange(60) % 2), model="gru", epochs=1, hidden=[8],
                   out=folder / "seq", **QUIET)
    r = export(run, "onnx", folder / "seq.onnx", quiet=True)  # in-memory data: checked on random sequences
    assert r["inputs"] == ["sequences", "lengths"] and r["max_abs_diff"] <= TOL and "random" in r["checked_on"]
    scope = run_usage(r, sequences=list(seqs[:9]))
    assert np.abs(scope["out"] - eager(run, run.transform(lw.Data("sequence", seqs[:9], None)))).max() <= TOL


@pytest.mark.parametrize("name", ["digits_run", "table_run", "text_run", "series_run"])
def test_torch_export_round_trip(name, request, folder):
    import torch

    run = request.getfixturevalue(name)
    r = export(run, "torch", folder / f"{name}.pt2", quiet=True)
    assert r["exporter"] == "torch.export" and r["max_abs_diff"] <= TOL  # checked on the loaded .pt2
    program = torch.export.load(r["path"]).module()
    assert "torch.export.load" in meta_of(r)["usage"]
    if name == "digits_run":
        raw = lw.load("digits").x[:7]
        with torch.no_grad():
            got = program(torch.as_tensor(raw, dtype=torch.float32)).numpy()
        assert np.abs(got - eager(run, run.transform(lw.Data("image", raw, None)))).max() <= TOL


def test_bad_inputs_are_one_sentence(digits_run, folder, capsys):
    unfinished = folder / "unfinished"
    shutil.copytree(digits_run.path, unfinished, ignore=shutil.ignore_patterns("model.*", "*.onnx*", "*.pt2*"))
    cases = [([str(unfinished)], "is not finished"),
             ([str(digits_run.path), "--format", "tflite"], "unknown export format 'tflite'; use onnx or torch"),
             ([str(digits_run.path), "--out", str(folder / "no" / "such" / "m.onnx")], "does not exist; create it")]
    for args, expected in cases:
        assert main(["export", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and err.startswith("error: ") and err.count("\n") == 0


def test_a_layer_that_cannot_be_exported_is_named(digits_run):
    from torch import nn

    from layerwise.export.core import ExportError

    class Gate(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x  # data-dependent control flow

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.gate = nn.Linear(64, 10), Gate()

        def forward(self, x):
            return self.gate(self.lin(x.flatten(1)))

    run = lw.Run(digits_run.path, digits_run.config, digits_run.pre, digits_run.task, Net().eval(),
                 {**digits_run.info, "model": "custom"})
    with pytest.raises(ExportError, match=r"layer 'gate' \(Gate\) fails in the exporter"):
        export(run, "torch", digits_run.path / "bad.pt2", quiet=True)
    assert not (digits_run.path / "bad.pt2").exists()


def test_cli_help_stays_light():
    code = "import sys, layerwise.cli, layerwise.export; sys.exit('torch' in sys.modules or 'onnx' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
