"""Regression: MSE / MAE / Huber on a standardised target; metrics in the target's own units."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from .base import Task

LOSSES = ("mse", "mae", "huber")


class Regress(Task):
    name = "regress"
    monitor = ("rmse", "min")
    supports = frozenset({"mix"})

    def __init__(self, loss: str | None = None, mean: list | None = None, std: list | None = None, **_):
        loss = loss or "mse"
        if loss not in LOSSES:
            raise DataError(f"loss {loss!r} does not fit regression; use one of {', '.join(LOSSES)}.")
        self.loss_name, self.mean, self.std = loss, mean, std

    @classmethod
    def create(cls, cfg: Any, y: np.ndarray | None = None, kind: str | None = None, quiet: bool = False) -> Regress:
        return cls(loss=cfg.loss)

    @property
    def out_dim(self) -> int:
        return len(self.mean)

    def fit(self, y: np.ndarray) -> np.ndarray:
        y = self._numbers(y)
        std = y.std(0)
        if (std < 1e-12).any():
            raise DataError(f"the target has a single value ({y.flat[0]:g}); there is nothing to learn.")
        self.mean, self.std = y.mean(0).tolist(), std.tolist()
        return self.encode(y)

    def _numbers(self, y) -> np.ndarray:
        y = np.asarray(y)
        if y.dtype.kind in "OUS" and y.ndim == 1:  # numbers written as text: "$1,202.74", "1 202,5", "12%"
            from ..data.tables import text_numbers

            y = text_numbers(y)
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("the target holds non-numeric values; use --task classify for labels.") from None
        if not np.isfinite(y).all():
            raise DataError("the target holds NaN or infinite values; remove those rows first.")
        return y.reshape(len(y), -1)

    def encode(self, y: np.ndarray) -> np.ndarray:
        return ((self._numbers(y) - self.mean) / np.asarray(self.std)).astype(np.float32)

    def loss(self, out, y):
        import torch.nn.functional as F

        out = out.float()
        if self.loss_name == "mae":
            return F.l1_loss(out, y)
        if self.loss_name == "huber":
            return F.huber_loss(out, y)
        return F.mse_loss(out, y)

    def _real(self, t) -> np.ndarray:
        return t.float().cpu().numpy() * np.asarray(self.std) + np.asarray(self.mean)

    def metrics(self, out, y) -> dict[str, float]:
        p, t = self._real(out), self._real(y)
        err = p - t
        ss_tot = ((t - t.mean(0)) ** 2).sum()
        return {"rmse": float(np.sqrt((err ** 2).mean())), "mae": float(np.abs(err).mean()),
                "r2": float(1 - (err ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")}

    def decode(self, out) -> dict[str, Any]:
        p = self._real(out)
        return {"prediction": p[:, 0] if p.shape[1] == 1 else p}

    def to_dict(self) -> dict:
        return {"name": self.name, "loss": self.loss_name, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict) -> Regress:
        return cls(loss=d["loss"], mean=d["mean"], std=d["std"])

    def describe(self) -> str:
        return f"regress ({self.out_dim} target{'s' if self.out_dim > 1 else ''}, {self.loss_name} loss)"
