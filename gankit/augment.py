"""DiffAugment: differentiable augmentation for training GANs on little data.

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"
(https://arxiv.org/abs/2006.10738). The discriminator sees every image, real and fake,
through the same random augmentation, so it cannot memorise a small training set; because
the augmentation is differentiable, the generator's gradient flows back through it. The
paper's choice for small data is translation + cutout, the two ops here.

Every image gets its own random parameters, drawn from torch's global RNG on the images'
device: a seeded run is reproducible and nothing waits for the host. No loop over the
batch: each op is index arithmetic on (B, H, W) grids.

Fill value: the paper's code pads and cuts out with 0, the middle grey of its [-1, 1]
images. gankit fills with -1 (black) by default: our datasets (MNIST, Fashion-MNIST, most
folders of objects on dark or empty backgrounds) have black borders, so a black fill keeps
augmented images close to real ones, and D learns nothing from a grey frame it would never
see otherwise. Either is valid, since reals and fakes are augmented alike; pass `fill=0.0`
for the paper's choice.
"""

from __future__ import annotations

import torch

TRANSLATION = 1 / 8   # largest shift, as a fraction of the image size (the paper's 0.125)
CUTOUT = 1 / 2        # side of the cut-out square, as a fraction of the image size


def translate(x: torch.Tensor, ratio: float = TRANSLATION, fill: float = -1.0) -> torch.Tensor:
    """Shift each image by its own random integer offset; uncovered pixels become `fill`.

    x: (B, C, H, W) float. Offsets are uniform in [-round(ratio*H), round(ratio*H)] rows
    and likewise for columns. Returns (B, C, H, W); pixels shifted off the image are lost.
    """
    b, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    # Output pixel (i, j) reads input pixel (i - dy, j - dx), or `fill` where that is outside.
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy          # (B, H, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx          # (B, 1, W)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)        # (B, H, W)
    src = rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)               # (B, H, W) flat index
    # gather is differentiable in x: its backward scatters each output gradient to its source.
    moved = x.flatten(2).gather(2, src.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)
    return torch.where(inside.unsqueeze(1), moved, torch.full_like(moved, fill))


def cutout(x: torch.Tensor, ratio: float = CUTOUT, fill: float = -1.0) -> torch.Tensor:
    """Set a random square of side round(ratio * size) in each image to `fill`.

    x: (B, C, H, W) float; returns (B, C, H, W). As in DeVries & Taylor 2017 (the cutout
    the paper uses), the square's centre is uniform over the image and the square is
    clipped at the borders, so near an edge less than a full square is blanked; every
    pixel is then equally likely to be cut.
    """
    b, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # Top edge from -(sh // 2) (upper half off the image) to h - ceil(sh / 2) (lower half
    # off): the same number of rows is visible at both extremes.
    top = torch.randint(-(sh // 2), h - (sh + 1) // 2 + 1, (b, 1, 1), device=x.device)
    left = torch.randint(-(sw // 2), w - (sw + 1) // 2 + 1, (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    cut = (rows >= top) & (rows < top + sh) & (cols >= left) & (cols < left + sw)   # (B, H, W)
    return torch.where(cut.unsqueeze(1), torch.full_like(x, fill), x)


def diff_augment(x: torch.Tensor, fill: float = -1.0) -> torch.Tensor:
    """Translation then cutout, each image with its own random parameters.

    x: (B, C, H, W) float images in [-1, 1] (any H, W, C); returns the same shape and dtype,
    differentiable with respect to x. Apply it to real and fake images alike before D.
    """
    return cutout(translate(x, fill=fill), fill=fill)
