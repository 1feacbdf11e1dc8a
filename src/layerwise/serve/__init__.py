"""Serving a trained run over HTTP: ``layerwise serve RUN`` or ``make_app(run)`` (a FastAPI app).

FastAPI is imported only when an app is made, so that ``import layerwise.serve`` and the CLI stay light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_app", "serve"]


def make_app(run: Any, **options: Any) -> Any:
    """A FastAPI app answering predictions of `run` (a Run or a run folder); see serve.app.make_app."""
    from .app import make_app as _make_app

    return _make_app(run, **options)


def serve(run: Any, **options: Any) -> int:
    """Serve a run folder until stopped; see serve.server.serve."""
    from .server import serve as _serve

    return _serve(run, **options)
