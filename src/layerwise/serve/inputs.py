"""Request items to model inputs, for each data kind a run can be served with.

A request's items are checked (and converted to arrays) as they arrive: wrong columns, shapes or types are an
InputError with the HTTP status and one sentence. The model's own preprocessing (`run.transform`) runs later in
the worker thread, once for all requests of a batch.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.base import Data
from ..errors import ConfigError

SERVED_KINDS = ("table", "image", "array", "text", "sequence", "audio")
SERVED_TASKS = ("classify", "regress")


class InputError(Exception):
    """Bad input from the client: an HTTP status (4xx) and a one-sentence detail."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class Chunk:
    """The checked items of one request: `raw` in the form the kind combines, `n` items, and what the answer
    says about them (`extra`: the names of uploaded files, the texts that were cut)."""

    raw: Any
    n: int
    extra: dict = field(default_factory=dict)


def _shape(shape: tuple) -> str:
    return "x".join(map(str, shape))


def _what(a: np.ndarray) -> str:
    """What an item array is, for error messages: a number, a list of 5 numbers, an image of 7x7, ..."""
    if a.ndim == 0:
        return "a single number"
    if a.ndim == 1:
        return f"a list of {len(a)} numbers"
    if a.ndim in (2, 3):
        return f"an image of {_shape(a.shape)}"
    return f"an array of shape {_shape(a.shape)}"


