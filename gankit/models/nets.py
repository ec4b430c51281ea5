"""Convolutional building blocks shared by the model files (not models themselves).

Sized by the DCGAN rules (Radford et al. 2016): strided convolutions instead of pooling,
BatchNorm in the generator (not on its output), ReLU in G and LeakyReLU(0.2) in D, weights
drawn from N(0, 0.02). Each stride-2 stage doubles (G) or halves (D) the image side, so
28x28 runs 7 -> 14 -> 28 and 32x32 or 64x64 start from 4x4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from ..errors import GankitError, option


def mlp(n_in: int, hidden: int, n_out: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Two hidden layers of `hidden` units: the networks of the table VAEs (MIWAE, TVAE)."""
    return nn.Sequential(nn.Linear(n_in, hidden), activation(), nn.Linear(hidden, hidden),
                         activation(), nn.Linear(hidden, n_out))


def conv_plan(image_shape: tuple[int, int, int]) -> tuple[int, int]:
    """(start side, number of stride-2 stages): 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4)."""
    _, h, w = image_shape
    if h != w:
        raise GankitError(f"convolutional models need square images, got {h}x{w}: "
                          f"pass {option('image_size', 'N')}")
    side, stages = h, 0
    while side % 2 == 0 and side // 2 >= 4:
        side, stages = side // 2, stages + 1
    if stages == 0:
        raise GankitError(f"convolutional models need an even image size of 8 or more, got {h}: "
                          f"pass e.g. {option('image_size', 32)}")
    return side, stages


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: conv weights ~ N(0, 0.02); BatchNorm scale ~ N(1, 0.02), shift 0.

    The projection embedding too: at torch's N(0, 1) its term dwarfed the rest of D's
    output (G's loss near 11 after 800 steps) and G collapsed to one image per class."""
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ConvGenerator(nn.Module):
    """z (B, latent) [+ one-hot label] -> (B, C, H, W); tanh output, or raw logits."""

    def __init__(self, latent_dim: int, image_shape, width: int = 64, num_classes: int = 0,
                 tanh: bool = True):
        super().__init__()
        channels = image_shape[0]
        side, stages = conv_plan(image_shape)
        # A label enters as a one-hot vector beside z (Mirza & Osindero 2014). A learned
        # embedding in its place let G ignore z: every sample of a class came out the same
        # (measured: pixel std across z 0.04 against 0.29 with one-hot, cgan, 800 steps).
        self.num_classes = num_classes
        in_dim = latent_dim + num_classes
        c = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [nn.Linear(in_dim, c * side * side, bias=False),
                                   nn.Unflatten(1, (c, side, side)), nn.BatchNorm2d(c), nn.ReLU()]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        layers.append(nn.ConvTranspose2d(c, channels, 4, 2, 1))
        if tanh:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        return self.net(z)


class ConvEncoder(nn.Module):
    """(B, C, H, W) [+ label] -> (B, out_dim): DCGAN's discriminator body with a linear head.

    Used as the GAN discriminator (out_dim 1) and as the (V)AE encoder. `norm` is "batch"
    or "none" (a WGAN-GP critic must not use BatchNorm: the penalty is per sample, and
    BatchNorm mixes samples). Labels enter either as one-hot input channels (K constant
    maps, "concat"), or by projection (Miyato & Koyama 2018): out += <embed(y), features>.
    """

    def __init__(self, image_shape, out_dim: int = 1, width: int = 64, norm: str = "batch",
                 spectral_norm: bool = False, num_classes: int = 0, conditioning: str = "concat"):
        super().__init__()
        channels, h, w = image_shape
        side, stages = conv_plan(image_shape)
        self.label_channels = num_classes if conditioning == "concat" else 0
        self.project = None
        channels += self.label_channels
        c = width
        layers: list[nn.Module] = [nn.Conv2d(channels, c, 4, 2, 1), nn.LeakyReLU(0.2)]
        for _ in range(stages - 1):
            layers.append(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(2 * c))
            layers.append(nn.LeakyReLU(0.2))
            c *= 2
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        features = c * side * side
        self.head = nn.Linear(features, out_dim)
        if num_classes and conditioning == "projection":
            self.project = nn.Embedding(num_classes, features)
        dcgan_init(self)
        if spectral_norm:   # after init: the parametrization divides the initial weights
            for m in [*self.body, self.head, self.project]:
                if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                    _sn(m)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_channels:
            maps = F.one_hot(labels, self.label_channels).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], dim=1)
        h = self.body(x)                         # (B, features)
        out = self.head(h)                       # (B, out_dim)
        if self.project is not None:
            out = out + (self.project(labels) * h).sum(1, keepdim=True)
        return out

