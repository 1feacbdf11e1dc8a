"""Behaviour of the sequence models: shapes, padding invariance, cached generation, learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from layerwise.models.rnn import CRNN, RecurrentNet
from layerwise.models.transformer import GPT, TransformerEncoder

VOCAB = 50


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def padded_batch(lengths: list[int], extra: int = 0, seed: int = 0) -> torch.Tensor:
    """Token ids [B, max(lengths) + extra]: real tokens in 1..VOCAB-1, then pad id 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(len(lengths), max(lengths) + extra, dtype=torch.long)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(1, VOCAB, (n,), generator=g)
    return x


def assert_all_grads(model: torch.nn.Module, loss: torch.Tensor) -> None:
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reached {missing}"


# ---- RecurrentNet ----

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_shapes(cell, bidirectional):
    tok = RecurrentNet(3, cell=cell, vocab_size=VOCAB, hidden=16, embed_dim=8, bidirectional=bidirectional)
    assert tok(padded_batch([5, 2, 7])).shape == (3, 3)
    feat = RecurrentNet(4, cell=cell, in_features=6, hidden=16, bidirectional=bidirectional)
    assert feat(torch.randn(2, 9, 6)).shape == (2, 4)


@pytest.mark.parametrize("readout", ["mean", "max", "last"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_padding_invariance(readout, bidirectional, cell):
    torch.manual_seed(0)
    model = RecurrentNet(2, cell=cell, vocab_size=VOCAB, hidden=16, embed_dim=8, readout=readout,
                         bidirectional=bidirectional).eval()
    lengths = [6, 3, 1, 9]
    x = padded_batch(lengths)
    out = model(x)
    torch.testing.assert_close(model(padded_batch(lengths, extra=7)), out, atol=1e-5, rtol=1e-5)
    for i, n in enumerate(lengths):  # each sequence alone, unpadded, matches its row in the batch
        torch.testing.assert_close(model(x[i:i + 1, :n]), out[i:i + 1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("readout", ["mean", "max", "last"])
def test_recurrent_float_padding_never_reaches_rnn(readout):
    torch.manual_seed(0)
    model = RecurrentNet(2, in_features=4, hidden=16, readout=readout, bidirectional=True).eval()
    x = torch.randn(3, 8, 4)
    lengths = torch.tensor([8, 5, 2])
    garbage = x.clone()
    for i, n in enumerate(lengths):
        garbage[i, n:] = 1e3  # whatever sits past the length must not matter
    torch.testing.assert_close(model(garbage, lengths), model(x, lengths), atol=1e-5, rtol=1e-5)


def test_recurrent_last_reads_final_states():
    """Unidirectional "last" equals the head applied to the LSTM output at the last real step."""
    torch.manual_seed(0)
    model = RecurrentNet(2, cell="lstm", in_features=4, hidden=8, readout="last").eval()
    x = torch.randn(1, 6, 4)
    out, _ = model.rnn(x[:, :4])
    torch.testing.assert_close(model(x, torch.tensor([4])), model.head(out[:, -1]))


def test_recurrent_gradients_and_errors():
    model = RecurrentNet(3, cell="gru", vocab_size=VOCAB, hidden=8, embed_dim=8, bidirectional=True)
    assert_all_grads(model, model(padded_batch([4, 6, 2])).square().sum())
    with pytest.raises(ValueError, match="exactly one"):
        RecurrentNet(2, vocab_size=10, in_features=3)
    with pytest.raises(ValueError, match="readout"):
        RecurrentNet(2, vocab_size=10, readout="first")
    with pytest.raises(ValueError, match="cell"):
        RecurrentNet(2, vocab_size=10, cell="transformer")


# ---- CRNN ----

@pytest.mark.parametrize("cell,bidirectional", [("gru", True), ("lstm", False)])
def test_crnn_shape_and_gradients(cell, bidirectional):
    torch.manual_seed(0)
    model = CRNN(10, cell=cell, bidirectional=bidirectional, channels=(8, 16, 32), hidden=16)
    x = torch.randn(2, 1, 64, 101)
    out = model(x)
    assert out.shape == (2, 10)
    assert_all_grads(model, out.square().sum())
    with pytest.raises(ValueError, match="spectrogram"):
        model(torch.randn(2, 64, 101))


# ---- TransformerEncoder ----

@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_encoder_padding_invariance(pooling):
    torch.manual_seed(0)
    model = TransformerEncoder(3, vocab_size=VOCAB, max_len=32, d_model=32, heads=4, layers=2,
                               pooling=pooling).eval()
    lengths = [7, 2, 12]
    x = padded_batch(lengths)
    out = model(x)
    assert out.shape == (3, 3)
    torch.testing.assert_close(model(padded_batch(lengths, extra=10)), out, atol=1e-5, rtol=1e-5)
    for i, n in enumerate(lengths):
        torch.testing.assert_close(model(x[i:i + 1, :n]), out[i:i + 1], atol=1e-5, rtol=1e-5)


def test_encoder_float_input_gradients_and_too_long():
    model = TransformerEncoder(2, in_features=5, max_len=16, d_model=16, heads=2, layers=2, pooling="cls")
    out = model(torch.randn(4, 16, 5))
    assert out.shape == (4, 2)
    assert_all_grads(model, out.square().sum())
    with pytest.raises(ValueError, match="max_len=16"):
        model(torch.randn(1, 17, 5))
    with pytest.raises(ValueError, match="exactly one"):
        TransformerEncoder(2)


# ---- GPT ----

def lm_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())


def tiny_gpt(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(**{"vocab_size": 65, "block_size": 32, "d_model": 32, "heads": 4, "layers": 2, "dropout": 0.0} | kw)


def test_gpt_loss_at_init_is_uniform():
    model = tiny_gpt()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 65, (8, 32), generator=g), torch.randint(0, 65, (8, 32), generator=g)
    logits = model(x)
    assert logits.shape == (8, 32, 65)
    assert abs(lm_loss(logits, y).item() - math.log(65)) < 0.1
    assert model.lm_head.weight is model.wte.weight


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.8, 10), (1.0, 1)])
def test_gpt_cached_generation_matches_uncached(temperature, top_k):
    model = tiny_gpt(block_size=16, dropout=0.1).eval()
    prompt = torch.randint(0, 65, (2, 3), generator=torch.Generator().manual_seed(1))
    # 40 new tokens with block_size 16: the context is cropped and the cache rebuilt many times
    runs = [model.generate(prompt, 40, temperature, top_k, use_cache=c, generator=torch.Generator().manual_seed(7))
            for c in (True, False)]
    assert runs[0].shape == (2, 43)
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0][:, :3], prompt)


