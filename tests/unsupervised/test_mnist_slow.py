"""MNIST accuracy bars for autoencoders (slow; need ../shared/data/mnist.npz). Full numbers: benchmarks/unsupervised.py."""

import numpy as np
import pytest

import layerwise as lw

SETTINGS = {"quiet": True, "progress": False, "tensorboard": False, "seed": 0}


@pytest.mark.slow
def test_mnist_autoencoder_embeddings_cluster_into_digits(shared_data, tmp_path):
    """The issue's bar: an autoencoder with a 16-d code + k-means (k = 10), NMI >= 0.70 on the test set."""
    run = lw.train(shared_data / "mnist.npz", task="reconstruct", model="conv_autoencoder", latent=16, epochs=15,
                   out=tmp_path / "ae", **SETTINGS)
    z = np.load(shared_data / "mnist.npz")
    test = (z["x_test"], z["y_test"])
    whitened = run.cluster(test, k=10)  # k-means on the whitened 16-d codes
    assert whitened["whiten"] and whitened["nmi"] >= 0.70
    assert run.cluster(test, k=10, whiten=False)["nmi"] > 0.55  # the raw codes: about 0.62-0.65
    local = run.cluster((z["x_test"][:2000], z["y_test"][:2000]), k=10, manifold="tsne")  # N2D-style
    assert local["nmi"] >= 0.75 and local["ari"] > 0.6


@pytest.mark.slow
def test_mnist_one_class_digit_0_auroc(shared_data, tmp_path):
    run = lw.train(shared_data / "mnist.npz", task="anomaly", normal_class=0, epochs=8, out=tmp_path / "r",
                   **SETTINGS)
    m = run.info["test_metrics"]
    assert m["auroc"] >= 0.97 and m["average_precision"] >= 0.8
    assert 0.01 < m["fpr"] < 0.12  # the threshold keeps about fpr=0.05 of the normal test digits
