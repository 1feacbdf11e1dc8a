"""layerwise: deep learning from your data in one command, with PyTorch as the engine.

The public API is small: ``load``, ``train``, ``Run`` (imported lazily so that ``import layerwise`` is instant).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Config", "Data", "LayerwiseError", "Run", "load", "lr_find", "train"]

_LAZY = {"load": "data", "Data": "data", "train": "api", "lr_find": "api", "Run": "run", "Config": "config",
         "LayerwiseError": "errors"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'layerwise' has no attribute {name!r}")
