"""Batch augmentation policies: shapes, label mixing, reproducibility from a seeded generator."""

import pytest
import torch

from layerwise.data.policies import (
    OPS,
    cutmix,
    cutout,
    jitter,
    mixup,
    rand_augment,
    random_flip,
    random_shift,
    scale,
    weak_strong,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(shape=(1, 28, 28), b: int = 16) -> torch.Tensor:
    return torch.rand(b, *shape, generator=gen(123))


IMAGE_POLICIES = {
    "random_shift": lambda x, g: random_shift(x, 2, generator=g),
    "random_flip": lambda x, g: random_flip(x, generator=g),
    "rand_augment": lambda x, g: rand_augment(x, 2, 9, generator=g),
    "cutout": lambda x, g: cutout(x, 8, generator=g),
    "jitter": lambda x, g: jitter(x, 0.1, generator=g),
    "scale": lambda x, g: scale(x, 0.1, generator=g),
    "weak": lambda x, g: weak_strong(x, generator=g)[0],
    "strong": lambda x, g: weak_strong(x, generator=g)[1],
}


@pytest.mark.parametrize("name", IMAGE_POLICIES)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_shape_kept_and_deterministic_per_seed(name, shape):
    x = images(shape)
    f = IMAGE_POLICIES[name]
    a, b, c = f(x, gen(0)), f(x, gen(0)), f(x, gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


@pytest.mark.parametrize("op", OPS)
def test_every_rand_augment_op_keeps_shape_and_values_finite(op):
    x = torch.randn(6, 3, 20, 24)  # standardised data, non-square
    y = OPS[op](x, 0.9, gen(0))
    assert y.shape == x.shape and torch.isfinite(y).all()
    if op != "identity":
        assert not torch.equal(y, x)


def test_rand_augment_magnitude_zero_changes_little():
    x = images()
    y = rand_augment(x, n=2, magnitude=0, generator=gen(0))
    assert (y - x).abs().max() < 0.05  # only posterize's 8-bit rounding and 0-pixel cutouts remain


def test_flip_twice_is_identity():
    x = images()
    once = random_flip(x, generator=gen(5))
    assert torch.equal(random_flip(once, generator=gen(5)), x)
    flipped = (once != x).flatten(1).any(1)
    assert 0 < flipped.sum() < len(x)
    assert torch.equal(once[flipped], x[flipped].flip(3))


def test_rotate_by_quarter_turn_matches_rot90():
    from layerwise.data.policies import _affine, _matrix

    x = images(b=4)
    angle = torch.full((4,), torch.pi / 2)
    zero = torch.zeros(4)
    y = _affine(x, _matrix(x, angle.cos(), -angle.sin(), angle.sin(), angle.cos(), zero, zero))
    assert torch.allclose(y, x.rot90(1, (2, 3)), atol=1e-4) or torch.allclose(y, x.rot90(-1, (2, 3)), atol=1e-4)


@pytest.mark.parametrize("mix", [mixup, cutmix])
def test_mixed_labels_sum_to_one_and_match_pixels(mix):
    x, y = images(b=32), torch.eye(32)
    xm, ym = mix(x, y, generator=gen(0))
    assert xm.shape == x.shape and ym.shape == y.shape
    torch.testing.assert_close(ym.sum(1), torch.ones(32))
    assert torch.equal(xm, mix(x, y, generator=gen(0))[0])
    assert not torch.equal(xm, mix(x, y, generator=gen(1))[0])
    if mix is cutmix:  # each label's weight equals its image's share of the pixels (labels all distinct)
        kept = (xm == x).flatten(1).float().mean(1)
        torch.testing.assert_close((ym * y).sum(1), kept)


def test_scale_is_per_sample_and_feature_for_series():
    x = torch.ones(4, 50, 3)
    y = scale(x, 0.2, generator=gen(0))
    assert torch.equal(y, y[:, :1].expand_as(y))  # constant along time
    assert y[:, 0].unique().numel() == 12


def test_weak_strong_views_differ():
    x = images()
    weak, strong = weak_strong(x, flip=False, generator=gen(0))
    assert weak.shape == strong.shape == x.shape
    assert (strong - x).abs().mean() > (weak - x).abs().mean() * 0.5
    assert not torch.equal(weak, strong)
