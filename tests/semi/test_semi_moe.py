"""Augmentation policies, semi-supervised training (FixMatch) and mixture-of-experts layers, end to end."""

import json

import numpy as np
import pytest
import torch

import layerwise as lw
from layerwise.cli import main
from layerwise.errors import ConfigError, DataError

QUICK = {"quiet": True, "tensorboard": False, "progress": False}


def cli_error(args, capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def digits_npz(path, size=8, dtype=np.float32, n=None):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:n]
    if size != 8:
        x = np.pad(x, ((0, 0), (0, size - 8), (0, size - 8)))
    x = (x * 255).astype(np.uint8) if dtype == np.uint8 else x.astype(dtype)
    np.savez(path, x=x)
    return path


# ---- augmentation policies


def test_augment_alone_means_the_default_policy_for_the_data():
    from layerwise.cli import build_parser
    from layerwise.config import make_config
    from layerwise.data.policies import resolve_policies

    args = build_parser().parse_args(["train", "mnist", "--augment"])
    assert args.augment == "default"
    assert make_config(augment=True).augment == "default" and make_config(augment=False).augment is None
    assert make_config(augment="MixUp, rand_augment").augment == "mixup,randaugment"
    assert resolve_policies("default", "image", [1, 28, 28], "classify") == ["shift"]
    assert resolve_policies("default", "image", [3, 32, 32], "classify") == ["shift", "flip"]
    assert resolve_policies("default,mixup", "table", None, "classify") == ["jitter", "scale", "mixup"]


def test_unknown_augmentation_policy_lists_valid_ones(capsys):
    err = cli_error(["train", "digits", "--augment", "mixup,blur"], capsys)
    assert "unknown augmentation policy 'blur'; valid: default, shift, flip, randaugment, cutout, mixup, " \
           "cutmix, jitter, scale" in err


def test_image_policies_on_a_table_and_mixing_on_other_tasks_are_refused():
    from layerwise.data.policies import resolve_policies

    with pytest.raises(ConfigError, match="augmentation 'cutmix' works on images only, but the data is a table; "
                                          "use jitter, scale or mixup"):
        resolve_policies("jitter,cutmix", "table", None, "classify")
    with pytest.raises(ConfigError, match="mixes targets and works for classify and regress only"):
        resolve_policies("mixup", "series", None, "forecast")
    with pytest.raises(ConfigError, match=r"--augment does not apply to text data \(token ids\); leave it out"):
        resolve_policies("jitter", "text", None, "classify")


def test_mixing_makes_soft_targets_that_the_classify_loss_accepts():
    from layerwise.data.policies import augment_batch
    from layerwise.tasks import Classify

    x, y = torch.randn(16, 1, 8, 8), torch.arange(16) % 4
    g = torch.Generator().manual_seed(0)
    (xm,), ym = augment_batch(["shift", "randaugment", "cutmix", "mixup"], (x,), y, g, n_classes=4)
    assert xm.shape == x.shape and ym.shape == (16, 4)
    torch.testing.assert_close(ym.sum(1), torch.ones(16))
    task = Classify(label_smoothing=0.1, classes=list(range(4)))
    out = torch.randn(16, 4)
    hard = torch.nn.functional.one_hot(y, 4).float()
    torch.testing.assert_close(task.loss(out, hard), task.loss(out, y))  # one-hot soft targets = indices
    assert torch.isfinite(task.loss(out, ym))
    g2 = torch.Generator().manual_seed(0)
    (xm2,), ym2 = augment_batch(["shift", "randaugment", "cutmix", "mixup"], (x,), y, g2, n_classes=4)
    assert torch.equal(xm, xm2) and torch.equal(ym, ym2)  # the seed decides everything


# ---- semi-supervised


def test_labels_per_class_keeps_n_per_class_and_hides_the_rest():
    from layerwise.api import prepare_data, resolve_config
    from layerwise.fit.semi import split_labels

    cfg, _ = resolve_config("digits", labels_per_class=3, semi_supervised=True, unlabelled_ratio=2)
    full = prepare_data(cfg, quiet=True)
    n_train = len(full.train)
    cfg, _ = resolve_config("digits", labels_per_class=3, semi_supervised=True, unlabelled_ratio=2)
    p = split_labels(prepare_data(cfg, quiet=True), cfg, quiet=True)
    assert len(p.unlabelled[0]) == n_train  # the whole training split, labels hidden
    reps = -(-n_train // (2 * 30))
    assert len(p.train) == 30 * reps and np.array_equal(np.bincount(p.train.y), [3 * reps] * 10)
    # the same seed keeps the same samples; without --semi-supervised the rest is simply left out
    cfg2, _ = resolve_config("digits", labels_per_class=3)
    q = split_labels(prepare_data(cfg2, quiet=True), cfg2, quiet=True)
    assert q.unlabelled is None and len(q.train) == 30
    assert np.array_equal(np.sort(q.train.index), np.sort(np.unique(p.train.index)))


def test_labels_per_class_above_the_smallest_class(capsys):
    err = cli_error(["train", "digits", "--labels-per-class", "500", "--semi-supervised"], capsys)
    assert "--labels-per-class 500 is more than the smallest class has: class" in err
    assert "training samples; use at most" in err


def test_semi_supervised_needs_unlabelled_data_and_a_classifier(capsys):
    err = cli_error(["train", "digits", "--semi-supervised"], capsys)
    assert "semi-supervised training needs unlabelled data: give --labels-per-class N" in err
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match="works for classification only"):
        lw.train((x, x[:, 0] * 1.5), task="regress", labels_per_class=2, **QUICK)


