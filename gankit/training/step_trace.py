"""A debugging aid for data parallelism (GANKIT_DEBUG_STEP_HASHES=DIR): a hash per step of
each process's weights, batch and RNG state. tests/test_distributed.py reads them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn


class StepHashes:
    """Debug aid (GANKIT_DEBUG_STEP_HASHES=DIR): each process appends, after every step,
    a hash of its weights and buffers, of the batch indices it drew and of its RNG state
    to DIR/rank<R>.tsv. The distributed tests read them: weights must agree across ranks,
    batches and RNG streams must not."""

    def __init__(self, folder: str, rank: int):
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.path = Path(folder) / f"rank{rank}.tsv"
        with open(self.path, "a") as f:
            f.write(f"pid\t{os.getpid()}\n")

    @staticmethod
    def digest(tensors) -> str:
        h = hashlib.sha256()
        for t in tensors:
            h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:16]

    def write(self, step: int, model: nn.Module, idx: torch.Tensor) -> None:
        line = (f"{step}\t{self.digest(model.state_dict().values())}\t{self.digest([idx])}"
                f"\t{self.digest([torch.get_rng_state()])}\n")
        with open(self.path, "a") as f:
            f.write(line)


def step_hashes(rank: int) -> StepHashes | None:
    folder = os.environ.get("GANKIT_DEBUG_STEP_HASHES")
    return StepHashes(folder, rank) if folder else None
