"""The spine's interfaces are real: a task and a model defined here, registered, train and evaluate through
lw.train and the CLI with no change to the library."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import layerwise as lw
from layerwise import models, tasks
from layerwise.cli import main
from layerwise.errors import ConfigError
from layerwise.tasks import Task

QUIET = {"progress": False, "tensorboard": False, "threads": 1, "quiet": True}


class SignOf(Task):
    """A toy task: predict the sign of the sum of a sample's features (two classes, margin loss)."""

    name = "sign_of_sum"
    monitor = ("agreement", "max")

    @classmethod
    def create(cls, cfg, y=None, kind=None, quiet=False):
        return cls()

    @classmethod
    def prepare(cls, cfg, data, quiet=False):
        from layerwise.data import Data, prepare

        x = np.asarray(data.x, np.float32).reshape(len(data.x), -1)
        signed = Data("array", x, np.where(x.sum(1) > 0, 1.0, -1.0).astype(np.float32))
        return prepare(signed, cls(), cfg.val_fraction, cfg.test_fraction, cfg.seed, cfg=cfg)

    @property
    def out_dim(self):
        return 1

    def loss(self, out, y):
        return torch.relu(1 - out[:, 0] * y).mean()

    def metrics(self, out, y):
        return {"agreement": float(((out[:, 0] > 0).float() * 2 - 1 == y).float().mean())}

    def decode(self, out):
        return {"prediction": np.where(out[:, 0].numpy() > 0, "positive", "negative")}

    def to_dict(self):
        return {"name": self.name}


class Linear(nn.Module):
    def __init__(self, n_in, out_dim):
        super().__init__()
        self.fc = nn.Linear(n_in, out_dim)

    def forward(self, x):
        return self.fc(x)


def build_linear(name, spec, out_dim, cfg):
    return Linear(int(np.prod(spec["shape"])), out_dim)


@pytest.fixture
def registered():
    tasks.register(SignOf)
    models.register("linear_probe", build_linear, ("array", "image"))
    yield
    del tasks.TASKS["sign_of_sum"], models.MODELS["linear_probe"]


def _data(tmp_path, n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    path = tmp_path / "points.npz"
    np.savez(path, x=x, y=np.zeros(n))
    return x, path


def test_a_task_and_a_model_defined_outside_the_library_train_and_evaluate(registered, tmp_path):
    x, path = _data(tmp_path)
    run = lw.train(path, task="sign_of_sum", model="linear_probe", epochs=20, batch_size=32, lr=0.05, out=tmp_path / "api",
                   **QUIET)
    assert run.info["task"] == "sign_of_sum" and run.info["model"] == "linear_probe"
    assert run.info["test_metrics"]["agreement"] > 0.9  # a linear model separates by the sign of a sum
    again = lw.Run.load(tmp_path / "api")
    assert isinstance(again.task, SignOf) and isinstance(again.model, Linear)
    assert list(again.predict(x[:4])["prediction"]) == list(np.where(x[:4].sum(1) > 0, "positive", "negative"))

    code = main(["train", str(path), "--task", "sign_of_sum", "--model", "linear_probe", "--epochs", "20", "--batch-size", "32",
                 "--lr", "0.05", "--out", str(tmp_path / "cli"), "--no-progress", "--no-tensorboard",
                 "--threads", "1"])
    assert code == 0
    info = json.loads((tmp_path / "cli" / "run.json").read_text())
    assert info["test_metrics"]["agreement"] > 0.9


def test_unknown_names_list_the_registered_ones(registered, capsys):
    assert main(["train", "digits", "--task", "sign_of_summ"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'sign_of_summ'" in err and "sign_of_sum" in err and "forecast" in err
    with pytest.raises(ConfigError, match="unknown model 'linear'.*linear_probe"):
        lw.train("digits", model="linear", **QUIET)


def test_validation_and_test_take_whatever_data_takes(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data.astype(np.float32), d.target
    run = lw.train((X[:1200], y[:1200]), validation=(X[1200:1500], y[1200:1500]), test=(X[1500:], y[1500:]),
                   model="mlp", epochs=3, out=tmp_path / "r", **QUIET)
    assert run.info["test_metrics"]["accuracy"] > 0.85
    assert len(run._test[1]) == len(X) - 1500


def test_window_is_the_new_name_of_lookback_for_windows(tmp_path, capsys):
    import pandas as pd

    rng = np.random.default_rng(0)
    state = np.repeat(rng.integers(0, 2, 30), 10)
    df = pd.DataFrame({"a": state + rng.normal(0, 0.3, len(state)), "state": state})
    df.to_csv(tmp_path / "plant.csv", index=False)
    old = lw.train(tmp_path / "plant.csv", target="state", lookback=8, epochs=2, out=tmp_path / "old",
                   progress=False, tensorboard=False, threads=1)
    assert "--lookback for windows to classify is now --window" in capsys.readouterr().err
    new = lw.train(tmp_path / "plant.csv", target="state", window=8, epochs=2, out=tmp_path / "new", **QUIET)
    assert old.config.window == new.config.window == 8 and old.config.lookback is None
    assert old.info["test_metrics"] == new.info["test_metrics"]
