"""Reports on runs: the runs of a folder (`layerwise runs`, `rm`, `runs --prune`), a model's layers
(`layerwise summary`), and the files a finished training leaves in its run folder (summary.txt, curves.png,
confusion.png; `write_report`). Torch and matplotlib are imported only by the parts that need them, so
listing runs stays instant.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from .errors import ConfigError, RunError, say

STATUSES = ("done", "running", "failed", "interrupted")
SORTS = ("created", "name", "metric", "time")
KEY_METRIC = {"classify": "accuracy", "regress": "rmse"}  # other tasks: their first test metric
LOWER_IS_BETTER = {"loss", "rmse", "mse", "mae", "perplexity", "error", "kl", "fid"}  # a word of the metric name
REPORT_FILES = {"summary": "summary.txt", "curves": "curves.png", "confusion": "confusion.png"}
MAX_CONFUSION_CLASSES = 30


# ---- the runs of a folder
def _file(name: str) -> str:
    """The name of a run file (run.FILES; imported here so that `layerwise --help` stays free of numpy)."""
    from .run import FILES

    return FILES[name]


def is_run_dir(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / _file("info")).is_file()


def list_runs(root: str | Path) -> list[dict]:
    """One row per run folder under `root` (unsorted): name, path, status, data, model, task, created,
    epochs_done, epochs (the configured total), seconds (of training), metric and value (the key test metric),
    error (one line, failed runs), test_metrics, weights (whether model.safetensors exists). Never raises for
    a damaged run: its status reads "damaged"."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [run_row(p) for p in root.iterdir() if is_run_dir(p)]


def run_row(path: Path) -> dict:
    path = Path(path)
    try:
        info = json.loads((path / _file("info")).read_text())
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        info = {"status": "damaged", "error": "run.json cannot be read"}
    history = _history(path)
    metrics = info.get("test_metrics") or {}
    metric = _key_metric(info.get("task"), metrics)
    done = info.get("epochs_done")
    seconds = sum(h.get("seconds", 0.0) for h in history) if history else info.get("seconds")
    return {"name": path.name, "path": str(path), "status": info.get("status", "?"), "data": info.get("data"),
            "model": info.get("model"), "task": info.get("task"), "created": info.get("created"),
            "epochs_done": done if done is not None else len(history), "epochs": _config_epochs(path),
            "seconds": seconds, "metric": metric, "value": metrics.get(metric) if metric else None,
            "error": _one_line(info["error"]) if info.get("error") else None, "test_metrics": metrics,
            "weights": (path / _file("weights")).is_file()}


def _history(path: Path) -> list[dict]:
    p = path / _file("metrics")
    rows = []
    try:
        lines = p.read_text().splitlines() if p.is_file() else []
    except OSError:
        return []
    for line in lines:
        try:
            h = json.loads(line)
        except ValueError:  # a line cut short by a crash while it was written
            continue
        if isinstance(h, dict):
            rows.append(h)
    return rows


def _config_epochs(path: Path) -> int | None:
    p = path / _file("config")
    if not p.is_file():
        return None
    try:
        import yaml

        epochs = (yaml.safe_load(p.read_text()) or {}).get("epochs")
    except Exception:  # noqa: BLE001 (a damaged config: the listing shows no total)
        return None
    return epochs if isinstance(epochs, int) else None


def _key_metric(task: str | None, metrics: dict) -> str | None:
    """accuracy for classify, rmse for regress, else the first test metric (the loss only when it is alone)."""
    want = KEY_METRIC.get(task or "")
    if want in metrics:
        return want
    rest = [k for k in metrics if k != "loss"]
    return rest[0] if rest else ("loss" if "loss" in metrics else None)


def _one_line(text: Any) -> str:
    lines = [s.strip() for s in str(text).splitlines() if s.strip()]
    return lines[0] if lines else ""


def lower_is_better(metric: str) -> bool:
    """rmse, val_loss, scaled_mae_naive, ...: smaller is better; accuracy, macro_f1, auroc, ...: larger."""
    return any(word in LOWER_IS_BETTER for word in metric.lower().split("_"))


