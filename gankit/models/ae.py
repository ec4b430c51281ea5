"""Convolutional autoencoder, generating from a Gaussian mixture fitted to its codes.

Encoder: the DCGAN discriminator body with a linear head to a code of `latent_dim`;
decoder: the DCGAN generator (tanh output, images in [-1, 1]). Trained on the mean squared
error between an image and its reconstruction.

An autoencoder has no prior to sample from, so the model fits one: a mixture of
`--density` Gaussians fitted to the codes of the training images (models/density.py; the
"ex-post density estimation" of Ghosh et al. 2020), refitted by the trainer as training
goes and saved in every checkpoint. decode() takes standard-normal noise, as every model's
does, and turns it into codes of the mixture.

The defaults (10 components, batch 64, 7,000 steps) are the best recipe benchmarks/sweep.py
found on the validation split within 3 minutes of one CPU thread; the mixture is why the
samples look like digits at all. Measured: docs/measurements/recipes.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..config import ModelConfig, finite_positive, positive, unit_interval
from ..errors import GankitError
from ..runtime import evaluating
from .base import GenerativeModel, adam
from .density import CodeDensity, FittedPrior
from .nets import ConvEncoder, ConvGenerator

# Checkpoints from before the mixture kept one running Gaussian (code_mean, code_cov) and
# factorised it with this jitter, relative to its mean variance; upgrade_state() does the same.
JITTER = 1e-5


@dataclass
class AEConfig(ModelConfig):
    latent_dim: int = field(default=16, metadata={
        "help": "size of the code between encoder and decoder"})
    width: int = field(default=32, metadata={
        "help": "channels of the encoder's first and the decoder's last conv layer; they "
                "double every stage (64 is DCGAN's size, about 3x slower on a CPU)"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate (Adam)"})
    beta1: float = field(default=0.9, metadata={"help": "Adam beta1"})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2"})
    density: int = field(default=10, metadata={
        "help": "Gaussians in the mixture fitted to the training codes that samples are drawn "
                "from (Ghosh et al. 2020 use 10)", "saved_default": 1})

    # An autoencoder has no prior to fall back on; a VAE may sample its prior (0).
    min_density: ClassVar[int] = 1

    def __post_init__(self):
        positive(self, "latent_dim", "width")
        finite_positive(self, "lr")
        unit_interval(self, "beta1", "beta2")
        if self.density < self.min_density:
            raise GankitError(f"density must be >= {self.min_density}, got {self.density}")


class AE(FittedPrior, GenerativeModel):
    """Convolutional autoencoder; generates by sampling a Gaussian mixture fitted to its training codes."""

    Config = AEConfig
    train_defaults = {"steps": 7000, "batch_size": 64}
    metric_names = ("rec_loss",)
    sampling_network = "decoder"
    reconstructs = True

    def __init__(self, cfg: AEConfig, image_shape, num_classes=0):
        super().__init__(cfg, image_shape, num_classes)
        d = cfg.latent_dim
        self.encoder = ConvEncoder(self.image_shape, d, cfg.width, norm="batch")
        self.decoder = ConvGenerator(d, self.image_shape, cfg.width)
        self.density = CodeDensity(d, cfg.density)   # N(0, I) until the trainer fits it

    def configure_optimizers(self):
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        return {"ae": adam(params, self.cfg.lr, (self.cfg.beta1, self.cfg.beta2))}

    def training_step(self, real, labels=None):
        codes = self.encoder(real)                               # (B, latent_dim)
        # Mean over pixels and batch: Adam's steps do not depend on the loss's scale, so
        # this only sets the reported number, which then reads the same for any image size.
        loss = F.mse_loss(self.decoder(codes), real)
        opt = self.optimizers["ae"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"rec_loss": loss.detach()}

    def codes(self, images, labels=None):
        return self.encoder(images)

    def decode(self, latents, labels=None):
        return self.sampler(self.prior_codes(latents))

    def upgrade_state(self, weights):
        """Before the mixture, the model kept a running Gaussian N(code_mean, code_cov):
        one component, factorised as the model then did."""
        if "code_mean" not in weights:
            return weights
        weights = dict(weights)
        mean, cov = weights.pop("code_mean"), weights.pop("code_cov")
        weights.pop("codes_seen", None)
        jitter = JITTER * cov.diagonal().mean().clamp_min(1e-6)
        chol = torch.linalg.cholesky(cov + jitter * torch.eye(len(cov)))
        weights.update({"density.weights": torch.ones(1, 1), "density.means": mean[None, None],
                        "density.chol": chol[None, None], "density.fitted_step": torch.tensor(0)})
        return weights

    @torch.no_grad()
    def reconstruct(self, images, labels=None):
        with evaluating(self):   # BatchNorm's running statistics, not this batch's
            return self.decoder(self.encoder(images))
