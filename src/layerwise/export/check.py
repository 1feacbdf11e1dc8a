"""Sample inputs for checking an export, and the comparison against eager PyTorch."""

from __future__ import annotations

from typing import Any

import numpy as np

TOLERANCE = 1e-4  # the largest absolute difference from eager PyTorch an fp32 export may have


def sample(run: Any, front: Any, n: int = 64, seed: int = 0) -> tuple[Any, str]:
    """Raw inputs to check an export on, and a phrase saying what they are: rows of the run's test split when
    its data can be read again, else random inputs of the right kind."""
    why = "the run was trained on in-memory data"
    if run.config.data:
        try:
            d, what = _test_rows(run, n)
            raw = front.raw_from(d)
            if len(raw):
                return _head(raw, n), f"{min(n, len(raw))} {what}"
        except Exception as e:  # noqa: BLE001 (a moved file, a missing package, ...: fall back to random inputs)
            why = f"its data {run.config.data!r} could not be read again ({e.__class__.__name__})"
    raw = front.random(n, np.random.default_rng(seed))
    if raw is None:  # model inputs that only the run's data can give
        from ..errors import RunError

        if not run.config.data:
            raise RunError("there are no inputs to check this export on (the run was trained on in-memory "
                           f"{run.pre.spec()['kind']} data); export with check=False (--no-check).")
        prepared = run.prepared()
        split = prepared.test or prepared.val or prepared.train
        return tuple(x[:n] for x in split.inputs), f"{min(n, len(split))} rows of the run's test split"
    return raw, f"{n} random inputs ({why})"


def _head(raw: Any, n: int) -> Any:
    if hasattr(raw, "iloc"):
        return raw.iloc[:n].reset_index(drop=True)
    if hasattr(raw, "x") and hasattr(raw, "kind"):  # Data
        from ..data import Data

        x = raw.x.iloc[:n].reset_index(drop=True) if raw.kind == "table" else raw.x[:n]
        return Data(raw.kind, x, None if raw.y is None else raw.y[:n], raw.target, meta=raw.meta)
    return raw[:n]


def _test_rows(run: Any, n: int) -> tuple[Any, str]:
    """The data of the run read again, cut to its test part: the given test part, the rows the random split
    held out (classification, regression), or the series' end (the front picks the last windows)."""
    from ..data import load
    from ..data.prepare import _subset, drop_missing_targets, split_indices

    cfg = run.config
    d = load(cfg.data, target=cfg.target)
    if d.test is not None:
        return d.test, "rows of the data's test part"
    if run.task.name in ("classify", "regress") and d.kind != "sequence" and d.y is not None:
        d = drop_missing_targets(d)
        y = run.task.encode(d.y)
        _, idx = split_indices(y, cfg.test_fraction, cfg.seed, run.task.classes is not None)
        if len(idx):
            return _subset(d, np.sort(idx)[:n]), "rows of the run's test split"
    if run.task.name == "forecast":
        return d, "windows at the end of the series (its test part)"
    return d, "rows of the run's data"


def eager(run: Any, inputs: tuple) -> np.ndarray:
    """The run's own model on layerwise-preprocessed inputs, in fp32 evaluation mode."""
    import torch

    model = run.model
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(*(torch.as_tensor(np.asarray(x)) for x in inputs))
    finally:
        model.train(was)
    return out.float().numpy()


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0
