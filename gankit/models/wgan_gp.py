"""WGAN-GP (Gulrajani et al. 2017): the DCGAN networks trained as a Wasserstein critic.

No sigmoid and no BatchNorm in the critic; five critic updates per generator update, each
on its own real batch, inside one training step; gradient penalty weight 10; Adam with
beta1 0, beta2 0.9: the paper's Algorithm 1 defaults, all still flags. The reported d_loss
is E[D(fake)] - E[D(real)], minus the Wasserstein estimate.

Two defaults differ from the paper's, the best recipe benchmarks/sweep.py found on the
validation split within 5 minutes of one CPU thread: a learning rate of 2e-4 instead of
1e-4 for both networks, and an EMA of G; a budget of 4.5 minutes. Like dcgan it conditions
on 50 clusters of its images (--clusters), which helped it as much. Measured:
docs/measurements/recipes.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import default_of
from .dcgan import DCGAN, DCGANConfig


@dataclass
class WGANGPConfig(DCGANConfig):
    lr_g: float = field(default=2e-4, metadata={"help": "generator learning rate (Adam)"})
    lr_d: float = field(default=2e-4, metadata={"help": "critic learning rate (Adam)"})
    beta1: float = field(default=0.0, metadata={"help": "Adam beta1 for both networks"})
    beta2: float = field(default=0.9, metadata={"help": "Adam beta2 for both networks"})
    loss: str = field(default="wasserstein", metadata=DCGANConfig.__dataclass_fields__["loss"].metadata)
    d_steps: int = field(default=5, metadata={
        "help": "critic updates per generator update (n_critic), each on its own real batch"})
    gp: float = field(default=10.0, metadata={"help": "gradient penalty weight lambda"})
    spectral_norm: bool = default_of(DCGANConfig, "spectral_norm", False)   # the penalty does its work
    # ADA reads how often D calls reals real; a critic's scores have no such threshold.
    ada: float = default_of(DCGANConfig, "ada", 0.0)


class WGANGP(DCGAN):
    """Wasserstein GAN with gradient penalty: conv critic, n_critic 5, lambda 10."""

    Config = WGANGPConfig
    train_defaults = {"budget": "4.5m", "ema": 0.999}
