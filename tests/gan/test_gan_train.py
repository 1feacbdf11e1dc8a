"""GAN end to end: train through the one loop, sample grids, resume, sampling, synthetic data, clear errors."""

import io
import json
from contextlib import redirect_stderr
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import layerwise as lw
from layerwise.cli import main
from layerwise.errors import ConfigError, RunError

FAST = {"threads": 1, "quiet": True, "progress": False, "seed": 0}


@pytest.fixture(scope="module")
def cgan(tmp_path_factory):
    """A conditional GAN on scikit-learn's 8x8 digits, 2 epochs (about a second)."""
    path = tmp_path_factory.mktemp("runs") / "cgan"
    assert main(["train", "digits", "--task", "generate", "--model", "gan", "--conditional", "--epochs", "2",
                 "--threads", "1", "--no-progress", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "clf"
    lw.train("digits", model="mlp", epochs=1, out=path, **FAST)
    return path


def cli(*args) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


def test_train_writes_grids_metrics_tensorboard_and_loads_back(cgan):
    info = json.loads((cgan / "run.json").read_text())
    assert info["task"] == "gan" and info["model"] == "gan" and info["status"] == "done"
    history = [json.loads(line) for line in (cgan / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 2
    for h in history:
        assert {"d_loss", "g_loss", "d_real", "d_fake", "diversity"} <= set(h)
        assert 0 < h["d_real"] < 1 and 0 < h["d_fake"] < 1 and h["diversity"] > 0
    for e in (1, 2):
        with Image.open(cgan / "samples" / f"epoch_{e:03d}.png") as im:  # 100 images, 10 per row (one class)
            assert im.size == (10 * 10 + 2, 10 * 10 + 2)
    assert (cgan / "samples.png").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(cgan / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert len(acc.Images("samples")) == 2 and "gan/diversity" in acc.Tags()["scalars"]
    run = lw.Run.load(cgan)
    assert run.task.describe() == "generate images (GAN, conditional on 10 classes)"
    assert run.config.task == "generate" and run.config.schedule == "constant"


def test_sample_python_and_cli(cgan, tmp_path):
    run = lw.Run.load(cgan)
    x = run.sample(12, label=7)
    assert x.shape == (12, 8, 8, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert np.array_equal(x, run.sample(12, label="7"))  # same seed, label as text
    assert not np.array_equal(x, run.sample(12, label=7, seed=1))
    assert not np.allclose(run.sample(12, label=1), x)  # the label matters
    code, err = cli("sample", str(cgan), "--n", "20", "--out", str(tmp_path / "grid.png"), "--label", "3")
    assert code == 0 and "wrote 20 samples" in err
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (5 * 10 + 2, 4 * 10 + 2)
    assert cli("sample", str(cgan), "--n", "30", "--out", str(tmp_path / "s.npz"))[0] == 0
    z = np.load(tmp_path / "s.npz")
    assert z["x"].shape == (30, 8, 8, 1) and z["y"].tolist() == [i % 10 for i in range(30)]
    # truncation: noise cut at [-t, t], so samples sit closer together; a bad value is refused
    near = run.sample(200, label=7, truncation=0.2)
    assert near.shape == (200, 8, 8, 1) and near.std(0).mean() < run.sample(200, label=7).std(0).mean()
    code, err = cli("sample", str(cgan), "--n", "4", "--out", str(tmp_path / "t.png"), "--truncation", "-1")
    assert code == 2 and "truncation must be a number above 0 (e.g. 0.7), got -1.0." in err
    assert not (tmp_path / "t.png").exists()


def test_truncated_noise_stays_in_range():
    import torch

    from layerwise.models.blocks import noise

    z = noise(5000, 4, torch.Generator().manual_seed(0), truncation=0.5)
    assert z.abs().max() <= 0.5 and 0.25 < z.std() < 0.35  # a normal cut at +-0.5 has std ~0.29
    assert torch.equal(noise(3, 2, torch.Generator().manual_seed(1)), torch.randn(3, 2, generator=torch.Generator().manual_seed(1)))


def test_uint8_images_sample_as_uint8(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 16, 16), dtype=np.uint8)
    run = lw.train((x, np.zeros(64, dtype=int)), model="gan", epochs=1, batch_size=32, out=tmp_path / "g",
                   tensorboard=False, **FAST)
    s = run.sample(5)
    assert s.shape == (5, 16, 16, 1) and s.dtype == np.uint8


@pytest.mark.parametrize("conditional", [True, False])  # False: self-conditioned on k-means clusters
def test_resume_equals_uninterrupted_with_both_players_optimizer_state(tmp_path, crash_after_epoch, conditional):
    from layerwise.fit.state import load_state

    settings = dict(model="gan", conditional=conditional, epochs=3, tensorboard=False, **FAST)
    full = lw.train("digits", out=tmp_path / "full", **settings)
    with crash_after_epoch(1):
        lw.train("digits", out=tmp_path / "part", **settings)
    state = load_state(tmp_path / "part" / "checkpoint.safetensors")
    groups = state["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == ["generator", "discriminator"] and groups[0]["betas"] == [0.5, 0.999]
    for g in groups:  # Adam moments for every parameter of both players
        assert all(i in state["optimizer"]["state"] for i in g["params"])
    resumed = lw.train("digits", resume=tmp_path / "part", quiet=True)
    assert [h["d_loss"] for h in resumed.history] == [h["d_loss"] for h in full.history]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_monitor_warns_once_on_collapse(tmp_path, capsys):
    from layerwise.models.gan import GAN
    from layerwise.tasks.gan import GanMonitor

    loop = SimpleNamespace(model=GAN((1, 8, 8), width=4), device=torch.device("cpu"), callbacks=[], epoch=0)
    mon = GanMonitor(tmp_path, 0, 0)
    mon.on_fit_start(loop)
    base = {"d_loss": 1.0, "g_loss": 1.0, "d_real": 0.6, "d_fake": 0.4}
    loop.history = [dict(base, diversity=d) for d in (0.8, 0.8, 0.8)]
    for _ in range(2):  # the stub's generator makes near-identical images: diversity ~0 < half of 0.8
        loop.history.append({"epoch": len(loop.history) + 1})
        loop.stats = base
        mon.on_batch_end(loop)
        mon.on_epoch_end(loop)
        loop.epoch += 1
    err = capsys.readouterr().err
    assert err.count("Possible mode collapse") == 1 and "near-identical images" in err


# ---- synthetic data
def test_synthetic_adds_labelled_images_to_the_training_split_only(cgan, capsys):
    from layerwise.api import prepare_data, resolve_config
    from layerwise.options import Synthetic

    cfg, _ = resolve_config("digits", None, model="mlp", synthetic="2x", synthetic_from=str(cgan))
    real = prepare_data(cfg, quiet=True)
    n_train, n_val, n_test = len(real.train), len(real.val), len(real.test)
    y_real = real.train.y.copy()
    mixed = Synthetic().prepare(cfg, real, quiet=False)
    assert len(mixed.train) == 3 * n_train and (len(mixed.val), len(mixed.test)) == (n_val, n_test)
    assert mixed.train.inputs[0].shape[1:] == real.val.inputs[0].shape[1:]
    assert np.array_equal(np.bincount(mixed.train.y[n_train:]), 2 * np.bincount(y_real))
    assert f"added {2 * n_train} images" in capsys.readouterr().err
    run = lw.train("digits", model="mlp", epochs=1, synthetic="100", synthetic_from=str(cgan), **FAST)
    assert run.config.synthetic == "100"


@pytest.mark.parametrize("settings, message", [
    ({"synthetic": "2x"}, "--synthetic needs --synthetic-from RUN"),
    ({"synthetic": "lots", "synthetic_from": "CGAN"}, "'lots' is not a count or a multiple"),
    ({"synthetic": "0x", "synthetic_from": "CGAN"}, "is not a count or a multiple"),
    ({"synthetic": "1x", "synthetic_from": "CLF"}, "is not generative"),
    ({"synthetic": "1x", "synthetic_from": "UNCOND"}, "is unconditional, so its samples have no labels"),
    ({"synthetic": "1x", "synthetic_from": "CGAN", "task": "regress"}, "synthetic data is for classification"),
])
def test_synthetic_errors_write_nothing(settings, message, cgan, classifier, tmp_path_factory, tmp_path):
    uncond = tmp_path_factory.getbasetemp() / "uncond"
    if not uncond.exists():
        lw.train("digits", model="gan", epochs=1, out=uncond, tensorboard=False, **FAST)
    names = {"CGAN": cgan, "CLF": classifier, "UNCOND": uncond}
    if "synthetic_from" in settings:
        settings = dict(settings, synthetic_from=str(names[settings["synthetic_from"]]))
    with pytest.raises(lw.LayerwiseError, match=message):
        lw.train("digits", model="mlp", out=tmp_path / "r", **FAST, **settings)
    assert not (tmp_path / "r").exists()


def test_synthetic_shape_mismatch(cgan, tmp_path):
    x = np.random.default_rng(0).random((40, 12, 12)).astype(np.float32)
    with pytest.raises(lw.LayerwiseError, match=r"makes images of shape \[1, 8, 8\] .* but this data has \[1, 12, 12\]"):
        lw.train((x, np.arange(40) % 10), model="mlp", synthetic="1x", synthetic_from=str(cgan),
                 out=tmp_path / "r", **FAST)
    assert not (tmp_path / "r").exists()


# ---- bad input to sample: one sentence, exit code 2, nothing written
def test_sample_errors(cgan, classifier, tmp_path):
    out = tmp_path / "grid.png"
    code, err = cli("sample", str(classifier), "--out", str(out))
    assert code == 2 and "is not generative (task classify, model mlp)" in err and "--task generate --model gan" in err
    code, err = cli("sample", str(cgan), "--label", "12", "--out", str(out))
    assert code == 2 and "label '12' is not one of the classes this GAN was trained on (0, 1, 2" in err
    code, err = cli("sample", str(cgan), "--n", "0", "--out", str(out))
    assert code == 2 and "at least 1" in err
    code, err = cli("sample", str(cgan), "--out", str(tmp_path / "grid.txt"))
    assert code == 2 and "give a .png (a grid) or .npz (arrays) file" in err
    code, err = cli("sample", str(cgan), "--out", str(tmp_path / "missing" / "grid.png"))
    assert code == 2 and "does not exist" in err
    code, err = cli("sample", str(tmp_path / "nope"), "--out", str(out))
    assert code == 2 and "does not exist" in err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RunError, match="is not generative"):
        lw.Run.load(classifier).sample(4)


def test_label_on_unconditional_gan(tmp_path):
    run = lw.train("digits", model="gan", epochs=1, out=tmp_path / "g", tensorboard=False, **FAST)
    with pytest.raises(ConfigError, match="this GAN is unconditional, so it cannot draw a chosen label"):
        run.sample(4, label=3)
    code, err = cli("sample", str(tmp_path / "g"), "--label", "3", "--out", str(tmp_path / "x.png"))
    assert code == 2 and "unconditional" in err and not (tmp_path / "x.png").exists()


def test_unconditional_gan_is_self_conditioned_on_image_clusters(tmp_path):
    from sklearn.metrics import normalized_mutual_info_score

    err = io.StringIO()
    with redirect_stderr(err):
        run = lw.train("digits", model="gan", epochs=1, out=tmp_path / "g", tensorboard=False,
                       **{**FAST, "quiet": False})
    k = 1797 // 100  # one cluster per 100 training images, at most 100
    assert "self-conditioning: the GAN is conditioned on 17 k-means clusters" in err.getvalue()
    assert run.config.clusters == k and run.task.clusters == k and run.model.clusters == k
    # the clusters follow the digits (k-means on 8x8 digits: NMI well above chance), found without labels
    from layerwise.tasks.gan import image_clusters

    x = lw.load("digits").x
    ids = image_clusters(run.pre.transform(x)[0], k, seed=0)
    assert normalized_mutual_info_score(lw.load("digits").y, ids) > 0.6
    prior = run.model.cluster_prior  # the share of the training images in each cluster
    assert torch.allclose(prior, torch.from_numpy(np.bincount(ids, minlength=k) / len(ids)).float())
    assert prior.min() > 0 and prior.max() > 1.5 / k
    loaded = lw.Run.load(tmp_path / "g")
    assert loaded.task.describe() == f"generate images (GAN, self-conditioned on {k} clusters of the images)"
    assert np.array_equal(loaded.sample(16), run.sample(16)) and loaded.sample(16).shape == (16, 8, 8, 1)
    assert cli("sample", str(tmp_path / "g"), "--n", "9", "--out", str(tmp_path / "s.npz"))[0] == 0
    assert set(np.load(tmp_path / "s.npz")) == {"x"}  # cluster ids are not labels
    plain = lw.train("digits", model="gan", clusters=0, epochs=1, out=tmp_path / "p", tensorboard=False, **FAST)
    assert plain.model.clusters == 0 and "cluster_prior" not in plain.model.state_dict()
    assert plain.task.describe() == "generate images (GAN)"


@pytest.mark.parametrize(("settings", "message"), [
    ({"conditional": True, "clusters": 10}, "drop one of them"),
    ({"clusters": 5000}, "--clusters 5000 is more than the 1797 training images"),
])
def test_bad_cluster_settings(settings, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        lw.train("digits", model="gan", epochs=1, out=tmp_path / "g", **settings, **FAST)
    assert not (tmp_path / "g").exists()


def test_gan_on_a_table_is_refused(tmp_path):
    with pytest.raises(lw.LayerwiseError, match="a GAN generates images but the data is a table"):
        lw.train(pd.DataFrame({"a": range(20), "b": range(20), "y": [0, 1] * 10}), model="gan", out=tmp_path / "r",
                 **FAST)
    with pytest.raises(lw.LayerwiseError, match="model gan generates images, it cannot classify"):
        lw.train("digits", model="gan", task="classify", out=tmp_path / "r", **FAST)
    assert not (tmp_path / "r").exists()
    assert Path(tmp_path).is_dir()


# ---- the bar on real data (slow: a judge CNN and a GAN on all 60,000 MNIST images, about 6 minutes on 2 cores)
@pytest.mark.slow
def test_mnist_unconditional_gan_samples_are_confident_digits_of_every_class(shared_data, tmp_path):
    """With the defaults (self-conditioned on k-means clusters, 10 epochs), >= 90% of 1,000 samples are digits
    that a separately trained CNN classifies with probability >= 0.9, and every digit is >= 5% of them."""
    mnist = str(shared_data / "mnist.npz")
    judge = lw.train(mnist, model="cnn", epochs=2, label_smoothing=0.0, out=tmp_path / "judge", **FAST)
    gan = lw.train(mnist, model="gan", out=tmp_path / "gan", tensorboard=False, **FAST)
    assert gan.config.clusters == 200 and gan.config.epochs == 10
    probs = judge.predict(gan.sample(1000, seed=1))["probabilities"]
    confident = (probs.max(1) >= 0.9).mean()
    shares = np.bincount(probs.argmax(1), minlength=10) / len(probs)
    assert confident >= 0.90, confident
    assert shares.min() >= 0.05, shares
