"""A Gaussian mixture fitted to an autoencoder's codes: what its samples are drawn from.

Ghosh et al. 2020 ("From Variational to Deterministic Autoencoders", table 2) fit a
10-component Gaussian mixture to the training codes after training ("ex-post density
estimation") and sample from it instead of the prior: on MNIST, FID 19.2 for a VAE from
N(0, I), 10.7 for an autoencoder with the mixture. The codes of a trained (V)AE do not
fill N(0, I): decoding prior samples that fall between the training codes gives the
blurry, malformed images the guide warns of.

The EM fit is scikit-learn's GaussianMixture (full covariances, a fixed random_state);
its result lives in buffers (weights, means, Cholesky factors of the covariances), so a
checkpoint saves it as tensors and sampling needs no scikit-learn. Latents stay standard
normal noise, as every model's: noise (n, D) is mapped to codes mean_k + L_k noise, with
the component k chosen by one extra noise coordinate (n, D + 1) through the mixture's
weights when there are several. So fixed noise (the trainer's grids), seeds and slerp walks
keep their meaning while the fit moves.
"""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from ..data import to_float
from ..runtime import evaluating

# At most this many codes go into a fit (a seeded subset of larger datasets): EM on 60,000
# codes takes seconds per fit and fits no better than on 10,000.
MAX_CODES = 10_000
# scikit-learn's reg_covar, added to each covariance's diagonal: keeps a component fitted
# to a few nearly collinear codes positive definite.
REG_COVAR = 1e-4
# Images encoded at once when fitting.
ENCODE_BATCH = 500



def by_weight(u: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Uniform numbers u in [0, 1) -> indices, each as often as its weight (the inverse CDF
    of the weights' last dimension; no host sync, so a CUDA graph can hold it)."""
    k = torch.searchsorted(weights.cumsum(-1), u.contiguous())
    return k.clamp_(max=weights.shape[-1] - 1)

class CodeDensity(nn.Module):
    """K Gaussians over D-dimensional codes, one mixture per class when `classes` > 0
    (p(z|y) for a conditional model: a CVAE's codes of a 1 and of an 8 need not fill the
    same region, and a code drawn from the pooled mixture decodes into the wrong stroke
    for its label); before any fit every component is N(0, I)."""

    def __init__(self, dim: int, components: int, classes: int = 0):
        super().__init__()
        self.dim, self.components, self.groups = dim, components, max(classes, 1)
        g, k = self.groups, components
        self.register_buffer("weights", torch.full((g, k), 1 / k))
        self.register_buffer("means", torch.zeros(g, k, dim))
        self.register_buffer("chol", torch.eye(dim).repeat(g, k, 1, 1))
        # The training step of the last fit; -1 before the first.
        self.register_buffer("fitted_step", torch.tensor(-1, dtype=torch.long))

    @property
    def noise_dim(self) -> int:
        """Standard-normal numbers per code: D, and one more to pick the component."""
        return self.dim + (self.components > 1)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """noise (n, noise_dim) ~ N(0, I) [and labels (n,)] -> codes (n, D) distributed as
        the mixture (of each label's class)."""
        eps = noise[:, :self.dim]
        g = (labels if self.groups > 1 else torch.zeros(len(noise), dtype=torch.long,
                                                        device=noise.device))
        if self.components == 1:
            k = torch.zeros_like(g)
        else:
            # The last coordinate's normal CDF is uniform on (0, 1); inverting the mixture's
            # cumulative weights turns it into a component index with the mixture's odds.
            k = by_weight(torch.special.ndtr(noise[:, -1:]), self.weights[g]).squeeze(1)
        return self.means[g, k] + (self.chol[g, k] @ eps.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def fit(self, codes: torch.Tensor, step: int, labels: torch.Tensor | None = None,
            seed: int = 0) -> None:
        """EM on `codes` (N, D) (per class of `labels` when the density has classes); the
        result replaces the buffers."""
        codes = codes.detach().double().cpu()
        if self.groups == 1:
            self._fit_group(0, codes.numpy(), seed)
        else:
            for c in range(self.groups):
                self._fit_group(c, codes[labels.cpu() == c].numpy(), seed)
        self.fitted_step.fill_(step)

    def _fit_group(self, g: int, x: np.ndarray, seed: int) -> None:
        from sklearn.mixture import GaussianMixture

        if len(x) > MAX_CODES:
            x = x[np.random.default_rng(seed).permutation(len(x))[:MAX_CODES]]
        k = min(self.components, len(x))
        if k < 1:
            return   # a class without images keeps its N(0, I) components
        # Every fit starts afresh (k-means initialisation). EM started from the previous
        # fit was faster, but drifted with the codes into worse optima: a component's
        # weight fell to 1e-18, and refitting a trained vae afresh took its FID from 116.5
        # to 79.4. One BLAS thread: with numpy's default threads competing with training for
        # 2 cores, a fit took 8-13 s instead of 0.5 s.
        gm = GaussianMixture(k, covariance_type="full", reg_covar=REG_COVAR, random_state=seed)
        with threadpool_limits(1):
            gm.fit(x)
        weights = np.zeros(self.components)
        means = np.zeros((self.components, self.dim))
        chol = np.tile(np.eye(self.dim), (self.components, 1, 1))
        weights[:k], means[:k] = gm.weights_, gm.means_
        chol[:k] = np.linalg.cholesky(gm.covariances_)
        for buffer, value in ((self.weights, weights / weights.sum()), (self.means, means),
                              (self.chol, chol)):
            buffer[g].copy_(torch.from_numpy(value))


class FittedPrior:
    """What a model with an encoder needs to sample from a CodeDensity (`self.density`,
    or None to sample codes from the prior N(0, I)): the GenerativeModel hooks of a fitted
    prior, and prior_codes() for its decode(). The model provides codes(images, labels)."""

    density: CodeDensity | None

    @property
    def latent_size(self) -> int:
        return self.cfg.latent_dim if self.density is None else self.density.noise_dim

    @property
    def gaussian_size(self) -> int:
        return self.cfg.latent_dim if self.density is None else self.density.dim

    def prior_codes(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Standard-normal latents [and labels] -> codes for the decoder."""
        return latents if self.density is None else self.density(latents, labels)

    def prior_step(self) -> int | None:
        return None if self.density is None else int(self.density.fitted_step)

    @torch.no_grad()
    def fit_prior(self, images, labels, step):
        with evaluating(self):   # BatchNorm's running statistics, as when reconstructing
            codes = torch.cat([
                self.codes(to_float(images[i:i + ENCODE_BATCH].to(self.device)),
                           None if labels is None else labels[i:i + ENCODE_BATCH].to(self.device))
                for i in range(0, len(images), ENCODE_BATCH)])
        self.density.fit(codes, step, labels if self.density.groups > 1 else None)