def filter_runs(rows: list[dict], status: str | None = None, task: str | None = None,
                model: str | None = None) -> list[dict]:
    return [r for r in rows if (status is None or r["status"] == status) and (task is None or r["task"] == task)
            and (model is None or r["model"] == model)]


def sort_runs(rows: list[dict], by: str = "created") -> list[dict]:
    """created: oldest first; name: alphabetical; metric: best first; time: longest first. Runs without the
    value come last (by name)."""
    rows = sorted(rows, key=lambda r: r["name"])
    if by == "name":
        return rows
    if by == "created":
        return sorted(rows, key=lambda r: (r["created"] is None, r["created"] or ""))
    if by == "time":
        return sorted(rows, key=lambda r: (not _number(r["seconds"]), -(r["seconds"] or 0.0)))
    if by == "metric":
        def best_first(r: dict) -> tuple:
            v = r["value"]
            if not _number(v):
                return (True, 0.0)
            return (False, v if lower_is_better(r["metric"]) else -v)

        return sorted(rows, key=best_first)
    raise ConfigError(f"unknown sort {by!r}; use one of {', '.join(SORTS)}.")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def prunable(row: dict) -> bool:
    """A run that did not finish and has no trained weights (failed, interrupted, still "running" or damaged)."""
    return row["status"] != "done" and not row["weights"]


def remove_runs(paths: list[str | Path]) -> list[Path]:
    """Delete run folders; all of them are checked first, so a wrong path removes nothing."""
    targets = []
    for p in map(Path, paths):
        if p.is_symlink():
            raise RunError(f"{str(p)!r} is a link; give the run folder itself.")
        if not p.is_dir():
            raise RunError(f"run folder {str(p)!r} does not exist; list runs with `layerwise runs`.")
        if not is_run_dir(p):
            raise RunError(f"{str(p)!r} is not a run folder (it has no run.json), so it was not removed; give "
                           "folders made by `layerwise train`.")
        targets.append(p)
    for p in targets:
        shutil.rmtree(p)
    return targets


# ---- the layers of a model
def model_summary(run: Any) -> list[dict]:
    """One row per layer of `run.model` (every module without submodules, and every module that holds
    parameters of its own): name, type, output_shape, parameters, trainable (its trainable parameters).

    The shapes come from forward hooks on one batch of one example built from the run's input spec;
    output_shape is a list of sizes (a list of those for a tuple), None for a module that this forward pass
    does not call, and "?" where the forward pass failed or the output is not a tensor.
    """
    import torch
    from torch.nn.utils.parametrize import is_parametrized

    model = run.model
    rows, modules, hidden = [], [], []
    for name, m in model.named_modules():
        if any(name.startswith(h) for h in hidden):  # inside a parametrization (spectral norm, ...)
            continue
        own = list(m.parameters(recurse=False))
        if is_parametrized(m):  # a layer with its weight computed (spectral norm): one row, its weights in it
            own += list(m.parametrizations.parameters())
            hidden.append(f"{name}.parametrizations")
        if isinstance(m, (torch.nn.ModuleList, torch.nn.ModuleDict)):  # holders, never called: their items are rows
            continue
        kids = [c for n, c in m.named_children() if n != "parametrizations"]
        if name and (not kids or own):
            rows.append({"name": name, "type": type(m).__name__, "output_shape": None,
                         "parameters": sum(p.numel() for p in own),
                         "trainable": sum(p.numel() for p in own if p.requires_grad)})
            modules.append(m)
    shapes: dict[int, Any] = {}

    def hook(i):
        def record(module, args, output):
            shapes.setdefault(i, _shape(output))
        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    was_training = model.training
    try:
        inputs = example_inputs(run)
        device = next(iter(model.parameters()), torch.empty(0)).device
        inputs = tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs)
        model.eval()
        forking = [device.index or 0] if device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=forking):  # leave the training's random state alone
            model(*inputs)
        for i, row in enumerate(rows):
            row["output_shape"] = shapes.get(i)
    except Exception:  # noqa: BLE001 (any model, any failure: the layers without shapes)
        for row in rows:
            row["output_shape"] = "?"
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return rows


