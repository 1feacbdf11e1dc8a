"""Reconstruct, anomaly, embed, cluster and score, end to end (Python and CLI), and their user errors."""

import json

import numpy as np
import pandas as pd
import pytest

import layerwise as lw
from layerwise.cli import main
from layerwise.errors import ConfigError, DataError, RunError

FAST = {"quiet": True, "tensorboard": False, "progress": False, "hidden": [64], "latent": 8, "seed": 0}


@pytest.fixture(scope="module")
def digits_ae(tmp_path_factory):
    """A small dense autoencoder on scikit-learn's 8x8 digits (labels kept for embed/cluster)."""
    return lw.train("digits", task="reconstruct", model="autoencoder", epochs=15,
                    out=tmp_path_factory.mktemp("ae") / "run", **FAST)


def normal_table(n: int, seed: int) -> pd.DataFrame:
    """Rows on a 2-D plane inside 5-D space, plus a category tied to the sign of the first factor."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, 2))
    x = f @ np.array([[1, 0.5, -1, 0.2, 2], [0.3, -1, 0.5, 1.5, 0]]) + 0.05 * rng.normal(size=(n, 5))
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
    df["kind"] = np.where(f[:, 0] > 0, "up", "down")
    return df


def test_reconstruct_trains_reloads_and_embeds(digits_ae, tmp_path):
    m = digits_ae.info["test_metrics"]
    assert set(m) >= {"loss", "mse", "mae"} and m["mse"] < 0.5  # inputs are standardised: 1.0 = predicting the mean
    again = lw.Run.load(digits_ae.path)
    assert again.evaluate()["mse"] == pytest.approx(m["mse"], rel=1e-5)
    e = again.embed("digits", out=tmp_path / "e.npz", plot=tmp_path / "map.png")
    assert e["embeddings"].shape == (1797, 8) and len(e["labels"]) == 1797 and e["map"].shape == (1797, 2)
    saved = np.load(tmp_path / "e.npz", allow_pickle=False)
    assert np.array_equal(saved["embeddings"], e["embeddings"]) and np.array_equal(saved["labels"], e["labels"])
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
    x = lw.load("digits").x[:5]
    assert np.allclose(again.embed(x)["embeddings"], e["embeddings"][:5], atol=1e-5)


def test_cluster_digits_embeddings_find_the_classes(digits_ae, tmp_path):
    r = digits_ae.cluster("digits", k=10, out=tmp_path / "c.csv")
    assert r["nmi"] > 0.5 and r["ari"] > 0.3 and sum(r["sizes"]) == 1797 and len(r["sizes"]) == 10
    rows = pd.read_csv(tmp_path / "c.csv")
    assert list(rows.columns) == ["row", "cluster", "label"] and rows["cluster"].nunique() == 10
    assert digits_ae.cluster("digits", k=10)["clusters"].tolist() == r["clusters"].tolist()  # seeded
    assert r["whiten"] and not digits_ae.cluster("digits", k=10, whiten=False)["whiten"]


def test_whitening_gives_unit_variance_axes_and_drops_empty_ones():
    from layerwise.tasks.embed import _whiten

    g = np.random.default_rng(0)
    z = g.normal(size=(500, 3)) @ np.array([[10.0, 0, 0], [3, 0.1, 0], [0, 0, 1]])
    z = np.concatenate([z, np.full((500, 1), 7.0)], 1)  # a constant axis: no variance, dropped
    w = _whiten(z)
    assert w.shape == (500, 3) and np.allclose(np.cov(w, rowvar=False), np.eye(3), atol=1e-6)


def test_cli_embed_cluster_and_errors_write_nothing(digits_ae, tmp_path, capsys):
    run = str(digits_ae.path)
    assert main(["embed", run, "digits", "--out", str(tmp_path / "e.npz"), "--plot", str(tmp_path / "m.png")]) == 0
    assert np.load(tmp_path / "e.npz")["embeddings"].shape == (1797, 8) and (tmp_path / "m.png").is_file()
    assert main(["cluster", run, "digits", "--k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["k"] == 3 and sum(out["sizes"]) == 1797 and 0 < out["nmi"] < 1
    # --k larger than the number of samples
    x = lw.load("digits").x[:5]
    np.savez(tmp_path / "five.npz", x=x)
    assert main(["cluster", run, str(tmp_path / "five.npz"), "--k", "10", "--out", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert "k=10 clusters asked for but the data has only 5 samples; use a k of at most 5." in err
    assert not (tmp_path / "c.csv").exists()
    with pytest.raises(DataError, match="only 5 samples"):
        digits_ae.cluster(x, k=6)


def test_embed_on_a_run_without_encoder_is_an_error(tmp_path, capsys):
    lw.train("digits", model="mlp", epochs=1, out=tmp_path / "clf", quiet=True, tensorboard=False, progress=False)
    assert main(["embed", str(tmp_path / "clf"), "digits", "--out", str(tmp_path / "e.npz")]) == 2
    err = capsys.readouterr().err
    assert "has no encoder (model 'mlp'); embeddings need a run trained with --task reconstruct --model " \
           "autoencoder, conv_autoencoder, vae or conv_vae." in err
    assert not (tmp_path / "e.npz").exists()
    with pytest.raises(RunError, match="scores need a run trained with --task anomaly"):
        lw.Run.load(tmp_path / "clf").score("digits")


def test_anomaly_threshold_without_validation_data_is_an_error(tmp_path, capsys):
    code = main(["train", "digits", "--task", "anomaly", "--normal-class", "0", "--val-fraction", "0",
                 "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2
    assert "the anomaly threshold is chosen on validation data, but there is none (val_fraction is 0 and no " \
           "--validation); set --val-fraction 0.1 or give --validation DATA." in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_anomaly_label_errors():
    with pytest.raises(DataError, match=r"the labels have 10 values \(0, 1, 2, .*\); say which one is normal "
                                        "with --normal-class"):
        lw.train("digits", task="anomaly", quiet=True)
    with pytest.raises(DataError, match="no sample has the label '12' given as normal_class"):
        lw.train("digits", task="anomaly", normal_class=12, quiet=True)
    with pytest.raises(ConfigError, match="normal_class is a setting of --task anomaly"):
        lw.train("digits", task="reconstruct", normal_class=1, quiet=True)
    with pytest.raises(ConfigError, match="task reconstruct needs an autoencoder"):
        lw.train("digits", task="reconstruct", model="mlp", quiet=True)
    with pytest.raises(ConfigError, match="'conv_autoencoder' needs images but the data is a table"):
        lw.train(normal_table(50, 0), task="reconstruct", model="conv_autoencoder", quiet=True)


def test_one_class_digits_anomaly_auroc(tmp_path):
    run = lw.train("digits", task="anomaly", normal_class=0, epochs=30, out=tmp_path / "r", **FAST)
    m = run.info["test_metrics"]
    assert m["auroc"] > 0.9 and m["average_precision"] > 0.9
    t = run.task
    assert t.threshold is not None and t.val_scores["flagged"] <= 0.05 + 1e-9
    again = lw.Run.load(tmp_path / "r")
    assert again.task.threshold == t.threshold and again.task.normal_class == "0"
    s = again.score("digits")
    assert s["score"].shape == (1797,) and s["flag"].dtype == bool and s["auroc"] > 0.9
    zeros = lw.load("digits").y == 0
    assert s["score"][zeros].mean() < s["score"][~zeros].mean()


def test_table_anomaly_cli_train_on_normal_rows_then_score(tmp_path, capsys):
    normal_table(600, 0).to_csv(tmp_path / "normal_only.csv", index=False)
    new = normal_table(200, 1)
    odd = new.index < 40
    new.loc[odd, ["x0", "x2"]] = new.loc[odd, ["x2", "x0"]].to_numpy() + 1.0  # off the normal plane
    new["label"] = odd.astype(int)
    new.to_csv(tmp_path / "new.csv", index=False)
    run = str(tmp_path / "r")
    assert main(["train", str(tmp_path / "normal_only.csv"), "--task", "anomaly", "--epochs", "40", "--latent", "2",
                 "--hidden", "32", "--out", run, "--no-progress", "--no-tensorboard"]) == 0
    capsys.readouterr()
    loaded = lw.Run.load(run)
    assert loaded.task.cat_sizes == [3] and loaded.task.dim == 8  # 5 numbers + one-hot of kind (2 levels + unseen)
    assert main(["score", run, str(tmp_path / "new.csv"), "--target", "label", "--out", str(tmp_path / "s.csv")]) == 0
    summary = capsys.readouterr().err
    assert "200 scores written to" in summary and "flagged (threshold" in summary and "auroc" in summary
    rows = pd.read_csv(tmp_path / "s.csv")
    assert list(rows.columns) == ["row", "score", "flag", "label"] and len(rows) == 200
    r = loaded.score(tmp_path / "new.csv", target="label")
    assert r["auroc"] > 0.95 and r["tpr"] > 0.8 and r["fpr"] < 0.2
    assert main(["score", run, str(tmp_path / "new.csv")]) == 0  # no labels: one line per row
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 200 and lines[0].split("\t")[2] in ("normal", "anomaly")


def test_vae_anomaly_scores_are_the_negative_elbo_and_survive_reload(tmp_path):
    run = lw.train("digits", task="anomaly", model="vae", normal_class=1, epochs=10, out=tmp_path / "r", **FAST)
    assert run.task.variational and "kl" in run.info["test_metrics"]
    x = lw.load("digits").x[:20]
    a = run.score(x)["score"]
    again = lw.Run.load(tmp_path / "r")
    import torch

    (inputs,) = again.pre.transform(x)
    expected = again.model.score(torch.from_numpy(inputs)).numpy()
    assert np.allclose(again.score(x)["score"], a, rtol=1e-5) and np.allclose(a, expected, rtol=1e-4)


def test_conv_autoencoder_reconstructs_digit_images(tmp_path):
    run = lw.train("digits", task="reconstruct", model="conv_autoencoder", channels=[8, 16], epochs=5,
                   out=tmp_path / "r", **FAST)
    assert run.info["test_metrics"]["mse"] < 0.9
    assert run.predict(lw.load("digits").x[:3])["prediction"].shape == (3, 64)


def test_conv_vae_from_the_cli_reconstructs_embeds_and_samples(tmp_path, capsys):
    assert main(["train", "digits", "--task", "reconstruct", "--model", "conv_vae", "--latent", "8", "--channels",
                 "8,16", "--epochs", "8", "--out", str(tmp_path / "v"), "--no-progress", "--no-tensorboard",
                 "--threads", "1"]) == 0
    run = lw.Run.load(tmp_path / "v")
    assert run.task.variational and run.model.conv and run.info["model"] == "conv_vae"
    assert "kl" in run.info["test_metrics"] and run.info["test_metrics"]["mse"] < 0.9
    z = run.embed("digits")["embeddings"]
    assert z.shape == (1797, 8)
    assert main(["sample", str(tmp_path / "v"), "--n", "16", "--out", str(tmp_path / "s.npz")]) == 0
    x = np.load(tmp_path / "s.npz")["x"]
    assert x.shape == (16, 8, 8, 1) and np.isfinite(x).all() and x.std() > 0
