"""Convolutional autoencoder, with generation from a Gaussian fitted to its codes.

Encoder: the DCGAN discriminator body with a linear head to a code of `latent_dim`;
decoder: the DCGAN generator (tanh output, images in [-1, 1]). Trained on the mean squared
error between an image and its reconstruction.

An autoencoder has no prior to sample from, so the model keeps one: a Gaussian N(m, S)
fitted to the codes of the training batches (running estimates of the mean and covariance,
kept as buffers so they are saved in checkpoints) -- the simplest "ex-post density
estimation" of Ghosh et al. 2020 ("From Variational to Deterministic Autoencoders").
Latents stay standard-normal noise eps like every other model's, and decode() turns them
into codes m + L eps (S = L L^T, Cholesky). So fixed noise drawn before training (the
trainer's sample grids), slerp walks and seeds keep their meaning while the fit moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..config import ModelConfig, finite_positive, positive, unit_interval
from ..runtime import evaluating
from .base import GenerativeModel, adam
from .nets import ConvEncoder, ConvGenerator

# Weight of a new batch in the running code statistics, as BatchNorm's momentum: about
# the last few hundred batches count. The first 1/CODE_MOMENTUM batches are averaged
# exactly instead (weight 1/t for batch t), so the start value leaves no trace.
CODE_MOMENTUM = 0.01
# Added to the covariance's diagonal, relative to its mean variance, before the Cholesky
# factorisation: the fit stays positive definite when codes are collinear or collapsed.
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

    def __post_init__(self):
        positive(self, "latent_dim", "width")
        finite_positive(self, "lr")
        unit_interval(self, "beta1", "beta2")


class AE(GenerativeModel):
    """Convolutional autoencoder; generates by sampling a Gaussian fitted to its training codes."""

    Config = AEConfig
    metric_names = ("rec_loss",)
    sampling_network = "decoder"
    reconstructs = True

    def __init__(self, cfg: AEConfig, image_shape, num_classes=0):
        super().__init__(cfg, image_shape, num_classes)
        d = cfg.latent_dim
        self.encoder = ConvEncoder(self.image_shape, d, cfg.width, norm="batch")
        self.decoder = ConvGenerator(d, self.image_shape, cfg.width)
        # Running fit N(code_mean, code_cov) of the training codes; N(0, I) before any step.
        self.register_buffer("code_mean", torch.zeros(d))
        self.register_buffer("code_cov", torch.eye(d))
        self.register_buffer("codes_seen", torch.zeros((), dtype=torch.long))   # batches

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
        self.update_code_fit(codes.detach())
        return {"rec_loss": loss.detach()}

    @torch.no_grad()
    def update_code_fit(self, codes: torch.Tensor) -> None:
        """Moves the running mean and covariance towards those of one batch of codes (B, D)."""
        n = codes.shape[0]
        mean = codes.mean(0)
        centred = codes - mean
        cov = centred.T @ centred / max(n - 1, 1)                # unbiased, like BatchNorm's
        self.codes_seen += 1
        # A tensor weight, so that no value is copied to the host on an accelerator.
        w = (1.0 / self.codes_seen.float()).clamp_min(CODE_MOMENTUM).to(codes.dtype)
        self.code_mean.lerp_(mean, w)
        self.code_cov.lerp_(cov, w)

    def codes_from_noise(self, eps: torch.Tensor) -> torch.Tensor:
        """Standard-normal eps (n, D) -> codes m + L eps distributed as N(m, S), S = L L^T."""
        cov = self.code_cov
        jitter = JITTER * cov.diagonal().mean().clamp_min(1e-6)
        chol = torch.linalg.cholesky(cov + jitter * torch.eye(len(cov), device=cov.device))
        return self.code_mean + eps @ chol.T

    def decode(self, latents, labels=None):
        # Latents are the prior's standard-normal noise (base class latents()); the fitted
        # Gaussian is applied here, at sampling time, so it is always the current one.
        return getattr(self, self.sampling_network)(self.codes_from_noise(latents))

    @torch.no_grad()
    def reconstruct(self, images, labels=None):
        with evaluating(self):   # BatchNorm's running statistics, not this batch's
            return self.decoder(self.encoder(images))