def example_inputs(run: Any) -> tuple:
    """The inputs of one example [1, ...] for the run's model, from its preprocessing spec (noise for a GAN)."""
    import torch

    model, spec = run.model, run.pre.spec()
    z_dim = getattr(model, "z_dim", None)
    if isinstance(z_dim, int):  # a generator takes noise (a conditional one a label too)
        labels = torch.zeros(1, dtype=torch.long) if getattr(model, "n_classes", 0) else None
        return (torch.zeros(1, z_dim), labels)
    kind = spec["kind"]
    if kind == "table":
        x_num = torch.zeros(1, spec["n_num"])
        cats = spec.get("cat_sizes") or []
        return (x_num, torch.zeros(1, len(cats), dtype=torch.long)) if cats else (x_num,)
    if kind == "text":
        return (torch.ones(1, spec["max_len"], dtype=torch.long),)
    if kind == "corpus":
        return (torch.ones(1, spec["block_size"], dtype=torch.long),)
    x = torch.zeros(1, *spec["shape"])  # image, array, audio, sequence, series
    if kind == "sequence" and spec.get("variable"):
        return (x, torch.tensor([spec["shape"][0]], dtype=torch.long))
    return (x,)


def _shape(output: Any) -> Any:
    import torch

    if isinstance(output, torch.Tensor):
        return list(output.shape)
    if isinstance(output, torch.nn.utils.rnn.PackedSequence):  # an RNN over series of several lengths
        return list(output.data.shape)  # [steps of all series, features]
    if isinstance(output, (tuple, list)):
        parts = [_shape(o) for o in output if o is not None]
        parts = [p for p in parts if p != "?"]
        return parts if parts else "?"
    return "?"


def _format_shape(shape: Any) -> str:
    if shape is None:
        return "-"
    if shape == "?":
        return "?"
    if shape and isinstance(shape[0], list):
        return ", ".join(_format_shape(s) for s in shape)
    return "[" + ", ".join(map(str, shape)) + "]"


def summary_text(run: Any, rows: list[dict] | None = None) -> str:
    """The summary as a table: one line per layer, then the totals (shared weights counted once)."""
    rows = model_summary(run) if rows is None else rows
    params = list(run.model.parameters())  # deduplicated: tied weights count once
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    name_w = min(40, max([5, *(len(r["name"]) for r in rows)]))
    type_w = min(24, max([4, *(len(r["type"]) for r in rows)]))
    shapes = [_format_shape(r["output_shape"]) for r in rows]
    shape_w = min(32, max([12, *map(len, shapes)]))
    lines = [f"{'layer':<{name_w}}  {'type':<{type_w}}  {'output shape':<{shape_w}}  {'parameters':>12}  trainable"]
    for r, shape in zip(rows, shapes):
        flag = "-" if not r["parameters"] else ("yes" if r["trainable"] == r["parameters"] else
                                                "no" if not r["trainable"] else "partly")
        lines.append(f"{_cut(r['name'], name_w):<{name_w}}  {_cut(r['type'], type_w):<{type_w}}  "
                     f"{shape:<{shape_w}}  {r['parameters']:>12,}  {flag}")
    lines.append(f"total parameters: {total:,} (trainable {trainable:,}, frozen {total - trainable:,})")
    if any(r["output_shape"] == "?" for r in rows) and all(r["output_shape"] in ("?", None) for r in rows):
        lines.append("output shapes: ? (one example did not pass through the model)")
    elif any(r["output_shape"] is None for r in rows):
        lines.append("output shape -: the layer is not used by the model's forward pass")
    return "\n".join(lines)


def _cut(s: str, width: int) -> str:
    return s if len(s) <= width else "…" + s[-(width - 1):]


