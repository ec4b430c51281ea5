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

import math

import torch
import torch.nn.functional as F

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


# --- ADA: adaptive discriminator augmentation ------------------------------------------
#
# Karras, Aittala, Hellsten, Laine, Lehtinen & Aila 2020, "Training Generative Adversarial
# Networks with Limited Data" (https://arxiv.org/abs/2006.06676). Every op of the pipeline
# applies to an image with probability p; p follows D's overfitting: up while D calls more
# than `target` of the reals real (r_t = E[sign(D(real))] > 0.6), down otherwise. Below
# p of about 0.8 the augmentations do not "leak" into G's images, since D still sees
# un-augmented images often enough to tell them apart. The ops here are the paper's
# geometric and colour ones that suit digits and photographs alike: integer translation,
# isotropic scaling, rotation, anisotropic scaling, fractional translation, brightness,
# contrast, with the paper's strengths (their Appendix B); the flips and 90-degree turns
# are left out (a mirrored digit is not a digit).

ADA_KIMG = 100   # p can move from 0 to 1 in this many thousand images (StyleGAN3's value;
                 # StyleGAN2-ADA's 500 is sized for runs of tens of millions of images)


def _chance(p: torch.Tensor, b: int, device) -> torch.Tensor:
    """(B,) floats: 1 where an op applies to the image (probability p), else 0."""
    return (torch.rand(b, device=device) < p).to(torch.float32)


def ada_augment(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) in [-1, 1] through the pipeline at probability p (a 0-d tensor, so that
    no value leaves the device); differentiable with respect to x, twice (R1 through it).
    Uncovered pixels are black (-1), as DiffAugment's fill here. An image no op applied to
    comes back exactly as it was (not resampled)."""
    b, dev = x.shape[0], x.device
    chances = []

    def chance():
        chances.append(_chance(p, b, dev))
        return chances[-1]

    def lognormal(std):
        return torch.exp2(torch.randn(b, device=dev) * std * chance())

    # One affine map per image, composed from the geometric ops (the output pixel at u reads
    # the input at A u + t, in grid_sample's [-1, 1] coordinates).
    shift = (torch.rand(b, 2, device=dev) * 2 - 1) * 0.125 * 2 * chance()[:, None]
    shift = torch.round(shift * x.shape[-1] / 2) / (x.shape[-1] / 2)   # whole pixels
    iso = lognormal(0.2)
    # The paper rotates twice, each at this chance, so that one of them happens with p; once here.
    p_rot = 1 - torch.sqrt((1 - p).clamp(min=0))
    turned = (torch.rand(b, device=dev) < p_rot).to(torch.float32)
    chances.append(turned)
    angle = (torch.rand(b, device=dev) * 2 - 1) * math.pi * turned
    aniso = lognormal(0.2)
    frac = torch.randn(b, 2, device=dev) * 0.125 * 2 * chance()[:, None]
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = 1 / (iso * aniso), aniso / iso          # inverse maps: zooming in reads less
    theta = torch.stack([torch.stack([cos * sx, -sin * sx, shift[:, 0] + frac[:, 0]], 1),
                         torch.stack([sin * sy, cos * sy, shift[:, 1] + frac[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros",
                      align_corners=False) - 1
    # Colour: brightness (add N(0, 0.2)), contrast (scale about the mean, lognormal 0.5).
    view = (b,) + (1,) * (x.dim() - 1)
    y = y + (torch.randn(b, device=dev) * 0.2 * chance()).view(view)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * lognormal(0.5).view(view) + mean
    applied = torch.stack(chances).amax(0) > 0
    return torch.where(applied.view(view), y, x)


@torch.no_grad()
def ada_adjust(p: torch.Tensor, out_real: torch.Tensor, target: float, images: int) -> None:
    """Move p (in place) by the sign of r_t - target, where r_t = E[sign(out_real)] (D's
    real-image outputs, less their origin), fast enough to cross [0, 1] in ADA_KIMG
    thousand images."""
    r_t = torch.sign(out_real).mean()
    p.add_(torch.sign(r_t - target) * images / (ADA_KIMG * 1000)).clamp_(0, 1)
