"""The training step as one CUDA graph: one launch a step instead of one per kernel.

On a GPU the guide's GAN is too small to keep the chip busy: a step is a few hundred tiny
kernels, and the time goes to launching them from Python, not to running them. A CUDA
graph records the step's kernels once and replays them with a single launch
(torch.cuda.CUDAGraph). What a replay needs of the step, and why gankit's steps give it:

- the same work every call: the batch is copied into a buffer of the graph's own before
  each replay, and training_step keeps no Python state that changes what it computes;
- no host syncs: training_step returns tensors, never floats (base.py says why);
- random numbers from torch's default CUDA generator: a replay advances its offset as the
  eager kernels would, so a replayed step draws the numbers an eager step draws;
- optimizers that update on the device: fused Adam (base.adam), which keeps its step count
  on the GPU. Its `capturable` flag is read only by torch's pre-capture check (the fused
  kernel ignores it), so it is set for the capture alone and saved checkpoints stay as
  eager ones are.

The first WARMUP steps run eagerly on the capture's stream, so that lazy set-up (the
optimizers' state, cuBLAS workspaces) happens before the recording; the next step is
recorded and replayed, and every later one replayed. A step that cannot be recorded (a
host sync in a user's model, an operation CUDA graphs refuse) runs eagerly from then on,
and the trainer says so once.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import first_line
from ..models import GenerativeModel
from ..runtime import uses_bf16

WARMUP = 3   # eager steps before the capture; torch's examples warm up with 3

Step = Callable[[torch.Tensor, "torch.Tensor | None"], dict[str, torch.Tensor]]


class GraphedStep:
    """model.training_step, recorded as a CUDA graph after WARMUP eager steps and replayed.

    `note` says why the step runs eagerly after all (None while it does not)."""

    def __init__(self, model: GenerativeModel, precision: str = "fp32", warmup: int = WARMUP):
        self.model, self.eager_left = model, warmup
        self._eager = eager_step(model, model.device, precision)
        self.stream = torch.cuda.Stream(model.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.note: str | None = None
        self.names: list[str] = []

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, real: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        if self.graph is None:
            if self.note is not None:
                return self._eager(real, labels)
            if self.eager_left > 0:
                self.eager_left -= 1
                return self._on_own_stream(real, labels)
            if not self._capture(real, labels):
                return self._eager(real, labels)
        self.real.copy_(real)
        if labels is not None:
            self.labels.copy_(labels)
        self.graph.replay()
        # The graph rewrites its outputs on every replay, and the log keeps each step's
        # metrics until it averages them: one copy, then views of it (no more launches).
        return dict(zip(self.names, self.out.clone().unbind()))

    def _on_own_stream(self, real, labels):
        here = torch.cuda.current_stream(self.stream.device)   # --device cuda:1 included
        self.stream.wait_stream(here)
        with torch.cuda.stream(self.stream):
            metrics = self._eager(real, labels)
        here.wait_stream(self.stream)
        return metrics

    def _capture(self, real, labels) -> bool:
        groups = [g for opt in self.model.optimizers.values() for g in opt.param_groups]
        if not all(g.get("fused") for g in groups):
            self.note = ("its optimizers are not fused Adam, which updates on the GPU inside a "
                         "graph (gankit.models.base.adam makes one)")
            return False
        self.real = real.clone()
        self.labels = labels.clone() if labels is not None else None
        device = self.model.device
        rng = torch.cuda.default_generators[device.index if device.index is not None
                                            else torch.cuda.current_device()]
        before = rng.clone_state() if hasattr(rng, "clone_state") else None
        graph = torch.cuda.CUDAGraph()
        try:
            for g in groups:
                g["capturable"] = True
            # The recording syncs and reads the current device: make it the model's.
            with torch.cuda.device(device), torch.cuda.graph(graph, stream=self.stream):
                metrics = self._eager(self.real, self.labels)
                self.names = list(metrics)
                self.out = torch.stack([metrics[k].float() for k in self.names])
        except Exception as e:   # torch raises RuntimeError, or the model's own error type
            # Nothing ran during the recording: the weights are as they were, and the eager
            # step that follows does this step's work. But a failed recording leaves torch's
            # CUDA generator (torch 2.11) believing it is still recording, so that every later
            # random draw raises: it gets back a copy of its state from before.
            if before is not None:
                rng.graphsafe_set_state(before)
            self.note = f"recording it failed ({type(e).__name__}: {first_line(e)})"
            return False
        finally:
            for g in groups:
                g["capturable"] = False
        self.graph = graph
        return True


def training_step(model: GenerativeModel, device: torch.device, precision: str,
                  cuda_graphs: bool, processes: int) -> tuple[Step, str]:
    """The step the trainer calls each iteration, and a note when CUDA graphs were asked
    for on a GPU but cannot be used from the start."""
    if device.type == "cuda" and cuda_graphs:
        if processes > 1:   # the gradient exchange's hooks run between the kernels
            return eager_step(model, device, precision), ("CUDA graphs are off under "
                                                          "torchrun: steps run eagerly")
        return GraphedStep(model, precision), ""
    return eager_step(model, device, precision), ""


def eager_step(model: GenerativeModel, device: torch.device, precision: str) -> Step:
    """model.training_step, or with --precision bf16 under bf16 autocast of its products and
    convolutions (weights, optimizer state and losses stay float32); autocast's weight
    cache must be off inside a graph. auto is bf16 where the device has bf16 units."""
    if not uses_bf16(precision, device):
        return model.training_step

    def step(real, labels):
        with torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False):
            return model.training_step(real, labels)
    return step
