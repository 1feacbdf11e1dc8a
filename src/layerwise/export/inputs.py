"""How the raw inputs of each data kind enter an exported graph.

A `Front` per preprocessing kind says which graph inputs there are (names, dtypes, shapes), wraps the model
so that the numeric part of the preprocessing runs inside the graph (scaling, standardisation, missing
values, the NHWC -> NCHW transpose), and writes down what cannot be in the graph (column order, category
vocabularies, the tokenizer, the audio front end) for the preprocessing JSON beside the exported file.

    front = front_for(run)
    graph = front.wrap(model)                 # an nn.Module taking the raw inputs
    feeds = front.feeds(raw)                  # raw inputs (a DataFrame, images, texts, ...) -> graph inputs
    inputs = front.reference(raw)             # the same raw inputs through layerwise's own preprocessing
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

BATCH = "batch"


def _buffer(values: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), dtype=dtype)


class Front:
    """Model inputs as layerwise prepares them (`run.transform`), for data kinds with no folding here."""

    kind = "model inputs"

    def __init__(self, run: Any):
        self.run, self.pre = run, run.pre

    # ---- the graph
    def names(self) -> list[str]:
        return [f"input{i}" for i in range(len(self._example_inputs()))]

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def folded(self) -> list[str]:
        """The preprocessing steps that run inside the graph."""
        return []

    def inputs_doc(self) -> list[dict]:
        return [{"name": n, "dtype": str(a.dtype), "shape": [BATCH, *a.shape[1:]],
                 "meaning": "the model input as layerwise's preprocessing makes it (run.transform)"}
                for n, a in zip(self.names(), self._example_inputs())]

    def outside(self) -> dict:
        """What the caller does before the graph (saved in the preprocessing JSON)."""
        return {"kind": self.pre.spec()["kind"], "layerwise_preprocessing": self.pre.to_dict()}

    # ---- raw inputs
    def raw_from(self, d: Any) -> Any:
        """Raw inputs of Data `d` (rows like the training data)."""
        return d

    def feeds(self, raw: Any) -> tuple[np.ndarray, ...]:
        """Model inputs of Data (a tuple of model inputs stays as it is)."""
        return raw if isinstance(raw, tuple) else tuple(self.run.transform(raw))

    def reference(self, raw: Any) -> tuple[np.ndarray, ...]:
        return self.feeds(raw)

    def random(self, n: int, rng: np.random.Generator) -> Any:
        return None  # no random inputs for this kind: the run's own data is needed

    def snippet(self) -> str:
        """Python lines that make `feeds` (a dict of graph inputs) from the caller's data, with no layerwise."""
        return ("# these inputs are layerwise's own preprocessing of your data (run.transform(...));\n"
                "# see meta['preprocessing'] for its settings\n"
                "feeds = {name: array for name, array in zip(" + repr(self.names()) + ", model_inputs)}\n")

    def _example_inputs(self) -> tuple:
        if not hasattr(self, "_examples"):
            self._examples = self.run.prepared().train.inputs
        return self._examples


# ---------------------------------------------------------------- images and feature arrays


