"""Autoencoder models: shapes, the VAE's packed output, sampling, scores, and learning on real digits."""


import numpy as np
import pytest
import torch

from layerwise.models.autoencoder import VAE, ConvAutoencoder, DenseAutoencoder, flatten_inputs

SHAPES = [(1, 28, 28), (3, 32, 32)]

@pytest.mark.parametrize("shape", SHAPES)
def test_autoencoder_shapes(shape):
    x = torch.randn(4, *shape)
    d = int(np.prod(shape))
    dense, conv = DenseAutoencoder(d, latent=8), ConvAutoencoder(shape, latent=8)
    assert dense.encode(x).shape == conv.encode(x).shape == (4, 8)
    assert dense(x).shape == (4, d) and conv(x).shape == x.shape
    assert dense.decode(torch.randn(4, 8)).shape == (4, d)


def test_dense_autoencoder_takes_tables_with_categories():
    x_num, x_cat = torch.randn(5, 3), torch.tensor([[0, 2], [1, 0], [2, 1], [1, 1], [0, 0]])
    flat = flatten_inputs((x_num, x_cat), (3, 3))
    assert flat.shape == (5, 9) and torch.equal(flat[:, :3], x_num)
    assert flat[:, 3:].sum(1).tolist() == [2.0] * 5 and flat[0, 3 + 0] == 1 and flat[0, 6 + 2] == 1
    ae = DenseAutoencoder(3, latent=2, hidden=(8,), cat_sizes=(3, 3))
    assert ae(x_num, x_cat).shape == (5, 9) and ae.encode(x_num, x_cat).shape == (5, 2)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("conv", [False, True])
def test_vae_packed_output_sample_and_score(shape, conv):
    vae = VAE(shape, latent=6, conv=conv)
    x = torch.randn(5, *shape)
    d = int(np.prod(shape))
    out = vae(x)
    assert out.shape == (5, d + 12)
    recon, mu, logvar = vae.unpack(out)
    assert recon.shape == (5, d) and mu.shape == logvar.shape == (5, 6)
    vae.eval()
    a, b = vae(x), vae(x)
    assert torch.equal(a, b), "evaluation mode decodes the posterior mean: deterministic"
    assert torch.equal(vae.encode(x), vae.unpack(a)[1])
    loss = vae.loss(x.flatten(1), out)
    assert loss.ndim == 0 and torch.isfinite(loss)
    g = torch.Generator().manual_seed(0)
    assert vae.sample(3, generator=g).shape == (3, *shape)
    assert torch.equal(vae.sample(3, generator=torch.Generator().manual_seed(0)),
                       vae.sample(3, generator=torch.Generator().manual_seed(0)))
    assert vae.score(x).shape == (5,)
    rec, kl = vae.terms(x.flatten(1), a)
    torch.testing.assert_close(vae.score(x), rec + kl)


def test_vae_training_mode_samples_z():
    torch.manual_seed(0)
    vae = VAE((4,), latent=2, hidden=(8,))
    x = torch.randn(6, 4)
    assert not torch.equal(vae(x)[:, :4], vae(x)[:, :4])


@pytest.mark.parametrize("likelihood", ["mse", "bce"])
def test_vae_learns_digits_and_scores_noise_as_anomalous(likelihood, real_digits):
    torch.manual_seed(0)
    x = real_digits(256)
    vae = VAE(tuple(x.shape[1:]), latent=8, hidden=(256, 128), likelihood=likelihood)
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    losses = []
    for _ in range(50):
        loss = vae.loss(x.flatten(1), vae(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    noise = torch.rand(64, *x.shape[1:])
    vae.eval()
    assert vae.score(noise).median() > 2 * vae.score(x[:64]).median()
