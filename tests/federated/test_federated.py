"""Federated averaging on digits with the MLP: accuracy, non-IID shards, resume, the run folder, bad input."""

import json

import numpy as np
import pytest
import torch

from layerwise.cli import main
from layerwise.errors import ConfigError, DataError
from layerwise.federated import federated
from layerwise.fit.federated import Average, iid_shards, non_iid_shards, select_clients
from layerwise.run import Run

FAST = {"model": "mlp", "tensorboard": False, "threads": 1, "quiet": True}


def test_iid_clients_reach_90_percent(tmp_path, one_thread):
    """5 IID clients, 5 rounds of 1 local epoch: 0.94-0.96 test accuracy over seeds 0-2 (1 and 2 threads)."""
    run = federated("digits", clients=5, rounds=5, out=tmp_path / "run", **FAST)
    assert run.info["test_metrics"]["accuracy"] >= 0.90
    history = run.history
    assert [h["round"] for h in history] == [1, 2, 3, 4, 5]
    assert all(h["clients"] == 5 and h["seconds"] > 0 and "val_accuracy" in h for h in history)
    assert history[-1]["val_accuracy"] > history[0]["val_accuracy"]
    fed = run.info["federated"]
    assert fed["split"] == "iid" and len(fed["shard_sizes"]) == 5 and sum(fed["shard_sizes"]) == len_train(run)
    # an ordinary run folder: evaluate and predict through Run.load and the CLI
    loaded = Run.load(tmp_path / "run")
    assert loaded.evaluate()["accuracy"] == pytest.approx(run.info["test_metrics"]["accuracy"])
    from sklearn.datasets import load_digits

    x = load_digits().images[:5].astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "x.npz"), "--json"]) == 0
    assert not (tmp_path / "run" / "checkpoint.safetensors.prev").exists()


def len_train(run) -> int:
    return sum(run.info["federated"]["shard_sizes"])


def test_non_iid_two_classes_per_client(tmp_path, one_thread, capsys):
    assert main(["federated", "digits", "--model", "mlp", "--clients", "5", "--rounds", "2", "--non-iid", "2",
                 "--fraction", "0.6", "--out", str(tmp_path / "run"), "--threads", "1", "--no-tensorboard"]) == 0
    err = capsys.readouterr().err
    assert "non-IID, 2 classes each" in err and "round 2/2" in err and "test:" in err
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["federated"]["split"] == "non-iid:2" and 0 <= info["test_metrics"]["accuracy"] <= 1
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["clients"] for r in rows] == [3, 3]


def test_shards():
    y = np.repeat(np.arange(10), [100, 120, 90, 110, 100, 95, 105, 100, 80, 100])
    for clients, n in [(10, 2), (5, 2), (3, 3), (7, 10), (100, 1)]:
        shards = non_iid_shards(y, clients, n, seed=0)
        assert [len(np.unique(y[s])) for s in shards] == [n] * clients
        flat = np.concatenate(shards)
        assert len(flat) == len(np.unique(flat))  # disjoint
        # every class dealt out whole, unless there are fewer chunks than classes (3 x 3 = 9: one left out)
        assert len(np.unique(y[flat])) == min(10, clients * n)
        assert len(flat) == (y[:, None] == np.unique(y[flat])).any(1).sum()
    shards = iid_shards(103, 5, seed=1)
    assert sorted(np.concatenate(shards).tolist()) == list(range(103)) and {len(s) for s in shards} == {20, 21}
    assert [s.tolist() for s in shards] == [s.tolist() for s in iid_shards(103, 5, seed=1)]
    assert select_clients(10, 0.3, 0, 4) == select_clients(10, 0.3, 0, 4) and len(select_clients(10, 0.3, 0, 4)) == 3
    assert select_clients(10, 1.0, 0, 0) == list(range(10))


def test_average_weights_parameters_and_buffers_by_shard_size():
    bn = torch.nn.BatchNorm1d(2)
    a = {k: torch.zeros_like(v) for k, v in bn.state_dict().items()}
    b = {k: torch.ones_like(v) * 4 for k, v in bn.state_dict().items()}
    avg = Average()
    avg.add(a, 3)
    avg.add(b, 1)
    out = avg.result()
    assert torch.allclose(out["weight"], torch.ones(2)) and torch.allclose(out["running_mean"], torch.ones(2))
    assert out["num_batches_tracked"].dtype == torch.long and int(out["num_batches_tracked"]) == 1


class CrashAfter:
    def __init__(self, n):
        self.n = n

    def on_round_end(self, fed):
        if fed.round == self.n:
            raise RuntimeError("simulated crash")


def test_resume_equals_uninterrupted(tmp_path, one_thread, capsys):
    settings = {"clients": 4, "rounds": 4, "client_fraction": 0.75, "dropout": 0.2, **FAST}
    whole = federated("digits", out=tmp_path / "whole", **settings)
    with pytest.raises(RuntimeError, match="simulated"):
        federated("digits", out=tmp_path / "cut", callbacks=[CrashAfter(2)], **settings)
    info = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert info["status"] == "failed" and info["rounds_done"] == 2
    before = Run(tmp_path / "cut", None, None, None, None, {}).history
    capsys.readouterr()
    assert main(["federated", "--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    assert "at round 3 of 4" in capsys.readouterr().err
    resumed = Run.load(tmp_path / "cut")
    assert resumed.info["rounds_done"] == 4 and [h["round"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[:2] == before  # rounds 1-2 come from the checkpoint, not trained again
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert resumed.info["test_metrics"] == whole.info["test_metrics"]


@pytest.mark.parametrize(("settings", "error", "words"), [
    ({"clients": 5000}, DataError, "more than the 1294 training samples"),
    ({"clients": 5, "non_iid": 11}, ConfigError, "more than the 10 classes"),
    ({"clients": 5, "non_iid": 2, "task": "regress"}, ConfigError, "not classify"),
    ({"rounds": 0}, ConfigError, "rounds=0"),
])
def test_bad_input(tmp_path, settings, error, words):
    with pytest.raises(error, match=words) as e:
        federated("digits", out=tmp_path / "run", **{**FAST, **settings})
    assert str(e.value).count(". ") == 0 and str(e.value).endswith(".")  # one sentence


def test_bad_input_exits_2(tmp_path, capsys):
    assert main(["federated", "digits", "--rounds", "0", "--out", str(tmp_path / "r")]) == 2
    assert main(["federated", "digits", "--model", "mlp", "--clients", "5", "--non-iid", "11", "--threads", "1",
                 "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "error: setting rounds=0" in err and "error: --non-iid 11 is more than the 10 classes" in err
    assert main(["federated"]) == 2


def test_train_does_not_take_federated_flags():
    with pytest.raises(SystemExit) as e:
        main(["train", "digits", "--clients", "3"])
    assert e.value.code == 2
