"""Variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

Encoder q(z|x) = N(mu, diag exp(logvar)): the DCGAN discriminator body with a linear head
to 2 * latent_dim numbers. Decoder p(x|z): the DCGAN generator with raw outputs, read as
Bernoulli logits for pixels in [0, 1] (the paper's choice for MNIST), or as the mean
tanh(raw) of a Gaussian with a fixed sigma. The loss is the negative ELBO per image:

    -log p(x|z) summed over pixels + beta * KL(q(z|x) || N(0, I)) summed over latent dims,

with one z = mu + sigma * eps per image (the reparameterisation trick), averaged over the
batch. beta = 1 is the VAE; beta > 1 the beta-VAE of Higgins et al. 2017. Samples decode
z ~ N(0, I), the prior, or with --density K codes from a mixture of K Gaussians fitted to
the training codes (models/density.py). A subclass that sets `conditional = True` is the CVAE.

The defaults (a 10-component mixture fitted to the codes, 32 latent dimensions, beta 0.5,
11,000 steps) are the best recipe benchmarks/sweep.py found on the validation split within
3 minutes of one CPU thread; sampling the prior instead of the fitted mixture is what made
earlier samples blurry. Measured: docs/measurements/recipes.md. log_likelihood() stays a
bound on log p(x) whatever beta was trained with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..config import default_of, finite_nonnegative, finite_positive, one_of
from ..errors import GankitError
from .losses import bernoulli_nll, gaussian_nll, kl_normal
from ..runtime import evaluating
from .ae import AEConfig
from .base import GenerativeModel, adam
from .density import CodeDensity, FittedPrior
from .nets import ConvEncoder, ConvGenerator

DECODERS = ("bernoulli", "gaussian")


@dataclass
class VAEConfig(AEConfig):
    latent_dim: int = default_of(AEConfig, "latent_dim", 32)
    decoder: str = field(default="bernoulli", metadata={
        "help": "likelihood p(x|z): bernoulli (pixels read as probabilities in [0, 1]; "
                "for digits and other near-binary images) or gaussian (fixed --sigma; for "
                "photos)", "choices": DECODERS})
    # Maximising the ELBO over one shared sigma gives sigma^2 = the mean squared residual;
    # on digits a trained model's residuals are about 0.2 (per-pixel MSE 0.038 in [-1, 1]).
    # 0.1 reconstructed no better there and spent 80 instead of 54 nats on the KL term.
    sigma: float = field(default=0.2, metadata={
        "help": "gaussian decoder: the pixel noise, in units of the [-1, 1] range; smaller "
                "weighs reconstruction more against the KL term (sharper reconstructions, "
                "less regular codes, worse samples)"})
    density: int = field(default=10, metadata={
        "help": "Gaussians in a mixture fitted to the training codes (posterior means) that "
                "samples are drawn from instead of the prior N(0, I) (Ghosh et al. 2020 use "
                "10); 0 samples the prior", "saved_default": 0})
    beta: float = field(default=0.5, metadata={
        "help": "weight of the KL term: 1 is the VAE, > 1 the beta-VAE (Higgins et al. "
                "2017: smoother, more disentangled codes, blurrier images); below 1 the codes "
                "keep more of each image, and the fitted --density, not the prior, makes "
                "them samplable (the measured recipe: 0.5)"})

    min_density: ClassVar[int] = 0   # 0: sample the prior N(0, I)

    def __post_init__(self):
        super().__post_init__()
        one_of(self, "decoder", DECODERS)
        finite_positive(self, "sigma")
        finite_nonnegative(self, "beta")


class VAE(FittedPrior, GenerativeModel):
    """Variational autoencoder (Kingma & Welling 2014): Bernoulli or Gaussian decoder, beta-VAE."""

    Config = VAEConfig
    train_defaults = {"steps": 11000}
    metric_names = ("loss", "rec", "kl")
    sampling_network = "decoder"
    reconstructs = True
    has_likelihood = True

    def __init__(self, cfg: VAEConfig, image_shape, num_classes=0):
        super().__init__(cfg, image_shape, num_classes)
        self.encoder, self.decoder = self.build_networks()
        self.density = (CodeDensity(cfg.latent_dim, cfg.density,
                                    num_classes if self.conditional else 0)
                        if cfg.density else None)

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        cfg, k = self.cfg, self.num_classes if self.conditional else 0
        # A CVAE (Sohn et al. 2015) gives the label to both: q(z|x, y) and p(x|z, y).
        encoder = ConvEncoder(self.image_shape, 2 * cfg.latent_dim, cfg.width, norm="batch",
                              num_classes=k, conditioning="concat")
        decoder = ConvGenerator(cfg.latent_dim, self.image_shape, cfg.width, num_classes=k,
                                tanh=False)
        return encoder, decoder

    def configure_optimizers(self):
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        return {"vae": adam(params, self.cfg.lr, (self.cfg.beta1, self.cfg.beta2))}

    def _labels(self, labels):
        if not self.conditional:
            return ()
        if labels is None:
            raise GankitError(f"{type(self).__name__} is conditional: pass a label per image")
        return (labels,)

    def posterior(self, images, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): images (B, C, H, W) -> mu, logvar, each (B, latent_dim)."""
        return self.encoder(images, *self._labels(labels)).chunk(2, dim=1)

    def nll(self, raw: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per image (B,), summed over pixels, from the decoder's raw outputs."""
        if self.cfg.decoder == "bernoulli":
            return bernoulli_nll(raw, (real + 1) / 2)            # targets in [0, 1]
        return gaussian_nll(torch.tanh(raw), real, self.cfg.sigma)

    def to_images(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw decoder outputs -> the likelihood's mean, as images in [-1, 1]."""
        if self.cfg.decoder == "bernoulli":
            return torch.sigmoid(raw) * 2 - 1
        return torch.tanh(raw)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I): a sample of q(z|x) that gradients flow through."""
        return mu + eps * (0.5 * logvar).exp()

    def training_step(self, real, labels=None):
        mu, logvar = self.posterior(real, labels)                # (B, D) each
        z = self.reparameterise(mu, logvar, torch.randn_like(mu))
        rec = self.nll(self.decoder(z, *self._labels(labels)), real)   # (B,)
        kl = kl_normal(mu, logvar)                               # (B,), summed over dims
        loss = (rec + self.cfg.beta * kl).mean()                 # -ELBO per image
        opt = self.optimizers["vae"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.detach(), "rec": rec.detach().mean(), "kl": kl.detach().mean()}

    def codes(self, images, labels=None):
        """The posterior means, which the density is fitted to (as Ghosh et al. do)."""
        return self.posterior(images, labels)[0]

    def decode_codes(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        """Codes z (not prior noise) -> the decoder's mean, as images in [-1, 1]."""
        net = self.sampler
        return self.to_images(net(z, *self._labels(labels)))

    def decode(self, latents, labels=None):
        return self.decode_codes(self.prior_codes(latents, labels), labels)

    @torch.no_grad()
    def reconstruct(self, images, labels=None):
        """The decoder's mean at the posterior mean mu (no sampling noise); mu is a code
        already, so it bypasses decode()'s fitted density."""
        with evaluating(self):
            mu, _ = self.posterior(images, labels)
            return self.decode_codes(mu, labels)

    @torch.no_grad()
    def likelihood_method(self, samples: int) -> str:
        return f"the IWAE bound with k={samples}"

    def log_likelihood(self, images, labels=None, samples=1, generator=None):
        """The importance-weighted bound of Burda et al. 2016 ("Importance Weighted
        Autoencoders") on log p(x [| y]), per image (B,):

            log p(x|y) >= log 1/k sum_i p(x|z_i, y) p(z_i) / q(z_i|x, y),   z_i ~ q(z|x, y),

        the ELBO for k = `samples` = 1, tightening towards log p(x|y) as k grows. Call it in
        eval mode (BatchNorm on its running statistics)."""
        mu, logvar = self.posterior(images, labels)                   # (B, D) each
        b, d = mu.shape
        eps = torch.randn(samples, b, d, generator=generator).to(mu.device)
        z = self.reparameterise(mu, logvar, eps)                      # (k, B, D)
        # log p(z) - log q(z|x, y) for diagonal Gaussians: the 2 pi terms cancel, and
        # (z - mu) / sigma is eps itself.
        log_ratio = 0.5 * (eps.pow(2) - z.pow(2) + logvar).sum(-1)    # (k, B)
        repeated = None if labels is None else labels.repeat(samples)
        raw = self.sampler(z.reshape(samples * b, d),
                                                   *self._labels(repeated))
        log_px = -self.nll(raw, images.repeat(samples, 1, 1, 1)).view(samples, b)
        return torch.logsumexp(log_px + log_ratio, dim=0) - math.log(samples)   # logmeanexp
