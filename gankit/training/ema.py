"""Exponential moving average of the sampling network's weights (`--ema 0.999`).

Averaged generator weights give visibly smoother samples than the last iterate (Yazici et
al. 2019, "The Unusual Effectiveness of Averaging in GAN Training"; Karras et al. use it
in every StyleGAN). The trainer keeps one for any model: it averages whatever network the
model names as its `sampling_network`.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch
from torch import nn


class EMA:
    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.average = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        """average <- d * average + (1 - d) * weights after training step `step` (1, 2, ...);
        buffers (BatchNorm's running statistics) are copied, since they are already averages.

        d = min(decay, (1 + step) / (10 + step)), the warm-up of TensorFlow's
        ExponentialMovingAverage: at a fixed 0.999 the random initial weights would still
        hold 22% of the average after 1,500 steps, and a short run's samples would be
        worse with the average than without it."""
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(list(self.average.parameters()), list(net.parameters()), 1 - d)
        for mine, theirs in zip(self.average.buffers(), net.buffers()):
            mine.copy_(theirs)

    def swapped_into(self, model):
        """Within the block, `model.sample()` runs the averaged network."""
        return model.sampling_with(self.average)


def averaged(model, ema: EMA | None):
    """A context in which `model` samples with the average, when there is one."""
    return ema.swapped_into(model) if ema is not None else nullcontext()
