"""Device and CPU-thread choices, and the inference mode of a network."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .errors import GankitError, option


MAX_THREADS = 8        # the seed GAN's products gain nothing from more
ENV_THREADS = "GANKIT_THREADS"


def allowed_cpus() -> set[int] | None:
    """The CPUs this process may run on (None where the OS does not say: macOS, Windows)."""
    try:
        return os.sched_getaffinity(0)
    except AttributeError:
        return None


def available_cores() -> int:
    cpus = allowed_cpus()
    return len(cpus) if cpus else os.cpu_count() or 1


def threads_from_env() -> int | None:
    """GANKIT_THREADS, the thread count every gankit command uses unless --threads says
    otherwise (for scripts and CI that want one fixed count everywhere)."""
    value = os.environ.get(ENV_THREADS, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise GankitError(f"{ENV_THREADS}={value!r} is not a positive whole number: "
                          f"set it to a thread count such as 1, or unset it")
    return int(value)


def default_threads(processes: int = 1) -> int:
    """A thread count that does not depend on the moment: for sampling and the other uses
    (the same --seed must give the same pixels, and a different count rounds differently),
    and for each of `processes` training processes under torchrun.

    One thread on machines with 2 cores or fewer (a second thread gains little at inference
    and cannot know whether a neighbour will need the core); most cores less one on bigger
    ones. Several processes share the cores: more threads than cores would make them wait
    for each other at every gradient exchange.
    """
    fixed = threads_from_env()
    if fixed:
        return fixed
    cores = available_cores()
    if cores <= 2:
        return 1
    return max(1, min(cores - 1, MAX_THREADS * processes) // processes)


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


def fast_bf16(device: torch.device) -> bool:
    """Whether bfloat16 arithmetic is faster than float32 here: a CUDA GPU with bf16 units,
    or a CPU with AVX-512 BF16 or AMX instructions (oneDNN emulates bf16 on older CPUs,
    slower than float32). An older torch that cannot tell: no."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether a `precision` setting (fp32, bf16, or auto: bf16 where it is faster) means
    bf16 arithmetic on `device`."""
    return precision == "bf16" or (precision == "auto" and fast_bf16(device))


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
