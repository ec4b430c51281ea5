"""Conditional VAE (Sohn et al. 2015, "Learning Structured Output Representation using
Deep Conditional Generative Models"): the VAE with a label on both sides.

The encoder q(z|x, y) reads the label as one-hot input channels (K constant maps); the
decoder p(x|z, y) reads a one-hot label beside z; the prior stays
N(0, I). Sampling takes labels: `gankit sample --label 7`; the training grids show one
class per row, the same z in every row, so a column keeps its style across classes.

The defaults are the best recipe benchmarks/sweep.py found on the validation split within
3 minutes of one CPU thread: a 10-component code mixture per class (models/density.py; one
per class, since the classes' codes lie apart), batch 64, 5,500 steps, latent size 16 and
beta 1. Measured: docs/measurements/recipes.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import default_of
from .vae import VAE, VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    latent_dim: int = default_of(VAEConfig, "latent_dim", 16)
    beta: float = default_of(VAEConfig, "beta", 1.0)


class CVAE(VAE):
    """Label-conditioned VAE: the label enters both the encoder and the decoder."""

    Config = CVAEConfig
    conditional = True
    train_defaults = {"steps": 5500, "batch_size": 64}
