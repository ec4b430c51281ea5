"""Conditional GAN: "given a label, produce the features" (Mirza & Osindero 2014).

The DCGAN networks with a label on both sides: G reads a one-hot label beside z; D reads
it as one-hot input channels (K constant maps), or, with --projection, through the
projection discriminator of Miyato & Koyama 2018. Sampling
takes labels: `gankit sample --label 7`, and the training grids show one class per row.

The defaults are the best recipe benchmarks/sweep.py found on the validation split within
5 minutes of one CPU thread: the DCGAN paper's BCE loss and Adam beta1 0.5 at twice its
learning rate (4e-4 for both networks), batch 64, an EMA of G, for 4.5 minutes
(`--budget`). No hinge or spectral norm: the label already keeps this D in check.
Measured: docs/measurements/recipes.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import default_of
from .adversarial import AdversarialConfig
from .dcgan import DCGAN, DCGANConfig


@dataclass
class CGANConfig(DCGANConfig):
    lr_g: float = default_of(AdversarialConfig, "lr_g", 4e-4)
    lr_d: float = default_of(AdversarialConfig, "lr_d", 4e-4)
    loss: str = default_of(AdversarialConfig, "loss", "bce")
    spectral_norm: bool = default_of(AdversarialConfig, "spectral_norm", False)
    beta1: float = default_of(AdversarialConfig, "beta1", 0.5)
    beta2: float = default_of(AdversarialConfig, "beta2", 0.999)
    projection: bool = default_of(DCGANConfig, "projection", False)   # the sweep's choice
    clusters: int = default_of(DCGANConfig, "clusters", 0)   # it has the data's labels
    ada: float = default_of(AdversarialConfig, "ada", 0.0)


class CGAN(DCGAN):
    """Label-conditioned DCGAN: one-hot label beside z in G; label channels or projection in D."""

    Config = CGANConfig
    conditional = True
    # A budget rather than a step count: a faster machine trains more steps in the same
    # minutes (docs/guide/training.md#time-budgets).
    train_defaults = {"budget": "4.5m", "batch_size": 64, "ema": 0.999}
