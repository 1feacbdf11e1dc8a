"""Saving nested training state without pickle: tensors to safetensors, everything else to JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import RunError


def flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor inside nested dicts/lists by a reference; collect the tensors."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "root"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k), flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {_unkey(k): unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def _key(k: Any) -> Any:
    return {"int": k} if isinstance(k, int) else k


def _unkey(k: Any) -> Any:
    return k["int"] if isinstance(k, dict) else k


def new_file_mode() -> int:
    """The mode an ordinary new file gets under the process umask: 0o644 under umask 022."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict | None = None) -> None:
    """safetensors' save_file with the user's umask: save_file writes a private temp file (mode 0600) and
    renames it, so without the chmod every weights file would be unreadable to the group and others."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, new_file_mode())


def save_state(state: dict, path: Path, keep_previous: bool = True) -> None:
    """Write state atomically (temp file, fsync, rename); the previous file is kept as *.prev."""
    tensors: dict[str, torch.Tensor] = {}
    meta = flatten(state, "", tensors)
    tmp = path.with_name(path.name + ".tmp")
    save_safetensors(tensors, tmp, metadata={"state": json.dumps(meta)})
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    if path.exists() and keep_previous:
        os.replace(path, path.with_name(path.name + ".prev"))
    os.replace(tmp, path)


OPTIMIZER_DROPPED = "optimizer_state_dropped"  # marks a finished checkpoint whose optimizer moments were removed


def finish_checkpoints(path: Path, keep_optimizer: bool = False) -> None:
    """After a successful run: remove the fallback `*.prev` and, unless `keep_optimizer`, rewrite the checkpoint
    without the optimizer's per-parameter state (Adam's two moments: two thirds of the file). What a later
    `--resume` with more epochs needs stays: weights, optimizer settings, step, history, RNG and callback
    state; the optimizer then starts afresh (load_latest says so). A damaged checkpoint is left as it is,
    with its `*.prev`, for load_latest to fall back on."""
    path = Path(path)
    if not path.is_file():
        return
    try:
        state = load_state(path)
    except RunError:
        return
    optimizer = state.get("optimizer")
    if not keep_optimizer and isinstance(optimizer, dict) and optimizer.get("state"):
        state["optimizer"] = {**optimizer, "state": {}}
        state[OPTIMIZER_DROPPED] = True
        save_state(state, path, keep_previous=False)
    path.with_name(path.name + ".prev").unlink(missing_ok=True)


def load_state(path: Path) -> dict:
    """Read a state file; a damaged file raises RunError."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except Exception as e:  # noqa: BLE001 (safetensors raises several types for damaged files)
        raise RunError(f"checkpoint {str(path)!r} is damaged ({e.__class__.__name__}); it cannot be used.") from None
    return unflatten(meta, tensors)


def load_latest(path: Path) -> tuple[dict, list[str]]:
    """Load path, falling back to path.prev if path is damaged; returns (state, warnings)."""
    notes = []
    for p in (path, path.with_name(path.name + ".prev")):
        if not p.exists():
            continue
        try:
            state = load_state(p)
        except RunError as e:
            notes.append(str(e))
            continue
        if state.get(OPTIMIZER_DROPPED):
            import warnings

            warnings.warn("the checkpoint of this finished run has no optimizer state (train with "
                          "--keep-optimizer to keep it); training continues with a fresh optimizer.", stacklevel=2)
        return state, notes
    raise RunError(
        f"no usable checkpoint in {str(path.parent)!r}" + (f" ({notes[0]})" if notes else "")
        + "; train the run again without --resume."
    )