class _Standardise(nn.Module):
    """(x * scale - mean) / std, then NHWC -> NCHW for images, then the model."""

    def __init__(self, model: nn.Module, scale: float, mean: Any, std: Any, image: bool):
        super().__init__()
        self.model, self.scale, self.image = model, float(scale), image
        self.register_buffer("mean", _buffer(mean))
        self.register_buffer("std", _buffer(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * self.scale - self.mean) / self.std
        if self.image:
            x = x.permute(0, 3, 1, 2)
        return self.model(x)


class ArrayFront(Front):
    """Images as raw pixels [batch, H, W, C] (as loaded: 0-255 for 8-bit images), feature arrays as raw
    numbers [batch, d]."""

    kind = "image"

    @property
    def image(self) -> bool:
        return self.pre.kind == "image"

    def names(self) -> list[str]:
        return ["pixels" if self.image else "features"]

    def _shape(self) -> list[int]:
        s = self.pre.shape
        return [*s[1:], s[0]] if self.image else list(s)

    def wrap(self, model: nn.Module) -> nn.Module:
        return _Standardise(model, self.pre.scale, self.pre.mean, self.pre.std, self.image)

    def folded(self) -> list[str]:
        steps = [f"x * {self.pre.scale:g}" if self.pre.scale != 1 else None,
                 "(x - mean) / std per " + ("channel" if self.image else "feature"),
                 "NHWC -> NCHW" if self.image else None]
        return [s for s in steps if s]

    def inputs_doc(self) -> list[dict]:
        if self.image:
            meaning = ("raw pixels, channels last, float32; values as in the training data"
                       + (" (0-255)" if self.pre.scale != 1 else f" (scaled by {self.pre.scale:g} in the graph)"))
        else:
            meaning = "raw feature values, float32, in the training column order"
        return [{"name": self.names()[0], "dtype": "float32", "shape": [BATCH, *self._shape()], "meaning": meaning}]

    def outside(self) -> dict:
        return {"kind": self.pre.kind, "shape": self._shape(),
                "note": "resize images to this size (H, W, C) and pass them unscaled; the graph scales them",
                "scale": self.pre.scale, "mean": self.pre.mean, "std": self.pre.std}

    def raw_from(self, d: Any) -> np.ndarray:
        return np.asarray(d.x)

    def feeds(self, raw: np.ndarray) -> tuple[np.ndarray]:
        return (np.ascontiguousarray(raw, dtype=np.float32),)

    def reference(self, raw: np.ndarray) -> tuple[np.ndarray]:
        return tuple(self.pre.transform(raw))

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        top = 255.0 if self.pre.scale != 1 else 1.0
        return rng.uniform(0, top, (n, *self._shape())).astype(np.float32)

    def snippet(self) -> str:
        name = self.names()[0]
        shape = ", ".join(map(str, self._shape()))
        what = "images" if self.image else "rows"
        return (f"x = np.asarray({what}, dtype=np.float32)  # [batch, {shape}], unscaled, as in training\n"
                f"feeds = {{{name!r}: x}}\n")


# ---------------------------------------------------------------- tables


class _Table(nn.Module):
    """Raw table columns -> the table MLP's inputs: numbers (NaN = missing) get the training median and a
    missing flag where training had gaps, then (x - mean) / std; hashed text features pass through; the
    columns are put back in the training order."""

    def __init__(self, model: nn.Module, median: Any, mean: Any, std: Any, order: list[int], n_text: int,
                 has_numbers: bool, has_categories: bool):
        super().__init__()
        self.model, self.n_text = model, n_text
        self.has_numbers, self.has_categories = has_numbers, has_categories
        self.register_buffer("median", _buffer(median, torch.float64))
        self.register_buffer("mean", _buffer(mean, torch.float64))
        self.register_buffer("std", _buffer(std, torch.float64))
        self.register_buffer("order", torch.as_tensor(order, dtype=torch.int64))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        i = 0
        parts = []
        if self.has_numbers:
            v = inputs[0]
            i = 1
            missing = torch.isnan(v)
            z = (torch.where(missing, self.median, v) - self.mean) / self.std
            parts += [z.float(), missing.float()]
        cats = None
        if self.has_categories:
            cats = inputs[i]
            i += 1
        if self.n_text:
            parts.append(inputs[i].float())
        if parts:
            x = torch.cat(parts, 1).index_select(1, self.order)
        else:  # only categorical columns
            x = torch.zeros(cats.shape[0], 0, dtype=torch.float32)
        return self.model(x, cats) if cats is not None else self.model(x)


class TableFront(Front):
    """A table as raw numbers (float64, NaN for missing), category codes (int64, 0 = missing or unseen) and,
    for free-text columns, their hashed word counts."""

    kind = "table"

    def __init__(self, run: Any):
        super().__init__(run)
        cols = self.pre.columns
        self.numbers = [c for c, k in cols.items() if k == "number"]
        self.categories = [c for c, k in cols.items() if k == "category"]
        self.texts = [c for c, k in cols.items() if k == "text"]

    def names(self) -> list[str]:
        return (["numbers"] if self.numbers else []) + (["categories"] if self.categories else []) + \
            (["text_features"] if self.texts else [])

    def _order(self) -> list[int]:
        """Positions in cat([z, missing flags, text features]) of the model's number columns, in its order."""
        from ..data.tables import TEXT_HASH_FEATURES

        n = len(self.numbers)
        order: list[int] = []
        j = t = 0
        for c, kind in self.pre.columns.items():
            if kind == "number":
                if self.pre.stats[c]["missing"]:
                    order.append(n + j)
                order.append(j)
                j += 1
            elif kind == "text":
                start = 2 * n + t * TEXT_HASH_FEATURES
                order += list(range(start, start + TEXT_HASH_FEATURES))
                t += 1
        return order

    def wrap(self, model: nn.Module) -> nn.Module:
        st = [self.pre.stats[c] for c in self.numbers]
        return _Table(model, [s["median"] for s in st], [s["mean"] for s in st], [s["std"] for s in st],
                      self._order(), len(self.texts), bool(self.numbers), bool(self.categories))

    def folded(self) -> list[str]:
        steps = []
        if self.numbers:
            steps += ["missing numbers (NaN) -> training median (+ a missing flag where training had gaps)",
                      "(x - mean) / std per number column"]
        return steps

    def inputs_doc(self) -> list[dict]:
        from ..data.tables import TEXT_HASH_FEATURES

        doc = []
        if self.numbers:
            doc.append({"name": "numbers", "dtype": "float64", "shape": [BATCH, len(self.numbers)],
                        "meaning": "raw values of the columns preprocessing.numbers, in that order; NaN = missing"})
        if self.categories:
            doc.append({"name": "categories", "dtype": "int64", "shape": [BATCH, len(self.categories)],
                        "meaning": "per column of preprocessing.categories: 1 + the index of the value in its "
                                   "levels, 0 when missing or unseen"})
        if self.texts:
            doc.append({"name": "text_features", "dtype": "float32",
                        "shape": [BATCH, TEXT_HASH_FEATURES * len(self.texts)],
                        "meaning": "per column of preprocessing.texts, sklearn HashingVectorizer(n_features="
                                   f"{TEXT_HASH_FEATURES}, alternate_sign=False, norm='l2') of the text"})
        return doc

    def outside(self) -> dict:
        from ..data.tables import MISSING

        return {"kind": "table", "columns": list(self.pre.columns), "numbers": self.numbers,
                "categories": {c: self.pre.stats[c]["levels"] for c in self.categories}, "texts": self.texts,
                "medians": {c: self.pre.stats[c]["median"] for c in self.numbers},
                "missing_markers": MISSING,
                "note": "missing numbers go in as NaN (the graph fills in the medians); category values are "
                        "compared as strings"}

    def raw_from(self, d: Any) -> Any:
        return d.x

    def feeds(self, df: Any) -> tuple[np.ndarray, ...]:
        import pandas as pd

        from ..data.tables import _hash_text

        missing = [c for c in self.pre.columns if c not in df.columns]
        if missing:
            from ..errors import DataError

            raise DataError(f"the table lacks column(s) {', '.join(map(repr, missing))}.")
        out = []
        if self.numbers:
            out.append(np.stack([pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64) for c in self.numbers], 1))
        if self.categories:
            codes = []
            for c in self.categories:
                index = {lv: i + 1 for i, lv in enumerate(self.pre.stats[c]["levels"])}
                codes.append(df[c].astype(str).where(df[c].notna(), None).map(index).fillna(0).to_numpy(np.int64))
            out.append(np.stack(codes, 1))
        if self.texts:
            out.append(np.concatenate([_hash_text(df[c]) for c in self.texts], 1).astype(np.float32))
        return tuple(out)

    def reference(self, df: Any) -> tuple[np.ndarray, ...]:
        return tuple(self.pre.transform(df))

    def random(self, n: int, rng: np.random.Generator) -> Any:
        import pandas as pd

        cols = {}
        for c, kind in self.pre.columns.items():
            st = self.pre.stats.get(c, {})
            if kind == "number":
                v = rng.normal(st["mean"], st["std"], n)
                v[rng.random(n) < 0.1] = np.nan
                cols[c] = v
            elif kind == "category":
                levels = st["levels"] + ["an unseen value"]
                cols[c] = [levels[i] for i in rng.integers(0, len(levels), n)]
            else:
                words = ["red", "green", "blue", "river", "stone", "quick", "slow", "house"]
                cols[c] = [" ".join(rng.choice(words, 6)) for _ in range(n)]
        return pd.DataFrame(cols)

    def snippet(self) -> str:
        lines = ["import pandas as pd", "pre = meta['preprocessing']",
                 "# df: a DataFrame with the training columns (e.g. pd.read_csv(..., na_values=pre['missing_markers']))",
                 "feeds = {}"]
        if self.numbers:
            lines.append("feeds['numbers'] = df[pre['numbers']].apply(pd.to_numeric, errors='coerce')"
                         ".to_numpy(np.float64)  # NaN = missing")
        if self.categories:
            lines += ["codes = []", "for column, levels in pre['categories'].items():",
                      "    index = {level: i + 1 for i, level in enumerate(levels)}  # 0: missing or unseen",
                      "    codes.append([index.get(str(v), 0) if pd.notna(v) else 0 for v in df[column]])",
                      "feeds['categories'] = np.array(codes, dtype=np.int64).T"]
        if self.texts:
            lines += ["from sklearn.feature_extraction.text import HashingVectorizer",
                      "hv = HashingVectorizer(n_features=1024, alternate_sign=False, norm='l2')",
                      "feeds['text_features'] = np.concatenate([hv.transform(df[c].fillna('').astype(str)).toarray()",
                      "                                         for c in pre['texts']], 1).astype(np.float32)"]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- text


