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
from ..errors import GankitError


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
    # Names of the metrics training_step returns, in display order (a subclass may set it
    # per instance when its config adds a metric).
    metric_names: tuple[str, ...] = ()
    # The submodule that turns latents into images. sample() runs it; the trainer's
    # exponential moving average (--ema) averages its weights.
    sampling_network: ClassVar[str] = "generator"
    # Needs a label per image to train and to sample ("given a label, produce the features").
    conditional: ClassVar[bool] = False
    # Has an encoder: reconstruct() maps images to their reconstructions.
    reconstructs: ClassVar[bool] = False

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        if self.conditional and num_classes < 2:
            raise GankitError(f"{type(self).__name__} is conditional and needs labelled data "
                              "with 2 or more classes: use mnist, fashion-mnist or a folder "
                              "with one subfolder per class")

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
        """n latent codes (n, latent_dim) from the prior, on the model's device."""
        if generator is None:   # the training path: draw on the device, no host copy
            return torch.randn(n, self.cfg.latent_dim, device=self.device)
        return torch.randn(n, self.cfg.latent_dim, generator=generator).to(self.device)

    def decode(self, latents: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Latents (n, latent_dim) -> images in [-1, 1]; runs the sampling network."""
        net = getattr(self, self.sampling_network)
        return net(latents, labels) if self.conditional else net(latents)

    @torch.no_grad()
    def sample(self, n: int | None = None, *, latents: torch.Tensor | None = None,
               labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1], shape (n, C, H, W), generated in inference mode.

        A conditional model without `labels` cycles through the classes 0, 1, 2, ...
        """
        if latents is None:
            latents = self.latents(n, generator)
        latents = latents.to(self.device)
        if self.conditional:
            if labels is None:
                labels = torch.arange(len(latents)) % self.num_classes
            labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        net = getattr(self, self.sampling_network)
        was_training = net.training
        net.eval()
        try:
            return self.decode(latents, labels)
        finally:
            net.train(was_training)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] -> their reconstructions (models with an encoder only)."""
        raise NotImplementedError(f"{type(self).__name__} has no encoder")
