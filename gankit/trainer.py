"""THE training loop: one for every model.

batches (drawn by index from the resident uint8 tensor) -> model.training_step -> metrics
-> scheduled hooks (sample grids, checkpoints) ; resume ; Ctrl-C. Nothing here knows which
model it is training: a model contributes its step, the loop does the rest.

Under torchrun every process runs this same loop on its own batches and noise, and
gankit/distributed.py keeps their weights identical; rank 0 alone writes the run folder.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from . import checkpoint, distributed, __version__
from .config import RunConfig, write_toml
from .data import ImageData, load_data, to_float
from .errors import GankitError
from .images import grid, save_image
from .ema import EMA, averaged
from .metrics_log import MetricsLog
from .models import GenerativeModel, build_model
from .runtime import configure_threads, default_threads, pick_device

GRID = 25   # the original's 5x5 sample grid


@dataclass
class Run:
    """What `gankit.train` returns: the trained model and where its files are."""
    out: Path
    model: GenerativeModel
    config: RunConfig
    step: int
    metrics: list[dict[str, float]] = field(default_factory=list)
    interrupted: int | None = None   # the signal number that stopped the run, if any
    ema: EMA | None = None            # the averaged sampling weights, with --ema
    rank: int = 0                     # under torchrun: this process's rank (0 writes files)
    world_size: int = 1               # and how many processes trained together

    def sample(self, n: int, seed: int | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with averaged(self.model, self.ema):
            return self.model.sample(n, generator=gen, labels=labels)


# --- the training state a checkpoint holds ---------------------------------------------

def state_tensors(model: GenerativeModel, batch_gen: torch.Generator,
                  ema: EMA | None = None) -> tuple[dict, dict]:
    """Weights, optimizer states and RNG states as (tensors, JSON skeleton)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:   # the sampling weights: `gankit sample` prefers them
        tensors.update({f"ema.{k}": v for k, v in ema.average.state_dict().items()})
    skeleton = {name: checkpoint.flatten(opt.state_dict(), f"optim.{name}", tensors)
                for name, opt in model.optimizers.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.batch"] = batch_gen.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    return tensors, skeleton


def checkpoint_meta(cfg: RunConfig, model: GenerativeModel, data: ImageData, step: int,
                    parallel: dict | None = None) -> dict:
    return {"gankit_version": __version__, "torch_version": torch.__version__,
            "model": cfg.model, "config": cfg.to_tables(), "step": step,
            # processes, and the batch per process and per step (torchrun)
            "data_parallel": parallel or distributed.Solo().describe(cfg.train.batch_size),
            "image_shape": list(model.image_shape), "num_classes": model.num_classes,
            "class_names": list(data.class_names), "dataset": data.name,
            # How many training images each class had: the class prior p(y) that Bayes' rule
            # needs when a conditional model classifies (gankit classify).
            "class_counts": ([] if data.labels is None
                             else torch.bincount(data.labels, minlength=len(data.class_names)).tolist())}


def load_weights(model: GenerativeModel, tensors: dict, where: str) -> None:
    weights = checkpoint.prefixed(tensors, "model.")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or reshaped:
        parts = [f"{len(names)} {what} (e.g. {names[0]})" for names, what in
                 ((missing, "missing"), (unexpected, "unexpected"), (reshaped, "of another shape"))
                 if names]
        raise GankitError(f"checkpoint {where} does not fit this model: tensors {', '.join(parts)}; "
                          "it belongs to another model or image shape")
    model.load_state_dict(weights, strict=True)


def restore(model, batch_gen, ema, tensors, meta, where) -> None:
    load_weights(model, tensors, where)
    try:
        if ema is not None:
            ema.average.load_state_dict(checkpoint.prefixed(tensors, "ema."))
        for name, opt in model.optimizers.items():
            opt.load_state_dict(checkpoint.unflatten(meta["optim"][name], tensors))
        torch.set_rng_state(tensors["rng.torch"])
        batch_gen.set_state(tensors["rng.batch"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise GankitError(f"checkpoint {where} lacks part of the training state ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:80] if str(e) else '?'}): it was edited or "
                          "damaged; `gankit sample` can still use its weights, or start a new "
                          "run") from None
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])


# --- what the sample grids show --------------------------------------------------------

def grid_latents(model: GenerativeModel, seed: int):
    """Fixed noise (and labels) for the grids, from its own generator so that drawing it
    does not move the run's RNG. A conditional model gets one row per class (up to 10),
    with the same noise in every row, so each column keeps its style across classes."""
    gen = torch.Generator().manual_seed(seed)
    if model.conditional:
        rows = min(model.num_classes, 10)
        z = model.latents(10, gen).repeat(rows, 1)
        return z, torch.arange(rows).repeat_interleave(10), 10
    return model.latents(GRID, gen), None, 5


def grid_images(data: ImageData, seed: int, device: torch.device, n: int = 10):
    """n fixed training images (and labels) to show beside their reconstructions."""
    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed))[:n]
    labels = data.labels[idx].to(device) if data.labels is not None else None
    return to_float(data.images[idx].to(device)), labels


# --- divergence ------------------------------------------------------------------------

