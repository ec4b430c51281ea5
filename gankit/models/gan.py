"""The guide's vanilla GAN, as in the Keras MNIST example it is built around.

Generator: z (100) -> 256 -> 512 -> 1024 -> C*H*W, each hidden layer Dense ->
LeakyReLU(0.2) -> BatchNorm, output tanh. Discriminator: flatten -> 512 -> 256 -> 1,
LeakyReLU(0.2) between, sigmoid folded into the loss (logits form, numerically stable).

The step follows the original's three `train_on_batch` calls: D on half a batch of real
images (target 1), D on half a batch of fakes made by G in inference mode (target 0), then
G on a full batch of fresh noise through D (target 1), D's weights untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ..errors import GankitError, option
from .losses import LOSSES
from ..runtime import evaluating
from .adversarial import AdversarialConfig, AdversarialModel

# Keras BatchNormalization(momentum=0.8) keeps 0.8 of the old running statistics; PyTorch's
# momentum is the weight of the new batch, so the same rule is momentum=0.2. Keras'
# epsilon default is 1e-3 (PyTorch's is 1e-5). A well-known port passed 0.8 as eps instead.
BN_MOMENTUM = 0.2
BN_EPS = 1e-3


@dataclass
class GANConfig(AdversarialConfig):
    """The shared GAN options; the defaults are the guide's."""

    # Not the paired losses (rpgan): the half-batch D steps see reals and fakes apart.
    loss: str = field(default="bce", metadata={
        **AdversarialConfig.__dataclass_fields__["loss"].metadata,
        "choices": tuple(k for k, v in LOSSES.items() if v.pair is None)})

    def __post_init__(self):
        super().__post_init__()
        if LOSSES[self.loss].pair is not None:   # its D steps see reals and fakes apart
            raise GankitError(f"{option('loss', self.loss)} scores real and fake images in "
                              "pairs, and this model updates D on them one after the other: "
                              "use it with dcgan or cgan")


def keras_dense(n_in: int, n_out: int) -> nn.Linear:
    """nn.Linear with Keras Dense's defaults: Glorot-uniform weights, zero bias."""
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Generator(nn.Module):
    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = image_shape
        layers, width = [], latent_dim
        for hidden in (256, 512, 1024):
            layers += [keras_dense(width, hidden), nn.LeakyReLU(0.2),
                       nn.BatchNorm1d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM)]
            width = hidden
        layers += [keras_dense(width, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.image_shape)   # (B, latent) -> (B, C, H, W)


class Discriminator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], spectral_norm: bool = False):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            keras_dense(math.prod(image_shape), 512), nn.LeakyReLU(0.2),
            keras_dense(512, 256), nn.LeakyReLU(0.2),
            keras_dense(256, 1),
        )
        if spectral_norm:
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    _spectral_norm(layer)

    def forward(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        return self.net(x).squeeze(1)   # (B, C, H, W) -> (B,) logits


class GAN(AdversarialModel):
    """The guide's vanilla GAN: dense G and D, Adam(2e-4, 0.5), half-batch D updates."""

    Config = GANConfig

    def build_networks(self):
        return (Generator(self.cfg.latent_dim, self.image_shape),
                Discriminator(self.image_shape, self.cfg.spectral_norm))

    # The original's quirks, kept: half a batch of real images per D update ...
    def real_batch_size(self, batch_size: int) -> int:
        return max(1, batch_size // 2) * self.cfg.d_steps

    # ... fakes made like Keras' predict(), BatchNorm on its running statistics ...
    def make_fakes(self, n, labels):
        with evaluating(self.generator):
            return super().make_fakes(n, labels)

    # ... two D updates, real then fake, as its two train_on_batch calls; the reported
    # d_loss is their mean, as Keras printed it ...
    def update_discriminator(self, real, fake, labels):
        opt, loss = self.optimizers["d"], self.loss
        out_real = self.discriminate(real, labels)
        loss_real = loss.d_real(out_real)
        opt.zero_grad()
        loss_real.backward()
        opt.step()

        out_fake = self.discriminate(fake, labels)
        loss_fake = loss.d_fake(out_fake)
        total, penalties = self.with_penalty(loss_fake, real, fake, labels)
        opt.zero_grad()
        total.backward()
        opt.step()
        return ((loss_real + loss_fake) / 2).detach(), penalties, out_real.detach(), out_fake.detach()

    # ... and G trained on a full batch (twice the half batch).
    def generator_batch(self, n_real: int) -> int:
        return 2 * n_real
