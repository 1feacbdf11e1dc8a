"""Images and plain feature arrays: standardised with statistics of the training split."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from .base import Data, Preprocessor


class ArrayPre(Preprocessor):
    """Images (per-channel) or feature arrays (per-feature) standardised with training statistics."""

    kind = "array"

    def __init__(self, kind: str, shape: list[int], mean: list[float], std: list[float], scale: float):
        self.kind, self.shape, self.mean, self.std, self.scale = kind, shape, mean, std, scale

    @classmethod
    def fit(cls, d: Data, cfg: Any = None) -> ArrayPre:
        x = d.x.astype(np.float32)
        scale = 1 / 255 if d.x.dtype == np.uint8 else 1.0
        axes = (0, 1, 2) if d.kind == "image" else (0,)
        mean = (x.mean(axes) * scale).tolist()
        std = np.maximum(x.std(axes) * scale, 1e-6).tolist()
        shape = [x.shape[3], x.shape[1], x.shape[2]] if d.kind == "image" else [x.shape[1]]
        return cls(d.kind, shape, mean, std, scale)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shape": self.shape, "mean": self.mean, "std": self.std, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> ArrayPre:
        return cls(d["kind"], d["shape"], d["mean"], d["std"], d["scale"])

    def spec(self) -> dict:
        return {"kind": self.kind, "shape": self.shape}

    def transform(self, x: np.ndarray) -> tuple[np.ndarray]:
        want = tuple(self.shape[1:] + self.shape[:1]) if self.kind == "image" else tuple(self.shape)
        if tuple(x.shape[1:]) != want:
            raise DataError(f"inputs have shape {tuple(x.shape[1:])} per sample but the model expects {want}.")
        out = (x.astype(np.float32) * self.scale - np.float32(self.mean)) / np.float32(self.std)
        if self.kind == "image":
            out = out.transpose(0, 3, 1, 2)
        return (np.ascontiguousarray(out, dtype=np.float32),)
