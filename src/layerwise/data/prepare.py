"""From Data to tensors: a reproducible split, preprocessing fitted on the training split only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError
from .arrays import ArrayPre  # noqa: F401 (imported from here by older code)
from .base import Data
from .registry import preprocessor_class, preprocessor_from_dict  # noqa: F401


@dataclass
class Split:
    inputs: tuple[np.ndarray, ...]
    y: np.ndarray
    index: np.ndarray | None = None  # rows of the source data (None for a given split)
    labels: np.ndarray | None = None  # raw labels when y is something else (reconstruction: y is the input)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Prepared:
    pre: Any
    task: Any
    train: Split
    val: Split | None
    test: Split | None
    unlabelled: tuple | None = None  # inputs without labels (semi-supervised training)

    def counts_table(self) -> str:
        """A small table of samples per split (and per class for classification)."""
        splits = [("train", self.train), ("val", self.val), ("test", self.test)]
        splits = [(n, s) for n, s in splits if s is not None]
        head = f"{'':>14}" + "".join(f"{n:>8}" for n, _ in splits)
        rows = [head]
        classes = self.task.classes
        if classes is not None:
            shown = classes if len(classes) <= 20 else classes[:20]
            for i, c in enumerate(shown):
                rows.append(f"{str(c)[:14]:>14}" + "".join(f"{int((s.y == i).sum()):>8}" for _, s in splits))
            if len(classes) > 20:
                rows.append(f"{f'+{len(classes) - 20} classes':>14}")
        rows.append(f"{'total':>14}" + "".join(f"{len(s):>8}" for _, s in splits))
        return "\n".join(rows)


def split_indices(y: np.ndarray, fraction: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Split range(len(y)) into (keep, held_out), stratified by class when possible."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if fraction <= 0:
        return idx, idx[:0]
    strat = y if stratify and np.unique(y).size > 1 and np.bincount(y).min() >= 2 else None
    n_out = max(1, round(fraction * len(y)))
    if strat is not None and n_out < np.unique(y).size:
        strat = None
    return tuple(train_test_split(idx, test_size=n_out, random_state=seed, stratify=strat))


def prepare(
    data: Data,
    task,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    validation: Data | None = None,
    test: Data | None = None,
    fit_pre: Any = None,
    cfg: Any = None,
) -> Prepared:
    """Split data, fit the task's target encoding and the input preprocessing on the training split.

    The preprocessor is the data kind's (data/base.py), fitted on the training split with the settings `cfg`;
    `fit_pre(train_data) -> preprocessor` replaces it (a pretrained model's own tokenizer or normalisation).
    """
    if data.y is None:
        raise DataError("the data has no targets; give a target column or (X, y) arrays.")
    data = drop_missing_targets(data)
    test = test or data.test
    y_all = task.fit(data.y)
    strat = task.classes is not None
    if test is None:
        rest, test_idx = split_indices(y_all, test_fraction, seed, strat)
    else:
        rest, test_idx = np.arange(len(y_all)), None
    if validation is None:
        tr, va = split_indices(y_all[rest], val_fraction, seed + 1, strat)
        train_idx, val_idx = rest[tr], rest[va]
    else:
        train_idx, val_idx = rest, None
    if len(train_idx) < 2:
        raise DataError(f"only {len(train_idx)} training sample(s) left after splitting; give more data.")
    train_data = _subset(data, train_idx)
    pre = fit_pre(train_data) if fit_pre is not None else preprocessor_class(data.kind).fit(train_data, cfg)

    def make(d: Data, idx: np.ndarray | None, y: np.ndarray) -> Split:
        sub = _subset(d, idx) if idx is not None else d
        return Split(pre.transform(sub.x), y if idx is None else y[idx], idx)

    def given(d: Data) -> Split:
        d = drop_missing_targets(coerce_kind(d, data))
        return Split(pre.transform(d.x), task.encode(d.y), None)

    train = make(data, train_idx, y_all)
    val = given(validation) if validation is not None else (make(data, val_idx, y_all) if len(val_idx) else None)
    tst = given(test) if test is not None else (make(data, test_idx, y_all) if len(test_idx) else None)
    return Prepared(pre, task, train, val, tst)


def _subset(d: Data, idx: np.ndarray) -> Data:
    x = d.x.iloc[idx] if d.kind == "table" else d.x[idx]
    return Data(d.kind, x, None if d.y is None else d.y[idx], d.target, meta=d.meta)


def coerce_kind(d: Data, like: Data) -> Data:
    """Check that extra data (validation/test) is of the same kind as the training data."""
    if d.kind != like.kind:
        raise DataError(f"the training data is {like.kind} data but the extra data is {d.kind}; give the same kind.")
    if d.kind == "table" and like.target and d.target != like.target:
        raise DataError(f"the extra table has no target column {like.target!r}; give it the same columns.")
    return d


def drop_missing_targets(d: Data) -> Data:
    """Rows whose target is missing cannot be learned from: drop them with a note."""
    if d.kind != "table":
        return d
    import pandas as pd

    keep = ~pd.isna(pd.Series(d.y)).to_numpy()
    if keep.all():
        return d
    if not keep.any():
        raise DataError(f"every value of the target {d.target!r} is missing; pick another target column.")
    d.notes.append(f"dropped {int((~keep).sum())} rows with no target value")
    return Data(d.kind, d.x[keep].reset_index(drop=True), d.y[keep], d.target, d.test, d.source, d.notes,
                d.validation, d.meta)