# ---- the files of a finished run
def write_report(run: Any, quiet: bool = False) -> list[Path]:
    """Write summary.txt, curves.png and (classes, a test split, at most 30 classes) confusion.png into the
    run folder; returns the files written. Never raises: a part that fails is skipped (with a warning unless
    `quiet`), since the report must not fail the training that made it."""
    written = []
    for part in (_write_summary, _write_curves, _write_confusion):
        try:
            path = part(run)
        except Exception as e:  # noqa: BLE001 (the report never fails a training)
            say(f"warning: the run report skipped {part.__name__[7:]} ({e.__class__.__name__}: "
                f"{_one_line(e)}).", quiet)
            continue
        if path is not None:
            written.append(path)
    return written


def _write_summary(run: Any) -> Path:
    path = Path(run.path) / REPORT_FILES["summary"]
    path.write_text(summary_text(run) + "\n")
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no window (and no display needed)
    import matplotlib.pyplot as plt

    return plt


def _write_curves(run: Any) -> Path | None:
    history = _history(Path(run.path))
    if not history:
        return None
    val = [k for k in history[-1] if k.startswith("val_") and k != "val_loss" and _number(history[-1][k])]
    panels = [[k for k in ("train_loss", "val_loss") if any(_number(h.get(k)) for h in history)], *[[k] for k in val]]
    panels = [p for p in panels if p]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, keys in zip(axes[0], panels):
        for k in keys:
            points = [(h["epoch"], h[k]) for h in history if _number(h.get(k)) and "epoch" in h]
            if points:
                ax.plot(*zip(*points), marker="o" if len(points) < 30 else None, label=k)
        ax.set_xlabel("epoch")
        ax.set_title("loss" if keys[0].endswith("loss") else keys[0][4:])
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend()
    fig.tight_layout()
    path = Path(run.path) / REPORT_FILES["curves"]
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _write_confusion(run: Any) -> Path | None:
    from .errors import LayerwiseError
    from .tasks.base import Task

    classes = getattr(run.task, "classes", None)
    if not isinstance(classes, list) or not 1 < len(classes) <= MAX_CONFUSION_CLASSES:
        return None
    if type(run.task).confusion is Task.confusion:  # classes without a confusion matrix (a conditional GAN)
        return None
    if getattr(run, "_test", None) is None and not (getattr(run, "info", None) or {}).get("test_metrics"):
        return None  # no test split: a training without one records no test metrics (no data to prepare again)
    try:
        matrix = run.evaluate(confusion=True).get("confusion_matrix")
    except LayerwiseError:  # no test split (or in-memory data that was not kept)
        return None
    if matrix is None:
        return None
    return plot_confusion(matrix, classes, Path(run.path) / REPORT_FILES["confusion"])


def plot_confusion(matrix: list[list[int]], classes: list, path: Path) -> Path:
    """A heat map of the counts (rows: true class, columns: predicted class), the counts written in."""
    import numpy as np

    plt = _pyplot()
    m = np.asarray(matrix)
    n = len(classes)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    labels = [_cut(str(c), 16) for c in classes]
    ax.set_xticks(range(n), labels, rotation=90 if n > 6 or max(map(len, labels)) > 3 else 0)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        high = m.max() / 2 if m.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] > high else "black")
    ax.set_title("confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion_text(matrix: list[list[int]], classes: list | None) -> str:
    """The matrix as text with the class labels as row and column headers (rows: true, columns: predicted)."""
    n = len(matrix)
    labels = [str(c) for c in classes] if isinstance(classes, list) and len(classes) == n else list(map(str, range(n)))
    labels = [_cut(s, 12) for s in labels]
    width = max([4, *map(len, labels), *(len(str(v)) for row in matrix for v in row)])
    head = max([4, *map(len, labels)])
    lines = ["confusion matrix (rows: true, columns: predicted)",
             f"{'':>{head}} " + " ".join(f"{s:>{width}}" for s in labels)]
    for label, row in zip(labels, matrix):
        lines.append(f"{label:>{head}} " + " ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
