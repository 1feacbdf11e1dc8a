"""Runs and their report: `layerwise runs` (sort, filter, JSON, prune), `rm`, `summary`, the confusion matrix with
class labels in `evaluate`, and the files `write_report` leaves in a run folder."""

import json
import subprocess
import sys
import types

import numpy as np
import pytest

import layerwise as lw
from layerwise.cli import main
from layerwise.report import model_summary, summary_text, write_report

TRAIN = {"model": "mlp", "epochs": 1, "progress": False, "tensorboard": False, "threads": 1, "quiet": True}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    return lw.train("digits", out=tmp_path_factory.mktemp("runs") / "digits", **TRAIN)


@pytest.fixture(scope="module")
def animals_run(tmp_path_factory):
    """A classifier whose classes are words (so that labels, not indices, can be checked)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    y = rng.choice(["cat", "dog", "owl"], 300)
    x = rng.normal(size=(300, 2)) + (y == "dog")[:, None] * 3 + (y == "owl")[:, None] * [-3, 3]
    folder = tmp_path_factory.mktemp("animals")
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "animal": y}).to_csv(folder / "animals.csv", index=False)
    return lw.train(folder / "animals.csv", target="animal", out=folder / "run", **TRAIN)


def fake_run(root, name, status="done", task="classify", model="mlp", created="2026-01-01 10:00:00",
             metrics=None, seconds=(1.0, 2.0), epochs=5, weights=False, **extra):
    d = root / name
    d.mkdir(parents=True)
    info = {"status": status, "model": model, "task": task, "data": f"{name}.csv", "created": created,
            "epochs_done": len(seconds), **extra}
    if metrics is not None:
        info["test_metrics"] = {"loss": 0.5, **metrics}
    (d / "run.json").write_text(json.dumps(info))
    (d / "schema.json").write_text("{}")
    (d / "config.yaml").write_text(f"data: {name}.csv\nepochs: {epochs}\n")
    (d / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "train_loss": 1.0, "seconds": s}) + "\n"
                                             for i, s in enumerate(seconds)))
    if weights:
        (d / "model.safetensors").write_bytes(b"")
    return d


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    fake_run(root, "b-good", metrics={"accuracy": 0.9, "macro_f1": 0.8}, created="2026-01-02 10:00:00",
             seconds=(1.0, 2.0))
    fake_run(root, "a-ok", metrics={"accuracy": 0.7, "macro_f1": 0.6}, created="2026-01-03 10:00:00",
             seconds=(30.0, 40.0), model="cnn")
    fake_run(root, "c-reg", task="regress", metrics={"rmse": 1.25, "mae": 1.0}, created="2026-01-01 10:00:00",
             seconds=(0.5,))
    fake_run(root, "d-failed", status="failed", created="2026-01-04 10:00:00", seconds=(3.0,),
             error="the data has NaN in column 'a'; fill or drop those rows.\nTraceback (most recent call last)")
    fake_run(root, "e-interrupted", status="interrupted", created="2026-01-05 10:00:00", seconds=(4.0,))
    fake_run(root, "f-resumed", status="running", created="2026-01-06 10:00:00", seconds=(5.0,), weights=True)
    (root / "not-a-run").mkdir()
    return root


def names(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[1:] if not line.startswith("  ")]


def test_runs_shows_status_data_epochs_time_and_key_metric(runs, capsys):
    assert main(["runs", str(runs)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert out.splitlines()[0].split() == ["run", "status", "data", "model", "task", "epochs", "time", "metric"]
    assert lines["b-good"].split() == ["b-good", "done", "b-good.csv", "mlp", "classify", "2/5", "3.0s", "accuracy",
                                       "0.9000"]
    assert lines["a-ok"].split()[5:7] == ["2/5", "1m10s"]  # 30 + 40 seconds
    assert lines["c-reg"].split()[-2:] == ["rmse", "1.2500"]  # regress: rmse, not the first metric
    assert lines["d-failed"].split()[1] == "failed" and lines["e-interrupted"].split()[1] == "interrupted"
    # a failed run: the first line of its error, below it; never the traceback
    assert "  error: the data has NaN in column 'a'; fill or drop those rows." in out and "Traceback" not in out
    assert "not-a-run" not in out
    assert names(out) == ["c-reg", "b-good", "a-ok", "d-failed", "e-interrupted", "f-resumed"]  # created


def test_runs_first_test_metric_of_other_tasks(tmp_path, capsys):
    fake_run(tmp_path, "ae", task="reconstruct", metrics={"mse": 0.0123, "mae": 0.1})
    assert main(["runs", str(tmp_path), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["metric"], row["value"]) == ("mse", 0.0123)


@pytest.mark.parametrize(("sort", "order"), [
    ("name", ["a-ok", "b-good", "c-reg", "d-failed", "e-interrupted", "f-resumed"]),
    ("metric", ["b-good", "a-ok", "c-reg", "d-failed", "e-interrupted", "f-resumed"]),  # best first, none last
    ("time", ["a-ok", "f-resumed", "e-interrupted", "b-good", "d-failed", "c-reg"]),  # longest first
])
def test_runs_sort(runs, capsys, sort, order):
    assert main(["runs", str(runs), "--sort", sort]) == 0
    assert names(capsys.readouterr().out) == order


def test_runs_sort_metric_puts_the_lowest_error_first(tmp_path, capsys):
    fake_run(tmp_path, "worse", task="regress", metrics={"rmse": 2.0})
    fake_run(tmp_path, "better", task="regress", metrics={"rmse": 1.0})
    assert main(["runs", str(tmp_path), "--sort", "metric"]) == 0
    assert names(capsys.readouterr().out) == ["better", "worse"]


def test_runs_filters_and_json(runs, capsys):
    assert main(["runs", str(runs), "--status", "failed"]) == 0
    assert names(capsys.readouterr().out) == ["d-failed"]
    assert main(["runs", str(runs), "--task", "regress"]) == 0
    assert names(capsys.readouterr().out) == ["c-reg"]
    assert main(["runs", str(runs), "--model", "cnn", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "a-ok" and row["model"] == "cnn" and row["status"] == "done" and row["weights"] is False
    assert (row["epochs_done"], row["epochs"], row["seconds"], row["metric"], row["value"]) == (2, 5, 70.0,
                                                                                                "accuracy", 0.7)
    assert main(["runs", str(runs), "--json", "--status", "failed"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["error"] == "the data has NaN in column 'a'; fill or drop those rows." and row["value"] is None
    assert main(["runs", str(runs), "--status", "running", "--task", "classify", "--model", "cnn"]) == 0
    assert "match the filters" in capsys.readouterr().out
    assert main(["runs", str(runs / "missing"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_runs_time_from_run_json_without_metrics_log(tmp_path, capsys):
    d = fake_run(tmp_path, "old", metrics={"accuracy": 0.5}, seconds=())
    (d / "metrics.jsonl").unlink()
    info = json.loads((d / "run.json").read_text())
    (d / "run.json").write_text(json.dumps({**info, "seconds": 12.5, "epochs_done": 3}))
    assert main(["runs", str(tmp_path), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["seconds"], row["epochs_done"]) == (12.5, 3)


def test_runs_bad_choices_and_damaged_runs(runs, capsys):
    with pytest.raises(SystemExit) as e:
        main(["runs", str(runs), "--status", "finished"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["runs", str(runs), "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("error: --dry-run goes with --prune")
    (runs / "zz-broken").mkdir()
    (runs / "zz-broken" / "run.json").write_text("{not json")
    assert main(["runs", str(runs), "--sort", "name"]) == 0
    broken = [line for line in capsys.readouterr().out.splitlines() if line.startswith("zz-broken")]
    assert broken[0].split()[:2] == ["zz-broken", "damaged"]


def test_runs_prune(runs, capsys):
    assert main(["runs", str(runs), "--prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("would remove") == 2 and "d-failed (failed)" in out and "e-interrupted (interrupted)" in out
    assert (runs / "d-failed").is_dir() and (runs / "e-interrupted").is_dir()
    assert main(["runs", str(runs), "--prune", "--status", "failed"]) == 0  # filters narrow what is pruned
    assert capsys.readouterr().out.strip() == f"removed {runs / 'd-failed'} (failed)"
    assert not (runs / "d-failed").exists() and (runs / "e-interrupted").is_dir()
    assert main(["runs", str(runs), "--prune"]) == 0
    assert "removed" in capsys.readouterr().out and not (runs / "e-interrupted").exists()
    # finished runs and a resumed run that holds trained weights stay, and so does a folder that is not a run
    assert sorted(p.name for p in runs.iterdir()) == ["a-ok", "b-good", "c-reg", "f-resumed", "not-a-run"]
    assert main(["runs", str(runs), "--prune"]) == 0
    assert capsys.readouterr().out.startswith("nothing to prune")


def test_rm(runs, capsys):
    assert main(["rm", str(runs / "a-ok"), str(runs / "b-good")]) == 0
    assert capsys.readouterr().out.splitlines() == [f"removed {runs / 'a-ok'}", f"removed {runs / 'b-good'}"]
    assert not (runs / "a-ok").exists() and not (runs / "b-good").exists()
    # a folder without run.json is refused, and nothing of the same call is removed
    assert main(["rm", str(runs / "c-reg"), str(runs / "not-a-run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not a run folder" in err and err.count("\n") == 1
    assert (runs / "c-reg").is_dir() and (runs / "not-a-run").is_dir()
    assert main(["rm", str(runs / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_runs_does_not_import_torch(runs):
    code = ("import sys; from layerwise.cli import main\n"
            f"assert main(['runs', {str(runs)!r}, '--sort', 'metric']) == 0\n"
            f"assert main(['runs', {str(runs)!r}, '--prune', '--dry-run']) == 0\n"
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_runs_of_a_real_training(digits_run, capsys):
    assert main(["runs", str(digits_run.path.parent), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["status"], row["data"], row["model"], row["task"]) == ("done", "digits", "mlp", "classify")
    assert (row["epochs_done"], row["epochs"], row["metric"]) == (1, 1, "accuracy")
    assert row["value"] == digits_run.info["test_metrics"]["accuracy"] and 0 < row["seconds"] < 60


# ---- the model summary
def test_summary_of_a_run(digits_run, capsys):
    mode = digits_run.model.training
    rows = model_summary(digits_run)
    by_name = {r["name"]: r for r in rows}
    assert by_name["hidden.0"] == {"name": "hidden.0", "type": "Linear", "output_shape": [1, 256],
                                   "parameters": 64 * 256 + 256, "trainable": 64 * 256 + 256}
    assert by_name["head"]["output_shape"] == [1, 10] and by_name["hidden.2"]["parameters"] == 0
    assert sum(r["parameters"] for r in rows) == digits_run.info["parameters"]
    assert digits_run.model.training is mode  # left as it was
    assert main(["summary", str(digits_run.path)]) == 0
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("head "))
    assert head.split() == ["head", "Linear", "[1,", "10]", "1,290", "yes"]
    assert f"total parameters: {digits_run.info['parameters']:,} (trainable" in out


def fake(model, spec, **attrs):
    return types.SimpleNamespace(model=model, pre=types.SimpleNamespace(spec=lambda: spec), **attrs)


@pytest.mark.parametrize(("name", "spec", "layer", "shape"), [
    ("mlp", {"kind": "table", "n_num": 3, "cat_sizes": [4, 5]}, "embeddings.1", [1, 4]),
    ("mlp", {"kind": "table", "n_num": 3, "cat_sizes": []}, "hidden.0", [1, 256]),
    ("gru", {"kind": "sequence", "shape": [20, 2], "channels": 2, "variable": True}, "rnn", [[20, 256], [2, 1, 128]]),
    ("cnn", {"kind": "sequence", "shape": [20, 2], "channels": 2, "variable": False}, "features.0", [1, 32, 20]),
    ("gru", {"kind": "text", "vocab_size": 50, "max_len": 16, "pad_id": 0}, "embed", [1, 16, 128]),
    ("dlinear", {"kind": "series", "shape": [24, 1], "lookback": 24, "horizon": 4, "channels": 1}, "trend",
     [1, 1, 3]),  # out_dim 3: the horizon
    ("cnn", {"kind": "image", "shape": [1, 8, 8]}, "features.0", [1, 32, 8, 8]),
])
def test_summary_inputs_from_the_spec(one_thread, name, spec, layer, shape):
    from layerwise.config import make_config
    from layerwise.models import build_model

    rows = {r["name"]: r for r in model_summary(fake(build_model(name, spec, 3, make_config()), spec))}
    assert rows[layer]["output_shape"] == shape
    assert "?" not in [r["output_shape"] for r in rows.values()]


def test_summary_of_a_language_model_and_a_gan(one_thread):
    import torch

    from layerwise.config import make_config
    from layerwise.models import build_model
    from layerwise.models.gan import GAN

    spec = {"kind": "corpus", "vocab_size": 40, "block_size": 16}
    rows = {r["name"]: r for r in model_summary(fake(build_model("gpt", spec, 40, make_config()), spec))}
    assert rows["lm_head"]["output_shape"] == [1, 16, 40]
    for kind in ({}, {"n_classes": 3}, {"clusters": 4}):  # noise in (and a label when conditional); images out
        gan = GAN((1, 16, 16), **kind)
        state = torch.get_rng_state()
        rows = {r["name"]: r for r in model_summary(fake(gan, {"kind": "image", "shape": [1, 16, 16]}))}
        assert torch.equal(torch.get_rng_state(), state)  # the cluster draw left the random state alone
        assert rows["generator_ema.net.7"]["output_shape"] == [1, 1, 16, 16]
        assert rows["generator_ema.net.0"]["trainable"] == 0 and rows["generator.net.0"]["trainable"] > 0
        # spectral norm: one row per layer, its weights counted there; the discriminator is not called
        conv = rows["discriminator.features.0"]
        assert conv["output_shape"] is None and conv["parameters"] == gan.discriminator.features[0].weight.numel() \
            + gan.discriminator.features[0].bias.numel()
        assert not any("parametrizations" in name for name in rows)
        assert sum(r["parameters"] for r in rows.values()) == sum(p.numel() for p in gan.parameters())
    assert "not used by the model's forward pass" in summary_text(fake(gan, {"kind": "image", "shape": [1, 16, 16]}))


def test_summary_falls_back_to_parameters_when_the_forward_fails(one_thread):
    import torch

    class Picky(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)
            self.b.requires_grad_(False)

        def forward(self, x):
            raise ValueError("not this input")

    model = Picky().train()
    run = fake(model, {"kind": "array", "shape": [3]})
    rows = model_summary(run)
    assert [(r["name"], r["output_shape"], r["parameters"], r["trainable"]) for r in rows] == [
        ("a", "?", 16, 16), ("b", "?", 10, 0)]
    assert model.training and not model.a._forward_hooks  # mode and hooks as before
    text = summary_text(run)
    assert "total parameters: 26 (trainable 16, frozen 10)" in text and "did not pass through" in text
    assert text.splitlines()[2].split()[-1] == "no"


# ---- the report files
def test_write_report_after_training(digits_run, monkeypatch):
    import matplotlib.figure

    figures = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: (figures.append(fig),
                                                                                  save(fig, *a, **k))[1])
    written = write_report(digits_run)
    assert [p.name for p in written] == ["summary.txt", "curves.png", "confusion.png"]
    assert all(p.parent == digits_run.path and p.stat().st_size > 0 for p in written)
    assert "hidden.0" in (digits_run.path / "summary.txt").read_text()
    curves, confusion = figures
    titles = [ax.get_title() for ax in curves.axes]
    assert titles == ["loss", "accuracy", "macro_f1"]  # train_loss with val_loss, then every other val_ metric
    assert [line.get_label() for line in curves.axes[0].get_lines()] == ["train_loss", "val_loss"]
    ax = confusion.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(c) for c in range(10)]
    from PIL import Image

    assert Image.open(written[1]).format == "PNG"


def test_confusion_plot_has_the_class_labels(animals_run, monkeypatch, tmp_path):
    import matplotlib.figure

    figures = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: (figures.append(fig),
                                                                                  save(fig, *a, **k))[1])
    assert (animals_run.path / "confusion.png") in write_report(animals_run)
    ax = figures[-1].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "owl"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "owl"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    counts = np.array([[int(t.get_text()) for t in ax.texts]]).reshape(3, 3)
    assert counts.tolist() == animals_run.evaluate(confusion=True)["confusion_matrix"]


def test_write_report_skips_confusion_without_a_test_split_or_with_many_classes(tmp_path, capsys, monkeypatch):
    run = lw.train("digits", out=tmp_path / "r", test_fraction=0, **TRAIN)
    monkeypatch.setattr(lw.Run, "prepared", lambda self: pytest.fail("no test split: the data is not prepared again"))
    assert [p.name for p in write_report(run)] == ["summary.txt", "curves.png"]
    assert not (tmp_path / "r" / "confusion.png").exists() and capsys.readouterr().err == ""
    many = types.SimpleNamespace(path=tmp_path / "r", model=run.model, pre=run.pre,
                                 task=types.SimpleNamespace(classes=list(range(31))),
                                 evaluate=lambda **k: pytest.fail("31 classes: no confusion matrix"))
    assert "confusion.png" not in [p.name for p in write_report(many)]


def test_write_report_never_raises(digits_run, tmp_path, capsys):
    broken = types.SimpleNamespace(path=tmp_path / "gone" / "run", model=digits_run.model, pre=digits_run.pre,
                                   task=digits_run.task, info=digits_run.info, evaluate=lambda **k: 1 / 0)
    assert write_report(broken) == []
    err = capsys.readouterr().err
    assert err.count("warning: the run report skipped") == 2  # summary and confusion; no history: no curves
    assert write_report(broken, quiet=True) == [] and capsys.readouterr().err == ""


# ---- evaluate
def test_evaluate_prints_the_confusion_matrix_with_class_labels(animals_run, capsys):
    assert main(["evaluate", str(animals_run.path)]) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("confusion matrix (rows: true, columns: predicted)")
    assert out[at + 1].split() == ["cat", "dog", "owl"]
    matrix = animals_run.evaluate(confusion=True)["confusion_matrix"]
    for label, line, row in zip(["cat", "dog", "owl"], out[at + 2:], matrix):
        assert line.split() == [label, *map(str, row)]


def test_evaluate_json_adds_classes_next_to_the_matrix(animals_run, capsys):
    assert main(["evaluate", str(animals_run.path), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"loss", "accuracy", "macro_f1"}  # unchanged
    assert main(["evaluate", str(animals_run.path), "--json", "--confusion"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert list(metrics)[-2:] == ["confusion_matrix", "classes"] and metrics["classes"] == ["cat", "dog", "owl"]
    assert metrics["confusion_matrix"] == animals_run.evaluate(confusion=True)["confusion_matrix"]
