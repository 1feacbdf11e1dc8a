"""Training on 2 processes (torchrun on this machine, gloo on CPU) takes the steps of one process with the same
global batch: both ranks end with the same weights, and those of a single-process run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import ConfigError

SRC = str(Path(lw.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1"}
# no batch norm and no dropout: their statistics and masks are per process (docs/distributed.md)
SETTINGS = {"model": "mlp", "epochs": 2, "batch_size": 63, "batch_norm": False, "dropout": 0.0, "seed": 3,
            "hidden": [32], "tensorboard": False, "progress": False, "threads": 1}
# one process per rank: lw.train under torchrun, then each rank saves the weights it ended with
RANK_SCRIPT = """
import json, os, sys
import layerwise as lw
from layerwise.errors import ConfigError
from safetensors.torch import save_file
run = lw.train("digits", out=sys.argv[1], quiet=True, **json.loads(sys.argv[3]))
save_file({k: v.contiguous() for k, v in run.model.state_dict().items()},
          os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.safetensors"))
"""


def cli(*args):
    return subprocess.run([sys.executable, "-m", "layerwise.cli", *args], capture_output=True, text=True, env=ENV,
                          timeout=300, check=False)


def weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


def assert_close(a, b, atol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=atol, err_msg=k)


def test_two_ranks_equal_each_other_and_one_process(tmp_path, one_thread):
    """63 rows per step split 32 + 31 (each rank's loss weighted by its share), AdamW with the onecycle
    schedule: rank 0 and rank 1 hold the same weights, within 1e-5 of one process with batch 63."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        str(script), str(tmp_path / "ddp"), str(tmp_path), json.dumps(SETTINGS)],
                       capture_output=True, text=True, env=ENV, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    rank0, rank1 = weights(tmp_path / "rank0.safetensors"), weights(tmp_path / "rank1.safetensors")
    assert_close(rank0, rank1, atol=0)  # DDP keeps the ranks identical
    assert_close(rank0, weights(tmp_path / "ddp" / "model.safetensors"), atol=0)  # what rank 0 saved

    one = lw.train("digits", out=tmp_path / "one", quiet=True, **SETTINGS)
    assert_close(rank0, {k: v.numpy() for k, v in one.model.state_dict().items()})
    ddp_hist = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    one_hist = one.history
    assert len(ddp_hist) == 2  # one writer: rank 0
    for a, b in zip(ddp_hist, one_hist):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3  # the mean of the ranks' mean losses
        assert abs(a["val_accuracy"] - b["val_accuracy"]) < 1e-9
    saved = (tmp_path / "ddp" / "config.yaml").read_text()
    assert "workers: 2" in saved and "batch_size: 63" in saved


@pytest.mark.slow  # two torchrun starts: about a minute on 2 cores
def test_workers_flag_starts_torchrun_and_resume_continues(tmp_path, one_thread):
    """`--workers 2` trains one epoch, `--resume RUN --epochs 2 --workers 2` the second (all ranks load rank 0's
    checkpoint): the weights of one process training both epochs."""
    flags = ["--model", "mlp", "--batch-size", "64", "--no-batch-norm", "--dropout", "0", "--hidden", "32",
             "--schedule", "constant", "--seed", "4", "--keep-optimizer", "--no-progress", "--no-tensorboard"]
    run = tmp_path / "w2"
    r = cli("train", "digits", *flags, "--epochs", "1", "--out", str(run), "--workers", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("epoch 1/1") == 1 and r.stderr.count("model: mlp") == 1  # rank 0 speaks for all
    r = cli("train", "--resume", str(run), "--epochs", "2", "--workers", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming" in r.stderr
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    one = lw.train("digits", out=tmp_path / "one", quiet=True, model="mlp", batch_size=64, batch_norm=False,
                   dropout=0.0, hidden=[32], schedule="constant", seed=4, epochs=2, tensorboard=False,
                   progress=False)
    assert_close(weights(run / "model.safetensors"), {k: v.numpy() for k, v in one.model.state_dict().items()})


def test_too_many_workers_and_workers_outside_the_cli_are_refused(tmp_path):
    r = cli("train", "digits", "--workers", "99", "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workers 99 is more than the" in lines[0] and "CPU cores" in lines[0], r.stderr
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="--workers 2"):
        lw.train("digits", workers=2, out=tmp_path / "y", quiet=True)


@pytest.mark.slow  # about 3 minutes on 2 busy cores
def test_sigkill_of_rank_1_then_resume_continues_from_rank_0s_checkpoint(tmp_path):
    """`--workers 2`, rank 1 killed with SIGKILL inside an epoch: torchrun stops; the same command with --resume
    continues from rank 0's last checkpoint to the weights of one uninterrupted process."""
    import signal
    import time

    from layerwise.fit.state import load_latest

    flags = ["--model", "mlp", "--batch-size", "8", "--no-batch-norm", "--dropout", "0", "--hidden", "32", "--seed", "6",
             "--epochs", "3", "--no-progress", "--no-tensorboard"]
    part = tmp_path / "part"
    p = subprocess.Popen([sys.executable, "-m", "layerwise.cli", "train", "digits", *flags, "--out", str(part),
                          "--workers", "2", "--checkpoint-minutes", "0.002"], env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    ck, deadline = part / "checkpoint.safetensors", time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if (part / "metrics.jsonl").exists() and ck.exists() and load_latest(ck)[0]["batch_idx"] > 0:
            break
        time.sleep(0.1)
    assert p.poll() is None, "the run ended before it could be killed; make it longer"
    rank1 = next(pid for pid in _descendants(p.pid) if "RANK=1" in _environ(pid).splitlines())
    os.kill(rank1, signal.SIGKILL)
    assert p.wait(timeout=120) != 0
    state, _ = load_latest(ck)
    assert 1 <= state["epoch"] < 3
    r = cli("train", "--resume", str(part), "--workers", "2", "--checkpoint-minutes", "5")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming" in r.stderr
    one = lw.train("digits", out=tmp_path / "one", quiet=True, model="mlp", batch_size=8, batch_norm=False,
                   dropout=0.0, hidden=[32], seed=6, epochs=3, tensorboard=False, progress=False)
    assert_close(weights(part / "model.safetensors"), {k: v.numpy() for k, v in one.model.state_dict().items()})


def _descendants(pid):
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    kids = [k for k, v in parents.items() if v == pid]
    return kids + [d for k in kids for d in _descendants(k)]


def _environ(pid):
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").replace("\0", "\n")
    except OSError:
        return ""
