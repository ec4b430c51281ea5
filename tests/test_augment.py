"""DiffAugment: shapes, gradients, what each op does, seeding."""

import pytest
import torch

from gankit.models.augment import cutout, diff_augment, translate

SHAPES = [(16, 1, 28, 28), (16, 3, 32, 32), (8, 3, 64, 64), (8, 1, 27, 30)]


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_and_dtype_are_kept(shape):
    x = torch.rand(shape) * 2 - 1
    for fn in (diff_augment, translate, cutout):
        y = fn(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert y.min() >= -1 and y.max() <= 1
    assert diff_augment(x.double()).dtype == torch.float64


@pytest.mark.parametrize("shape", SHAPES[:2])
def test_gradients_flow_to_the_input(shape):
    x = (torch.rand(shape) * 2 - 1).requires_grad_()
    y = diff_augment(x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # a pixel's gradient is 0 exactly where it was shifted out or cut: far from all of them
    assert (x.grad != 0).float().mean() > 0.2


def test_translation_moves_a_pixel_by_at_most_an_eighth():
    torch.manual_seed(0)
    x = torch.full((64, 1, 28, 28), -1.0)
    x[:, :, 14, 14] = 1.0        # a bright pixel in the middle: it can never leave the image
    y = translate(x)
    assert ((y == 1).flatten(1).sum(1) == 1).all()              # moved, never lost or doubled
    pos = (y[:, 0] == 1).flatten(1).float().argmax(1)
    r, c = pos // 28, pos % 28
    assert ((r - 14).abs() <= 4).all() and ((c - 14).abs() <= 4).all()   # round(28 / 8) = 4
    assert (pos != 14 * 28 + 14).sum() > 48                     # most images moved
    assert len(set(pos.tolist())) > 20                           # each by its own offset


def test_translation_pads_with_the_fill_value():
    torch.manual_seed(1)
    y = translate(torch.ones(64, 3, 32, 32))
    lost = (y == -1).all(1).flatten(1).sum(1)                    # black pixels per image
    # a shift by (dy, dx) uncovers 32|dy| + 32|dx| - |dy dx| pixels, |dy|, |dx| <= 32 / 8
    possible = {32 * a + 32 * b - a * b for a in range(5) for b in range(5)}
    assert set(lost.tolist()) <= possible and (lost > 0).sum() > 48
    assert ((y == 1) | (y == -1)).all()
    assert translate(torch.ones(4, 1, 8, 8), fill=0.0).min() >= 0


@pytest.mark.parametrize("size,side", [(28, 14), (32, 16), (64, 32), (30, 15)])
def test_cutout_blanks_one_clipped_square_of_half_the_size(size, side):
    torch.manual_seed(2)
    y = cutout(torch.ones(200, 3, size, size))
    cut = (y == -1)
    assert (cut.all(1) == cut.any(1)).all()                     # same square in every channel
    cut = cut[:, 0]
    area = cut.flatten(1).sum(1)
    rows, cols = cut.any(2).sum(1), cut.any(1).sum(1)
    assert (area == rows * cols).all()                           # one axis-aligned rectangle
    assert (rows <= side).all() and (cols <= side).all()
    half = side - side // 2                                      # clipped at most to half a side
    assert (rows >= half).all() and (cols >= half).all()
    assert (area == side * side).sum() > 30                      # often the full square


def test_same_seed_same_augmentation_and_each_image_its_own():
    x = torch.rand(32, 3, 32, 32) * 2 - 1
    torch.manual_seed(7)
    a = diff_augment(x)
    torch.manual_seed(7)
    b = diff_augment(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, diff_augment(x))                   # the RNG moved on
    same = torch.ones(32, 1, 28, 28)
    y = diff_augment(same)
    assert len({tuple(m.flatten().tolist()) for m in (y == -1)}) > 16
