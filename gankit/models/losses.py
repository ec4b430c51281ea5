"""Losses shared by the models: adversarial losses, the gradient penalty, the VAE terms.

Every adversarial loss works on raw discriminator outputs ("logits" for BCE, scores for the
others) and splits into a real term and a fake term for D, and one term for G, so a model
can update D on real and fake batches together or one after the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Term = Callable[[torch.Tensor], torch.Tensor]   # D outputs (B,) -> scalar loss


@dataclass(frozen=True)
class AdversarialLoss:
    d_real: Term | None   # D's loss on real images (None: the loss only scores pairs)
    d_fake: Term | None   # D's loss on generated images
    g: Term               # G's loss on generated images (alone: also inpainting's prior)
    # D says "real" above this output (for the accuracy metric); None where the outputs
    # have no fixed origin (a Wasserstein critic may shift all its scores by a constant).
    threshold: float | None
    # D's outputs as reported (the d_real and d_fake metrics): BCE's as probabilities, as
    # the guide's sigmoid D gave them, so a D that wins shows as d_real near 1 and d_fake
    # near 0; the others' raw scores.
    verdict: Term = lambda out: out
    # A relativistic loss scores pairs: pair(a, b) is low when D scores `a` above `b`
    # (D: reals above fakes; G: fakes above reals). None: d_real + d_fake and g apply.
    pair: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def d(self, out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
        """D's loss on a real and a fake batch (paired one to one where relativistic)."""
        if self.pair is not None:
            return self.pair(out_real, out_fake)
        return self.d_real(out_real) + self.d_fake(out_fake)

    def g_against(self, out_fake: torch.Tensor, out_real: torch.Tensor | None) -> torch.Tensor:
        """G's loss; a relativistic one compares with D's scores of a real batch."""
        return self.g(out_fake) if self.pair is None else self.pair(out_fake, out_real)

    def d_accuracy(self, out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor | None:
        """How often D tells real from fake: each image against the threshold, or (paired)
        each real against its fake; None where the scores have no origin."""
        if self.pair is not None:
            return (out_real > out_fake).float().mean()
        if self.threshold is None:
            return None
        t = self.threshold
        return ((out_real > t).float().mean() + (out_fake <= t).float().mean()) / 2


LOSSES: dict[str, AdversarialLoss] = {
    # Goodfellow et al. 2014 with the non-saturating G loss; softplus(-x) = BCE(sigmoid(x), 1).
    "bce": AdversarialLoss(d_real=lambda r: F.softplus(-r).mean(),
                           d_fake=lambda f: F.softplus(f).mean(),
                           g=lambda f: F.softplus(-f).mean(), threshold=0.0,
                           verdict=torch.sigmoid),
    # Mao et al. 2017 (LSGAN), targets a=0, b=c=1 and the paper's factor 1/2.
    "lsgan": AdversarialLoss(d_real=lambda r: 0.5 * (r - 1).pow(2).mean(),
                             d_fake=lambda f: 0.5 * f.pow(2).mean(),
                             g=lambda f: 0.5 * (f - 1).pow(2).mean(), threshold=0.5),
    # Lim & Ye 2017 / Miyato et al. 2018: hinge for D, -D(G(z)) for G.
    "hinge": AdversarialLoss(d_real=lambda r: F.relu(1 - r).mean(),
                             d_fake=lambda f: F.relu(1 + f).mean(),
                             g=lambda f: -f.mean(), threshold=0.0),
    # Arjovsky et al. 2017: the critic maximises E[D(x)] - E[D(G(z))]; needs a Lipschitz
    # constraint (gradient penalty or spectral norm) to mean anything.
    "wasserstein": AdversarialLoss(d_real=lambda r: -r.mean(),
                                   d_fake=lambda f: f.mean(),
                                   g=lambda f: -f.mean(), threshold=None),
    # Relativistic pairing GAN (Jolicoeur-Martineau 2019; the RpGAN of R3GAN, Huang et al.
    # 2024): softplus(-(D(a) - D(b))) over pairs. With R1 and R2 it converges locally
    # (their Theorem); alone, a G step compares its fakes with a real batch. Alone (the
    # inpainting prior), G's term is -D(x), which has the same gradient direction.
    "rpgan": AdversarialLoss(d_real=None, d_fake=None, g=lambda f: -f.mean(), threshold=None,
                             pair=lambda a, b: F.softplus(b - a).mean()),
}


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty E[(||grad_x D(x_hat)||_2 - 1)^2] (Gulrajani et al. 2017, Alg. 1).

    x_hat = eps * real + (1 - eps) * fake with eps ~ U[0, 1] drawn once per sample (not
    per pixel, and not from a normal), and the norm taken over all of a sample's
    dimensions (C, H, W together), not per row or per channel.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018, eq. 9 without its gamma/2): E[||grad_x D(x)||^2] on real x,
    the squared norm over all of a sample's dimensions."""
    x = real.detach().requires_grad_(True)
    return zero_centred_penalty(critic(x), x)


def zero_centred_penalty(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """E[||grad_x D(x)||^2] from D's outputs on `inputs` (which require grad): R1 on real
    images (Mescheder et al. 2018), R2 on fakes (R3GAN uses both, with one weight). Sharing
    the forward pass of D's loss saves one pass through D per penalty."""
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dims: (B, D) -> (B,).

    Closed form (Kingma & Welling 2014, appendix B): -1/2 sum(1 + logvar - mu^2 - exp(logvar)).
    It is >= 0; a negative value means a flipped sign.
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) for a Bernoulli decoder, summed over pixels: (B, C, H, W) -> (B,)."""
    return F.binary_cross_entropy_with_logits(logits, target01, reduction="none").flatten(1).sum(1)


def gaussian_nll(mean: torch.Tensor, target: torch.Tensor, sigma: float) -> torch.Tensor:
    """-log N(x; mean, sigma^2 I) summed over pixels, with its constant: (B, ...) -> (B,)."""
    d = target[0].numel()
    sq = (target - mean).pow(2).flatten(1).sum(1)
    return sq / (2 * sigma ** 2) + d * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
