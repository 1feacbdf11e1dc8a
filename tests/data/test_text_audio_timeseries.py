"""Text tokenizers: behaviour on generated texts (audio: tests/audio, time series: tests/series)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from layerwise.data.text import TextTokenizer, check_texts, suggest_max_len

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

TEXTS = [
    "the cat sat on the mat.",
    "a dog, running fast!",
    "hello world",
    "the quick brown fox jumps over the lazy dog",
] * 10


def shared(name: str) -> Path:
    p = SHARED / name
    if not p.exists():
        pytest.skip(f"../shared/data/{name} is absent")
    return p.resolve()


# ---------------------------------------------------------------- text


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "char"])
def test_tokenizer_round_trip_and_json(kind):
    tok = TextTokenizer.train(TEXTS, kind=kind, vocab_size=300)
    ids = tok.encode_batch(TEXTS[:4], max_len=64)
    assert ids.dtype == np.int64 and ids.shape == (4, 64)
    assert tok.pad_id == 0 and (ids[2, 20:] == 0).all()  # padded with 0
    assert [tok.decode(row) for row in ids] == TEXTS[:4]
    assert 2 < tok.vocab_size <= 300
    saved = tok.to_json()
    assert json.loads(saved)["kind"] == kind  # plain JSON
    back = TextTokenizer.from_json(saved)
    assert back == tok and back.vocab_size == tok.vocab_size
    np.testing.assert_array_equal(back.encode_batch(TEXTS, 64), tok.encode_batch(TEXTS, 64))


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_the_same_texts_train_the_same_tokenizer(kind):
    """Many frequency ties: the WordPiece trainer used to keep one of several vocabularies at random
    (huggingface/tokenizers#1794), so a run could not be repeated exactly."""
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghij"), rng.integers(2, 8))) for _ in range(300)]
    texts = [" ".join(rng.choice(words, 8)) for _ in range(200)]
    first = TextTokenizer.train(texts, kind=kind, vocab_size=120)
    for _ in range(5):
        assert TextTokenizer.train(texts, kind=kind, vocab_size=120).to_json() == first.to_json()
    assert first.decode(first.encode_batch(texts[:1], 32)[0]) == texts[0]


def test_truncation_warns_once_with_count():
    tok = TextTokenizer.train(TEXTS, kind="char")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ids = tok.encode_batch(["hello world", "a dog", "the cat sat"], max_len=6)
    assert len(w) == 1 and "2 of 3 texts" in str(w[0].message) and "max_len=6" in str(w[0].message)
    assert tok.decode(ids[0]) == "hello " and tok.decode(ids[1]) == "a dog"


def test_unknown_characters_are_named_and_mapped_to_unk():
    tok = TextTokenizer.train(TEXTS, kind="char")
    with pytest.raises(ValueError, match=r"2 characters not in the vocabulary \('Z', 'é'\)"):
        tok.encode("hé Zoo")
    ids = tok.encode("hé", strict=False)
    assert ids[1] == tok.unk_id and tok.decode(ids) == "h[UNK]"
    wp = TextTokenizer.train(TEXTS, kind="wordpiece", vocab_size=300)
    with pytest.raises(ValueError, match="'é'"):
        wp.encode("the é dog")
    assert wp.encode_batch(["the é dog"], 8)[0, 1] == wp.unk_id


def test_empty_texts_and_bad_settings_are_rejected():
    with pytest.raises(ValueError, match=r"3 of 5 texts are empty or whitespace-only \(rows 1, 2, 4"):
        check_texts(["ok", "", "   \n", "fine", None])
    with pytest.raises(ValueError, match="unknown tokenizer kind 'sentencepiece'"):
        TextTokenizer.train(TEXTS, kind="sentencepiece")
    with pytest.raises(ValueError, match="not a saved layerwise text tokenizer"):
        TextTokenizer.from_json('{"kind": "bpe"}')


def test_suggest_max_len():
    assert suggest_max_len([10] * 100) == 16
    assert suggest_max_len(list(range(1, 101))) == 96  # p95 = 95.05 -> 96
    assert suggest_max_len([5000] * 10) == 512
