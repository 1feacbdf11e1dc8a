"""The registry of preprocessors by data kind (the interface is data/base.py's Preprocessor)."""

from __future__ import annotations

from ..errors import DataError
from .base import Preprocessor


def _array():
    from .arrays import ArrayPre

    return ArrayPre


def _table():
    from .tables import TablePre

    return TablePre


def _text():
    from .textpre import TextPre

    return TextPre


def _corpus():
    from .textpre import CorpusPre

    return CorpusPre


def _series():
    from .forecasting import SeriesPre

    return SeriesPre


def _sequence():
    from .sequences import SequencePre

    return SequencePre


def _audio():
    from .audio import AudioPre

    return AudioPre


# data kind -> a function returning its Preprocessor class (imported on first use: audio needs torch)
PREPROCESSORS = {"image": _array, "array": _array, "table": _table, "text": _text, "corpus": _corpus,
                 "series": _series, "sequence": _sequence, "audio": _audio}


def preprocessor_class(kind: str) -> type[Preprocessor]:
    if kind not in PREPROCESSORS:
        raise DataError(f"no preprocessor for {kind!r} data; known kinds: {', '.join(PREPROCESSORS)}.")
    return PREPROCESSORS[kind]()


def preprocessor_from_dict(d: dict) -> Preprocessor:
    """The preprocessor saved in a run's schema.json (runs from before `kind` was saved are tables)."""
    kind = d.get("kind", "table")
    if kind == "table" and "columns" not in d:  # an old array run
        kind = "array"
    return preprocessor_class(kind).from_dict(d)
