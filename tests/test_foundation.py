"""The spine: accuracy on real data, resume equals uninterrupted, clear errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import LayerwiseError


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "layerwise.cli", *args], check=False, capture_output=True, text=True,
                          cwd=cwd)


def test_digits_defaults_reach_097(tmp_path):
    run = lw.train("digits", out=tmp_path / "r", quiet=True)
    assert run.evaluate()["accuracy"] >= 0.97
    again = lw.Run.load(tmp_path / "r")
    assert again.evaluate()["accuracy"] == pytest.approx(run.evaluate()["accuracy"])
    pred = again.predict(lw.load("digits").x[:5])
    assert len(pred["prediction"]) == 5 and pred["probabilities"].shape == (5, 10)


def test_cli_train_evaluate_json(tmp_path):
    r = cli("train", "digits", "--model", "mlp", "--epochs", "3", "--out", str(tmp_path / "r"), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "run:" in r.stderr and "test:" in r.stderr
    e = cli("evaluate", str(tmp_path / "r"), "--json")
    metrics = json.loads(e.stdout)
    assert set(metrics) >= {"accuracy", "macro_f1"} and 0 <= metrics["accuracy"] <= 1


def test_resume_equals_uninterrupted(tmp_path, crash_after_epoch):
    settings = {"model": "mlp", "epochs": 4, "quiet": True, "tensorboard": False, "seed": 3}
    full = lw.train("digits", out=tmp_path / "full", **settings)
    with crash_after_epoch(2):
        lw.train("digits", out=tmp_path / "part", **settings)
    resumed = lw.train("digits", resume=tmp_path / "part", quiet=True)
    assert len(resumed.history) == 4
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy()), k


def test_truncated_checkpoint_falls_back(tmp_path):
    # keep_optimizer: the run's checkpoints stay as training left them (a finished run drops the .prev)
    lw.train("digits", out=tmp_path / "r", model="mlp", epochs=2, quiet=True, tensorboard=False, keep_optimizer=True)
    ck = tmp_path / "r" / "checkpoint.safetensors"
    ck.write_bytes(ck.read_bytes()[:100])
    from layerwise.fit.state import load_latest

    state, notes = load_latest(ck)
    assert state["epoch"] == 1 and "damaged" in notes[0]


def test_finished_checkpoints_shrink_and_the_run_still_extends(tmp_path):
    """finish_checkpoints drops *.prev and Adam's moments; `resume` with more epochs then trains on, with a
    fresh optimizer and a one-line note."""
    from layerwise.fit.state import finish_checkpoints, load_latest

    settings = {"model": "mlp", "quiet": True, "tensorboard": False, "keep_optimizer": True}  # as training left it
    first = lw.train("digits", epochs=2, out=tmp_path / "r", **settings).history  # two saves, so a .prev
    ck, prev = tmp_path / "r" / "checkpoint.safetensors", tmp_path / "r" / "checkpoint.safetensors.prev"
    weights = (tmp_path / "r" / "model.safetensors").stat().st_size
    before = ck.stat().st_size
    assert prev.is_file() and before > 2.5 * weights  # weights + two AdamW moments
    finish_checkpoints(ck, keep_optimizer=False)
    assert not prev.exists() and ck.stat().st_size < 1.2 * weights < before / 2
    with pytest.warns(UserWarning, match="fresh optimizer"):
        state, _ = load_latest(ck)
    assert state["optimizer"]["state"] == {} and state["epoch"] == 2
    with pytest.warns(UserWarning, match="fresh optimizer"):
        more = lw.train(resume=tmp_path / "r", epochs=3, quiet=True)
    assert [h["epoch"] for h in more.history] == [1, 2, 3] and more.history[:2] == first
    assert more.evaluate()["accuracy"] > 0.8
    assert load_latest(ck)[0]["optimizer"]["state"]  # the extension saves full checkpoints again


def test_finish_checkpoints_keeps_the_optimizer_when_asked(tmp_path):
    import warnings

    from layerwise.fit.state import finish_checkpoints, load_latest

    lw.train("digits", model="mlp", epochs=2, out=tmp_path / "r", quiet=True, tensorboard=False, keep_optimizer=True)
    ck = tmp_path / "r" / "checkpoint.safetensors"
    size = ck.stat().st_size
    finish_checkpoints(ck, keep_optimizer=True)
    assert not ck.with_name(ck.name + ".prev").exists() and ck.stat().st_size == size
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_latest(ck)[0]["optimizer"]["state"]
    lw.train(resume=tmp_path / "r", epochs=3, quiet=True)  # (no note: the optimizer state is there)
    assert len(lw.Run.load(tmp_path / "r").history) == 3


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)], ids=["022", "027"])
def test_run_files_follow_the_umask(umask, mode, tmp_path):
    """Every file of a run gets the mode the user's umask gives (safetensors alone would write 0600)."""
    import os

    old = os.umask(umask)
    try:
        lw.train("digits", model="mlp", epochs=1, out=tmp_path / "r", quiet=True)
    finally:
        os.umask(old)
    files = [f for f in (tmp_path / "r").rglob("*") if f.is_file()]
    assert {"model.safetensors", "checkpoint.safetensors", "run.json"} <= {f.name for f in files}
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: oct(mode) for f in files}


def test_user_module_with_sgd(tmp_path):
    import torch

    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    run = lw.train("digits", model=module, loss="cross_entropy", optimizer="sgd", momentum=0.9, epochs=5,
                   out=tmp_path / "r", quiet=True)
    assert run.evaluate()["accuracy"] > 0.9
    with pytest.raises(LayerwiseError, match="your own nn.Module"):
        lw.Run.load(tmp_path / "r")


