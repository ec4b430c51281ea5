"""Device and CPU-thread choices, and the inference mode of a network."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .training.cpu import available_cores, default_threads  # noqa: F401  (re-exported)
from .errors import GankitError, option


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GankitError(f"device {name} asked for, but this torch sees no CUDA GPU: "
                          f"use {option('device', 'cpu')} (or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise GankitError("device mps asked for, but it is not available: use "
                          f"{option('device', 'cpu')} (or auto)")
    return torch.device(name)


def configure_threads(threads: int | None, device: torch.device) -> None:
    if device.type == "cpu":
        torch.set_num_threads(threads or default_threads())
    # On a GPU the CPU only launches kernels: leave torch's thread default alone.


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, `module` is in eval mode (BatchNorm on its running statistics,
    no spectral-norm power steps); afterwards it is back in the mode it was in."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
