"""DCGAN (Radford et al. 2016): convolutional G and D for 28x28 digits and 32/64 folders.

G: z -> linear -> (2W, 7, 7) -> transposed convs -> (C, 28, 28), BatchNorm + ReLU, tanh
output; D mirrors it with strided convs and LeakyReLU(0.2), no pooling. The loss, D:G
ratio, gradient penalty, spectral norm and DiffAugment are the shared GAN options.

The defaults are the best recipe benchmarks/sweep.py found on the validation split within
5 minutes of one CPU thread (benchmarks/results/sweep-dcgan*.csv; README "Recipes"): the
hinge loss with a spectrally normalised D and Adam(2e-4, 0, 0.9) (Miyato et al. 2018's
setting), batch 64, an EMA of G. Against the DCGAN paper's BCE and Adam(2e-4, 0.5) at
batch 32, its validation FID after 5 minutes fell from 53.9 (with the EMA) to 41.2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import default_of, one_of, positive
from .adversarial import AdversarialConfig, AdversarialModel
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
    loss: str = default_of(AdversarialConfig, "loss", "hinge")
    spectral_norm: bool = default_of(AdversarialConfig, "spectral_norm", True)
    beta1: float = default_of(AdversarialConfig, "beta1", 0.0)
    beta2: float = default_of(AdversarialConfig, "beta2", 0.9)

    def __post_init__(self):
        super().__post_init__()
        positive(self, "width")
        one_of(self, "arch", ARCHS)


class DCGAN(AdversarialModel):
    """Convolutional GAN (DCGAN rules): strided convs, BatchNorm in G, LeakyReLU in D."""

    Config = DCGANConfig
    train_defaults = {"steps": 5000, "batch_size": 64, "ema": 0.999}

    def build_networks(self):
        cfg, k = self.cfg, self.num_classes if self.conditional else 0
        conditioning = "projection" if getattr(cfg, "projection", False) else "concat"
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