class TextFront(Front):
    """Texts as token ids [batch, max_len] (int64, padded with 0 at the end); the tokenizer runs outside."""

    kind = "text"

    def names(self) -> list[str]:
        return ["token_ids"]

    def inputs_doc(self) -> list[dict]:
        return [{"name": "token_ids", "dtype": "int64", "shape": [BATCH, self.pre.max_len],
                 "meaning": f"ids of the tokenizer in preprocessing.tokenizer, cut at {self.pre.max_len} and padded "
                            f"with {self.pre.tokenizer.pad_id} at the end"}]

    def outside(self) -> dict:
        import json

        return {"kind": "text", "column": self.pre.column, "max_len": self.pre.max_len,
                "pad_id": self.pre.tokenizer.pad_id, "unk_id": self.pre.tokenizer.unk_id,
                "tokenizer": json.loads(self.pre.tokenizer.to_json())}

    def raw_from(self, d: Any) -> list[str]:
        return [str(t) for t in d.x]

    def feeds(self, texts: list[str]) -> tuple[np.ndarray]:
        return tuple(self.pre.transform(texts))

    reference = feeds

    def random(self, n: int, rng: np.random.Generator) -> list[str]:
        words = ["the", "a", "good", "bad", "film", "really", "not", "story", "zyx", "!"]
        return [" ".join(rng.choice(words, int(rng.integers(1, 30)))) for _ in range(n)]

    def snippet(self) -> str:
        kind = self.pre.tokenizer.kind
        lines = ["pre = meta['preprocessing']", "max_len, pad = pre['max_len'], pre['pad_id']",
                 "ids = np.full((len(texts), max_len), pad, dtype=np.int64)"]
        if kind == "char":
            lines += ["index = {c: i for i, c in enumerate(pre['tokenizer']['chars'])}",
                      "for i, text in enumerate(texts):",
                      "    row = [index.get(c, pre['unk_id']) for c in text][:max_len]",
                      "    ids[i, :len(row)] = row"]
        elif kind in ("wordpiece", "bpe"):
            lines += ["from tokenizers import Tokenizer  # pip install tokenizers",
                      "tokenizer = Tokenizer.from_str(pre['tokenizer']['tokenizer'])",
                      "for i, enc in enumerate(tokenizer.encode_batch(list(texts), add_special_tokens=False)):",
                      "    row = enc.ids[:max_len]",
                      "    ids[i, :len(row)] = row"]
        else:
            lines += [f"# fill ids with the {kind!r} tokenizer saved in pre['tokenizer']"]
        return "\n".join(lines + ["feeds = {'token_ids': ids}"]) + "\n"