@pytest.mark.parametrize("args, message", [
    (["train", "no/such/path"], "neither a file, a folder"),
    (["train", "digits", "--model", "vgg"], "valid: auto, mlp, cnn, resnet"),
    (["train", "digits", "--optimizer", "adamx"], "valid: sgd, adam"),
    (["train", "digits", "--lr", "-1"], "lr=-1"),
    (["train", "digits", "--epochs", "-2"], "epochs"),
    (["evaluate", "."], "not a run folder"),
])
def test_user_errors_exit_2_without_traceback(args, message, tmp_path):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("flag, close", [("--batchsize", "--batch-size"), ("--batch_size=8", "--batch-size"),
                                         ("--lr-decy", "--lr-decay")])
def test_unknown_flag_suggests_the_closest(flag, close, tmp_path):
    r = cli("train", "digits", flag, "3", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: unknown option {flag.split('=')[0]!r}; did you mean {close!r}?"


def test_unknown_flag_without_a_close_one_points_to_help(tmp_path):
    r = cli("evaluate", "r", "--bogus", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "unknown option '--bogus'" in r.stderr and "layerwise evaluate --help" in r.stderr


def test_unknown_setting_suggests_the_closest(tmp_path):
    from layerwise.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^unknown setting 'epoch'; did you mean 'epochs'\?$"):
        lw.train("digits", epoch=3, quiet=True)
    (tmp_path / "c.yaml").write_text("batchsize: 8\n")
    r = cli("train", "digits", "--config", str(tmp_path / "c.yaml"), cwd=tmp_path)
    assert r.returncode == 2 and "unknown setting 'batchsize'; did you mean 'batch_size'?" in r.stderr
    with pytest.raises(ConfigError, match="valid settings: data, target"):  # nothing close: the whole list
        lw.train("digits", wibble=3, quiet=True)


def test_runs_piped_into_head_exits_quietly(tmp_path):
    """`layerwise runs | head -1`: the reader closes the pipe early; no 'internal error', no traceback."""
    import shlex

    for i in range(200):  # ~200 kB of listing: more than a pipe holds, so the writer meets the closed pipe
        d = tmp_path / f"run{i:03d}"
        d.mkdir()
        metrics = {f"metric_{j:02d}": 0.5 for j in range(40)}
        (d / "run.json").write_text(json.dumps({"model": "mlp", "task": "classify", "status": "done",
                                                "test_metrics": metrics}))
        (d / "schema.json").write_text("{}")
    cmd = f"{shlex.quote(sys.executable)} -m layerwise.cli runs {shlex.quote(str(tmp_path))} | head -1"
    r = subprocess.run(cmd, shell=True, check=False, capture_output=True, text=True)
    assert r.stdout.startswith("run ") and r.stdout.count("\n") == 1
    assert "internal error" not in r.stderr and "Broken" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr == ""


def test_table_errors(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": ["x", "y", "x", "y"], "y": [0, 1, 0, 1]})
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(LayerwiseError, match="columns are: a, b, y"):
        lw.train(tmp_path / "t.csv", target="price", quiet=True)
    df.assign(y=1).to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(LayerwiseError, match="single value"):
        lw.train(tmp_path / "one.csv", target="y", quiet=True)
    with pytest.raises(LayerwiseError, match="NaN or infinite"):
        lw.train((np.array([[1.0, np.nan], [2, 3]] * 5), np.array([0, 1] * 5)), quiet=True)


def test_image_folder_errors(tmp_path):
    from PIL import Image

    (tmp_path / "empty").mkdir()
    with pytest.raises(LayerwiseError, match="empty"):
        lw.load(tmp_path / "empty")
    (tmp_path / "one" / "cat").mkdir(parents=True)
    Image.new("L", (8, 8)).save(tmp_path / "one" / "cat" / "a.png")
    with pytest.raises(LayerwiseError, match="only one class"):
        lw.load(tmp_path / "one")
    for c in ("a", "b"):
        (tmp_path / "two" / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (10 + i, 10), (i * 40, 0, 0)).save(tmp_path / "two" / c / f"{i}.png")
    (tmp_path / "two" / "a" / "bad.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="bad.png"):
        d = lw.load(tmp_path / "two")
    assert d.x.shape == (6, 10, 11, 3)


def test_predict_wrong_shape(tmp_path):
    run = lw.train("digits", model="mlp", epochs=1, out=tmp_path / "r", quiet=True)
    with pytest.raises(LayerwiseError, match="expects"):
        run.predict(np.zeros((2, 5, 5), np.float32))


def test_help_does_not_import_torch():
    code = ("import sys; from layerwise.cli import main\n"
            "try: main(['train', '--help'])\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_adult_reaches_085(shared_data, tmp_path):
    run = lw.train(shared_data / "adult" / "train.csv", target="income", test=str(shared_data / "adult" / "test.csv"),
                   out=tmp_path / "r", quiet=True)
    assert run.evaluate()["accuracy"] >= 0.85


@pytest.mark.slow
def test_mnist_cnn_reaches_0993(shared_data, tmp_path):
    run = lw.train(shared_data / "mnist.npz", model="cnn", epochs=3, batch_size=256, augment=True,
                   out=tmp_path / "r", quiet=True)
    assert run.evaluate()["accuracy"] >= 0.993
