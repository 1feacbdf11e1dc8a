"""Text as model input: text tables and .txt corpora become Data; TextPre and CorpusPre turn text into ids.

Both preprocessors hold a tokenizer trained on the training split only and save it as plain JSON inside the
run's schema.json, so predict and generate reload exactly the same one.

A pretrained model brings its own tokenizer: any object with `kind` (e.g. ``"hf:<path>"``), `vocab_size`,
`pad_id`, `unk_id`, `encode_batch(texts, max_len) -> int64 [N, max_len]`, `encode(text, strict)`,
`decode(ids)` and `to_json() -> str` fits `TextPre(tokenizer, max_len)`. To rebuild it when a run is loaded,
add its loader to `TOKENIZER_LOADERS` as ``{"hf": function}``; the function receives the JSON string that
`to_json` wrote and returns the tokenizer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import describe_defaults, fill_defaults
from ..errors import ConfigError, DataError
from . import hftokenizer
from .base import Data, Preprocessor
from .tables import column_kind, read_table
from .text import KINDS, TextTokenizer

DEFAULT_VOCAB = {"wordpiece": 8000, "bpe": 8000, "char": 1024}
MAX_LEN_CAP = 256
# kind prefix of an external tokenizer -> the function that rebuilds it from its to_json() string
TOKENIZER_LOADERS = {"hf": hftokenizer.tokenizer_from_json}


# ---------------------------------------------------------------- loading


def is_text_column(col: pd.Series) -> bool:
    """Free text (several words, mostly distinct values), or nothing at all (which text_data then refuses)."""
    return column_kind(col) == "text" or bool((col.isna() | col.astype(str).str.strip().eq("")).all())


def text_data(col: pd.Series, y: np.ndarray | None, target: str | None, notes: list[str]) -> Data:
    """A table's one text column (and its target) as text Data; empty cells are dropped with a note."""
    empty = (col.isna() | col.astype(str).str.strip().eq("")).to_numpy()
    name = str(col.name)
    if empty.all():
        raise DataError(f"every cell of the text column {name!r} is empty; give texts to learn from.")
    if y is not None:
        no_target = pd.isna(pd.Series(y)).to_numpy()
        if no_target.all():
            raise DataError(f"every value of the target {target!r} is missing; pick another target column.")
        if no_target.any():
            notes.append(f"dropped {int(no_target.sum())} rows with no target value")
    else:
        no_target = np.zeros(len(col), bool)
    if empty.any():
        rows = np.flatnonzero(empty)
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        notes.append(f"dropped {len(rows)} rows whose text {name!r} is empty (rows {shown}, counting from 0)")
    keep = ~(empty | no_target)
    return Data("text", col[keep].astype(str).to_numpy(dtype=object), None if y is None else y[keep], target,
                notes=notes, meta={"text_column": name})


def corpus_data(path: Path) -> Data:
    """A .txt file read whole as one corpus (for language modelling)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{str(path)!r} is not UTF-8 text; save it as UTF-8.") from None
    if not text.strip():
        raise DataError(f"{str(path)!r} holds no text; give a corpus to learn from.")
    return Data("corpus", text, None, notes=[f"text corpus: {len(text):,} characters"])


def is_table_text(path: Path) -> bool:
    """A .txt file is a table when its first lines all hold the same number (at least one) of tabs or commas."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line for _, line in zip(range(20), f) if line.strip()]
    if len(lines) < 2:
        return False
    return any(len({line.count(sep) for line in lines}) == 1 and lines[0].count(sep) > 0 for sep in ("\t", ","))


# ---------------------------------------------------------------- tokenizers


def train_tokenizer(texts: list[str], kind: str | None, vocab_size: int | None):
    """A WordPiece, BPE or character tokenizer trained on `texts` (the training split)."""
    kind = kind or "wordpiece"
    if kind not in KINDS:
        raise ConfigError(f"unknown tokenizer {kind!r}; valid: {', '.join(KINDS)} (a pretrained model brings "
                          "its own).")
    return TextTokenizer.train(list(texts), kind, vocab_size or DEFAULT_VOCAB[kind])


def tokenizer_from_json(s: str):
    """Rebuild a saved tokenizer: layerwise's own kinds, or an external one through TOKENIZER_LOADERS."""
    kind = str(json.loads(s).get("kind", ""))
    prefix = kind.split(":", 1)[0]
    if kind not in KINDS and prefix in TOKENIZER_LOADERS:
        return TOKENIZER_LOADERS[prefix](s)
    if kind not in KINDS:
        raise DataError(f"this run's tokenizer kind {kind!r} is not available here; install the package that "
                        "made it.")
    return TextTokenizer.from_json(s)


def default_max_len(lengths: list[int], cap: int = MAX_LEN_CAP) -> int:
    """Long enough for every training text (rounded up to a multiple of 8), capped at `cap`."""
    return int(min(cap, max(8, 8 * math.ceil(max(lengths, default=1) / 8))))