# ---------------------------------------------------------------- forecasting


class _Scale(nn.Module):
    """(x - mean) / std over the last axis, then the model."""

    def __init__(self, model: nn.Module, mean: Any, std: Any):
        super().__init__()
        self.model = model
        self.register_buffer("mean", _buffer(mean))
        self.register_buffer("std", _buffer(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


class SeriesFront(Front):
    """A forecast model's history: the last `lookback` raw rows of the input columns [batch, lookback, C]."""

    kind = "series"

    def names(self) -> list[str]:
        return ["history"]

    def wrap(self, model: nn.Module) -> nn.Module:
        return _Scale(model, self.pre.scaler.mean, self.pre.scaler.std)

    def folded(self) -> list[str]:
        return ["(x - mean) / std per column"]

    def inputs_doc(self) -> list[dict]:
        return [{"name": "history", "dtype": "float32", "shape": [BATCH, self.pre.lookback, len(self.pre.columns)],
                 "meaning": "the last lookback rows of the columns preprocessing.columns, raw values, oldest first"}]

    def outside(self) -> dict:
        return {"kind": "series", "columns": self.pre.columns, "time_column": self.pre.time_col,
                "lookback": self.pre.lookback, "horizon": self.pre.horizon, "step_seconds": self.pre.step,
                "note": "rows must be regular in time with no gaps (fill them first)"}

    def raw_from(self, d: Any) -> np.ndarray:
        """Windows [N, lookback, C] over the end of the series (its test part comes last)."""
        df = d.x
        if getattr(d, "target", None) is not None and d.y is not None and hasattr(df, "columns"):
            df = df.copy()
            df[d.target] = d.y
        _, values = self.pre.history(df)
        from numpy.lib.stride_tricks import sliding_window_view

        lb = self.pre.lookback
        view = sliding_window_view(np.asarray(values, np.float32), lb, axis=0)  # [N, C, lookback]
        return np.ascontiguousarray(view.transpose(0, 2, 1)[::-1])  # the latest windows first

    def feeds(self, windows: np.ndarray) -> tuple[np.ndarray]:
        return (np.ascontiguousarray(windows, dtype=np.float32),)

    def reference(self, windows: np.ndarray) -> tuple[np.ndarray]:
        return tuple(self.pre.transform(np.asarray(windows, np.float32)))

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        mean, std = self.pre.scaler.mean, self.pre.scaler.std
        return (rng.normal(size=(n, self.pre.lookback, len(self.pre.columns))) * std + mean).astype(np.float32)

    def snippet(self) -> str:
        return ("pre = meta['preprocessing']\n"
                "# df: the recent rows of the series (a DataFrame), oldest first\n"
                "history = df[pre['columns']].to_numpy(np.float32)[-pre['lookback']:][None]  # [1, lookback, C]\n"
                "feeds = {'history': history}\n")


# ---------------------------------------------------------------- sequences to classify or regress


class _Sequences(nn.Module):
    """Raw sequences [B, length, C] -> (x - mean) / std per channel, zero after each sequence's length (when
    the training sequences differed in length, the lengths [B] are a second input), then the model."""

    def __init__(self, model: nn.Module, mean: Any, std: Any, variable: bool):
        super().__init__()
        self.model, self.variable = model, variable
        self.register_buffer("mean", _buffer(mean))
        self.register_buffer("std", _buffer(std))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        z = (inputs[0] - self.mean) / self.std
        if not self.variable:
            return self.model(z)
        lengths = inputs[1]
        real = torch.arange(z.shape[1], device=z.device)[None, :, None] < lengths[:, None, None]
        return self.model(torch.where(real, z, torch.zeros_like(z)), lengths)


class SequenceFront(Front):
    """Sequences as raw steps [batch, length, C] (the last `length` steps, padded at the end), with their
    lengths [batch] when the training sequences differed in length."""

    kind = "sequence"

    def names(self) -> list[str]:
        return ["sequences", "lengths"] if self.pre.variable else ["sequences"]

    def wrap(self, model: nn.Module) -> nn.Module:
        return _Sequences(model, self.pre.mean, self.pre.std, self.pre.variable)

    def folded(self) -> list[str]:
        return ["(x - mean) / std per channel"] + (["zero after each length"] if self.pre.variable else [])

    def inputs_doc(self) -> list[dict]:
        c = len(self.pre.columns)
        doc = [{"name": "sequences", "dtype": "float32", "shape": [BATCH, self.pre.length, c],
                "meaning": f"raw values of the channels preprocessing.columns, the last {self.pre.length} steps "
                           "of each sequence, padded at the end"}]
        if self.pre.variable:
            doc.append({"name": "lengths", "dtype": "int64", "shape": [BATCH],
                        "meaning": "the real steps of each sequence (at most length)"})
        return doc

    def outside(self) -> dict:
        p = self.pre
        return {"kind": "sequence", "columns": p.columns, "length": p.length, "variable": p.variable,
                "mode": p.mode, "series_id": p.series_id, "time_column": p.time_col, "stride": p.stride}

    def raw_from(self, d: Any) -> list[np.ndarray]:
        seqs = d.x if d.kind == "sequence" else self.pre.labelled(d).x
        return [np.asarray(s, np.float32).reshape(len(s), -1) for s in seqs]

    def feeds(self, seqs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(seqs, tuple):
            return seqs
        length, c = self.pre.length, len(self.pre.columns)
        x = np.zeros((len(seqs), length, c), np.float32)
        lengths = np.zeros(len(seqs), np.int64)
        for i, s in enumerate(seqs):
            s = np.asarray(s, np.float32).reshape(len(s), -1)[-length:]
            x[i, :len(s)], lengths[i] = s, len(s)
        return (x, lengths) if self.pre.variable else (x,)

    def reference(self, seqs: Any) -> tuple[np.ndarray, ...]:
        return tuple(self.pre.transform(seqs))

    def random(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        length, c = self.pre.length, len(self.pre.columns)
        sizes = rng.integers(1, length + 1, n) if self.pre.variable else np.full(n, length)
        return [(rng.normal(size=(int(t), c)) * self.pre.std + self.pre.mean).astype(np.float32) for t in sizes]

    def snippet(self) -> str:
        lines = ["pre = meta['preprocessing']", "length = pre['length']",
                 "# sequences: a list of [steps, channels] arrays of raw values (channels: pre['columns'])",
                 "x = np.zeros((len(sequences), length, len(pre['columns'])), np.float32)",
                 "lengths = np.zeros(len(sequences), np.int64)",
                 "for i, s in enumerate(sequences):",
                 "    s = np.asarray(s, np.float32).reshape(len(s), -1)[-length:]",
                 "    x[i, :len(s)], lengths[i] = s, len(s)",
                 "feeds = {'sequences': x, 'lengths': lengths}" if self.pre.variable else "feeds = {'sequences': x}"]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- audio


class _Bands(nn.Module):
    """Per-mel-band (x - mean) / std of a log-mel spectrogram [B, 1, n_mels, T], then the model."""

    def __init__(self, model: nn.Module, mean: Any, std: Any):
        super().__init__()
        self.model = model
        self.register_buffer("mean", _buffer(mean).reshape(1, 1, -1, 1))
        self.register_buffer("std", _buffer(std).reshape(1, 1, -1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


class AudioFront(Front):
    """Audio as its log-mel spectrogram [batch, 1, n_mels, frames] (before standardisation): the short-time
    Fourier transform and the mel filterbank run outside the graph, with the settings in the JSON."""

    kind = "audio"

    def names(self) -> list[str]:
        return ["log_mel"]

    def wrap(self, model: nn.Module) -> nn.Module:
        return _Bands(model, self.pre.mean, self.pre.std)

    def folded(self) -> list[str]:
        return ["(x - mean) / std per mel band"]

    def inputs_doc(self) -> list[dict]:
        return [{"name": "log_mel", "dtype": "float32", "shape": [BATCH, *self.pre.shape],
                 "meaning": "log(mel power + 1e-6) of the clip, with preprocessing.front_end"}]

    def outside(self) -> dict:
        from ..data.audio import mel_filterbank

        sr = self.pre.sr
        return {"kind": "audio", "front_end": {
            "sample_rate": sr, "clip_samples": self.pre.n_samples, "n_fft": self.pre.n_fft,
            "win_length": min(self.pre.n_fft, round(0.025 * sr)), "hop_length": max(1, round(0.010 * sr)),
            "window": "hann (periodic)", "center": True, "pad_mode": "constant", "power": 2, "log_offset": 1e-6,
            "n_mels": self.pre.n_mels, "frames": self.pre.frames,
            "mel_filterbank": mel_filterbank(sr, self.pre.n_fft, self.pre.n_mels).tolist(),
            "note": "mono waves at sample_rate, padded with zeros or cropped to clip_samples; "
                    "log_mel = log(mel_filterbank @ |stft|^2 + 1e-6)[None]"}}

    def raw_from(self, d: Any) -> np.ndarray:
        return np.asarray(d.x, np.float32)

    def feeds(self, waves: np.ndarray) -> tuple[np.ndarray]:
        return (np.ascontiguousarray(self.pre.spectrogram(waves), dtype=np.float32),)

    def reference(self, waves: np.ndarray) -> tuple[np.ndarray]:
        return tuple(self.pre.transform(waves))

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return (0.1 * rng.normal(size=(n, self.pre.n_samples))).astype(np.float32)

    def snippet(self) -> str:
        return ("fe = meta['preprocessing']['front_end']\n"
                "# log_mel: [batch, 1, n_mels, frames] = log(fe['mel_filterbank'] @ |stft(wave)|**2 + 1e-6), e.g.\n"
                "# torch.stft(wave, fe['n_fft'], fe['hop_length'], fe['win_length'], torch.hann_window(...),\n"
                "#            center=True, pad_mode='constant', return_complex=True)\n"
                "feeds = {'log_mel': log_mel.astype(np.float32)}\n")


FRONTS = {"image": ArrayFront, "array": ArrayFront, "table": TableFront, "text": TextFront,
          "series": SeriesFront, "audio": AudioFront, "sequence": SequenceFront}


def front_for(run: Any) -> Front:
    """The Front of the run's preprocessing kind (model inputs as they are for kinds not folded here)."""
    kind = run.pre.spec()["kind"]
    cls = FRONTS.get(kind, Front)
    if kind in ("image", "array") and not hasattr(run.pre, "scale"):  # a pretrained backbone's own pipeline
        cls = Front
    if kind == "text" and not hasattr(run.pre, "tokenizer"):
        cls = Front
    return cls(run)
