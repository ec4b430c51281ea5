"""Data-parallel training under torchrun: `torchrun --nproc-per-node N -m gankit train ...`.

torchrun starts N copies of gankit and tells each its place in environment variables
(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT); `from_env()`
reads them, and the Torchrun it returns joins torch.distributed's process group (gloo on CPU,
nccl on CUDA, a GPU per local rank). Without them it returns `Solo`, whose methods do
nothing, and the trainer runs exactly as it always has.

Every process holds the whole model and draws its own batches and noise; before each
optimizer step the gradients of that optimizer's parameters are averaged over the
processes, so every process takes the same step and the weights stay identical. Rank 0
alone writes the run folder.

Why gradients are averaged by an optimizer hook and not by wrapping the networks in
torch's DistributedDataParallel (DDP): both give bit-identical weights on every model
here (measured: gan, dcgan, wgan-gp, vae, ae with torch 2.13, gloo), but DDP wraps each
network, and then
- its forward is a collective: with DDP's default buffer broadcast a sample grid drawn by
  rank 0 alone waits for the other ranks until the process-group timeout;
- state_dict names gain a `module.` prefix, and --ema's copy of the generator would copy
  the wrapper;
- a GAN step that runs D only to push gradients into G (`backward(inputs=G's weights)`)
  and the gradient penalty's double backward work only because of how DDP's reducer
  happens to treat a backward that fires none of its hooks; PyTorch does not promise
  either (pytorch/pytorch#63929: higher-order gradients are not supported by DDP).
Averaging `.grad` just before `optimizer.step()` looks at nothing but the gradients a
step produced, so it holds for any step a model writes, and the models stay unaware of
it. The price: DDP overlaps the all-reduce with the backward pass, this waits for the
backward to finish. For gankit's networks (1-30 MB) that costs little: on our 2-core
CPUs the two took the same time per step, within the noise of a shared machine
(benchmarks/ddp.py measures ours against a single process).

Buffers (BatchNorm's running statistics, spectral norm's power-iteration vectors) are
computed by each process from its own batch and then replaced by rank 0's after every
step, as DDP does at every forward (so is the autoencoders' code density, which rank 0
alone fits); with --sync-bn (CUDA only: torch's SyncBatchNorm synchronises GPU tensors only) BatchNorm
normalises with the statistics of the global batch instead.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ..errors import GankitError, first_line

# Training collectives (gradients, buffers) wait at most this long for a silent process;
# a process that dies is noticed at once (torchrun ends the others, a gloo peer's socket
# closes). Rank 0's own work between steps (checkpoints, evaluation, training the
# feature classifier for --eval-every on first use) is waited for at a barrier on a
# separate CPU group with a longer limit.
TIMEOUT = timedelta(minutes=10)
MAIN_WORK_TIMEOUT = timedelta(minutes=30)
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class Solo:
    """One process, no torchrun: every method is the single-process behaviour."""

    rank, world_size, local_rank, local_world_size = 0, 1, 0, 1
    backend = None
    main = True
    parallel = False   # True for a Torchrun job

    def device(self, device: torch.device) -> torch.device:
        return device

    @contextmanager
    def local_main_first(self):
        yield

    def wait_for_main(self) -> None:
        pass

    def attach(self, model: nn.Module, *extra: nn.Module) -> None:
        pass

    def sync_buffers(self, model: nn.Module) -> None:
        pass

    def agree_to_stop(self, signum: int | None) -> int | None:
        return signum

    def agree_on(self, value: int) -> int:
        """Rank 0's `value`, in every process (a budget's step count)."""
        return value

    def rng_states(self, batch_gen: torch.Generator) -> dict[str, torch.Tensor]:
        return {}

    def describe(self, batch_size: int) -> dict:
        return {"world_size": 1, "batch_size_per_process": batch_size,
                "global_batch_size": batch_size}

    def leave(self) -> None:
        pass


class Torchrun(Solo):
    """This process's place in a torchrun job, and the collectives the trainer needs."""

    parallel = True

    def __init__(self, rank: int, world_size: int, local_rank: int, local_world_size: int):
        self.rank, self.world_size = rank, world_size
        self.local_rank, self.local_world_size = local_rank, local_world_size
        self.main = rank == 0
        self.owns_group = False
        self.control = None   # a gloo group on the CPU, for barriers and agreement

    def device(self, device: torch.device) -> torch.device:
        """The device this process trains on: cuda:LOCAL_RANK when CUDA, else the CPU.
        Joins the process group with the matching backend."""
        if device.type == "cuda":
            if device.index is not None:
                raise GankitError(f"--device {device} under torchrun: each process uses the GPU "
                                  "of its local rank; pass --device cuda (or auto)")
            if self.local_world_size > torch.cuda.device_count():
                raise GankitError(f"{self.local_world_size} processes on this machine but "
                                  f"{torch.cuda.device_count()} GPU(s): start at most one "
                                  "process per GPU (torchrun --nproc-per-node)")
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        elif device.type != "cpu":
            raise GankitError(f"--device {device.type} cannot train under torchrun "
                              "(torch.distributed runs on cpu with gloo, cuda with nccl): "
                              "pass --device cpu")
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        self._join()
        return device

    def _join(self) -> None:
        if not dist.is_available():
            raise GankitError("this torch was built without torch.distributed: run without "
                              "torchrun, or install a torch build that has it")
        if not dist.is_initialized():   # a script may have joined one already
            try:
                dist.init_process_group(self.backend, timeout=TIMEOUT)
            except (RuntimeError, ValueError) as e:
                raise GankitError(f"could not join the torchrun job ({first_line(e)}): check "
                                  "--rdzv-endpoint / MASTER_ADDR and that every node runs the "
                                  "same command") from None
            self.owns_group = True
        elif dist.get_world_size() != self.world_size:
            raise GankitError(f"the process group has {dist.get_world_size()} processes but "
                              f"WORLD_SIZE says {self.world_size}")
        self.control = dist.new_group(backend="gloo", timeout=MAIN_WORK_TIMEOUT)

    @contextmanager
    def local_main_first(self):
        """Local rank 0 goes first (e.g. downloads a dataset); the others then find it."""
        if self.local_rank != 0:
            self.wait_for_main()
        yield
        if self.local_rank == 0:
            self.wait_for_main()

    def wait_for_main(self) -> None:
        """Every process waits here until all arrive (rank 0 may be writing or evaluating)."""
        dist.barrier(group=self.control)

    def attach(self, model: nn.Module, *extra: nn.Module) -> None:
        """Give every process rank 0's weights and buffers (a resumed or freshly seeded
        model alike), and average the gradients before each of the model's optimizer steps."""
        for module in (model, *extra):
            _broadcast([*module.parameters(), *module.buffers()])
        for optimizer in model.optimizers.values():
            optimizer.register_step_pre_hook(self._average_gradients)

    def _average_gradients(self, optimizer, args, kwargs) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        for same in _by_kind(grads):   # one message per dtype and device, like DDP's buckets
            flat = torch.cat([g.reshape(-1) for g in same])
            dist.all_reduce(flat)       # a sum: gloo has no average
            flat.div_(self.world_size)
            for g, part in zip(same, flat.split([g.numel() for g in same])):
                g.copy_(part.view(g.shape))

    def sync_buffers(self, model: nn.Module) -> None:
        _broadcast(list(model.buffers()))

    def agree_to_stop(self, signum: int | None) -> int | None:
        """A signal reaches the processes at different moments: all stop after the same step
        once any of them got one (and all report that signal)."""
        flag = torch.tensor([signum or 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.control)
        return int(flag) or None

    def agree_on(self, value: int) -> int:
        flag = torch.tensor([value])
        dist.broadcast(flag, src=0, group=self.control)
        return int(flag)

    def rng_states(self, batch_gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Every process's RNG states, gathered on rank 0 for its checkpoint (elsewhere {}),
        so a run resumed with as many processes continues every stream bit for bit."""
        mine = own_rng_states(batch_gen)
        found = {}
        for name, state in mine.items():
            parts = [torch.empty_like(state) for _ in range(self.world_size)] if self.main else None
            dist.gather(state, parts, dst=0, group=self.control)
            if self.main:
                found.update({f"rng.rank{r}.{name}": t for r, t in enumerate(parts) if r > 0})
        return found

    def describe(self, batch_size: int) -> dict:
        return {"world_size": self.world_size, "backend": self.backend,
                "batch_size_per_process": batch_size,
                "global_batch_size": batch_size * self.world_size}

    def leave(self) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            return
        if self.owns_group:
            dist.destroy_process_group()   # every group, the control group with it
        elif self.control is not None:     # the caller's group stays; ours goes
            dist.destroy_process_group(self.control)
        self.control = None   # no handle on a destroyed group outlives the job


def from_env() -> Solo:
    """Torchrun when torchrun started this process as one of several, else Solo."""
    if not all(k in os.environ for k in ENV):
        return Solo()
    try:
        rank, world, local = (int(os.environ[k]) for k in ENV)
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        raise GankitError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers, got "
                          f"{', '.join(os.environ[k] for k in ENV)}") from None
    if world <= 1:   # `torchrun --nproc-per-node 1`: one process, nothing to synchronise
        return Solo()
    return Torchrun(rank, world, local, local_world)


def is_collective_error(e: BaseException) -> bool:
    """torch.distributed's own error types, and the plain RuntimeErrors that gloo raises
    when a peer's connection closes or a collective times out."""
    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    text = str(e)
    return any(mark in text for mark in ("gloo", "Gloo", "NCCL", "Connection closed", "Timed out"))


def lost_contact(e: BaseException) -> GankitError:
    """A collective failed: another process died or went silent. One line, not a trace."""
    return GankitError(f"lost contact with the other processes of the torchrun job "
                       f"({first_line(e).split('. ')[0]}); the first failing process's error says why; "
                       "resume with --resume from the last checkpoint")


# --- seeds and RNG states ----------------------------------------------------------------

def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of rank `rank`'s batches and noise. Rank 0 of a new run uses the run's
    seed itself, so it draws what a single process would; the others, and ranks resumed
    from a checkpoint without their own RNG state, get one derived from (seed, rank, step)."""
    if rank == 0 and step == 0:
        return seed
    digest = hashlib.sha256(f"gankit:{seed}:{rank}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def own_rng_states(batch_gen: torch.Generator) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state(), "batch": batch_gen.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def seed_rank(job: Solo, seed: int, batch_gen: torch.Generator, step: int = 0,
              saved: dict[str, torch.Tensor] | None = None) -> None:
    """Give a rank other than 0 its own streams: its saved states when the checkpoint has
    them (written by a job with at least as many processes), else derived seeds."""
    if job.rank == 0:
        return
    prefix = f"rng.rank{job.rank}."
    if saved and prefix + "torch" in saved:
        torch.set_rng_state(saved[prefix + "torch"])
        batch_gen.set_state(saved[prefix + "batch"])
        if prefix + "cuda" in saved and torch.cuda.is_available():
            torch.cuda.set_rng_state(saved[prefix + "cuda"])
        return
    s = rank_seed(seed, job.rank, step)
    torch.manual_seed(s)   # CPU and every GPU
    batch_gen.manual_seed(s)


# --- helpers -----------------------------------------------------------------------------

def _by_kind(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    kinds: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        kinds.setdefault((t.dtype, t.device), []).append(t)
    return list(kinds.values())


@torch.no_grad()
def _broadcast(tensors: list[torch.Tensor]) -> None:
    """Rank 0's values into every process's tensors, one message per dtype and device."""
    for same in _by_kind(tensors):
        flat = torch.cat([t.reshape(-1) for t in same])
        dist.broadcast(flat, src=0)
        for t, part in zip(same, flat.split([t.numel() for t in same])):
            t.copy_(part.view(t.shape))


def convert_sync_batchnorm(model: nn.Module, job: Solo, device: torch.device,
                           resumed: bool = False) -> nn.Module:
    """--sync-bn: BatchNorm over the global batch (the layers keep their state_dict names,
    so checkpoints load with or without it). No effect in a single process."""
    if not job.parallel:
        return model
    if device.type != "cuda":
        why = "torch's SyncBatchNorm synchronises GPU tensors only"
        if not resumed:
            raise GankitError(f"--sync-bn needs CUDA GPUs: {why}; drop --sync-bn for CPU runs")
        # A GPU run resumed on CPUs: its saved config asks for it (no CLI flag turns it off).
        warnings.warn(f"--sync-bn ignored on CPU ({why}): each process normalises with "
                      "its own batch")
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
