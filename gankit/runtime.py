"""Device and CPU-thread choices, and the inference mode of a network."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .errors import GankitError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GankitError(f"device {name} asked for, but this torch sees no CUDA GPU: "
                          "use --device cpu (or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise GankitError("device mps asked for, but it is not available: use --device cpu (or auto)")
    return torch.device(name)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads(processes: int = 1) -> int:
    """Threads for small models on the CPU, for each of `processes` training processes on
    this machine (torchrun --nproc-per-node).

    Measured on our 2-core machines (benchmarks/throughput.py): the seed GAN's matrices are
    so small that a second thread gains little when the machine is quiet and loses badly
    when another process holds a core. Keep one core free for the rest of the machine on
    small machines; use most of a big one. Several processes share the cores: more threads
    than cores would make them wait for each other at every gradient exchange.
    """
    cores = available_cores()
    if cores <= 2:
        return 1
    return max(1, min(cores - 1, 8 * processes) // processes)


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
