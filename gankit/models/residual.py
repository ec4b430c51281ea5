"""Residual G and D without normalisation layers, after R3GAN (`--arch resnet`).

Huang, Gokaslan, Kuleshov & Tompkin, NeurIPS 2024, "The GAN is dead; long live the GAN!
A Modern GAN Baseline" (arXiv 2501.05441; official code github.com/brownvc/R3GAN). What is
theirs, as the paper and its code state it:

- each block is an inverted bottleneck: 1x1 conv widening by 2, a grouped 3x3 conv
  (16 channels a group, as their CIFAR-10 preset: 1,536 channels in 96 groups), a 1x1 conv
  back; leaky ReLU(0.2) with a learned bias after each of the first two; x + block(x);
- no normalisation anywhere: "fix-up" initialisation instead. Weights ~ N(0, gain^2 /
  fan_in), with gain = sqrt(2 / (1 + 0.2^2)) * L^(-1/4) for the first two convs of a block
  (L blocks in the network) and 0 for its last, so every block starts as the identity;
- resampling by the fixed [1, 3, 3, 1] filter (bilinear), with a 1x1 conv where the
  width changes; G starts from a learned constant basis scaled channel-wise by a linear
  map of z, D ends in a depthwise conv over the whole last map and a linear layer.

Sized for 28x28 digits on a CPU, not copied: stages at 7, 14 and 28 pixels (their
smallest is 4), one block a stage (they use two), widths 4W, 2W, W (theirs are 768
throughout). G keeps a tanh output so that its images are in [-1, 1], as every use here
expects (theirs is linear). A label enters G one-hot beside z (their embedding is a linear
map of the one-hot, the same thing) and D by projection (as theirs) or as input channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .nets import conv_plan

LRELU_GAIN = math.sqrt(2 / (1 + 0.2 ** 2))   # keeps a leaky ReLU's output variance
GROUP = 16          # channels a group in the grouped 3x3 conv
EXPANSION = 2       # the bottleneck's widening


def msr_init(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """Weights ~ N(0, gain^2 / fan_in) (He et al. 2015's rule), biases 0."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


def conv(c_in: int, c_out: int, k: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    return msr_init(nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False), gain)


class BiasedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2)


class Block(nn.Module):
    """x + (1x1 widen -> act -> grouped 3x3 -> act -> 1x1 narrow)(x), zero at init."""

    def __init__(self, c: int, blocks_in_network: int):
        super().__init__()
        wide = c * EXPANSION
        gain = LRELU_GAIN * blocks_in_network ** (-1 / 4)
        self.branch = nn.Sequential(
            conv(c, wide, gain=gain), BiasedLeakyReLU(wide),
            conv(wide, wide, 3, groups=max(1, wide // GROUP), gain=gain), BiasedLeakyReLU(wide),
            conv(wide, c, gain=0.0))

    def forward(self, x):
        return x + self.branch(x)


class Resample(nn.Module):
    """Up (x2, by a transposed conv) or down (/2) with the fixed [1, 3, 3, 1] filter, each
    channel on its own; the up filter is scaled by 4 so a constant image stays constant."""

    def __init__(self, channels: int, up: bool):
        super().__init__()
        f = torch.tensor([1.0, 3.0, 3.0, 1.0])
        kernel = torch.outer(f, f) / 64 * (4 if up else 1)
        self.register_buffer("kernel", kernel.expand(channels, 1, 4, 4).contiguous(),
                             persistent=False)
        self.up, self.channels = up, channels

    def forward(self, x):
        op = F.conv_transpose2d if self.up else F.conv2d
        return op(x, self.kernel, stride=2, padding=1, groups=self.channels)


def _widths(width: int, stages: int) -> list[int]:
    """Channels from the smallest map to the largest: 4W, 2W, W for three stages."""
    return [width * 2 ** (stages - 1 - k) for k in range(stages)]


class ResidualGenerator(nn.Module):
    """z (B, latent) [+ one-hot label] -> (B, C, H, W) in [-1, 1]."""

    def __init__(self, latent_dim: int, image_shape, width: int = 32, num_classes: int = 0):
        super().__init__()
        side, ups = conv_plan(image_shape)
        widths = _widths(width, ups + 1)
        self.num_classes, self.side = num_classes, side
        self.basis = nn.Parameter(torch.randn(widths[0], side, side))
        self.scale = msr_init(nn.Linear(latent_dim + num_classes, widths[0], bias=False))
        layers: list[nn.Module] = [Block(widths[0], len(widths))]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [conv(c_in, c_out), Resample(c_out, up=True), Block(c_out, len(widths))]
        self.body = nn.Sequential(*layers)
        self.to_image = conv(widths[-1], image_shape[0])

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        x = self.basis.unsqueeze(0) * self.scale(z)[:, :, None, None]
        return torch.tanh(self.to_image(self.body(x)))


class ResidualDiscriminator(nn.Module):
    """(B, C, H, W) [+ label] -> (B, 1) scores; a label by projection or as input maps."""

    def __init__(self, image_shape, width: int = 32, num_classes: int = 0,
                 conditioning: str = "projection"):
        super().__init__()
        channels = image_shape[0]
        side, downs = conv_plan(image_shape)
        widths = _widths(width, downs + 1)[::-1]     # W, 2W, 4W
        self.label_channels = num_classes if conditioning == "concat" else 0
        self.from_image = conv(channels + self.label_channels, widths[0])
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [Block(c_in, len(widths)), Resample(c_in, up=False), conv(c_in, c_out)]
        layers += [Block(widths[-1], len(widths)),
                   # the basis: one weight per channel and position of the last map
                   msr_init(nn.Conv2d(widths[-1], widths[-1], side, groups=widths[-1], bias=False)),
                   nn.Flatten()]
        self.body = nn.Sequential(*layers)
        projected = bool(num_classes) and conditioning == "projection"
        out = widths[-1] if projected else 1
        self.head = msr_init(nn.Linear(widths[-1], out, bias=False))
        # Their projection: the scores are <head(h), embed(y)>, the embedding scaled down by
        # sqrt(its size) so that the product starts near unit variance.
        self.embed = (msr_init(nn.Linear(num_classes, out, bias=False), 1 / math.sqrt(out))
                      if projected else None)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_channels:
            maps = F.one_hot(labels, self.label_channels).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], dim=1)
        out = self.head(self.body(self.from_image(x)))
        if self.embed is not None:
            onehot = F.one_hot(labels, self.embed.in_features).to(out.dtype)
            out = (out * self.embed(onehot)).sum(1, keepdim=True)
        return out
