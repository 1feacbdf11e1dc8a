"""Export a finished run: the model with its numeric preprocessing folded in, as ONNX or a torch.export
program, a JSON of what stays outside the graph, a short how-to, and a check against eager PyTorch."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, RunError, say

FORMATS = {"onnx": ".onnx", "torch": ".pt2"}
TASKS = ("classify", "regress", "forecast", "reconstruct", "anomaly")
OUTPUT_NAMES = {"classify": "logits", "regress": "prediction", "forecast": "forecast"}
META_FORMAT = "layerwise-export"


class ExportError(RunError):
    """The model cannot be exported, or the export does not compute what the model computes."""


def export(run: Any, format: str = "onnx", out: str | Path | None = None, *, check: bool = True,
           samples: int = 64, quiet: bool = False) -> dict[str, Any]:
    """Write the run's model as ONNX (`format="onnx"`) or a torch.export program (`"torch"`, a .pt2 file),
    with `<out>.preprocessing.json` and `<out>.README.md` beside it; returns what was written and checked.

    `out` is a file or an existing folder (default: the run folder). With `check`, the export is run on
    `samples` inputs (rows of the run's test split when its data can be read again) and compared with eager
    PyTorch; a difference above 1e-4 is an ExportError and nothing is kept.
    Example: ``lw.export.export("runs/digits-cnn", "onnx")["max_abs_diff"]``.
    """
    from ..run import Run
    from .check import TOLERANCE, eager, max_difference, sample
    from .inputs import front_for
    from .modules import exportable

    t0 = time.perf_counter()
    fmt = check_format(format)
    need_packages(fmt, check)
    run = run if isinstance(run, Run) else Run.load(_run_path(run))
    check_task(run)
    path = out_path(run, fmt, out)
    front = front_for(run)
    raw, source = sample(run, front, max(1, int(samples)))
    feeds = tuple(np.asarray(f) for f in front.feeds(raw))
    names, output = front.names(), OUTPUT_NAMES.get(run.task.name, "reconstruction")
    graph = front.wrap(exportable(run.model)).eval()
    example = _example(feeds)
    reference = eager(run, front.reference(raw)) if check else None
    result = {"path": str(path), "format": fmt, "exporter": None, "opset": None, "inputs": names,
              "output": output, "folded": front.folded(), "max_abs_diff": None, "checked_on": source if check else None}
    written = [path]
    try:
        if fmt == "onnx":
            exporter, opset, diff, notes = write_onnx(graph, example, names, output, path, feeds, reference)
        else:
            exporter, opset, notes = write_program(graph, example, path), None, []
            diff = max_difference(run_program(path, feeds), reference) if check else None
        result.update(exporter=exporter, opset=opset, max_abs_diff=diff)
        if notes:
            result["note"] = "; ".join(notes)
        if check and not diff <= TOLERANCE:
            raise ExportError(f"the {fmt} export differs from eager PyTorch by up to {diff:.3g} on {source} "
                              f"(more than {TOLERANCE:g}), so it was not kept; report the model "
                              f"({run.info.get('model')}) with this message.")
        meta = metadata(run, front, result, path)
        side = path.with_name(path.name + ".preprocessing.json")
        side.write_text(json.dumps(meta, indent=1, default=_jsonable))
        readme = path.with_name(path.name + ".README.md")
        readme.write_text(readme_text(meta, path))
        written += [side, readme]
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    result.update(preprocessing=str(side), readme=str(readme), seconds=round(time.perf_counter() - t0, 2))
    say(summary(result), quiet)
    return result


# ---------------------------------------------------------------- checks of what was asked


def check_format(fmt: Any) -> str:
    name = str(fmt).lower().lstrip(".")
    name = {"pt2": "torch", "torch.export": "torch"}.get(name, name)
    if name not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use onnx or torch (a torch.export .pt2 program).")
    return name


def need_packages(fmt: str, check: bool) -> None:
    if fmt != "onnx":
        return
    import importlib.util

    wanted = ["onnx", "onnxscript"] + (["onnxruntime"] if check else [])
    missing = [m for m in wanted if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"ONNX export needs {', '.join(missing)}; install them with "
                          "pip install 'layerwise[export]'.")


def _run_path(run: Any) -> Path:
    path = Path(str(run)).expanduser()
    if path.is_dir() and (path / "run.json").is_file() and not (path / "model.safetensors").is_file():
        raise RunError(f"run {str(path)!r} is not finished (it has no model.safetensors yet); finish it with "
                       f"`layerwise train --resume {path}`, then export it.")
    return path


def check_task(run: Any) -> None:
    name = run.task.name
    if name not in TASKS:
        raise ConfigError(f"a {name} run cannot be exported (it samples or generates step by step, which is not "
                          f"one graph); export covers {', '.join(TASKS)} runs.")


def out_path(run: Any, fmt: str, out: str | Path | None) -> Path:
    """The file to write: `out`, or model.onnx / model.pt2 in `out` (a folder) or in the run folder."""
    name = "model" + FORMATS[fmt]
    if out is None:
        return Path(run.path) / name
    text = str(out)
    path = Path(text).expanduser()
    if path.is_dir():
        return path / name
    folder = path if text.endswith(("/", os.sep)) else path.parent
    if not folder.is_dir():
        raise ConfigError(f"the output folder {str(folder)!r} does not exist; create it first or give another "
                          "--out.")
    return path


# ---------------------------------------------------------------- writing


def _example(feeds: tuple[np.ndarray, ...]) -> tuple:
    """Two rows of each input to trace with (one row would fix the batch size at 1)."""
    import torch

    rows = len(feeds[0])
    idx = [0, 1] if rows >= 2 else [0, 0]
    return tuple(torch.as_tensor(np.ascontiguousarray(f[idx])) for f in feeds)


def _dynamic(graph: Any, example: tuple) -> Any:
    """A dynamic batch axis on every input (under the name of a `*inputs` parameter when forward has one)."""
    import inspect

    import torch

    batch = torch.export.Dim("batch", min=1)
    shapes = tuple({0: batch} for _ in example)
    params = list(inspect.signature(graph.forward).parameters.values())
    if params and params[0].kind is inspect.Parameter.VAR_POSITIONAL:
        return {params[0].name: shapes}
    return shapes


def opsets() -> tuple[int, int]:
    """The newest opset of the dynamo exporter (within what the onnx package knows) and of the older
    TorchScript-based one."""
    import onnx
    from torch.onnx import _constants

    newest = min(getattr(_constants, "ONNX_MAX_OPSET", 18), onnx.defs.onnx_opset_version())
    return newest, min(newest, getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 17))


def write_onnx(graph: Any, example: tuple, names: list[str], output: str, path: Path, feeds: tuple,
               reference: np.ndarray | None) -> tuple[str, int, float | None, list[str]]:
    """ONNX with a dynamic batch axis. Tries the dynamo exporter at the newest opset, then at the exporter's
    default one, then the TorchScript-based exporter; with a `reference`, an attempt that onnxruntime cannot
    run, or that differs from it by more than the tolerance, counts as failed. Returns (exporter, opset, max
    abs difference or None, sentences on the attempts that failed)."""
    import torch
    from torch.onnx import _constants

    from .check import TOLERANCE, max_difference

    newest, ts_opset = opsets()
    default = min(getattr(_constants, "ONNX_DEFAULT_OPSET", newest), newest)
    attempts = [("dynamo", newest)] + ([("dynamo", default)] if default < newest else []) + [("torchscript", ts_opset)]
    notes: list[str] = []
    failure: BaseException | None = None
    best: tuple[str, int, float] | None = None
    for exporter, opset in attempts:
        path.unlink(missing_ok=True)
        try:
            with silenced():
                if exporter == "dynamo":
                    torch.onnx.export(graph, example, str(path), dynamo=True, input_names=names,
                                      output_names=[output], dynamic_shapes=_dynamic(graph, example),
                                      opset_version=opset, external_data=False)
                else:
                    torch.onnx.export(graph, example, str(path), dynamo=False, input_names=names,
                                      output_names=[output], opset_version=opset,
                                      dynamic_axes={n: {0: "batch"} for n in [*names, output]})
        except Exception as e:  # noqa: BLE001 (the exporters raise many types)
            failure = failure or e
            notes.append(f"the {exporter} exporter failed at opset {opset} ("
                         + describe_failure(e, graph, "ONNX", sentence=False) + ")")
            continue
        if reference is None:
            return exporter, opset, None, notes
        try:
            diff = max_difference(run_onnx(path, names, feeds), reference)
        except Exception as e:  # noqa: BLE001 (onnxruntime's own error types)
            notes.append(f"onnxruntime could not run the {exporter} export at opset {opset} ("
                         + _clean(str(e)).split("Status Message:")[0].strip()[:200] + ")")
            continue
        if diff <= TOLERANCE:
            if exporter == "torchscript" and notes:
                notes.append("the TorchScript-based exporter was used (its trace keeps the branches the example "
                             "inputs took)")
            return exporter, opset, diff, notes
        notes.append(f"the {exporter} export at opset {opset} differs from eager PyTorch by {diff:.3g}")
        best = best if best is not None and best[2] <= diff else (exporter, opset, diff)
    path.unlink(missing_ok=True)
    if best is not None:  # exported, but never close enough: the caller says so
        return best[0], best[1], best[2], notes
    if failure is not None and len(notes) == len(attempts) and all("exporter failed" in n for n in notes):
        raise ExportError(describe_failure(failure, graph, "ONNX"))
    raise ExportError(f"no ONNX export of this model runs correctly in onnxruntime: {'; '.join(notes)}.")


def write_program(graph: Any, example: tuple, path: Path) -> str:
    """A torch.export program with a dynamic batch axis, saved with torch.export.save."""
    import torch

    try:
        with silenced():
            program = torch.export.export(graph, example, dynamic_shapes=_dynamic(graph, example))
    except Exception as e:  # noqa: BLE001
        raise ExportError(describe_failure(e, graph, "torch.export")) from None
    torch.export.save(program, str(path))
    return "torch.export"


def run_onnx(path: Path, names: list[str], feeds: tuple) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # its errors come back as exceptions
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip(names, feeds)))[0]


def run_program(path: Path, feeds: tuple) -> np.ndarray:
    import torch

    with silenced():
        module = torch.export.load(str(path)).module()
    with torch.no_grad():
        return module(*(torch.as_tensor(f) for f in feeds)).float().numpy()


@contextlib.contextmanager
def silenced():
    """The exporters' progress lines and warnings (Python and C++) kept off the terminal."""
    import io
    import logging
    import sys
    import warnings

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    sys.stdout.flush()
    sys.stderr.flush()
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        except OSError:  # no file descriptors to redirect (an embedded interpreter): Python-level quiet only
            pass
        try:
            yield
        finally:
            sys.stderr.flush()
            for fd, old in saved:
                os.dup2(old, fd)
                os.close(old)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


# ---------------------------------------------------------------- failures


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _clean(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def describe_failure(exc: BaseException, model: Any, what: str, sentence: bool = True) -> str:
    """One sentence on why `model` could not be exported: the innermost layer whose forward was running (or
    the first layer type the message names), the op the message names, and the root error's first line."""
    from torch import nn

    modules = {id(m): (name, m) for name, m in model.named_modules()}
    chain = _chain(exc)
    layer = None
    for e in chain:
        tb = e.__traceback__
        while tb is not None:
            s = tb.tb_frame.f_locals.get("self")
            if isinstance(s, nn.Module) and id(s) in modules:
                layer = modules[id(s)]
            tb = tb.tb_next
        if layer is not None and layer[1] is not model:
            break
    text = _clean("\n".join(str(e) for e in chain))
    if layer is None or layer[1] is model:
        types = {type(m).__name__: (n, m) for n, m in reversed(list(model.named_modules())) if n}
        hits = sorted((text.find(t), t) for t in types if re.search(rf"\b{re.escape(t)}\b", text))
        if hits:
            layer = types[hits[0][1]]
    op = re.search(r"\b(aten|prim|onnx)(?:::|\.)([A-Za-z_][A-Za-z0-9_.]*)", text)
    root = next((line.strip() for e in reversed(chain) for line in _clean(str(e)).splitlines() if line.strip()),
                type(exc).__name__)
    root = f"{type(chain[-1]).__name__}: {root}"[:300].rstrip(".")
    where = "the model"
    if layer is not None:
        name = layer[0].removeprefix("model.") if layer[0] != "model" else ""
        where = f"layer {name!r} ({type(layer[1]).__name__})" if name else f"its {type(layer[1]).__name__}"
    why = f"{where} fails in the exporter" + (f" at op {op.group(1)}.{op.group(2).split('.')[0]}" if op else "") + \
        f": {root}"
    if not sentence:
        return why
    return f"the model cannot be exported to {what}: {why}; export another format or simplify that layer."


# ---------------------------------------------------------------- what goes beside the exported file


def decode(run: Any, output: str) -> dict:
    """How to turn the graph's output into predictions (the task's decoding)."""
    task = run.task
    if task.name == "classify":
        return {"output": output, "classes": task.classes,
                "how": "probabilities = softmax(logits, axis=1); label = classes[argmax(probabilities, axis=1)]"}
    if task.name == "regress":
        return {"output": output, "target": run.config.target, "mean": task.mean, "std": task.std,
                "how": "value = prediction * std + mean (one column per target)"}
    if task.name == "forecast":
        return {"output": output, "horizon": task.horizon, "columns": task.columns, "targets": task.target_names,
                "target_columns": task.target_cols, "mean": task.mean, "std": task.std,
                "how": "reshape to [batch, horizon, len(columns)], keep target_columns, then * std + mean of those "
                       "columns"}
    return {"output": output, "task": task.name, "threshold": getattr(task, "threshold", None),
            "how": "the reconstruction of the model input (standardised as in layerwise, flattened; a VAE "
                   "appends mu and logvar); the anomaly score is its mean squared error against that input"}


DECODE_SNIPPETS = {
    "classify": ("probabilities = np.exp(out - out.max(1, keepdims=True))\n"
                 "probabilities /= probabilities.sum(1, keepdims=True)\n"
                 "labels = [meta['decode']['classes'][i] for i in probabilities.argmax(1)]\n"),
    "regress": ("prediction = out * np.array(meta['decode']['std']) + np.array(meta['decode']['mean'])\n"
                "prediction = prediction[:, 0] if prediction.shape[1] == 1 else prediction\n"),
    "forecast": ("dec = meta['decode']\n"
                 "cols = dec['target_columns']\n"
                 "out = out.reshape(len(out), dec['horizon'], len(dec['columns']))[..., cols]\n"
                 "forecast = out * np.array(dec['std'])[cols] + np.array(dec['mean'])[cols]  "
                 "# [batch, horizon, targets]\n"),
}


def usage(meta: dict, front_snippet: str, path: Path) -> str:
    """Python that calls the exported file with no layerwise installed."""
    side = path.name + ".preprocessing.json"
    lines = front_snippet.splitlines()
    imports = [x for x in lines if x.startswith(("import ", "from "))]
    body = "\n".join(x for x in lines if x not in imports).strip("\n") + "\n"
    imports = ["import json", "", "import numpy as np"] + \
        (["import onnxruntime as ort"] if meta["format"] == "onnx" else ["import torch"]) + imports
    head = "\n".join(imports) + f"\n\nmeta = json.load(open({side!r}))\n"
    if meta["format"] == "onnx":
        call = (f"session = ort.InferenceSession({path.name!r})\n"
                "out = session.run(None, feeds)[0]\n")
    else:
        call = (f"program = torch.export.load({path.name!r}).module()\n"
                "with torch.no_grad():\n"
                "    out = program(*(torch.from_numpy(feeds[i['name']]) for i in meta['inputs'])).numpy()\n")
    return head + body + call + DECODE_SNIPPETS.get(meta["task"], "reconstruction = out\n")


def metadata(run: Any, front: Any, result: dict, path: Path) -> dict:
    meta = {"format_of_this_file": META_FORMAT, "version": 1, "file": path.name, "format": result["format"],
            "exporter": result["exporter"], "opset": result["opset"], "run": str(run.path),
            "task": run.task.name, "model": run.info.get("model"), "trained_precision": run.info.get("precision"),
            "inputs": front.inputs_doc(), "in_graph": result["folded"], "preprocessing": front.outside(),
            "outputs": [{"name": result["output"], "dtype": "float32"}], "decode": decode(run, result["output"]),
            "check": {"max_abs_diff": result["max_abs_diff"], "on": result["checked_on"],
                      "against": "eager PyTorch (fp32) on layerwise's own preprocessing"}}
    meta["usage"] = usage(meta, front.snippet(), path)
    return meta


def readme_text(meta: dict, path: Path) -> str:
    rows = "\n".join(f"| `{i['name']}` | {i['dtype']} | {i['shape']} | {i['meaning']} |" for i in meta["inputs"])
    engine = "onnxruntime" if meta["format"] == "onnx" else "PyTorch (torch.export)"
    folded = "; ".join(meta["in_graph"]) or "nothing (the inputs are the model's own)"
    return (f"# {path.name}\n\n"
            f"A {meta['task']} model ({meta['model']}) exported from the layerwise run `{meta['run']}` "
            f"({meta['exporter']} exporter{', opset ' + str(meta['opset']) if meta['opset'] else ''}). "
            f"Runs with {engine} alone; layerwise is not needed.\n\n"
            f"In the graph: {folded}. Outside it (see `{path.name}.preprocessing.json`, key `preprocessing`): "
            "what the inputs below say.\n\n"
            "| input | dtype | shape | what |\n| --- | --- | --- | --- |\n" + rows + "\n\n"
            f"Output `{meta['outputs'][0]['name']}`: {meta['decode']['how']}.\n\n"
            "```python\n" + meta["usage"] + "```\n")


def summary(result: dict) -> str:
    how = f"{result['exporter']} exporter" + (f", opset {result['opset']}" if result["opset"] else "")
    lines = [f"wrote {result['path']} ({how}; inputs {', '.join(result['inputs'])}) and "
             + Path(result["preprocessing"]).name]
    if result.get("note"):
        lines.append(f"note: {result['note']}")
    if result["max_abs_diff"] is not None:
        lines.append(f"checked on {result['checked_on']}: max abs difference {result['max_abs_diff']:.3g} from "
                     "eager PyTorch")
    return "\n".join(lines)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot store {type(o).__name__} as JSON")
