"""MNIST accuracy bars for autoencoders (slow; need ../shared/data/mnist.npz). Full numbers: benchmarks/unsupervised.py."""

import numpy as np
import pytest

import layerwise as lw

SETTINGS = {"quiet": True, "progress": False, "tensorboard": False, "seed": 0}


@pytest.mark.slow
def test_mnist_autoencoder_embeddings_cluster_into_digits(shared_data, tmp_path):
    z = np.load(shared_data / "mnist.npz")
    run = lw.train((z["x_train"][:20000], z["y_train"][:20000]), task="reconstruct", model="autoencoder",
                   latent=16, epochs=8, test_fraction=0.01, out=tmp_path / "ae", **SETTINGS)
    test = (z["x_test"][:2000], z["y_test"][:2000])
    plain = run.cluster(test, k=10)
    assert plain["nmi"] > 0.45  # k-means on the 16-d codes themselves (about 0.6 on the whole test set)
    local = run.cluster(test, k=10, manifold="tsne")  # k-means on a t-SNE map of the codes (N2D)
    assert local["nmi"] >= 0.70 and local["ari"] > 0.5


@pytest.mark.slow
def test_mnist_one_class_digit_0_auroc(shared_data, tmp_path):
    run = lw.train(shared_data / "mnist.npz", task="anomaly", normal_class=0, epochs=8, out=tmp_path / "r",
                   **SETTINGS)
    m = run.info["test_metrics"]
    assert m["auroc"] >= 0.97 and m["average_precision"] >= 0.8
    assert 0.01 < m["fpr"] < 0.12  # the threshold keeps about fpr=0.05 of the normal test digits