def test_gpt_cache_gives_the_same_logits_as_a_full_pass():
    model = tiny_gpt().eval()
    from layerwise.models.transformer import KVCache

    idx = torch.randint(0, 65, (2, 20), generator=torch.Generator().manual_seed(2))
    caches = [KVCache(model.block_size) for _ in model.blocks]
    steps = [model._hidden(idx[:, :12], caches)] + [model._hidden(idx[:, t:t + 1], caches) for t in range(12, 20)]
    torch.testing.assert_close(torch.cat(steps, 1), model._hidden(idx), atol=1e-5, rtol=1e-5)


def test_gpt_overfits_a_repeated_string():
    text = "hello layerwise! " * 3
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    data = torch.tensor([stoi[c] for c in text])
    x, y = data[:32].view(1, -1), data[1:33].view(1, -1)
    model = tiny_gpt(vocab_size=len(stoi), d_model=64)
    opt = torch.optim.AdamW(model.configure_optimizer_groups(0.01), lr=3e-3)
    for _ in range(200):
        loss = lm_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


def test_gpt_gradients_groups_and_errors():
    model = tiny_gpt(bias=True)
    x = torch.randint(0, 65, (2, 32))
    assert_all_grads(model, lm_loss(model(x), x))
    decay, no_decay = model.configure_optimizer_groups(0.1)
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(x, 1, temperature=0.0)


def test_block_causal_mask_with_padding_matches_manual_attention():
    """The combined causal + key padding mask equals attention computed by hand."""
    from layerwise.models.transformer import Block

    torch.manual_seed(0)
    block = Block(8, 2).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    attn = block.attn
    q, k, v = attn.qkv(block.ln_1(x)).view(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / 2.0
    allowed = torch.ones(5, 5, dtype=torch.bool).tril() & mask[:, None, None, :]
    y = (F.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ v).transpose(1, 2).reshape(2, 5, 8)
    h = x + attn.proj(y)
    torch.testing.assert_close(block(x, mask, is_causal=True), h + block.mlp(block.ln_2(h)))
