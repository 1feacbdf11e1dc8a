"""Export a finished run for serving without layerwise: ONNX (onnxruntime) or a torch.export program (.pt2).

The numeric preprocessing is folded into the graph (image scaling and standardisation and the NHWC -> NCHW
transpose, table standardisation and missing values, series scaling), so the exported model takes raw pixels
and raw numbers; what cannot be in a graph (column order, category vocabularies, the tokenizer, the audio
front end, the classes and the output decoding) goes into `<out>.preprocessing.json` beside it, with a
`<out>.README.md` that shows how to call it. Every export is checked against eager PyTorch.

    from layerwise.export import export
    export("runs/digits-cnn", "onnx")            # runs/digits-cnn/model.onnx (+ .preprocessing.json, .README.md)
    export(run, "torch", out="serving/")         # serving/model.pt2

Torch and onnx are imported on first use (`pip install 'layerwise[export]'` for ONNX).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["FORMATS", "ExportError", "export"]

FORMATS = ("onnx", "torch")


def export(run: Any, format: str = "onnx", out: str | Path | None = None, *, check: bool = True,
           samples: int = 64, quiet: bool = False) -> dict[str, Any]:
    """Write the run (a Run or its folder) as `format` (onnx or torch) to `out`; see core.export."""
    from .core import export as _export

    return _export(run, format, out, check=check, samples=samples, quiet=quiet)


def __getattr__(name: str) -> Any:
    if name == "ExportError":
        from .core import ExportError

        return ExportError
    raise AttributeError(f"module 'layerwise.export' has no attribute {name!r}")
