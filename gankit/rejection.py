"""Discriminator rejection sampling (`gankit sample --reject`; Azadi, Olsson, Darrell,
Goodfellow & Odena, ICLR 2019, "Discriminator Rejection Sampling").

A GAN's discriminator, trained with the BCE loss, estimates the log density ratio
D(x) = log p_data(x) / p_G(x). Keeping each sample with probability proportional to
exp(D(x)) would turn G's distribution into the data's; the paper's practical form keeps
x with probability sigmoid(F(x)), where

    F(x) = D(x) - D_M - log(1 - exp(D(x) - D_M - eps)) - gamma

D_M is the largest D(x) seen (a burn-in of BURN_IN samples first, then updated as samples
come), eps keeps the logarithm finite, and gamma shifts how many are kept. The paper sets
gamma per batch from the distribution of F; here gamma is F's `percentile`-th percentile
in each batch: higher keeps fewer, more typical samples (the trade-off measured:
docs/measurements/quality.md#precision-at-sampling-time).
"""

from __future__ import annotations

from typing import Callable

import torch

from .errors import GankitError, option

BURN_IN = 2000
EPS = 1e-6
BATCH = 500
DEFAULT_PERCENTILE = 80.0


def check_reject(model) -> None:
    """GankitError unless `model` can judge its samples (a GAN trained with the BCE loss)."""
    # A probe of one sample, on an RNG of its own: the caller's random streams stay put.
    label = torch.zeros(1, dtype=torch.long) if model.conditional else None
    probe = model.judged_samples(model.latents(1, torch.Generator()), label)
    if probe is None:
        raise GankitError(f"{option('reject')} needs a GAN whose D was trained with the BCE "
                          "loss (its logit estimates log p_data / p_G): this model has none; "
                          f"use {option('truncation', 0.8)} instead")


def check_percentile(value: float) -> None:
    if not 0 <= value < 100:
        raise GankitError(f"the rejection percentile must be in [0, 100), got {value!r}")


def rejection_sampler(model, generator: torch.Generator | None = None,
                      percentile: float = DEFAULT_PERCENTILE, label: int | None = None,
                      truncation: float = 1.0) -> Callable[[int], torch.Tensor]:
    """sample(k) -> k images in [-1, 1] that DRS kept, drawn with `generator` (latents
    and the accept draws both), of class `label` for a conditional model."""
    check_reject(model)
    check_percentile(percentile)
    q = percentile / 100

    def judged(n):
        z = model.latents(n, generator)
        if truncation != 1:
            z = model.truncate(z, truncation)
        labels = None
        if model.conditional:
            labels = (torch.full((n,), label) if label is not None
                      else torch.randint(model.num_classes, (n,), generator=generator))
        return model.judged_samples(z, labels)

    d_max = max(judged(min(BATCH, BURN_IN - k))[1].max().item() for k in range(0, BURN_IN, BATCH))

    def sample(k: int) -> torch.Tensor:
        nonlocal d_max
        kept, have = [], 0
        while have < k:
            images, logits = judged(BATCH)
            logits = logits.double().cpu()
            d_max = max(d_max, logits.max().item())
            f = logits - d_max - torch.log1p(-torch.exp(logits - d_max - EPS))
            f = f - torch.quantile(f, q)
            accept = torch.rand(len(f), generator=generator, dtype=torch.float64) < torch.sigmoid(f)
            kept.append(images[accept.to(images.device)])
            have += int(accept.sum())
        return torch.cat(kept)[:k]
    return sample