def test_unlabelled_data_of_another_shape_or_kind(tmp_path, capsys):
    bad = digits_npz(tmp_path / "u10.npz", size=10)
    err = cli_error(["train", "digits", "--semi-supervised", "--unlabelled", str(bad), "--out", str(tmp_path / "r")],
                    capsys)
    assert ("the unlabelled images are 10x10x1 (height x width x channels) but the labelled ones are 8x8x1; "
            "give unlabelled data of the same shape.") in err
    assert not (tmp_path / "r").exists()  # nothing written
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    err = cli_error(["train", "digits", "--unlabelled", str(tmp_path / "t.csv")], capsys)
    assert "the unlabelled data is table data but the labelled data is image data" in err
    err = cli_error(["train", "digits", "--unlabelled", str(digits_npz(tmp_path / "u8.npz", dtype=np.uint8))],
                    capsys)
    assert "the unlabelled images hold 8-bit pixels (0-255) but the labelled ones floats" in err
    with pytest.raises(DataError, match="does not exist"):
        lw.train("digits", unlabelled=str(tmp_path / "nope"), **QUICK)


def test_image_folders_labelled_and_unlabelled(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, level in (("dark", 40), ("light", 200)):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(12):
            px = np.clip(rng.normal(level, 20, (12, 12)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(tmp_path / "imgs" / c / f"{i}.png")
    (tmp_path / "more" / "deep").mkdir(parents=True)
    for i in range(30):
        px = np.clip(rng.normal(rng.choice([40, 200]), 20, (12, 12)), 0, 255).astype(np.uint8)
        Image.fromarray(px).save(tmp_path / "more" / ("deep" if i % 2 else "") / f"u{i}.png")
    run = lw.train(tmp_path / "imgs", semi_supervised=True, unlabelled=str(tmp_path / "more"), model="mlp",
                   epochs=2, batch_size=8, unlabelled_ratio=2, out=tmp_path / "r", **QUICK)
    h = run.history[-1]
    assert 0 <= h["unlabelled_used"] <= 1 and np.isfinite(h["unlabelled_loss"])
    (tmp_path / "big").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "big" / "a.png")
    with pytest.raises(DataError, match=r"are 16x16x1 .* labelled ones are 12x12x1; give unlabelled data of the "
                                        r"same shape \(or set --image-size\)"):
        lw.train(tmp_path / "imgs", unlabelled=str(tmp_path / "big"), **QUICK)


def test_fixmatch_pseudo_labels_only_confident_samples():
    from types import SimpleNamespace

    from layerwise.fit.semi import FixMatch
    from layerwise.tasks import Classify

    class Fixed(torch.nn.Module):  # confident on unlabelled rows whose first feature is > 0
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.stack([torch.zeros(len(x)), torch.where(x[:, 0] > 0, 10.0, 0.0)], 1) + self.w

    u = np.array([[5.0, 0], [-5.0, 0]] * 4, np.float32)  # 8 rows: one unlabelled batch of ratio x 4
    fm = FixMatch((u,), {"kind": "array", "shape": [2]}, threshold=0.95, ratio=2)
    model = Fixed()
    loop = SimpleNamespace(model=model, task=Classify(classes=[0, 1]), device=torch.device("cpu"), callbacks=[],
                           cfg=SimpleNamespace(seed=0, grad_clip=None), epoch=0, batch_idx=0, batch_size=4,
                           inputs=(torch.zeros(4, 2),), y=torch.tensor([0, 1, 0, 1]),
                           optimizer=torch.optim.SGD(model.parameters(), lr=0.0), fire=lambda e: None,
                           batch_inputs=lambda x: x, autocast=lambda: torch.autocast("cpu", enabled=False))
    fm.on_fit_start(loop)
    fm.on_epoch_start(loop)
    fm.step(loop)
    assert fm.sums[0].item() == pytest.approx(4)  # half of the 8 unlabelled rows pass the 0.95 threshold
    assert loop.loss.item() > 0


def test_resume_is_exact_with_semi_supervision_moe_and_mixup(tmp_path, crash_after_epoch):
    settings = {"model": "mlp", "moe": 4, "hidden": [32], "epochs": 3, "labels_per_class": 5, "semi_supervised": True,
                "unlabelled_ratio": 2, "augment": "mixup,jitter", "seed": 1, "threads": 1, "quiet": True,
                "tensorboard": False}
    full = lw.train("digits", out=tmp_path / "full", **settings)
    with crash_after_epoch(1):
        lw.train("digits", out=tmp_path / "part", **settings)
    resumed = lw.train("digits", resume=tmp_path / "part", quiet=True)
    assert [h["unlabelled_used"] for h in resumed.history] == [h["unlabelled_used"] for h in full.history]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


# ---- mixture of experts


def test_moe_mlp_trains_logs_expert_load_and_reloads(tmp_path):
    run = lw.train("digits", model="mlp", moe=4, moe_top_k=2, hidden=[32, 32], epochs=2, out=tmp_path / "r",
                   quiet=True)
    from layerwise.models.moe import MoE, MoEMLP

    assert isinstance(run.model, MoEMLP) and sum(isinstance(m, MoE) for m in run.model.modules()) == 2
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    for name in ("experts.blocks.0", "experts.blocks.1"):
        assert len(lines[-1][name]) == 4 and sum(lines[-1][name]) == pytest.approx(1, abs=1e-3)
    assert lines[-1]["experts_min"] == pytest.approx(min(min(lines[-1][f"experts.blocks.{i}"]) for i in (0, 1)),
                                                     abs=1e-4)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(tmp_path / "r" / "tb")).Reload().Tags()["scalars"]
    assert "experts/blocks.0/3" in tags and "experts/min_share" in tags
    again = lw.Run.load(tmp_path / "r")
    assert again.evaluate()["accuracy"] == pytest.approx(run.evaluate()["accuracy"])


def test_moe_balance_loss_is_added_to_the_task_loss():
    from types import SimpleNamespace

    from layerwise.fit.experts import MoEBalance
    from layerwise.models.moe import MoEMLP, moe_aux_loss

    model = MoEMLP(6, 3, [8], n_experts=4)
    out = model(torch.randn(10, 6))
    loop = SimpleNamespace(model=model, loss=out.sum())
    before = loop.loss.item()
    MoEBalance(0.5).on_after_loss(loop)
    assert loop.loss.item() == pytest.approx(before + 0.5 * moe_aux_loss(model).item(), rel=1e-5)


def test_moe_in_transformer_blocks():
    from layerwise.models.moe import MoE, moe_aux_loss, use_moe
    from layerwise.models.transformer import TransformerEncoder

    model = TransformerEncoder(3, vocab_size=50, d_model=16, heads=2, layers=2, max_len=12)
    assert use_moe(model, 4, 1) == 2
    assert sum(isinstance(m, MoE) for m in model.modules()) == 2
    out = model(torch.randint(1, 50, (5, 12)))
    assert out.shape == (5, 3) and moe_aux_loss(model).item() >= 2 - 1e-5


@pytest.mark.parametrize("args, message", [
    (["--model", "mlp", "--moe", "4", "--moe-top-k", "5"],
     "--moe-top-k 5 is more than the 4 experts; use a top-k between 1 and 4."),
    (["--model", "cnn", "--moe", "4"], "--moe works with --model mlp or a transformer, not 'cnn'"),
    (["--moe", "1"], "setting moe=1 is not allowed"),
])
def test_moe_errors(args, message, capsys, tmp_path):
    assert message in cli_error(["train", "digits", *args, "--out", str(tmp_path / "r")], capsys)


# ---- accuracy on real data (slow)


@pytest.mark.slow
def test_moe_mlp_on_adult_matches_dense_with_every_expert_used(shared_data, tmp_path):
    run = lw.train(shared_data / "adult" / "train.csv", target="income", test=str(shared_data / "adult" / "test.csv"),
                   model="mlp", moe=8, moe_top_k=2, hidden=[64, 64], epochs=4, out=tmp_path / "moe", **QUICK)
    assert run.info["test_metrics"]["accuracy"] >= 0.85  # the dense MLP's bar on Adult
    assert run.history[-1]["experts_min"] >= 0.05


# ---- the bar on real data (slow: about 2 minutes on one core)
@pytest.mark.slow
def test_fixmatch_with_100_mnist_labels_reaches_093(shared_data, tmp_path):
    """10 labels per class and the rest of MNIST unlabelled: >= 0.93 test accuracy after 2 epochs."""
    run = lw.train(str(shared_data / "mnist.npz"), labels_per_class=10, semi_supervised=True, batch_size=64,
                   unlabelled_ratio=3, epochs=2, out=tmp_path / "fm", threads=1, quiet=True, progress=False,
                   tensorboard=False, seed=0)
    assert run.history[-1]["unlabelled_used"] > 0.5  # most unlabelled images passed the confidence threshold
    assert run.info["test_metrics"]["accuracy"] >= 0.93
