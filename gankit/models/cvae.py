"""Conditional VAE (Sohn et al. 2015, "Learning Structured Output Representation using
Deep Conditional Generative Models"): the VAE with a label on both sides.

The encoder q(z|x, y) reads the label as one-hot input channels (K constant maps); the
decoder p(x|z, y) reads a one-hot label beside z; the prior stays
N(0, I). Sampling takes labels: `gankit sample --label 7`; the training grids show one
class per row, the same z in every row, so a column keeps its style across classes.
"""

from __future__ import annotations

from .vae import VAE


class CVAE(VAE):
    """Label-conditioned VAE: the label enters both the encoder and the decoder."""

    conditional = True
