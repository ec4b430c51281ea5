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
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, _finite_positive, _positive
from ..errors import GankitError
from .base import GenerativeModel, adam

# Keras BatchNormalization(momentum=0.8) keeps 0.8 of the old running statistics; PyTorch's
# momentum is the weight of the new batch, so the same rule is momentum=0.2. Keras'
# epsilon default is 1e-3 (PyTorch's is 1e-5). A well-known port passed 0.8 as eps instead.
BN_MOMENTUM = 0.2
BN_EPS = 1e-3


@dataclass
class GANConfig(ModelConfig):
    latent_dim: int = field(default=100, metadata={"help": "size of the noise vector z"})
    lr_g: float = field(default=2e-4, metadata={"help": "generator learning rate (Adam)"})
    lr_d: float = field(default=2e-4, metadata={
        "help": "discriminator learning rate; lower it when D overpowers G"})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta1 for both networks"})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2 for both networks"})

    def __post_init__(self):
        _positive(self, "latent_dim")
        _finite_positive(self, "lr_g", "lr_d")
        for name in ("beta1", "beta2"):
            b = getattr(self, name)
            if not (math.isfinite(b) and 0 <= b < 1):
                raise GankitError(f"{name} must be in [0, 1), got {b!r}")


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
    def __init__(self, image_shape: tuple[int, int, int]):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            keras_dense(math.prod(image_shape), 512), nn.LeakyReLU(0.2),
            keras_dense(512, 256), nn.LeakyReLU(0.2),
            keras_dense(256, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)   # (B, C, H, W) -> (B,) logits


class GAN(GenerativeModel):
    """The guide's vanilla GAN: dense G and D, Adam(2e-4, 0.5), half-batch D updates."""

    Config = GANConfig
    metric_names = ("d_loss", "d_acc", "g_loss")

    def __init__(self, cfg: GANConfig, image_shape, num_classes=0):
        super().__init__(cfg, image_shape, num_classes)
        self.generator = Generator(cfg.latent_dim, self.image_shape)
        self.discriminator = Discriminator(self.image_shape)

    def configure_optimizers(self):
        betas = (self.cfg.beta1, self.cfg.beta2)
        return {"g": adam(self.generator.parameters(), self.cfg.lr_g, betas),
                "d": adam(self.discriminator.parameters(), self.cfg.lr_d, betas)}

    def real_batch_size(self, batch_size: int) -> int:
        return max(1, batch_size // 2)   # the original's half_batch

    def training_step(self, real, labels=None):
        G, D, opt = self.generator, self.discriminator, self.optimizers
        half = real.shape[0]

        # Fakes for D, made like Keras' predict(): BatchNorm on running statistics.
        G.eval()
        with torch.no_grad():
            fake = G(self.latents(half))
        G.train()

        # D: two updates, real then fake, as the original's two train_on_batch calls.
        # softplus(-x) is BCE(sigmoid(x), 1), softplus(x) is BCE(sigmoid(x), 0).
        logit_real = D(real)
        loss_real = F.softplus(-logit_real).mean()
        opt["d"].zero_grad()
        loss_real.backward()
        opt["d"].step()

        logit_fake = D(fake)
        loss_fake = F.softplus(logit_fake).mean()
        opt["d"].zero_grad()
        loss_fake.backward()
        opt["d"].step()

        # G: a full batch of fresh noise through the frozen D. Asking backward for G's
        # gradients only skips D's weight gradients, which would be thrown away.
        logit_g = D(G(self.latents(2 * half)))
        g_loss = F.softplus(-logit_g).mean()
        opt["g"].zero_grad()
        g_loss.backward(inputs=list(G.parameters()))
        opt["g"].step()

        # Keras' binary accuracy: sigmoid > 0.5, i.e. logit > 0, counts as "real".
        d_acc = ((logit_real > 0).float().mean() + (logit_fake <= 0).float().mean()) / 2
        return {"d_loss": ((loss_real + loss_fake) / 2).detach(),
                "d_acc": d_acc, "g_loss": g_loss.detach()}

    def latents(self, n, generator=None):
        if generator is None:   # the training path: draw on the device, no host copy
            return torch.randn(n, self.cfg.latent_dim, device=self.device)
        return torch.randn(n, self.cfg.latent_dim, generator=generator).to(self.device)

    @torch.no_grad()
    def sample(self, n=None, *, latents=None, labels=None, generator=None):
        if latents is None:
            latents = self.latents(n, generator)
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(latents.to(self.device))
        finally:
            self.generator.train(was_training)
