"""Mixture of experts: shapes, routing, load balancing (autoencoders: tests/unsupervised/, GAN: tests/gan/)."""

import torch

from layerwise.models.moe import MoE, MoEMLP, expert_load, moe_aux_loss


def test_moe_shape_aux_loss_and_load():
    torch.manual_seed(0)
    moe = MoE(16, 32, n_experts=4, top_k=2)
    x = torch.randn(3, 7, 16)
    y = moe(x)
    assert y.shape == x.shape
    assert moe.aux_loss.ndim == 0 and moe.aux_loss.requires_grad
    moe.aux_loss.backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
    assert moe.last_load.shape == (4,) and abs(moe.last_load.sum().item() - 1) < 1e-6
    assert not moe.last_load.requires_grad


def test_moe_matches_a_per_token_reference():
    torch.manual_seed(0)
    moe = MoE(8, 16, n_experts=4, top_k=2)
    x = torch.randn(10, 8)
    probs = moe.router(x).softmax(-1)
    w, e = probs.topk(2)
    w = w / w.sum(-1, keepdim=True)
    ref = torch.stack([sum(w[i, j] * moe.experts[e[i, j]](x[i]) for j in range(2)) for i in range(10)])
    torch.testing.assert_close(moe(x), ref)


def test_moe_top1_routes_each_token_to_exactly_one_expert():
    torch.manual_seed(0)
    moe = MoE(8, 16, n_experts=4, top_k=1)
    x = torch.randn(20, 8)
    y = moe(x)
    chosen = moe.router(x).argmax(-1)
    for i in range(20):  # the output is exactly the chosen expert's, with weight 1
        torch.testing.assert_close(y[i], moe.experts[chosen[i]](x[i]))
    counts = torch.bincount(chosen, minlength=4).float() / 20
    torch.testing.assert_close(moe.last_load, counts)


def test_moe_aux_loss_and_expert_load_helpers():
    model = MoEMLP(12, 3, dim=16, layers=2, n_experts=4)
    assert moe_aux_loss(model).item() == 0 and expert_load(model) == {}
    model(torch.randn(5, 12))
    loss = moe_aux_loss(model)
    assert loss.ndim == 0 and loss.requires_grad and loss.item() >= 2 - 1e-5  # each layer's loss is >= 1
    assert sorted(expert_load(model)) == ["blocks.0", "blocks.1"]
    assert moe_aux_loss(torch.nn.Linear(2, 2)).item() == 0


def test_moe_mlp_fits_digits():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16
    y = torch.tensor(data.target)
    model = MoEMLP(64, 10, dim=64, layers=2, n_experts=4, top_k=2, dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(4):
        for idx in torch.randperm(len(x)).split(128):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx]) + 0.01 * moe_aux_loss(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9
    load = torch.tensor(expert_load(model)["blocks.0"])
    assert load.max() < 0.9  # the balancing loss keeps the router from sending everything to one expert