class TextPre(Preprocessor):
    """Texts → padded token ids int64 [N, max_len] (pad id 0; the models derive masks and lengths from it)."""

    kind = "text"

    def __init__(self, tokenizer: Any, max_len: int, column: str | None = None):
        self.tokenizer, self.max_len, self.column = tokenizer, max_len, column

    @classmethod
    def fit(cls, train: Data, cfg: Any = None) -> TextPre:
        """The tokenizer of the run's settings (--tokenizer, --vocab-size, --max-len) on the training texts."""
        return cls.from_texts(train.x, cfg.tokenizer if cfg else None, cfg.vocab_size if cfg else None,
                              cfg.max_len if cfg else None, train.meta.get("text_column"))

    @classmethod
    def from_texts(cls, texts: Any, tokenizer: str | None = None, vocab_size: int | None = None,
                   max_len: int | None = None, column: str | None = None) -> TextPre:
        """Train the tokenizer on the training texts; max_len defaults to the longest of them (capped at 256)."""
        texts = list(texts)
        tok = train_tokenizer(texts, tokenizer, vocab_size)
        return cls(tok, max_len or default_max_len(tok.lengths(texts)), column)

    def spec(self) -> dict:
        return {"kind": "text", "vocab_size": self.tokenizer.vocab_size, "max_len": self.max_len,
                "pad_id": self.tokenizer.pad_id}

    def transform(self, x: Any) -> tuple[np.ndarray]:
        texts = ["" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t) for t in x]
        return (self.tokenizer.encode_batch(texts, self.max_len),)

    def to_dict(self) -> dict:
        return {"kind": "text", "column": self.column, "max_len": self.max_len,
                "tokenizer": json.loads(self.tokenizer.to_json())}

    @classmethod
    def from_dict(cls, d: dict) -> TextPre:
        return cls(tokenizer_from_json(json.dumps(d["tokenizer"])), d["max_len"], d.get("column"))

    def __repr__(self) -> str:
        return f"TextPre({self.tokenizer!r}, max_len={self.max_len})"

    def defaults(self, cfg: Any, n_train: int, given: set) -> str | None:
        """TEXT_DEFAULTS for a tokenizer trained here (a pretrained model brings its own settings)."""
        if self.tokenizer.kind not in KINDS:
            return None
        return describe_defaults("text defaults", fill_defaults(cfg, TEXT_DEFAULTS, given))

    def read_inputs(self, x: Any, target: str | None = None) -> Data:
        """What predict accepts for a text model: strings, a list of them, a CSV/Parquet table, or a .txt file
        (one text per line)."""
        pre = self

        if isinstance(x, pd.DataFrame):
            return Data("text", _column(x, pre, target).to_numpy(dtype=object), None)
        if isinstance(x, (str, Path)):
            x = [x]
        if isinstance(x, pd.Series):
            x = x.tolist()
        items = list(np.asarray(x, dtype=object).reshape(-1)) if not isinstance(x, list) else x
        if len(items) == 1 and isinstance(items[0], (str, Path)) and len(str(items[0])) < 4096:
            p = Path(str(items[0])).expanduser()
            suffix = p.suffix.lower()
            if suffix in (".csv", ".tsv", ".parquet", ".txt") and p.is_file():
                if suffix == ".txt" and not is_table_text(p):
                    lines = [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
                    return Data("text", np.array(lines, dtype=object), None)
                return Data("text", _column(read_table(p), pre, target).to_numpy(dtype=object), None)
        for t in items:
            if looks_like_path(t) and not Path(str(t)).expanduser().exists():
                raise DataError(f"{str(t)!r} looks like a file path but there is no such file; check the path, or "
                                "pass it with --text (text=True) to classify it as a text.")
        return Data("text", np.array([str(t) if t is not None else "" for t in items], dtype=object), None)


class CorpusPre(Preprocessor):
    """A corpus → one long id sequence; the language model reads windows of `block_size` ids."""

    kind = "corpus"

    def __init__(self, tokenizer: Any, block_size: int):
        self.tokenizer, self.block_size = tokenizer, block_size

    @classmethod
    def fit(cls, train: Data, cfg: Any = None) -> CorpusPre:
        """The tokenizer of the run's settings trained on the training text (train.x, one string)."""
        return cls(train_tokenizer([train.x], cfg.tokenizer, cfg.vocab_size), cfg.block_size)

    def spec(self) -> dict:
        return {"kind": "corpus", "vocab_size": self.tokenizer.vocab_size, "block_size": self.block_size}

    def encode(self, text: str, strict: bool = False) -> np.ndarray:
        """Ids int64 [n] of a whole text; characters outside a char vocabulary become [UNK] unless strict."""
        if strict:
            return np.asarray(self.tokenizer.encode(text, strict=True), dtype=np.int64)
        return self.tokenizer.encode_long(text)

    def transform(self, x: Any) -> tuple[np.ndarray]:
        return (self.encode(str(x)),)

    def to_dict(self) -> dict:
        return {"kind": "corpus", "block_size": self.block_size, "tokenizer": json.loads(self.tokenizer.to_json())}

    @classmethod
    def from_dict(cls, d: dict) -> CorpusPre:
        return cls(tokenizer_from_json(json.dumps(d["tokenizer"])), d["block_size"])


# ---------------------------------------------------------------- predict inputs


PATH_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".parquet", ".npz", ".json", ".jsonl", ".xlsx")


def looks_like_path(t: Any) -> bool:
    """A string with no spaces that ends in a data file's suffix or holds a path separator ("reviews.csv",
    "data/test"): more likely a mistyped file name than a text to classify."""
    s = str(t).strip()
    if not s or any(c.isspace() for c in s):
        return False
    return s.lower().endswith(PATH_SUFFIXES) or "/" in s or "\\" in s


def _column(df: pd.DataFrame, pre: TextPre, target: str | None) -> pd.Series:
    if pre.column in df.columns:
        return df[pre.column].fillna("").astype(str)
    rest = [c for c in df.columns if c != target]
    if len(rest) == 1:
        return df[rest[0]].fillna("").astype(str)
    raise DataError(f"the table has no text column {pre.column!r} (it has {', '.join(map(str, df.columns))}); "
                    "name the text column as in training.")


# ---------------------------------------------------------------- defaults

# settings text classification uses unless the user sets them (tuned on SST-2: fast and accurate)
TEXT_DEFAULTS = {"epochs": 5, "batch_size": 32, "lr": 5e-3, "dropout": 0.5, "weight_decay": 0.05}