class Inputs:
    """The serving side of a run's preprocessor: what an item is, how items become model inputs."""

    def __init__(self, run: Any):
        spec = run.pre.spec()
        self.run, self.pre, self.kind = run, run.pre, spec["kind"]
        task = getattr(run.task, "name", "")
        if task not in SERVED_TASKS:
            raise ConfigError(f"`layerwise serve` answers predictions of classification and regression runs; this "
                              f"run's task is {task or '?'}, so use its own command (sample, generate, score, ...).")
        if self.kind not in SERVED_KINDS:
            raise ConfigError(f"`layerwise serve` takes runs trained on tables, images, arrays, texts, sequences or "
                              f"audio; this run reads {self.kind} data, so predict with `layerwise predict`.")
        if self.kind == "sequence" and getattr(self.pre, "mode", "array") != "array":
            raise ConfigError("this run reads its sequences from a long table (series id or windows), which "
                              "`layerwise serve` does not take; predict with `layerwise predict RUN table.csv`.")
        # inputs cut to the model's length are listed under "truncated" in the answer, not warned about
        warnings.filterwarnings("ignore", r".* longer than max_len=\d+ tokens and were truncated", UserWarning)
        warnings.filterwarnings("ignore", r".* sequence\(s\) were longer than the model's", UserWarning)
        self.target = getattr(run.config, "target", None)
        if self.kind in ("image", "array"):
            self.shape = list(self.pre.shape)  # [C, H, W] or [d]
        if self.kind == "table":
            self.columns = dict(self.pre.columns)

    # ---- what an item is (metadata, docs, error messages)
    def describe(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "table":
            d["columns"] = self.columns
            d["item"] = "an object of column: value for every column (null for a missing value)"
        elif self.kind == "image":
            c, h, w = self.shape
            d["shape"] = [h, w, c]
            d["item"] = (f"a nested list of {_shape((h, w))} pixels" + (f" ({_shape((h, w, c))} also fits)" if c == 1
                         else f" with {c} channels, {_shape((h, w, c))} (or {_shape((c, h, w))})")
                         + f", or a flat list of {c * h * w} numbers, on the scale of the training images")
            d["pixel_scale"] = "0-255" if math.isclose(self.pre.scale, 1 / 255) else "as the training arrays"
        elif self.kind == "array":
            d["shape"] = self.shape
            d["item"] = f"a list of {self.shape[0]} numbers"
        elif self.kind == "text":
            d["max_tokens"] = self.pre.max_len
            d["item"] = (f"a string; texts longer than {self.pre.max_len} tokens are cut (listed under "
                         "\"truncated\"), or refused with \"truncate\": false")
        elif self.kind == "sequence":
            length, c = self.pre.length, len(self.pre.columns)
            d["shape"] = [length, c]
            d["channels"] = list(self.pre.columns)
            d["item"] = (f"a list of steps, each a list of {c} number(s)" + (" (or plain numbers)" if c == 1 else "")
                         + (f"; {length} steps" if not self.pre.variable else f"; up to {length} steps are kept"))
        elif self.kind == "audio":
            d["sample_rate"] = self.pre.sr
            d["samples"] = self.pre.n_samples
            d["item"] = (f"a list of samples at {self.pre.sr} Hz (padded or cropped to {self.pre.n_samples}); "
                         "WAV files go to /predict/files")
        return d

    @property
    def files_kind(self) -> str | None:
        return {"image": "image", "audio": "audio"}.get(self.kind)

    # ---- one request's items
    def from_json(self, items: list, truncate: bool = True) -> Chunk:
        if self.kind == "table":
            return self._rows(items)
        if self.kind == "text":
            return self._texts(items, truncate)
        arrays = [self._numbers(i, item) for i, item in enumerate(items)]
        if self.kind == "image":
            return Chunk(np.stack([self._image(i, a) for i, a in enumerate(arrays)]), len(items))
        if self.kind == "array":
            return Chunk(np.stack([self._vector(i, a) for i, a in enumerate(arrays)]), len(items))
        if self.kind == "sequence":
            seqs = [self._sequence(i, a) for i, a in enumerate(arrays)]
            cut = [i for i, a in enumerate(seqs) if len(a) > self.pre.length]
            return Chunk(seqs, len(items), {"truncated": cut} if cut else {})
        return Chunk([self._wave(i, a) for i, a in enumerate(arrays)], len(items))  # audio

    def _rows(self, items: list) -> Chunk:
        expected = set(self.columns)
        for i, row in enumerate(items):
            if not isinstance(row, dict):
                raise InputError(422, f"input {i} must be an object of column: value ({', '.join(self.columns)}).")
            keys = set(row) - {self.target}
            if keys != expected:
                missing = [c for c in self.columns if c not in row]
                unknown = sorted(keys - expected)
                parts = ([f"lacks column(s) {', '.join(map(repr, missing))}"] if missing else []) + \
                        ([f"has unknown column(s) {', '.join(map(repr, unknown))}"] if unknown else [])
                raise InputError(422, f"input {i} {' and '.join(parts)}; the model expects the columns "
                                      f"{', '.join(self.columns)}.")
            for c, v in row.items():
                if isinstance(v, (dict, list)):
                    raise InputError(422, f"input {i}, column {c!r}: give a number, a string, true/false or null, "
                                          f"not a {type(v).__name__}.")
        return Chunk(items, len(items))

    def _texts(self, items: list, truncate: bool) -> Chunk:
        bad = next((i for i, t in enumerate(items) if not isinstance(t, str)), None)
        if bad is not None:
            raise InputError(422, f"input {bad} must be a string (a text), not {type(items[bad]).__name__}.")
        cut: list[int] = []
        lengths = getattr(self.pre.tokenizer, "lengths", None)
        if lengths is not None:
            cut = [i for i, n in enumerate(lengths(items)) if n > self.pre.max_len]
        if cut and not truncate:
            raise InputError(422, f"input {cut[0]} is longer than the model's context of {self.pre.max_len} tokens "
                                  f"({len(cut)} input(s) are); shorten them, or send \"truncate\": true to cut them.")
        return Chunk(list(items), len(items), {"truncated": cut} if cut else {})

    def _numbers(self, i: int, item: Any) -> np.ndarray:
        try:
            a = np.asarray(item, dtype=np.float32)
        except (ValueError, TypeError):
            raise InputError(422, f"input {i} is not a rectangular nested list of numbers; {self.describe()['item']} "
                                  "is expected.") from None
        if a.size and not np.isfinite(a).all():
            raise InputError(422, f"input {i} holds NaN or infinite values; give finite numbers.")
        return a

    def _image(self, i: int, a: np.ndarray) -> np.ndarray:
        c, h, w = self.shape
        if a.shape == (h, w, c):
            return a
        if a.shape == (h, w) and c == 1:
            return a[..., None]
        if a.shape == (c, h, w):
            return a.transpose(1, 2, 0)
        if a.shape == (c * h * w,):
            return a.reshape(h, w, c)
        raise InputError(422, f"input {i} is {_what(a)}, but the model takes {_shape((h, w))} images with {c} "
                              f"channel{'s' if c > 1 else ''}: give {self.describe()['item']} (resize it first, or "
                              "upload the file to /predict/files).")

    def _vector(self, i: int, a: np.ndarray) -> np.ndarray:
        (d,) = self.shape
        if a.shape != (d,):
            raise InputError(422, f"input {i} is {_what(a)}, but the model takes a list of {d} "
                                  "numbers.")
        return a

    def _sequence(self, i: int, a: np.ndarray) -> np.ndarray:
        c = len(self.pre.columns)
        if a.ndim == 1 and c == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] != c or len(a) == 0:
            raise InputError(422, f"input {i} is {_what(a).replace('an image', 'an array')}; the model takes "
                                  f"{self.describe()['item']}.")
        if not self.pre.variable and len(a) != self.pre.length:
            raise InputError(422, f"input {i} has {len(a)} steps, but the model takes sequences of exactly "
                                  f"{self.pre.length} steps.")
        return a

    def _wave(self, i: int, a: np.ndarray) -> np.ndarray:
        if a.ndim != 1 or len(a) == 0:
            raise InputError(422, f"input {i} is {_what(a).replace('an image', 'an array')}; the model takes "
                                  f"{self.describe()['item']}.")
        return a

    # ---- uploaded files
    def from_files(self, files: list[tuple[str, bytes]]) -> Chunk:
        if self.kind == "image":
            return self._image_files(files)
        if self.kind == "audio":
            return self._audio_files(files)
        raise InputError(422, f"/predict/files takes image or audio files, but this model reads {self.kind} data; "
                              "POST the items as JSON to /predict.")

    def _image_files(self, files: list[tuple[str, bytes]]) -> Chunk:
        from ..data.images import read_images
        from ..errors import DataError

        c, h, w = self.shape
        out = []
        for name, data in files:
            try:  # one file at a time: an unreadable one is an error that names it, not a warning
                x, _ = read_images([io.BytesIO(data)], size=(h, w), channels=c)
            except DataError:
                raise InputError(422, f"file {name!r} cannot be read as an image; upload .png, .jpg, .bmp, "
                                      ".gif, .tif or .webp files.") from None
            out.append(x[0])
        return Chunk(np.stack(out), len(out), {"inputs": [n for n, _ in files]})

    def _audio_files(self, files: list[tuple[str, bytes]]) -> Chunk:
        import tempfile
        from pathlib import Path

        from ..data.audio import pad_or_crop, read_wav

        waves = []
        with tempfile.TemporaryDirectory(prefix="layerwise-serve-") as tmp:
            for k, (name, data) in enumerate(files):
                path = Path(tmp) / f"{k}.wav"
                path.write_bytes(data)
                try:
                    waves.append(pad_or_crop(read_wav(path, self.pre.sr), self.pre.n_samples))
                except ValueError:
                    raise InputError(422, f"file {name!r} cannot be read as a WAV file; upload PCM .wav "
                                          "files.") from None
        return Chunk(waves, len(waves), {"inputs": [n for n, _ in files]})

    # ---- in the worker thread: one batch of chunks to model inputs
    def model_inputs(self, chunks: list[Chunk]) -> tuple:
        """The model inputs of several requests' items, in order (raises DataError on data the preprocessing
        refuses)."""
        return self.run.transform(self.data(chunks))

    def data(self, chunks: list[Chunk]) -> Data:
        if self.kind == "table":
            import pandas as pd

            rows = [r for ch in chunks for r in ch.raw]
            df = pd.DataFrame(rows, columns=list(self.columns))
            return Data("table", df, None)
        if self.kind == "text":
            return Data("text", np.array([t for ch in chunks for t in ch.raw], dtype=object), None)
        if self.kind in ("image", "array"):
            return Data(self.kind, np.concatenate([ch.raw for ch in chunks]), None)
        if self.kind == "audio":
            from ..data.audio import Waves, pad_or_crop

            n = self.pre.n_samples
            return Data("audio", Waves(np.stack([pad_or_crop(w, n) for ch in chunks for w in ch.raw]), self.pre.sr),
                        None)
        return Data("sequence", [s for ch in chunks for s in ch.raw], None)  # sequence

    def example(self) -> Chunk:
        """One item like the training data, to warm the model up before the first request."""
        if self.kind == "table":
            row = {}
            for c, k in self.columns.items():
                st = self.pre.stats.get(c, {})
                row[c] = st.get("median") if k == "number" else (st.get("levels") or [None])[0] if k == "category" \
                    else "a text"
            return Chunk([row], 1)
        if self.kind == "text":
            return Chunk(["a text"], 1)
        if self.kind == "image":
            c, h, w = self.shape
            return Chunk(np.zeros((1, h, w, c), np.float32), 1)
        if self.kind == "array":
            return Chunk(np.zeros((1, self.shape[0]), np.float32), 1)
        if self.kind == "audio":
            return Chunk([np.zeros(self.pre.n_samples, np.float32)], 1)
        return Chunk([np.zeros((self.pre.length, len(self.pre.columns)), np.float32)], 1)
