"""DCGAN building blocks: shapes, conditioning, the two-player step, diversity, warnings, grids."""


import numpy as np
import pytest
import torch
from PIL import Image

from layerwise.models.gan import Discriminator, Generator
from layerwise.tasks.gan import default_gan_optimizers, gan_step, gan_warnings, sample_diversity
from layerwise.tasks.sampling import save_grid

SHAPES = [(1, 28, 28), (3, 32, 32)]

def test_conditional_generator_output_depends_on_label():
    torch.manual_seed(0)
    G = Generator((1, 28, 28), z_dim=16, n_classes=10, width=16)
    z = torch.randn(8, 16)
    a, b = G(z, torch.arange(8)), G(z, torch.arange(8) + 2)
    assert a.shape == (8, 1, 28, 28) and (a - b).abs().mean() > 0.1 * a.abs().mean()
    assert a.min() >= -1 and a.max() <= 1
    with pytest.raises(ValueError, match="labels"):
        G(z)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n_classes", [0, 10])
@pytest.mark.parametrize("spectral_norm", [True, False])
def test_gan_step_updates_both_networks(shape, n_classes, spectral_norm):
    torch.manual_seed(0)
    G = Generator(shape, z_dim=16, n_classes=n_classes, width=8)
    D = Discriminator(shape, n_classes=n_classes, width=8, spectral_norm=spectral_norm)
    assert G(torch.randn(2, 16), torch.tensor([0, 1]) if n_classes else None).shape == (2, *shape)
    before_g = [p.detach().clone() for p in G.parameters()]
    before_d = [p.detach().clone() for p in D.parameters()]
    opt_g, opt_d = default_gan_optimizers(G, D)
    assert opt_g.defaults["lr"] == 2e-4 and opt_d.defaults["betas"] == (0.5, 0.999)
    real = torch.rand(8, *shape) * 2 - 1
    labels = torch.randint(0, 10, (8,)) if n_classes else None
    out = gan_step(G, D, opt_g, opt_d, real, labels, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v) for v in out.values()) and 0 < out["d_real"] < 1 and 0 < out["d_fake"] < 1
    assert any(not torch.equal(a, p) for a, p in zip(before_g, G.parameters()))
    assert any(not torch.equal(a, p) for a, p in zip(before_d, D.parameters()))
    assert all(p.requires_grad for p in D.parameters())
    assert D(real, labels).shape == (8,)


def test_gan_step_bf16_is_finite():
    G, D = Generator((1, 28, 28), z_dim=16, width=8), Discriminator((1, 28, 28), width=8)
    out = gan_step(G, D, *default_gan_optimizers(G, D), torch.rand(8, 1, 28, 28) * 2 - 1, bf16=True)
    assert all(np.isfinite(v) for v in out.values())


def test_sample_diversity_separates_varied_from_collapsed(real_digits):
    real = real_digits(64) * 2 - 1
    collapsed = real[:1].repeat(64, 1, 1, 1) + 0.01 * torch.randn(64, *real.shape[1:])
    assert sample_diversity(real) > 0.3
    assert sample_diversity(collapsed) < 0.05


def test_gan_warnings_flag_collapse_and_winning_discriminator_not_health():
    healthy = [{"d_loss": 1.2, "g_loss": 0.9 + 0.02 * i, "d_real": 0.65, "d_fake": 0.35, "diversity": 0.7}
               for i in range(6)]
    assert gan_warnings(healthy) == []
    collapsed = [dict(h, diversity=d) for h, d in zip(healthy, [0.7, 0.72, 0.5, 0.2, 0.08, 0.05])]
    assert any("mode collapse" in w for w in gan_warnings(collapsed))
    winning = healthy[:3] + [{"d_loss": 0.05, "g_loss": g, "d_real": 0.98, "d_fake": 0.02, "diversity": 0.7}
                             for g in (4.0, 5.5, 7.0)]
    warnings = gan_warnings(winning)
    assert len(warnings) == 1 and "discriminator is winning" in warnings[0]


def test_save_grid_writes_png(tmp_path):
    images = torch.rand(10, 1, 28, 28) * 2 - 1
    save_grid(images, tmp_path / "grid.png", nrow=4)
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (4 * 30 + 2, 3 * 30 + 2) and im.mode == "L"
    save_grid(torch.rand(3, 3, 32, 32) * 2 - 1, tmp_path / "rgb.png")
    with Image.open(tmp_path / "rgb.png") as im:
        assert im.mode == "RGB"


def test_ema_generator_is_the_running_average_and_the_one_that_samples():
    from layerwise.models.gan import GAN

    torch.manual_seed(0)
    gan = GAN((1, 28, 28), z_dim=16, width=8, ema=0.9)
    opt_g, opt_d = default_gan_optimizers(gan.generator, gan.discriminator)
    expected = [p.detach().clone() for p in gan.generator.parameters()]
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    for step in range(20):
        gan_step(gan.generator, gan.discriminator, opt_g, opt_d, real)
        gan.update_ema(step)
        d = min(0.9, (1 + step) / (10 + step))
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, gan.generator.parameters())]
    for e, avg, p in zip(expected, gan.generator_ema.parameters(), gan.generator.parameters()):
        assert torch.allclose(e, avg, atol=1e-6) and not avg.requires_grad
    assert any(not torch.allclose(a, p) for a, p in zip(gan.generator_ema.parameters(), gan.generator.parameters()))
    gan.eval()
    z = torch.randn(4, 16)
    assert torch.equal(gan(z), gan.generator_ema(z)) and not torch.equal(gan(z), gan.generator(z))
    assert not any(p is q for p in gan.generator_ema.parameters() for q in gan.generator.parameters())


def test_self_conditioned_gan_draws_clusters_from_its_prior():
    from layerwise.models.gan import GAN

    gan = GAN((1, 28, 28), z_dim=16, width=8, clusters=3).eval()
    assert gan.n_classes == 0 and gan.generator.n_classes == 3 and gan.discriminator.n_classes == 3
    assert torch.allclose(gan.cluster_prior, torch.full((3,), 1 / 3))  # a buffer: saved with the weights
    assert "cluster_prior" in gan.state_dict()
    gan.cluster_prior.copy_(torch.tensor([0.0, 1.0, 0.0]))
    assert gan.draw_clusters(50).tolist() == [1] * 50
    g, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    torch.multinomial(gan.cluster_prior, 5, replacement=True, generator=g2)  # the draw of the cluster ids
    assert torch.equal(gan.sample(5, generator=g), gan.sampler.sample(5, torch.ones(5, dtype=torch.long), g2))
    z = torch.randn(5, 16)
    assert torch.equal(gan(z), gan.sampler(z, torch.ones(5, dtype=torch.long)))  # calling it draws clusters too
    assert GAN((1, 28, 28), width=8).draw_clusters(4) is None
    with pytest.raises(ValueError, match="classes or on clusters, not both"):
        GAN((1, 28, 28), n_classes=10, clusters=10)
