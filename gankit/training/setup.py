"""A run made ready to train: everything the loop starts from, prepared in one place.

The order of `prepare` is part of the behaviour: it fixes what the random number generators
draw (weights first, then a fresh run's data fit, then the batch stream), so that a resumed
run continues bit for bit and a run with evaluation equals one without.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..config import RunConfig, write_toml
from ..data import ImageData, load_data, split_validation, to_float
from ..errors import GankitError, option
from ..models import GenerativeModel, build_model, get_model_class, names_that
from ..runtime import configure_threads, pick_device
from . import checkpoint, distributed, graphs
from .cpu import ThreadPlan, plan_threads, segments
from .ema import EMA
from .run_folder import RunFolder, RunPaths

GRID = 25   # the original's 5x5 sample grid


@dataclass
class Grid:
    """The fixed inputs of the sample grids: noise (and labels) for the samples, and for
    models with an encoder, training images to show above their reconstructions."""
    z: Any
    labels: torch.Tensor | None
    nrow: int
    real: tuple[torch.Tensor, torch.Tensor | None] | None


@dataclass
class Prepared:
    """A run ready for its first step (or its next one, resumed)."""
    cfg: RunConfig
    paths: RunPaths
    device: torch.device
    data: ImageData
    model: GenerativeModel
    ema: EMA | None
    batch_gen: torch.Generator
    step: int
    last_good: int | None          # the newest checkpoint's step
    best_fid: float                # with --eval-every
    evaluator: Any                 # evaluate.InTraining on rank 0 with --eval-every, else None
    thread_segments: list[dict]    # the CPU thread counts, stretch by stretch
    parallel: dict                 # how a torchrun job's batch adds up (checkpoint metadata)
    step_fn: Callable
    grid: Grid | None              # None for tables: nothing to draw


def prepare(cfg: RunConfig, resume: bool, job: distributed.Solo, folder: RunFolder | None,
            data, progress: bool, say: Callable[[str], None]) -> Prepared:
    """Device, threads, data, model, evaluator, run folder, training state, config.toml,
    the step function and the grid inputs, in that order. `data`: a dataset already in
    memory (the imputers' arrays) instead of cfg.data's."""
    paths = RunPaths(cfg.train.out)
    device = job.device(pick_device(cfg.train.device))   # torchrun: joins the group
    saved = checkpoint.read_meta(paths.checkpoint()) if resume else {}
    thread_segments = segments(saved)
    plan = None
    if device.type == "cpu":
        plan = plan_threads(cfg.train.threads, (thread_segments or [None])[-1],
                            job.local_world_size if job.world_size > 1 else None)
        cfg = with_train(cfg, threads=plan.threads)
    configure_threads(cfg.train.threads, device)
    with job.local_main_first():   # one download per machine, not one per process
        data, _ = split_validation(load_data(cfg.data) if data is None else data,
                                   cfg.data.validation)
    if get_model_class(cfg.model).data_kind == "rows" and data.kind == "table":
        # A table generator learns the table's rows encoded (data/row_encoding.py): the
        # encoding is fitted on a fresh run and read back from the checkpoint on resume.
        from ..data.row_encoding import encode_table
        data = encode_table(data, cfg.train.seed, saved.get("encoding"))
    model = _build_model(cfg, data, device, job, resume)
    evaluator = None
    if cfg.train.eval_every and job.main:   # may train the feature network first (cached)
        from ..evaluate import InTraining
        evaluator = InTraining(cfg.data, cfg.train.eval_samples, device, progress)
    if job.main:
        folder.create()   # only now, with everything loaded
    p = Prepared(cfg, paths, device, data, model, None, torch.Generator(device=device), 0,
                 None, math.inf, evaluator, thread_segments, {}, None, None)
    _training_state(p, job, resume)
    if plan is not None:
        _settle_threads(p, plan, say)
    p.parallel = job.describe(p.cfg.train.batch_size)
    if job.main:
        _write_config(p, job)
    p.step_fn, note = graphs.training_step(model, device, p.cfg.train.precision,
                                           p.cfg.train.cuda_graphs, job.world_size)
    if note:
        say(note)
    p.grid = _grid(model, data, p.cfg.train.seed, device)
    return p


def with_train(cfg: RunConfig, **changes) -> RunConfig:
    """`cfg` with some [train] fields changed (the run's thread count, a budget's steps)."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changes))


def _build_model(cfg: RunConfig, data: ImageData, device: torch.device,
                 job: distributed.Solo, resume: bool) -> GenerativeModel:
    torch.manual_seed(cfg.train.seed)   # weight init; a resumed run overwrites it
    kind = get_model_class(cfg.model).data_kind
    if kind != data.kind:
        said = {"image": "images", "table": "tables", "rows": "tables"}
        raise GankitError(f"{cfg.model} learns from {said[kind]} but {data.name} holds "
                          f"{said[data.kind]}: use one of "
                          f"{names_that(lambda c: said[c.data_kind] == said[data.kind], tables=True)}")
    model = build_model(cfg.model, cfg.model_cfg, data.shape, data.num_classes,
                        getattr(data, "layout", None))
    model.class_names = list(data.class_names)
    model.class_counts = _class_counts(data)
    model = model.to(device)
    if cfg.train.sync_bn:
        model = distributed.convert_sync_batchnorm(model, job, device, resumed=resume)
    return model


def _class_counts(data: ImageData) -> list[int]:
    """How many training images each class had: the class prior p(y) that Bayes' rule needs
    when a conditional model classifies (gankit classify)."""
    if data.labels is None:
        return []
    return torch.bincount(data.labels, minlength=len(data.class_names)).tolist()


def _training_state(p: Prepared, job: distributed.Solo, resume: bool) -> None:
    """Optimizers, EMA and the batch RNG, restored from the checkpoint on resume; then
    every process gets rank 0's weights and its own random streams."""
    model, tc = p.model, p.cfg.train
    model.optimizers = model.configure_optimizers()
    p.ema = EMA(model.sampler, tc.ema) if tc.ema else None
    p.batch_gen.manual_seed(tc.seed)
    saved, meta = None, {}
    if not resume:
        model.fit_data(p.data.samples, p.data.labels, tc.seed)
    else:
        saved, meta = checkpoint.load(p.paths.checkpoint())
        checkpoint.restore(model, p.batch_gen, p.ema, saved, meta, p.paths.root)
        p.step = p.last_good = meta["step"]
    p.best_fid = meta.get("best_fid", math.inf)
    job.wait_for_main()   # rank 0 may have spent minutes on the feature network
    job.attach(model, *([p.ema.average] if p.ema else []))
    distributed.seed_rank(job, tc.seed, p.batch_gen, p.step, saved)


def _settle_threads(p: Prepared, plan: ThreadPlan, say: Callable[[str], None]) -> None:
    """The plan's thread count, timed where it left a choice on a step of a copy of the
    model (the run's model, random streams and data untouched); recorded as this
    stretch's count."""
    probe = None
    if plan.counts:
        n = p.model.real_batch_size(p.cfg.train.batch_size)
        real = p.data.prepare(p.data.samples[:n].to(p.device))
        labels = p.data.labels[:n].to(p.device) if p.data.labels is not None else None
        step = graphs.eager_step(copy.deepcopy(p.model), p.device, p.cfg.train.precision)
        probe = lambda: step(real, labels)   # noqa: E731
    threads, note = plan.settle(probe, p.step)
    p.cfg = with_train(p.cfg, threads=threads)
    if note:
        say(note)
    if not p.thread_segments or p.thread_segments[-1]["threads"] != threads:
        p.thread_segments.append({"from_step": p.step, "threads": threads,
                                  "chosen": plan.chosen})


def parallel_note(p: Prepared, job: distributed.Solo) -> str:
    """How a torchrun job's batch adds up ("" for one process): config.toml's comment."""
    if job.world_size == 1:
        return ""
    return (f"{job.world_size} processes ({job.backend}) x batch_size "
            f"{p.cfg.train.batch_size} = {p.parallel['global_batch_size']} images per "
            "step; batch_size is per process")


def save_config(p: Prepared, job: distributed.Solo) -> None:
    write_toml(p.paths.config, p.cfg.to_tables(), comment=parallel_note(p, job))


def _write_config(p: Prepared, job: distributed.Solo) -> None:
    if job.world_size > 1:
        print(f"gankit: {parallel_note(p, job)}; rank 0 writes {p.paths.root}", flush=True)
    save_config(p, job)
    if getattr(p.data, "held_out", None) is not None:   # a folder: which images it left out
        from ..data.split import listing
        from ..files import write_bytes
        write_bytes(p.paths.held_out, listing(p.data).encode(),
                    fix=f"choose another {option('out')}")


def _grid(model: GenerativeModel, data: ImageData, seed: int,
          device: torch.device) -> Grid | None:
    """Fixed noise (and labels) for the sample grids, from a generator of their own so
    that drawing it does not move the run's RNG; for models with an encoder, also 10
    fixed training images to show beside their reconstructions."""
    if model.data_kind != "image":   # a table has no picture to draw
        return None
    z, labels, nrow = model.grid_inputs(GRID, torch.Generator().manual_seed(seed),
                                        per_class=10, max_classes=10)
    real = None
    if model.reconstructs:
        pick = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data.images), generator=pick)[:10]
        y = data.labels[idx].to(device) if data.labels is not None else None
        real = to_float(data.images[idx].to(device)), y
    return Grid(z, labels, nrow, real)

