"""Built-in named data sets with real loading code (bundled, local path, or a checked download)."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

from ..errors import DataError

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def cache_dir() -> Path:
    """Where downloads are kept: $LAYERWISE_CACHE, else ~/.cache/layerwise."""
    return Path(os.environ.get("LAYERWISE_CACHE", Path.home() / ".cache" / "layerwise"))


def digits() -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits (1,797 images, bundled: works offline)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return {"x": d.images.astype(np.float32)[:, None] / 16.0, "y": d.target.astype(np.int64)}


def mnist() -> Path:
    """Path of mnist.npz: $LAYERWISE_MNIST, the cache, or a download verified by its SHA-256."""
    env = os.environ.get("LAYERWISE_MNIST")
    if env:
        if not Path(env).is_file():
            raise DataError(f"LAYERWISE_MNIST points to {env!r}, which does not exist; fix or unset it.")
        return Path(env)
    target = cache_dir() / "mnist.npz"
    if target.is_file():
        return target
    return download(MNIST_URL, target, MNIST_SHA256)


def download(url: str, target: Path, sha256: str) -> Path:
    """Download url to target through a temp file, keeping it only if the checksum matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
            h = hashlib.sha256()
            while chunk := r.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url} ({e.__class__.__name__}); download it yourself and pass its path, "
            f"or set LAYERWISE_MNIST to a local copy."
        ) from None
    if h.hexdigest() != sha256:
        tmp.unlink(missing_ok=True)
        raise DataError(f"the download of {url} has the wrong checksum; try again or pass a local copy.")
    os.replace(tmp, target)
    return target


def _sklearn_table(name: str):
    """A table bundled with scikit-learn as a DataFrame whose last column is `target` (works offline)."""

    def loader():
        import sklearn.datasets

        frame = getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame
        if name in ("iris", "wine", "breast_cancer"):  # class names rather than codes
            names = getattr(sklearn.datasets, f"load_{name}")().target_names
            frame["target"] = names[frame["target"].to_numpy()]
        return frame

    loader.__doc__ = f"scikit-learn's bundled {name} table (target column: target)."
    return loader


def fsdd():
    """The Free Spoken Digit Dataset: $LAYERWISE_FSDD, the cache, or a checked download (data/audio.py)."""
    from .audio import fsdd as load_fsdd

    return load_fsdd()


NAMES = {"digits": digits, "mnist": mnist, "fsdd": fsdd, **{n: _sklearn_table(n) for n in ("iris", "wine", "breast_cancer",
                                                                             "diabetes")}}
