"""Text to token ids: WordPiece, BPE (Hugging Face `tokenizers`) or characters, saved as plain JSON."""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from typing import Any

import numpy as np

KINDS = ("wordpiece", "bpe", "char")
PAD, UNK = "[PAD]", "[UNK]"
FORMAT = "layerwise-text-tokenizer"


def check_texts(texts: list[str]) -> None:
    """Raise if any text is empty, whitespace-only or not a string (a model cannot learn from it)."""
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        rows = ", ".join(str(i) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise ValueError(
            f"{len(bad)} of {len(texts)} texts are empty or whitespace-only (rows {rows}, counting from 0); "
            "remove those rows or fill them with text."
        )


def suggest_max_len(lengths: list[int] | np.ndarray, cap: int = 512) -> int:
    """A max_len that fits 95% of texts whole: the 95th percentile rounded up to a multiple of 8, capped."""
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        raise ValueError("no token lengths were given; pass the token lengths of the training texts.")
    p95 = float(np.percentile(lengths, 95))
    return int(min(cap, max(8, 8 * math.ceil(p95 / 8))))


def _hf_tokenizer(kind: str, texts: list[str], vocab_size: int) -> Any:
    """Train a Hugging Face tokenizer with [PAD] as id 0 and [UNK] as id 1; the same texts give the same
    tokenizer every time."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    special = [PAD, UNK]
    normalizer = normalizers.NFKC()

    def wordpiece(vocab: dict[str, int] | None = None) -> Any:
        tok = Tokenizer(models.WordPiece(vocab, unk_token=UNK))
        tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizers.BertPreTokenizer(), \
            decoders.WordPiece()
        return tok

    if kind == "wordpiece":
        # The WordPiece trainer (BPE with "##" continuations) numbers the "##c" pieces in hash-map order, and
        # merge ties follow those numbers, so two trainings on the same texts could keep different vocabularies
        # (huggingface/tokenizers#1794). Giving every "##c" up front as a special token fixes their numbers.
        chars = sorted({n for c in set().union(*map(set, texts)) for n in normalizer.normalize_str(c)
                        if not n.isspace()})
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special + [f"##{c}" for c in chars],
                                            show_progress=False)
        tok = wordpiece()
    else:
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizers.Metaspace(), decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    if kind == "wordpiece":  # a fresh tokenizer whose only added tokens are [PAD] and [UNK], ids in text order
        vocab = tok.get_vocab()
        order = special + sorted(t for t in vocab if t not in special)
        tok = wordpiece({t: i for i, t in enumerate(order)})
        tok.add_special_tokens(special)
    return tok


class TextTokenizer:
    """Turns texts into padded id arrays and back; id 0 is padding, [UNK] stands for anything unseen."""

    pad_id = 0

    def __init__(self, kind: str, hf: Any = None, chars: list[str] | None = None):
        self.kind = kind
        self._hf = hf
        self._chars = chars  # for kind "char": the vocabulary, [PAD] and [UNK] first
        self._char_ids = {c: i for i, c in enumerate(chars)} if chars is not None else None

    @classmethod
    def train(cls, texts: list[str], kind: str = "wordpiece", vocab_size: int = 8000) -> TextTokenizer:
        """Learn a vocabulary from the training texts (only those, so nothing leaks from the test set)."""
        if kind not in KINDS:
            raise ValueError(f"unknown tokenizer kind {kind!r}; use one of {', '.join(KINDS)}.")
        if not isinstance(vocab_size, int) or vocab_size < 3:
            raise ValueError(
                f"vocab_size must be an integer of at least 3, got {vocab_size!r}; pass a larger one."
            )
        check_texts(texts)
        if kind != "char":
            return cls(kind, hf=_hf_tokenizer(kind, list(texts), vocab_size))
        counts = Counter(c for t in texts for c in t)
        keep = sorted(c for c, _ in counts.most_common(vocab_size - 2))
        return cls("char", chars=[PAD, UNK, *keep])

    @property
    def vocab_size(self) -> int:
        """Number of ids, padding and [UNK] included."""
        return len(self._chars) if self._chars is not None else self._hf.get_vocab_size()

    @property
    def unk_id(self) -> int:
        """The id of the [UNK] token."""
        return 1

    def _ids(self, texts: list[str]) -> list[list[int]]:
        if self._chars is not None:
            return [[self._char_ids.get(c, 1) for c in t] for t in texts]
        return [e.ids for e in self._hf.encode_batch(list(texts), add_special_tokens=False)]

    def lengths(self, texts: list[str]) -> list[int]:
        """Token count of each text, e.g. to feed `suggest_max_len`."""
        return [len(ids) for ids in self._ids(texts)]

    def encode_batch(self, texts: list[str], max_len: int) -> np.ndarray:
        """Ids as int64 [N, max_len], padded with 0; longer texts are cut with one warning."""
        if not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}; pass e.g. 128.")
        out = np.zeros((len(texts), max_len), dtype=np.int64)
        cut = 0
        for i, ids in enumerate(self._ids(texts)):
            cut += len(ids) > max_len
            ids = ids[:max_len]
            out[i, : len(ids)] = ids
        if cut:
            warnings.warn(
                f"{cut} of {len(texts)} texts are longer than max_len={max_len} tokens and were truncated; "
                "raise max_len to keep them whole.",
                stacklevel=2,
            )
        return out

    def encode_long(self, text: str) -> np.ndarray:
        """Ids int64 [n] of one long text (a corpus), unpadded and untruncated; unknown pieces become [UNK]."""
        if self._chars is None:
            return np.asarray(self._hf.encode(text, add_special_tokens=False).ids, dtype=np.int64)
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
        lut = np.full(max(map(ord, self._chars[2:]), default=0) + 2, self.unk_id, np.int64)
        for i, c in enumerate(self._chars[2:], start=2):
            lut[ord(c)] = i
        return lut[np.minimum(codes, len(lut) - 1)]  # the last slot is [UNK]: beyond every known code

    def encode(self, text: str, strict: bool = True) -> list[int]:
        """Ids of one text, unpadded; with strict, raise naming what is not in the vocabulary."""
        ids = self._ids([text])[0]
        if strict and self.unk_id in ids:
            if self._chars is not None:
                unknown = sorted({c for c in text if c not in self._char_ids})
            else:
                enc = self._hf.encode(text, add_special_tokens=False)
                unknown = sorted(
                    {text[a:b] for i, (a, b) in zip(enc.ids, enc.offsets, strict=True) if i == self.unk_id}
                )
            shown = ", ".join(repr(u) for u in unknown[:10])
            what = "characters" if self._chars is not None else "words or symbols"
            raise ValueError(
                f"the text contains {len(unknown)} {what} not in the "
                f"vocabulary ({shown}); remove them or use only what appears in the training text."
            )
        return ids

    def decode(self, ids: Any) -> str:
        """Text from ids, dropping padding; unknown ids show as [UNK]."""
        if hasattr(ids, "detach"):
            ids = ids.detach().cpu().numpy()
        ids = [int(i) for i in np.asarray(ids).reshape(-1) if int(i) != self.pad_id]
        if self._chars is not None:
            return "".join(self._chars[i] if 0 <= i < len(self._chars) else UNK for i in ids)
        return self._hf.decode(ids, skip_special_tokens=False)

    def to_json(self) -> str:
        """The tokenizer as a JSON string, to save in a run folder."""
        body = {"chars": self._chars} if self._chars is not None else {"tokenizer": self._hf.to_str()}
        return json.dumps({"format": FORMAT, "version": 1, "kind": self.kind, **body})

    @classmethod
    def from_json(cls, s: str) -> TextTokenizer:
        """Rebuild a tokenizer saved with `to_json`."""
        try:
            d = json.loads(s)
            if d.get("format") != FORMAT or d.get("kind") not in KINDS:
                raise KeyError("format")
            if d["kind"] == "char":
                return cls("char", chars=list(d["chars"]))
            from tokenizers import Tokenizer

            return cls(d["kind"], hf=Tokenizer.from_str(d["tokenizer"]))
        except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception on bad input
            raise ValueError(
                f"this is not a saved layerwise text tokenizer ({type(e).__name__}); "
                "pass the JSON written by TextTokenizer.to_json."
            ) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextTokenizer) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"TextTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"
