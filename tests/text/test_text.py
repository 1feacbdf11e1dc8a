"""Text classification and language modelling end to end, on small generated data (each test a few seconds)."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import layerwise as lw
from layerwise.cli import main
from layerwise.data import load
from layerwise.data.textpre import TextPre
from layerwise.errors import ConfigError, DataError, RunError

FAST = {"quiet": True, "progress": False, "tensorboard": False, "threads": 1}
GOOD = ["great", "wonderful", "moving", "superb", "delightful", "gripping"]
BAD = ["dull", "awful", "boring", "clumsy", "tedious", "lifeless"]
FILL = ["the", "film", "was", "a", "story", "of", "plot", "actors", "really", "quite", "and", "this"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def reviews(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        words = list(rng.choice(FILL, rng.integers(4, 9))) + [rng.choice(GOOD if i % 2 else BAD)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return pd.DataFrame(rows, columns=["text", "sentiment"])


def corpus(tmp_path, n: int = 3000):
    text = ("to be or not to be, that is the question.\nwhether tis nobler in the mind to suffer.\n" * 200)[:n * 4]
    p = tmp_path / "corpus.txt"
    p.write_text(text)
    return p


# ---------------------------------------------------------------- data


def test_a_table_with_one_text_column_is_text_data_and_empty_cells_are_dropped():
    df = reviews(20)
    df.loc[[3, 7], "text"] = ["", None]
    d = load(df, target="sentiment")
    assert d.kind == "text" and len(d) == 18 and d.text_column == "text"
    assert any("dropped 2 rows whose text 'text' is empty (rows 3, 7" in n for n in d.notes)
    mixed = df.assign(stars=np.arange(20))  # text among other columns keeps the table path
    assert load(mixed, target="sentiment").kind == "table"
    with pytest.raises(DataError, match="every cell of the text column 'text' is empty"):
        load(df.assign(text=[" "] * 20), target="sentiment")


def test_txt_is_a_corpus_unless_it_looks_like_a_table(tmp_path):
    assert load(corpus(tmp_path)).kind == "corpus"
    table = tmp_path / "t.txt"
    table.write_text("a,b\n1,2\n3,4\n")
    assert load(table).kind == "table"


def test_text_preprocessor_round_trip_truncation_and_unknown_words():
    texts = reviews(60)["text"].tolist()
    pre = TextPre.from_texts(texts, "wordpiece", 200)
    longest = max(len(t.split()) for t in texts)
    assert pre.max_len % 8 == 0 and pre.max_len >= longest
    (ids,) = pre.transform(texts)
    assert ids.shape == (60, pre.max_len) and ids.dtype == np.int64
    back = TextPre.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(back.transform(texts)[0], ids)
    with pytest.warns(UserWarning, match=f"1 of 2 texts are longer than max_len={pre.max_len} tokens"):
        pre.transform(["great film", "word " * 100])
    (unk,) = pre.transform(["zyzzyva qwxp great"])  # unseen words map to [UNK], no error
    assert pre.tokenizer.unk_id in unk[0]
    with pytest.raises(ConfigError, match="unknown tokenizer 'sentencepiece'; valid: wordpiece, bpe, char"):
        TextPre.from_texts(texts, "sentencepiece")


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize("model", ["gru", "lstm", "rnn", "transformer"])
def test_each_sequence_model_learns_keyword_sentiment(model, tmp_path):
    df = reviews()
    run = lw.train(df, target="sentiment", model=model, epochs=12, out=tmp_path / "r", d_model=32, hidden=[32],
                   dropout=0.0, **FAST)
    assert run.info["model"] == model
    assert run.evaluate()["accuracy"] >= 0.9
    pred = run.predict(["a wonderful superb story", "this boring plot was awful"])
    assert list(pred["prediction"]) == ["positive", "negative"]


def test_cli_train_then_predict_a_string(tmp_path, capsys):
    csv = tmp_path / "reviews.csv"
    reviews().to_csv(csv, index=False)
    out = tmp_path / "run"
    assert main(["train", str(csv), "--target", "sentiment", "--epochs", "8", "--out", str(out), "--threads", "1",
                 "--no-progress", "--no-tensorboard", "--d-model", "32", "--hidden", "32",
                 "--dropout", "0.3"]) == 0
    err = capsys.readouterr().err
    assert "model: gru" in err and "text defaults:" in err
    schema = json.loads((out / "schema.json").read_text())
    assert schema["input"]["kind"] == "text" and schema["input"]["tokenizer"]["kind"] == "wordpiece"
    assert main(["predict", str(out), "a gripping, beautifully acted film, superb"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("a gripping, beautifully acted film, superb\tpositive")
    assert main(["predict", str(out), str(csv), "--json"]) == 0  # a CSV of texts (target column ignored)
    assert len(json.loads(capsys.readouterr().out)) == 240
    run = lw.Run.load(out)
    assert run.evaluate(csv)["accuracy"] >= 0.9


def test_text_models_refuse_other_data():
    with pytest.raises(ConfigError, match="model 'gpt' is a language model: train it on a text corpus"):
        lw.train(reviews(), target="sentiment", model="gpt", **FAST)
    with pytest.raises(ConfigError, match="model 'gru' reads text here, but the data is table data"):
        lw.train(pd.DataFrame({"a": np.arange(40.0), "y": np.arange(40) % 2}), target="y", model="gru", **FAST)


# ---------------------------------------------------------------- language model


def tiny_lm(tmp_path, **kw):
    settings = dict(model="gpt", epochs=3, block_size=16, batch_size=16, d_model=32, heads=2, layers=1,
                    out=tmp_path / "lm", lr=1e-2, **FAST)
    return lw.train(corpus(tmp_path), task="generate", **{**settings, **kw})


def test_language_model_windows_are_views_and_shift_each_epoch(tmp_path):
    from layerwise.api import resolve_config
    from layerwise.tasks.generate import Generate, ShiftWindows

    cfg, _ = resolve_config(corpus(tmp_path), task="generate", block_size=16)
    prepared = Generate.prepare(cfg, load(cfg.data), quiet=True)
    ids = prepared.task.train_ids
    x, y = prepared.train.inputs[0], prepared.train.y
    assert x.untyped_storage().data_ptr() == ids.untyped_storage().data_ptr()  # a view, not a copy
    assert torch.equal(x[0, 1:], y[0, :-1]) and x.shape[1] == 16
    text = load(cfg.data).x
    assert len(ids) == int(len(text) * 0.9)  # the last 10% is held out
    assert prepared.test is None and prepared.val.inputs[0].shape[1] == 16  # held out: validation only

    loop = SimpleNamespace(cfg=cfg, device="cpu", train_y=y, epoch=1)
    ShiftWindows(ids, 16).on_epoch_start(loop)
    shifted = loop.train_inputs[0]
    assert shifted.shape == x.shape and shifted.untyped_storage().data_ptr() == ids.untyped_storage().data_ptr()
    assert not torch.equal(shifted, x)


def test_generate_end_to_end_cli_and_python(tmp_path, capsys):
    run = tiny_lm(tmp_path)
    hist = run.history
    assert hist[-1]["val_loss"] < 1.0 < np.log(run.task.vocab_size) and "val_perplexity" in hist[-1]
    assert run.info["val_metrics"]["perplexity"] == pytest.approx(np.exp(run.info["val_metrics"]["loss"]), 1e-4)
    assert "test_metrics" not in run.info  # a language model holds out a validation part only
    text = run.generate("to be", tokens=40, temperature=0.8, top_k=5, seed=1)
    assert text.startswith("to be") and len(text) == 45
    assert run.generate("to be", tokens=40, temperature=0.8, top_k=5, seed=1) == text
    assert main(["generate", str(tmp_path / "lm"), "--prompt", "to be", "--tokens", "40", "--temperature", "0.8",
                 "--top-k", "5", "--seed", "1"]) == 0
    assert capsys.readouterr().out == text + "\n"  # the reloaded run samples the same text
    assert main(["evaluate", str(tmp_path / "lm"), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"loss", "perplexity"}


def test_generate_errors_are_one_sentence(tmp_path, capsys):
    tiny_lm(tmp_path, epochs=1)
    assert main(["generate", str(tmp_path / "lm"), "--prompt", "ZEBRA é"]) == 2
    err = capsys.readouterr().err
    assert "characters not in the vocabulary ('A', 'B', 'E', 'R', 'Z', 'é')" in err and "Traceback" not in err
    lw.train(reviews(40), target="sentiment", epochs=1, out=tmp_path / "clf", **FAST)
    with pytest.raises(RunError, match="is a classify model, not a language model"):
        lw.Run.load(tmp_path / "clf").generate("hello")
    assert main(["generate", str(tmp_path / "clf")]) == 2
    assert main(["generate", str(tmp_path / "lm"), "--temperature", "0"]) == 2
    assert "temperature must be above 0" in capsys.readouterr().err
    with pytest.raises(DataError, match="too few for windows of block_size=4096"):
        tiny_lm(tmp_path, block_size=4096, out=tmp_path / "x")
    with pytest.raises(DataError, match="the generate task learns from a text corpus, but the data is text data"):
        lw.train(reviews(), target="sentiment", task="generate", **FAST)


def test_bpe_language_model_and_char_classifier(tmp_path):
    run = tiny_lm(tmp_path, tokenizer="bpe", vocab_size=120, epochs=1)
    assert run.pre.tokenizer.kind == "bpe" and run.generate("to be", tokens=5, seed=0).startswith("to be")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncation warning: max_len covers every training text
        clf = lw.train(reviews(), target="sentiment", tokenizer="char", epochs=1, out=tmp_path / "c", **FAST)
    assert clf.pre.tokenizer.kind == "char"


def test_resume_retrains_the_same_tokenizer_and_refuses_other_data(tmp_path, crash_after_epoch):
    """A resumed text run refits its tokenizer on the recorded data: it must be the same one (then the resumed
    run equals an uninterrupted one); data that gives another tokenizer is refused before anything is written."""
    data = tmp_path / "reviews.csv"
    reviews().to_csv(data, index=False)
    settings = dict(target="sentiment", model="gru", epochs=3, seed=0, **FAST)
    full = lw.train(str(data), out=tmp_path / "full", **settings)
    with crash_after_epoch(1):
        lw.train(str(data), out=tmp_path / "part", **settings)
    before = {p.name: p.read_bytes() for p in (tmp_path / "part").iterdir() if p.is_file()}
    other = tmp_path / "other.csv"
    pd.concat([reviews(), pd.DataFrame({"text": ["an extraordinary unforgettable masterpiece"] * 30,
                                        "sentiment": ["positive"] * 30})]).to_csv(other, index=False)
    with pytest.raises(RunError, match=r"the data differs from the data this run was trained on \(the preprocessing "
                                       r"\(tokenizer, scaling, shapes\) changed\); resume with the same data"):
        lw.train(str(other), resume=tmp_path / "part", quiet=True)
    relabelled = reviews().assign(sentiment=lambda d: d.sentiment.where(d.index > 0, "neutral"))  # a new class
    relabelled.to_csv(other, index=False)
    with pytest.raises(RunError, match=r"\(the targets \(classes\) changed\)"):
        lw.train(str(other), resume=tmp_path / "part", quiet=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "part").iterdir() if p.is_file()} == before
    resumed = lw.train(resume=tmp_path / "part", quiet=True)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
