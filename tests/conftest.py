import contextlib
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture
def shared_data():
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED.resolve()


@pytest.fixture
def crash_after_epoch(monkeypatch):
    """``with crash_after_epoch(n): lw.train(...)``: the run writes its checkpoint at the end of epoch n, then dies
    (the with-block asserts that it did); afterwards checkpoints behave normally again, ready for a resume."""

    @contextlib.contextmanager
    def crashing(n: int):
        from layerwise.fit.callbacks import Checkpoint

        save = Checkpoint.on_epoch_end

        def crash(self, loop):
            save(self, loop)
            if loop.epoch == n:
                raise RuntimeError("simulated crash")

        monkeypatch.setattr(Checkpoint, "on_epoch_end", crash)
        try:
            with pytest.raises(RuntimeError, match="simulated"):
                yield
        finally:
            monkeypatch.setattr(Checkpoint, "on_epoch_end", save)

    return crashing


@pytest.fixture(autouse=True)
def runs_in_tmp(monkeypatch, tmp_path_factory):
    """Runs trained without --out land in a temporary folder, not in ./runs of the checkout."""
    monkeypatch.setattr("layerwise.api.RUNS_ROOT", str(tmp_path_factory.getbasetemp() / "default-runs"))


@pytest.fixture
def one_thread():
    """Two intra-op threads on a busy 2-core machine spin-wait; small models run on one."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def real_digits():
    """`real_digits(n)`: `n` real digit images [n, 1, H, W] in [0, 1], MNIST when present, else scikit-learn's
    8x8 digits; `real_digits(n, "mnist")` (skips when MNIST is absent) or `real_digits(n, "sklearn")` picks one."""
    import torch

    def load(n: int, source: str = "auto"):
        if source == "mnist" and not (SHARED / "mnist.npz").is_file():
            pytest.skip("../shared/data/mnist.npz is absent")
        if source != "sklearn" and (SHARED / "mnist.npz").is_file():
            x = np.load(SHARED / "mnist.npz")["x_train"][:n].astype(np.float32) / 255
        else:
            from sklearn.datasets import load_digits

            x = load_digits().images[:n].astype(np.float32) / 16
        return torch.from_numpy(x)[:, None]

    return load
