"""DCGAN (Radford et al. 2016): convolutional G and D for 28x28 digits and 32/64 folders.

G: z -> linear -> (2W, 7, 7) -> transposed convs -> (C, 28, 28), BatchNorm + ReLU, tanh
output; D mirrors it with strided convs and LeakyReLU(0.2), no pooling. The loss, D:G
ratio, penalties, spectral norm and augmentation are the shared GAN options; `--arch
resnet` swaps in R3GAN-style residual networks (residual.py).

The defaults are a self-conditioned GAN (`--clusters`, clusters.py): unconditional digits
came out malformed where the same networks given labels (cgan) drew clean ones, so the
images are clustered to give them labels of their own; D takes the cluster by projection.
On top, cgan's optimiser (BCE, Adam(4e-4, 0.5) for both networks, batch 64, an EMA of G)
and ADA (target 0.6), for a budget of 4.5 minutes. Measured, with the ablation:
docs/measurements/recipes.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import default_of, one_of, positive
from ..data import to_float
from ..errors import GankitError, option
from . import clusters
from .adversarial import AdversarialConfig, AdversarialModel
from .density import by_weight
from .nets import ConvEncoder, ConvGenerator
from .residual import ResidualDiscriminator, ResidualGenerator

ARCHS = ("dcgan", "resnet")


@dataclass
class DCGANConfig(AdversarialConfig):
    # Radford et al. used 128 at 64x64; 28x28 digits need far less, and on a CPU a step at
    # 32 takes about 1/3 of the time at 64 (27 vs 72 ms, batch 32, one thread).
    width: int = field(default=32, metadata={
        "help": "channels of G's last and D's first conv layer; they double every stage"})
    arch: str = field(default="dcgan", metadata={
        "help": "networks: dcgan (Radford et al. 2016: strided convs, BatchNorm in G) or "
                "resnet (R3GAN's residual blocks without normalisation, Huang et al. 2024)",
        "choices": ARCHS, "saved_default": "dcgan"})
    clusters: int = field(default=50, metadata={
        "help": "self-conditioning: cluster the training images into K groups (k-means on "
                "their pixels, once, before training), condition G and D on the group as a "
                "conditional GAN on a label, and let each sample draw its group by the "
                "group's share of the images (after Liu et al. 2020); 0 turns it off",
        "saved_default": 0})
    # Projection, not one-hot input maps, for 50 clusters: 50 input channels made D's first
    # conv the costliest layer (a step 139 against 56 ms, batch 64, one thread).
    projection: bool = field(default=True, metadata={
        "help": "D takes the label (cgan) or cluster (--clusters) by projection (Miyato & "
                "Koyama 2018) instead of as one-hot channels at its input",
        "saved_default": False})
    lr_g: float = default_of(AdversarialConfig, "lr_g", 4e-4)
    lr_d: float = default_of(AdversarialConfig, "lr_d", 4e-4)
    ada: float = default_of(AdversarialConfig, "ada", 0.6)

    def __post_init__(self):
        super().__post_init__()
        positive(self, "width")
        one_of(self, "arch", ARCHS)
        if self.clusters < 0 or self.clusters == 1:
            raise GankitError(f"clusters must be 0 (off) or at least 2, got {self.clusters}")


class DCGAN(AdversarialModel):
    """Convolutional GAN (DCGAN rules), self-conditioned on 50 clusters of its images by default."""

    Config = DCGANConfig
    train_defaults = {"budget": "4.5m", "batch_size": 64, "ema": 0.999}

    def __init__(self, cfg: DCGANConfig, image_shape, num_classes=0):
        if cfg.clusters and self.conditional:
            raise GankitError(f"{option('clusters', cfg.clusters)} gives an unconditional GAN "
                              "labels of its own; this one has the data's labels: drop it")
        super().__init__(cfg, image_shape, num_classes)
        if cfg.clusters:   # fitted by fit_data() before training; checkpoints keep them
            dim = clusters.features(torch.zeros(1, *self.image_shape)).shape[1]
            self.register_buffer("centroids", torch.zeros(cfg.clusters, dim))
            self.register_buffer("cluster_share", torch.full((cfg.clusters,), 1 / cfg.clusters))

    def build_networks(self):
        cfg = self.cfg
        k = self.num_classes if self.conditional else cfg.clusters
        conditioning = "projection" if cfg.projection else "concat"
        if cfg.arch == "resnet":
            return (ResidualGenerator(cfg.latent_dim, self.image_shape, cfg.width, num_classes=k),
                    ResidualDiscriminator(self.image_shape, cfg.width, num_classes=k,
                                          conditioning=conditioning))
        generator = ConvGenerator(cfg.latent_dim, self.image_shape, cfg.width, num_classes=k)
        discriminator = ConvEncoder(
            self.image_shape, 1, cfg.width,
            # A gradient penalty is per sample; BatchNorm would mix the samples it sees
            # (Gulrajani et al. 2017, section 4), so a penalised D goes without.
            norm="none" if cfg.gp or cfg.r1 or cfg.r2 else "batch",
            spectral_norm=cfg.spectral_norm, num_classes=k, conditioning=conditioning)
        return generator, discriminator

    # --- self-conditioning (--clusters): the networks take a cluster as their label ------

    def fit_data(self, images: torch.Tensor, labels, seed: int) -> None:
        if self.cfg.clusters:
            x = torch.cat([clusters.features(to_float(part)) for part in images.split(4096)])
            centroids, share = clusters.kmeans(x, self.cfg.clusters, seed)
            self.centroids.copy_(centroids)
            self.cluster_share.copy_(share)

    def labels_for(self, images, labels):
        if not self.cfg.clusters:
            return super().labels_for(images, labels)
        return clusters.nearest(clusters.features(images), self.centroids)

    def random_labels(self, n):
        if not self.cfg.clusters:
            return super().random_labels(n)
        return by_weight(torch.rand(n, device=self.device), self.cluster_share)

    @property
    def latent_size(self) -> int:
        return self.cfg.latent_dim + bool(self.cfg.clusters)   # one number picks the cluster

    @property
    def gaussian_size(self) -> int:
        return self.cfg.latent_dim

    def decode(self, latents, labels):
        if not self.cfg.clusters:
            return super().decode(latents, labels)
        return self.generator(latents[:, :self.cfg.latent_dim], self.pick(latents))

    def pick(self, latents):
        """The cluster each latent draws: its last number, through the normal CDF, picks a
        cluster by its share."""
        return by_weight(torch.special.ndtr(latents[:, self.cfg.latent_dim]), self.cluster_share)

    def latent_labels(self, latents, labels, images):
        if not self.cfg.clusters:
            return super().latent_labels(latents, labels, images)
        return self.pick(latents.to(self.device))
