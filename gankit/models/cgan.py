"""Conditional GAN: "given a label, produce the features" (Mirza & Osindero 2014).

The DCGAN networks with a label on both sides: G reads a one-hot label beside z; D reads
it as one-hot input channels (K constant maps), or, with --projection, through the
projection discriminator of Miyato & Koyama 2018. Sampling
takes labels: `gankit sample --label 7`, and the training grids show one class per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dcgan import DCGAN, DCGANConfig


@dataclass
class CGANConfig(DCGANConfig):
    projection: bool = field(default=False, metadata={
        "help": "projection discriminator (Miyato & Koyama 2018) instead of one-hot label "
                "channels at D's input"})


class CGAN(DCGAN):
    """Label-conditioned DCGAN: one-hot label beside z in G; label channels or projection in D."""

    Config = CGANConfig
    conditional = True
