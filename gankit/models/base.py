"""What every model gives the trainer.

A model owns its networks, its optimizers and one `training_step`; the trainer owns
everything else (devices, seeding, batches, logging, grids, checkpoints, resume). The
trainer never asks which model it is running.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..config import ModelConfig


def adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fastest kernel this torch offers for the parameters' device.

    The fused kernel updates every tensor in one pass over memory; on a small CPU the
    textbook per-tensor loop spends more time in Adam than in the networks (see
    benchmarks/throughput.py). The maths is the same.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):  # torch < 2.4 has no fused Adam for CPU
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


class GenerativeModel(nn.Module):
    """Base class: subclasses set `Config` and implement the methods below."""

    Config: ClassVar[type[ModelConfig]] = ModelConfig
    # Names of the metrics training_step returns, in display order.
    metric_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Called by the trainer once the model is on its device."""
        raise NotImplementedError

    def real_batch_size(self, batch_size: int) -> int:
        """How many real images one training step consumes."""
        return batch_size

    def training_step(self, real: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """One iteration on `real` (float, [-1, 1]); returns detached scalar tensors.

        Return tensors, not floats: calling .item() every step would make the CPU wait
        for the device; the trainer converts them once per logging interval.
        """
        raise NotImplementedError

    def latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latent codes drawn from the prior, on the model's device."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int | None = None, *, latents: torch.Tensor | None = None,
               labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1], shape (n, C, H, W), generated in inference mode."""
        raise NotImplementedError
