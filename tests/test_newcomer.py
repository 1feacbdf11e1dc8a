"""What a new user hit: every input predicted under its own name, no dead ends after Ctrl-C or a crash, a
saved config that trains the same run again, the environment's errors said as such."""

import json
import os
import signal

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import layerwise as lw
from layerwise.cli import main
from layerwise.errors import RunError
from layerwise.fit.loop import Callback

QUIET = {"progress": False, "tensorboard": False, "threads": 1, "quiet": True}
CLI_QUIET = ["--no-progress", "--no-tensorboard", "--threads", "1"]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A small CNN on 8x8 PNG digits in a class folder (two classes)."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("imgs")
    d = load_digits()
    for i, (img, label) in enumerate(zip(d.images[:200], d.target[:200])):
        if label in (0, 1):
            (root / "train" / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray((img * 16).astype(np.uint8)).save(root / "train" / str(label) / f"{i}.png")
    run = lw.train(root / "train", epochs=2, out=root / "run", **QUIET)
    return run, root


def test_predict_names_every_input_and_lists_what_it_could_not_read(image_run, tmp_path, capsys):
    _, root = image_run
    files = sorted((root / "train" / "0").glob("*.png"))[:2] + sorted((root / "train" / "1").glob("*.png"))[:1]
    a, b = tmp_path / "a.png", tmp_path / "c.jpeg"
    Image.open(files[0]).save(a)
    Image.open(files[2]).convert("RGB").save(b)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")

    assert main(["predict", str(root / "run"), str(root / "train" / "0"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in rows] == [str(f) for f in sorted((root / "train" / "0").glob("*.png"))]

    code = main(["predict", str(root / "run"), str(a), str(broken), str(b), str(notes), "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert [r["input"] for r in json.loads(out)] == [str(a), str(b)]  # in order, each under its own name
    assert f"skipped {broken}: cannot be read as an image" in err and f"skipped {notes}: not an image" in err
    assert "2 of 4 inputs were not predicted" in err


def test_predict_takes_arrays_of_the_training_shape(image_run):
    from sklearn.datasets import load_digits

    run, _ = image_run
    flat = load_digits().data[:5]  # [5, 64]: the 8x8 images flattened
    assert len(run.predict(flat)["prediction"]) == 5
    with pytest.raises(lw.LayerwiseError, match=r"shape \(5, 7, 1\) per sample but the model expects \(8, 8, 1\)"):
        run.predict(np.zeros((3, 5, 7)))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    rng = np.random.default_rng(0)
    good, bad = ["great", "wonderful", "moving", "superb"], ["dull", "awful", "boring", "weak"]
    texts = [" ".join(rng.choice(good if i % 2 else bad, 4)) for i in range(200)]
    root = tmp_path_factory.mktemp("text")
    pd.DataFrame({"text": texts, "label": ["pos" if i % 2 else "neg" for i in range(200)]}).to_csv(
        root / "reviews.csv", index=False)
    lw.train(root / "reviews.csv", target="label", epochs=2, out=root / "run", **QUIET)
    return root


def test_a_mistyped_file_name_is_not_classified_as_a_text(text_run, capsys):
    code = main(["predict", str(text_run / "run"), str(text_run / "reveiws.csv")])
    assert code == 2 and "looks like a file path but there is no such file" in capsys.readouterr().err
    assert main(["predict", str(text_run / "run"), "reveiws.csv", "--text"]) == 0
    assert capsys.readouterr().out.startswith("reveiws.csv\t")
    assert main(["predict", str(text_run / "run"), "a great and moving film"]) == 0


def test_ctrl_c_saves_a_checkpoint_and_resume_equals_an_uninterrupted_run(tmp_path, capsys):
    class CtrlC(Callback):
        def on_batch_end(self, loop):
            if loop.step == 15 and not getattr(self, "sent", False):
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)

    settings = {"model": "mlp", "epochs": 2, "batch_size": 64, **QUIET}
    full = lw.train("digits", out=tmp_path / "full", **settings)
    with pytest.raises(KeyboardInterrupt):
        lw.train("digits", out=tmp_path / "cut", callbacks=[CtrlC()], **settings)
    info = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert info["status"] == "interrupted" and (tmp_path / "cut" / "checkpoint.safetensors").is_file()
    resumed = lw.train(resume=tmp_path / "cut", quiet=True)
    assert resumed.info["status"] == "done"
    assert resumed.info["test_metrics"] == full.info["test_metrics"]


def test_a_crash_before_the_first_checkpoint_is_no_dead_end(tmp_path, capsys):
    class Crash(Callback):
        def on_batch_end(self, loop):
            raise ValueError("boom")

    with pytest.raises(ValueError):
        lw.train("digits", model="mlp", epochs=1, out=tmp_path / "r", callbacks=[Crash()], **QUIET)
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["status"] == "failed" and info["error"] == "ValueError: boom"
    assert not (tmp_path / "r" / "checkpoint.safetensors").exists()
    run = lw.train("digits", model="mlp", epochs=1, out=tmp_path / "r", progress=False, tensorboard=False,
                   threads=1)  # the same --out again: started in place
    assert "starting it again in place" in capsys.readouterr().err and run.info["status"] == "done"

    with pytest.raises(ValueError):
        lw.train("digits", model="mlp", epochs=1, out=tmp_path / "s", callbacks=[Crash()], **QUIET)
    resumed = lw.train(resume=tmp_path / "s", progress=False, tensorboard=False)
    assert "stopped before its first checkpoint; training it from the beginning" in capsys.readouterr().err
    assert resumed.info["test_metrics"] == run.info["test_metrics"]


def test_a_saved_config_trains_the_same_run_again(tmp_path, capsys):
    first = lw.train("digits", epochs=1, out=tmp_path / "x", **QUIET)
    saved = yaml.safe_load((tmp_path / "x" / "config.yaml").read_text())
    assert saved["model"] == "cnn" and saved["lr"] == pytest.approx(3e-3) and saved["task"] == "classify"
    assert main(["train", "--config", str(tmp_path / "x" / "config.yaml"), "--out", str(tmp_path / "y"),
                 *CLI_QUIET]) == 0
    again = json.loads((tmp_path / "y" / "run.json").read_text())
    assert again["test_metrics"] == first.info["test_metrics"]
    assert main(["train", "--config", str(tmp_path / "x" / "config.yaml"), "--epochs", "1", *CLI_QUIET]) == 0
    assert "training the same settings into a new folder" in capsys.readouterr().err


def test_the_environment_is_blamed_before_anything_is_loaded(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", "digits", "--out", str(tmp_path / "file" / "run")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the run folder" in err and "internal error" not in err
    import torch

    if not torch.cuda.is_available():
        assert main(["train", "digits", "--device", "cuda"]) == 2
        assert "sees no CUDA device; use --device cpu" in capsys.readouterr().err


def test_running_out_of_memory_says_to_lower_the_batch_size(tmp_path):
    class OOM(Callback):
        def on_batch_start(self, loop):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you "
                               "tried to allocate 123456789 bytes.")

    with pytest.raises(RunError, match="ran out of memory with batch_size 128; try a smaller --batch-size, e.g. 32"):
        lw.train("digits", model="mlp", epochs=1, out=tmp_path / "m", callbacks=[OOM()], **QUIET)
    assert json.loads((tmp_path / "m" / "run.json").read_text())["status"] == "failed"


def test_evaluate_on_a_gan_says_what_to_use_instead(tmp_path, capsys):
    lw.train("digits", model="gan", epochs=1, clusters=0, out=tmp_path / "g", **QUIET)
    assert main(["evaluate", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "a GAN has no test metrics to evaluate" in err and "layerwise sample RUN" in err


def test_default_run_names_tell_two_tables_of_the_same_name_apart(tmp_path, monkeypatch):
    monkeypatch.setattr("layerwise.api.RUNS_ROOT", str(tmp_path / "runs"))
    rng = np.random.default_rng(0)
    for folder in ("shop", "bank"):
        (tmp_path / folder).mkdir()
        pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120), "y": rng.integers(0, 2, 120)}).to_csv(
            tmp_path / folder / "train.csv", index=False)
    a = lw.train(tmp_path / "shop" / "train.csv", target="y", epochs=1, **QUIET)
    b = lw.train(tmp_path / "bank" / "train.csv", target="y", epochs=1, **QUIET)
    assert a.path.name.endswith("shop-train-y-mlp") and b.path.name.endswith("bank-train-y-mlp")


def test_a_language_model_reports_validation_metrics_under_their_name(tmp_path, capsys):
    text = "to be or not to be, that is the question. " * 200
    (tmp_path / "corpus.txt").write_text(text)
    run = lw.train(tmp_path / "corpus.txt", epochs=1, block_size=16, out=tmp_path / "lm", progress=False,
                   tensorboard=False, threads=1)
    err = capsys.readouterr().err
    assert "test_metrics" not in run.info and "perplexity" in run.info["val_metrics"]
    header = next(line for line in err.splitlines() if line.strip().startswith("train"))
    assert "test" not in header and "validation: {" in err
