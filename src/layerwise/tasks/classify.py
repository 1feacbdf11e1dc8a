"""Classification, binary or multi-class: cross-entropy with optional label smoothing."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from .base import Task

# a target with more than ID_LIKE_MIN_CLASSES values, at least one per two rows, in more than ID_LIKE_MIN_ROWS rows
# is an id or free text, not classes (small toy sets with a handful of rows per class still train)
ID_LIKE_MIN_ROWS, ID_LIKE_MIN_CLASSES = 100, 50


class Classify(Task):
    name = "classify"
    monitor = ("accuracy", "max")
    supports = frozenset({"semi_supervised", "synthetic", "mix"})

    def __init__(self, label_smoothing: float = 0.0, loss: str | None = None, classes: list | None = None):
        if loss not in (None, "cross_entropy"):
            raise DataError(f"loss {loss!r} does not fit classification; use cross_entropy.")
        self.label_smoothing = label_smoothing
        self.classes = classes

    @classmethod
    def create(cls, cfg: Any, y: np.ndarray | None = None, kind: str | None = None, quiet: bool = False) -> Classify:
        """Label smoothing 0.1 for images unless set (it helps conv nets there), else none."""
        smoothing = cfg.label_smoothing if cfg.label_smoothing is not None else (0.1 if kind == "image" else 0.0)
        return cls(label_smoothing=smoothing, loss=cfg.loss)

    @property
    def out_dim(self) -> int:
        return len(self.classes)

    def fit(self, y: np.ndarray) -> np.ndarray:
        """Learn the class list from the training targets; returns them encoded."""
        values = np.unique(np.asarray(y).astype(str) if np.asarray(y).dtype == object else y)
        if values.size < 2:
            raise DataError(
                f"the target has a single value ({values[0]!r}); a classifier needs at least two classes."
            )
        rows = len(y)
        if rows > ID_LIKE_MIN_ROWS and values.size > ID_LIKE_MIN_CLASSES and values.size >= 0.5 * rows:
            numeric = np.asarray(y).dtype.kind in "iuf"
            raise DataError(
                f"the target has {values.size:,} distinct values in {rows:,} rows, about one per row (an id or "
                "free text), so there are no classes to learn; pick another column with --target"
                + (", or use --task regress to predict it as a number." if numeric else ".")
            )
        self.classes = [v.item() if hasattr(v, "item") else v for v in values]
        return self.encode(y)

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Labels → class indices; labels unseen in training are an error (after forgiving trailing dots)."""
        y = np.asarray(y)
        index = {_key(c): i for i, c in enumerate(self.classes)}
        keys = [_key(v) for v in y]
        out = np.fromiter((index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        if (out < 0).any():
            loose = {_loose(c): i for i, c in enumerate(self.classes)}
            out = np.fromiter((index.get(k, loose.get(_loose(k), -1)) for k in keys), np.int64, len(keys))
            if (out < 0).any():
                unknown = sorted({str(v) for v, o in zip(y, out) if o < 0})[:5]
                raise DataError(
                    f"labels {unknown} were not seen in training (known: {self.classes[:20]}); "
                    "fix the labels or train with them."
                )
        return out

    def loss(self, out, y):
        """Cross-entropy against class indices [B], or soft targets [B, classes] (mixup, CutMix)."""
        import torch.nn.functional as F

        if y.is_floating_point():
            y = y.to(out.dtype)
        return F.cross_entropy(out, y, label_smoothing=self.label_smoothing)

    def metrics(self, out, y) -> dict[str, float]:
        from sklearn.metrics import f1_score

        pred = out.argmax(1).cpu().numpy()
        yn = y.cpu().numpy()
        return {"accuracy": float((pred == yn).mean()),
                "macro_f1": float(f1_score(yn, pred, average="macro", labels=range(self.out_dim), zero_division=0))}

    def confusion(self, out, y) -> list[list[int]]:
        from sklearn.metrics import confusion_matrix

        return confusion_matrix(y.cpu().numpy(), out.argmax(1).cpu().numpy(), labels=range(self.out_dim)).tolist()

    def decode(self, out) -> dict[str, Any]:
        probs = out.float().softmax(1).cpu().numpy()
        return {"prediction": [self.classes[i] for i in probs.argmax(1)], "probabilities": probs,
                "classes": self.classes}

    def to_dict(self) -> dict:
        return {"name": self.name, "classes": self.classes, "label_smoothing": self.label_smoothing}

    @classmethod
    def from_dict(cls, d: dict) -> Classify:
        return cls(label_smoothing=d.get("label_smoothing", 0.0), classes=d["classes"])

    def describe(self) -> str:
        return f"classify ({self.out_dim} classes)"


def _key(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    return str(v)


def _loose(v) -> str:
    return str(v).strip().rstrip(".").strip().lower()