class Diverged(GankitError):
    def __init__(self, step: int, what: str, out: Path, last_good: int | None):
        kept = (f"the last good checkpoint (step {last_good}) is kept in {out}/checkpoints"
                if last_good is not None else "no checkpoint had been saved yet")
        super().__init__(f"training diverged at step {step}: {what}, usually a learning rate "
                         f"too high for this model; {kept}: start a new run with a lower "
                         "--lr-g/--lr-d (--resume would repeat the same steps)")


def nonfinite_weights(model: GenerativeModel) -> list[str]:
    """Names of weights holding NaN or inf (a host sync per tensor: checkpoint time only)."""
    return [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]


# --- the run folder ----------------------------------------------------------------------

def check_out(out: str, resume: bool) -> Path:
    """Refuse a run folder that would lose work, before anything is loaded or written."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise GankitError(f"run folder {path} is a file: choose another --out")
    last = checkpoint.last_in(path)
    if resume and not last.is_file():
        raise GankitError(f"nothing to resume in {path}: no checkpoints/last.safetensors "
                          "(drop --resume to start a new run)")
    if not resume and last.is_file():
        raise GankitError(f"{path} already holds a run: pass --resume to continue it, "
                          "or --out NEW_FOLDER to start another")
    return path


def create_out(path: Path) -> None:
    try:
        (path / "samples").mkdir(parents=True, exist_ok=True)
        (path / "checkpoints").mkdir(exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise GankitError(f"cannot write to run folder {path} ({e.strerror}): "
                          "choose another --out") from None


class StopSignals:
    """First SIGINT/SIGTERM asks the loop to stop after this step and save; a second exits.

    Under torchrun a second signal does not exit: torchrun itself SIGKILLs a process that
    has not ended 30 s (its --shutdown-timeout) after the signal it sent, and older
    torchruns leave Ctrl-C to reach the processes twice (from the terminal and from them).
    """

    def __init__(self, exit_on_second: bool = True):
        self.signum: int | None = None
        self.exit_on_second = exit_on_second
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and self.exit_on_second:   # leave now; writes are atomic
            os._exit(128 + signum)
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


# --- the loop ----------------------------------------------------------------------------

def train(cfg: RunConfig, resume: bool = False, progress: bool = True) -> Run:
    """Train; under torchrun, as one of its processes (see gankit/distributed.py)."""
    job = distributed.from_env()
    try:
        with warnings.catch_warnings():
            if not job.main:   # the same warnings would come once per process
                warnings.simplefilter("ignore")
            return _train(cfg, resume, progress and job.main, job)
    except RuntimeError as e:
        # torch.distributed's errors (DistError and gloo's plain RuntimeErrors) when another
        # process died or went silent; anything else is a bug and keeps its traceback.
        if isinstance(job, distributed.Job) and distributed.is_collective_error(e):
            raise distributed.lost_contact(e) from None
        raise
    finally:
        job.leave()


def _train(cfg: RunConfig, resume: bool, progress: bool, job: distributed.Solo) -> Run:
    tc, main = cfg.train, job.main   # only the main process (rank 0) writes files
    out = check_out(tc.out, resume) if main else Path(tc.out)
    device = job.device(pick_device(tc.device))   # under torchrun: joins the process group
    if device.type == "cpu" and tc.threads is None:
        # Record the thread count: it changes the float rounding of matrix products, so a
        # resumed run must use the same count to match an uninterrupted one bit for bit.
        threads = default_threads(job.local_world_size)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(tc, threads=threads))
        tc = cfg.train
    configure_threads(tc.threads, device)

    with job.local_main_first():   # one download per machine, not one per process
        data = load_data(cfg.data)
    torch.manual_seed(tc.seed)   # weight init; a resumed run overwrites it below
    model = build_model(cfg.model, cfg.model_cfg, data.shape, data.num_classes).to(device)
    if tc.sync_bn:
        model = distributed.convert_sync_batchnorm(model, job, device, resumed=resume)
    evaluator = None
    if tc.eval_every and main:   # may train the dataset's feature classifier first (once; cached)
        from .evaluate import InTraining
        evaluator = InTraining(cfg.data, tc.eval_samples, device, progress)
    if main:
        create_out(out)   # only now: a bad device, dataset or model leaves no empty run folder
    model.optimizers = model.configure_optimizers()
    ema = EMA(getattr(model, model.sampling_network), tc.ema) if tc.ema else None
    batch_gen = torch.Generator(device=device).manual_seed(tc.seed)
    step, saved = 0, None
    if resume:
        saved, meta = checkpoint.load(checkpoint.last_in(out))
        restore(model, batch_gen, ema, saved, meta, out)
        step = meta["step"]
    job.wait_for_main()   # rank 0 may have spent minutes on the feature classifier
    job.attach(model, *([ema.average] if ema else []))   # rank 0's weights everywhere
    distributed.seed_rank(job, tc.seed, batch_gen, step, saved)   # other batches and noise
    parallel = job.describe(tc.batch_size)
    if main:
        note = ""
        if job.world_size > 1:
            note = (f"{job.world_size} processes ({job.backend}) x batch_size {tc.batch_size} "
                    f"= {parallel['global_batch_size']} images per step; batch_size is per process")
            print(f"gankit: {note}; rank 0 writes {out}", flush=True)
        write_toml(out / "config.toml", cfg.to_tables(), comment=note)

    images = data.images.to(device)
    labels = data.labels.to(device) if data.labels is not None else None
    n_real = model.real_batch_size(tc.batch_size)
    fixed_z, fixed_labels, nrow = grid_latents(model, tc.seed)
    fixed_real = grid_images(data, tc.seed, device) if model.reconstructs else None
    best = None
    if evaluator is not None:
        best = {"fid": meta.get("best_fid", math.inf) if resume else math.inf}
    last_good = {"step": step if resume else None}
    log = (MetricsLog(out, model.metric_names, resume_step=step,
                      extra=("fid", "class_entropy") if tc.eval_every else ()) if main else None)
    ranks_rng: dict[str, torch.Tensor] = {}   # the other processes' RNG states, for checkpoints

    def save_samples(s):
        with averaged(model, ema):
            fakes = model.sample(latents=fixed_z, labels=fixed_labels)
        save_image(grid(fakes, nrow=nrow), out / "samples" / f"step_{s:06d}.png")
        if fixed_real is not None:   # originals above, their reconstructions below
            real, y = fixed_real
            pair = torch.cat([real, model.reconstruct(real, y)])
            save_image(grid(pair, nrow=len(real)), out / "samples" / f"recon_{s:06d}.png")

    def save_checkpoint(s, name="last"):
        bad = nonfinite_weights(model)   # a diverged model must not replace the last good one
        if bad:
            raise Diverged(s, f"weights {', '.join(bad[:2])}{' ...' if len(bad) > 2 else ''} "
                           "became NaN or infinite", out, last_good["step"])
        tensors, skeleton = state_tensors(model, batch_gen, ema)
        tensors.update(ranks_rng)
        meta = {**checkpoint_meta(cfg, model, data, s, parallel), "optim": skeleton}
        if best is not None:   # what the run's fid column means, and its best value
            meta.update(best_fid=best["fid"], evaluation=evaluator.describe())
        path = out / "checkpoints" / f"{name}.safetensors"
        checkpoint.save(path, tensors, meta)
        if name == "last":
            last_good["step"] = s
            if tc.keep:
                checkpoint.keep_numbered(path, s, tc.keep)

    def evaluate(s):
        with averaged(model, ema):
            scores = evaluator(model)
        log.note(scores)
        if scores["fid"] < best["fid"]:
            best["fid"] = scores["fid"]
            save_checkpoint(s, "best")

    bar = tqdm(total=tc.steps, initial=step, desc=f"{cfg.model} {data.name}", unit="it",
               disable=not progress, dynamic_ncols=True, mininterval=0.5)

    def log_metrics(s):
        log.flush(s)
        bar.set_postfix(log.postfix(), refresh=False)
        bad = [k for k in model.metric_names if not math.isfinite(log.rows[-1][k])]
        if bad:
            raise Diverged(s, f"{', '.join(bad)} became NaN or infinite", out, last_good["step"])

    # The one scheduled place for everything that happens "every N steps".
    # Evaluation first, so its scores go into this step's row and checkpoint.
    hooks: list[tuple[int, Callable[[int], None]]] = [
        (tc.log_every, log_metrics), (tc.sample_every, save_samples),
        (tc.checkpoint_every, save_checkpoint)]
    if tc.eval_every:
        hooks.insert(0, (tc.eval_every, evaluate))

    def run_hooks(s, due):
        if not due:
            return
        ranks_rng.update(job.rng_states(batch_gen))
        if main:
            for hook in due:
                hook(s)
        job.wait_for_main()   # the others wait while rank 0 writes

    hashes = distributed.step_hashes(job.rank)   # a debugging aid; off unless asked for
    try:
        with StopSignals(exit_on_second=not isinstance(job, distributed.Job)) as stop:
            while step < tc.steps and job.agree_to_stop(stop.signum) is None:
                idx = torch.randint(len(images), (n_real,), device=device, generator=batch_gen)
                out_metrics = model.training_step(to_float(images[idx]),
                                                  labels[idx] if labels is not None else None)
                job.sync_buffers(model)   # BatchNorm statistics and the like: rank 0's
                step += 1
                if ema is not None:
                    ema.update(getattr(model, model.sampling_network))
                if log is not None:
                    log.add(out_metrics)
                bar.update(1)
                if hashes is not None:
                    hashes.write(step, model, idx)
                run_hooks(step, [hook for every, hook in hooks if step % every == 0])
            interrupted = job.agree_to_stop(stop.signum)
            # The end, or a stop request: whatever was not just written, write now.
            run_hooks(step, [hook for every, hook in hooks if step % every != 0])
    finally:   # also on divergence: metrics.csv and loss.png show how it went
        bar.close()
        if log is not None:
            log.close()
    return Run(out=out, model=model, config=cfg, step=step, metrics=log.rows if log else [],
               interrupted=interrupted or stop.signum, ema=ema, rank=job.rank,
               world_size=job.world_size)
