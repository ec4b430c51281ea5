"""THE training loop: one for every model.

batches (drawn by index from the resident uint8 tensor) -> model.training_step -> metrics
-> scheduled hooks (sample grids, checkpoints) ; resume ; Ctrl-C. Nothing here knows which
model it is training: a model contributes its step, the loop does the rest.

Under torchrun every process runs this same loop on its own batches and noise, and
gankit/training/distributed.py keeps their weights identical; rank 0 alone writes the run folder.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import signal
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from . import checkpoint, distributed, graphs
from .budget import BudgetClock
from ..config import RunConfig, write_toml
from ..data import ImageData, load_data, split_validation, to_float
from ..errors import GankitError, option
from ..images import grid, save_image
from .ema import EMA, averaged
from .metrics_log import D_WINS_STEPS, MetricsLog, d_wins
from ..models import GenerativeModel, build_model, get_model_class, names_that
from .run_folder import RunLock
from .cpu import LoadWatch, fastest, plan_threads, segments
from ..runtime import configure_threads, pick_device

# Steps between refits of a fitted prior for the sample grids (see Trainer.fit_prior).
REFIT_EVERY = 1000
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


# --- divergence ------------------------------------------------------------------------

class Diverged(GankitError):
    def __init__(self, step: int, what: str, out: Path, last_good: int | None):
        kept = (f"the last good checkpoint (step {last_good}) is kept in {out}/checkpoints"
                if last_good is not None else "no checkpoint had been saved yet")
        super().__init__(f"training diverged at step {step}: {what}, usually a learning rate "
                         f"too high for this model; {kept}: start a new run with a lower "
                         f"{option('lr_g')}/{option('lr_d')} ({option('resume', True)} would "
                         "repeat the same steps)")


def nonfinite_weights(model: GenerativeModel) -> list[str]:
    """Names of weights holding NaN or inf (a host sync per tensor: checkpoint time only)."""
    return [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]


# --- the run folder ----------------------------------------------------------------------

class RunFolder:
    """Rank 0's run folder: refused when it would lose work, locked while training, created
    only once everything it needs has loaded (a bad device, dataset or model leaves none)."""

    def __init__(self, out: str, resume: bool):
        self.path, self.resume = Path(out), resume
        self.lock = RunLock(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise GankitError(f"run folder {self.path} is a file: choose another {option('out')}")
        if resume:
            checkpoint.to_resume(self.path)   # before anything is loaded
        if self.path.is_dir():
            self._claim()

    def _claim(self) -> None:
        """Take the lock, then look: another process may have written a run meanwhile."""
        self.lock.acquire()
        try:
            if self.resume:
                checkpoint.to_resume(self.path)
            elif checkpoint.last_in(self.path).is_file():
                raise GankitError(f"{self.path} already holds a run: pass "
                                  f"{option('resume', True)} to continue it, or "
                                  f"{option('out', 'NEW_FOLDER')} to start another")
        except GankitError:
            self.release()
            raise

    def release(self) -> None:
        self.lock.release()

    def create(self) -> None:
        path = self.path
        try:
            (path / "samples").mkdir(parents=True, exist_ok=True)
            (path / "checkpoints").mkdir(exist_ok=True)
            probe = path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise GankitError(f"cannot write to run folder {path} ({e.strerror}): "
                              f"choose another {option('out')}") from None
        if not self.lock.held:
            self._claim()


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

def train(cfg: RunConfig, resume: bool = False, progress: bool = True, data=None) -> Run:
    """Train; under torchrun, as one of its processes (see gankit/training/distributed.py).

    `data`: a dataset already in memory (the imputers' arrays) instead of cfg.data's."""
    job = distributed.from_env()
    folder = None
    try:
        with warnings.catch_warnings():
            if not job.main:   # the same warnings would come once per process
                warnings.simplefilter("ignore")
            folder = RunFolder(cfg.train.out, resume) if job.main else None
            return Trainer(cfg, resume, progress and job.main, job, folder, data).fit()
    except RuntimeError as e:
        # torch.distributed's errors (DistError and gloo's plain RuntimeErrors) when another
        # process died or went silent; anything else is a bug and keeps its traceback.
        if isinstance(job, distributed.Job) and distributed.is_collective_error(e):
            raise distributed.lost_contact(e) from None
        raise
    finally:
        if folder is not None:
            folder.release()
        job.leave()


class Trainer:
    """One run of the loop. Set up in the constructor (in an order that fixes what the
    RNG draws: a resumed run must continue bit for bit), then `fit()`:

        while steps remain: train_step() -> run_hooks(): every N steps evaluate(),
        log_metrics(), save_samples(), save_checkpoint() -> at the end (or on Ctrl-C),
        whichever of them did not just run.

    Under torchrun every process runs it; only the main process (rank 0) writes files.
    """

    def __init__(self, cfg: RunConfig, resume: bool, progress: bool, job: distributed.Solo,
                 folder: RunFolder | None, data=None):
        self.job, self.main, self.resume, self.folder = job, job.main, resume, folder
        self.out = Path(cfg.train.out)
        self.device = job.device(pick_device(cfg.train.device))   # torchrun: joins the group
        saved = checkpoint.read_meta(checkpoint.last_in(self.out)) if resume else {}
        self.thread_segments = segments(saved)
        self.thread_plan = None
        if self.device.type == "cpu":
            self.thread_plan = plan_threads(cfg.train.threads, (self.thread_segments or [None])[-1],
                                        job.local_world_size if job.world_size > 1 else None)
            threads = self.thread_plan.threads
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=threads))
        self.cfg = cfg
        self.tc = tc = cfg.train
        configure_threads(tc.threads, self.device)
        self.progress = progress = progress and self.main
        with job.local_main_first():   # one download per machine, not one per process
            self.data, _ = split_validation(load_data(cfg.data) if data is None else data,
                                            cfg.data.validation)
        self._build_model()
        self.evaluator = None
        if tc.eval_every and self.main:   # may train the feature classifier first (once; cached)
            from ..evaluate import InTraining
            self.evaluator = InTraining(cfg.data, tc.eval_samples, self.device, progress)
        if self.main:
            self.folder.create()   # only now, with everything loaded
        self._training_state()
        if self.thread_plan is not None:
            self._settle_threads()
        tc = self.tc
        self.load_watch = (LoadWatch(tc.threads) if self.device.type == "cpu"
                           and job.world_size == 1 else None)
        self._write_config()
        self.step_fn, note = graphs.training_step(self.model, self.device, tc.precision,
                                                  tc.cuda_graphs, job.world_size)
        self.graph_note_shown = False
        if note:
            self.say(note)
        self._grid_inputs()
        self.log = (MetricsLog(self.out, self.model.metric_names, resume_step=self.step,
                               extra=("fid", "class_entropy") if tc.eval_every else ())
                    if self.main else None)
        self.bar = tqdm(total=tc.steps, initial=self.step, desc=f"{cfg.model} {self.data.name}",
                        unit="it", disable=not progress, dynamic_ncols=True, mininterval=0.5)
        # The one scheduled place for everything that happens "every N steps". Evaluation
        # first, so that its scores go into this step's row and checkpoint. Functions of
        # the class, not bound methods: bound ones would tie the trainer into a reference
        # cycle, which outlives train() until the garbage collector runs, perhaps at exit,
        # after torch.distributed has shut down, where freeing it aborted the process.
        self.hooks: list[tuple[int, Callable[[Trainer], None]]] = [
            *([(tc.eval_every, Trainer.evaluate)] if tc.eval_every else []),
            (tc.log_every, Trainer.log_metrics),
            *([(tc.sample_every, Trainer.save_samples)] if self.fixed_z is not None else []),
            (tc.checkpoint_every, Trainer.save_checkpoint)]
        self.d_wins_said = False   # the note on a discriminator that keeps winning, once
        self.ranks_rng: dict[str, torch.Tensor] = {}   # the other processes' RNG states
        self.interrupted: int | None = None

    def say(self, note: str) -> None:
        """A one-line note on stderr when the run shows progress; tqdm.write keeps the bar
        (if one is drawn yet) below it."""
        if self.progress:
            tqdm.write(f"gankit: {note}", file=sys.stderr)

    # --- set up ------------------------------------------------------------------------

    def _build_model(self) -> None:
        cfg, data = self.cfg, self.data
        torch.manual_seed(cfg.train.seed)   # weight init; a resumed run overwrites it
        kind = get_model_class(cfg.model).data_kind
        if kind != data.kind:
            raise GankitError(f"{cfg.model} learns from {kind}s but {data.name} holds "
                              f"{data.kind}s: use one of "
                              f"{names_that(lambda c: c.data_kind == data.kind, tables=True)}")
        model = build_model(cfg.model, cfg.model_cfg, data.shape, data.num_classes)
        model.class_names = list(data.class_names)
        model.class_counts = _class_counts(data)
        self.model = model.to(self.device)
        if cfg.train.sync_bn:
            self.model = distributed.convert_sync_batchnorm(self.model, self.job, self.device,
                                                            resumed=self.resume)

    def _training_state(self) -> None:
        """Optimizers, EMA and the batch RNG, restored from the checkpoint on resume; then
        every process gets rank 0's weights and its own random streams."""
        model, tc, job = self.model, self.tc, self.job
        model.optimizers = model.configure_optimizers()
        self.ema = EMA(getattr(model, model.sampling_network), tc.ema) if tc.ema else None
        self.batch_gen = torch.Generator(device=self.device).manual_seed(tc.seed)
        self.step, saved, meta = 0, None, {}
        if not self.resume:
            model.fit_data(self.data.samples, self.data.labels, tc.seed)
        else:
            saved, meta = checkpoint.load(checkpoint.last_in(self.out))
            checkpoint.restore(model, self.batch_gen, self.ema, saved, meta, self.out)
            self.step = meta["step"]
        self.last_good = self.step if self.resume else None   # the newest checkpoint's step
        self.best_fid = meta.get("best_fid", math.inf)        # with --eval-every
        job.wait_for_main()   # rank 0 may have spent minutes on the feature classifier
        job.attach(model, *([self.ema.average] if self.ema else []))
        distributed.seed_rank(job, tc.seed, self.batch_gen, self.step, saved)

    def _settle_threads(self) -> None:
        """Where the plan left a choice, keep the thread count under which a few steps of a
        copy of the model run fastest (the run's model, random streams and data untouched);
        record the count as this stretch's, and say what the user should know of it."""
        plan, threads, why = self.thread_plan, self.tc.threads, ""
        if plan.counts:
            n = self.model.real_batch_size(self.tc.batch_size)
            real = self.data.prepare(self.data.samples[:n].to(self.device))
            labels = self.data.labels[:n].to(self.device) if self.data.labels is not None else None
            step = graphs.eager_step(copy.deepcopy(self.model), self.device, self.tc.precision)
            prefer = plan.before["threads"] if plan.before else None
            with torch.random.fork_rng(devices=[]):
                threads, medians = fastest(plan.counts, lambda: step(real, labels), prefer=prefer)
            torch.set_num_threads(threads)
            self.tc = dataclasses.replace(self.tc, threads=threads)
            self.cfg = dataclasses.replace(self.cfg, train=self.tc)
            if threads < max(plan.counts) or (prefer is not None and threads != prefer):
                timed = ", ".join(f"{medians[n] * 1e3:.1f} ms on {n}" for n in plan.counts)
                why = f"a step took {timed} thread{'s' * (plan.counts[-1] > 1)} here"
        note = plan.note(threads, self.step, why)
        if note:
            self.say(note)
        if not self.thread_segments or self.thread_segments[-1]["threads"] != threads:
            self.thread_segments.append({"from_step": self.step, "threads": threads,
                                         "chosen": plan.chosen})

    def _write_config(self) -> None:
        self.parallel = self.job.describe(self.tc.batch_size)
        if not self.main:
            return
        if self.job.world_size > 1:
            print(f"gankit: {self._parallel_note()}; rank 0 writes {self.out}", flush=True)
        self._save_config()
        if getattr(self.data, "held_out", None) is not None:   # a folder: which images it left out
            from ..data.split import listing
            from ..files import write_bytes
            write_bytes(self.out / "held_out.txt", listing(self.data).encode(),
                        fix=f"choose another {option('out')}")

    def _parallel_note(self) -> str:
        """How a torchrun job's batch adds up ("" for one process): config.toml's comment."""
        if self.job.world_size == 1:
            return ""
        return (f"{self.job.world_size} processes ({self.job.backend}) x batch_size "
                f"{self.tc.batch_size} = {self.parallel['global_batch_size']} images per "
                "step; batch_size is per process")

    def _save_config(self) -> None:
        write_toml(self.out / "config.toml", self.cfg.to_tables(), comment=self._parallel_note())

    def _grid_inputs(self) -> None:
        """Fixed noise (and labels) for the sample grids, from a generator of their own so
        that drawing it does not move the run's RNG; for models with an encoder, also n
        fixed training images to show beside their reconstructions."""
        model, seed, data = self.model, self.tc.seed, self.data
        self.fixed_z, self.fixed_real = None, None
        if model.data_kind != "image":   # a table has no picture to draw
            return
        self.fixed_z, self.fixed_labels, self.nrow = model.grid_inputs(
            GRID, torch.Generator().manual_seed(seed), per_class=10, max_classes=10)
        if model.reconstructs:
            pick = torch.Generator().manual_seed(seed)
            idx = torch.randperm(len(data.images), generator=pick)[:10]
            labels = data.labels[idx].to(self.device) if data.labels is not None else None
            self.fixed_real = to_float(data.images[idx].to(self.device)), labels

    # --- the loop ----------------------------------------------------------------------

    def fit(self) -> Run:
        tc, job = self.tc, self.job
        samples = self.data.samples.to(self.device)   # images (uint8) or table rows
        labels = self.data.labels.to(self.device) if self.data.labels is not None else None
        n_real = self.model.real_batch_size(tc.batch_size)
        hashes = distributed.step_hashes(job.rank)   # a debugging aid; off unless asked for
        clock = BudgetClock(tc.budget, self.step) if tc.steps is None else None
        try:
            with StopSignals(exit_on_second=not isinstance(job, distributed.Job)) as stop:
                while ((clock is not None or self.step < self.tc.steps)
                       and job.agree_to_stop(stop.signum) is None):
                    idx = torch.randint(len(samples), (n_real,), device=self.device,
                                        generator=self.batch_gen)
                    start = self._now() if clock is not None else 0.0
                    self.train_step(self.data.prepare(samples[idx]),
                                    labels[idx] if labels is not None else None)
                    if clock is not None:
                        # rank 0's clock decides, at the same step in every process
                        steps = job.agree_on(clock.add(self._now() - start) or 0)
                        if steps:
                            self._set_length(steps, clock)
                            clock = None
                    if hashes is not None:
                        hashes.write(self.step, self.model, idx)
                    self.run_hooks(lambda every: self.step % every == 0)
                self.interrupted = job.agree_to_stop(stop.signum) or stop.signum
                # The end, or a stop request: whatever was not just written, write now.
                self.run_hooks(lambda every: self.step % every != 0)
        finally:   # also on divergence: metrics.csv and loss.png show how it went
            self.bar.close()
            if self.log is not None:
                self.log.close()
        return Run(out=self.out, model=self.model, config=self.cfg, step=self.step,
                   metrics=self.log.rows if self.log else [], interrupted=self.interrupted,
                   ema=self.ema, rank=job.rank, world_size=job.world_size)

    def _now(self) -> float:
        """The time once the device has finished the work queued so far."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return BudgetClock.now()

    def _set_length(self, steps: int, clock: BudgetClock) -> None:
        """The budget became `steps`: the run is now one of that many steps, in config.toml
        too (its checkpoints record it with the rest of the config)."""
        self.tc = dataclasses.replace(self.tc, steps=steps)
        self.cfg = dataclasses.replace(self.cfg, train=self.tc)
        if self.main:
            self._save_config()
        self.bar.total = steps
        self.bar.refresh()
        self.say(f"{option('budget', self.tc.budget)}: {steps:,} steps ({clock.step_ms():.1f} ms a "
                 f"step over the first {clock.seen}; recorded in {self.out}/config.toml)")

    def train_step(self, real: torch.Tensor, labels: torch.Tensor | None) -> None:
        metrics = self.step_fn(real, labels)
        note = getattr(self.step_fn, "note", None)
        if note and not self.graph_note_shown:
            self.graph_note_shown = True
            self.say(f"this model's step runs eagerly, without a CUDA graph: {note}")
        self.job.sync_buffers(self.model)   # BatchNorm statistics and the like: rank 0's
        self.step += 1
        if self.ema is not None:
            self.ema.update(getattr(self.model, self.model.sampling_network), self.step)
        if self.log is not None:
            self.log.add(metrics)
        self.bar.update(1)

    def run_hooks(self, due: Callable[[int], bool]) -> None:
        """The hooks whose interval `due` accepts; rank 0 runs them while the others wait."""
        hooks = [hook for every, hook in self.hooks if due(every)]
        if not hooks:
            return
        self.ranks_rng.update(self.job.rng_states(self.batch_gen))
        if self.main:
            if Trainer.evaluate in hooks or Trainer.save_checkpoint in hooks:
                self.fit_prior(force=True)
            elif Trainer.save_samples in hooks:
                self.fit_prior(force=False)
            for hook in hooks:
                hook(self)
        self.job.wait_for_main()

    # --- the hooks (rank 0) ------------------------------------------------------------

    def fit_prior(self, force: bool) -> None:
        """Refit a model's fitted prior (an autoencoder's code density) before it is sampled
        or saved: always before evaluations and checkpoints, before grids only when the fit
        is REFIT_EVERY steps old, since a fit costs about as much as a hundred steps. It
        draws no random numbers from the run's streams, so training is the same with it."""
        last = self.model.prior_step()
        if last is None or last == self.step:
            return
        if force or last < 0 or self.step - last >= REFIT_EVERY:
            self.model.fit_prior(self.data.images, self.data.labels, self.step)

    def log_metrics(self) -> None:
        self.log.flush(self.step)
        self.bar.set_postfix(self.log.postfix(), refresh=False)
        note = self.load_watch.check() if self.load_watch else None
        if note:
            self.say(note)
        won = None if self.d_wins_said else d_wins(self.log.rows, self.tc.log_every)
        fix = self.model.d_wins_fix() if won else None
        if fix:
            self.d_wins_said = True
            self.say(f"D has been right about {won:.0%} of real and fake images for over "
                     f"{D_WINS_STEPS:,} steps: it is winning, and G learns little from a D "
                     f"that always wins (the guide's warning); try {fix}")
        bad = [k for k in self.model.metric_names if not math.isfinite(self.log.rows[-1][k])]
        if bad:
            raise Diverged(self.step, f"{', '.join(bad)} became NaN or infinite", self.out,
                           self.last_good)

    def save_samples(self) -> None:
        model, folder = self.model, self.out / "samples"
        with averaged(model, self.ema):
            fakes = model.sample(latents=self.fixed_z, labels=self.fixed_labels)
        save_image(grid(fakes, nrow=self.nrow), folder / f"step_{self.step:06d}.png")
        if self.fixed_real is not None:   # originals above, their reconstructions below
            real, y = self.fixed_real
            pair = torch.cat([real, model.reconstruct(real, y)])
            save_image(grid(pair, nrow=len(real)), folder / f"recon_{self.step:06d}.png")

    def evaluate(self) -> None:
        with averaged(self.model, self.ema):
            scores = self.evaluator(self.model)
        self.log.note(scores)
        if scores["fid"] < self.best_fid:
            self.best_fid = scores["fid"]
            self.save_checkpoint("best")

    def save_checkpoint(self, name: str = "last") -> None:
        s = self.step
        bad = nonfinite_weights(self.model)   # a diverged model must not replace a good one
        if bad:
            raise Diverged(s, f"weights {', '.join(bad[:2])}{' ...' if len(bad) > 2 else ''} "
                           "became NaN or infinite", self.out, self.last_good)
        tensors, skeleton = checkpoint.training_state(self.model, self.batch_gen, self.ema)
        tensors.update(self.ranks_rng)
        meta = {**checkpoint.run_meta(self.cfg, self.model, s, self.data.name, self.parallel),
                **self.data.describe(), "optim": skeleton}
        if self.thread_segments:   # the CPU thread counts it trained on, stretch by stretch
            meta["thread_segments"] = self.thread_segments
        if self.evaluator is not None:   # what the run's fid column means, and its best value
            meta.update(best_fid=self.best_fid, evaluation=self.evaluator.describe())
        path = self.out / "checkpoints" / f"{name}.safetensors"
        checkpoint.save(path, tensors, meta)
        if name == "last":
            self.last_good = s
            if self.tc.keep:
                checkpoint.keep_numbered(path, s, self.tc.keep)


def _class_counts(data: ImageData) -> list[int]:
    """How many training images each class had: the class prior p(y) that Bayes' rule needs
    when a conditional model classifies (gankit classify)."""
    if data.labels is None:
        return []
    return torch.bincount(data.labels, minlength=len(data.class_names)).tolist()
